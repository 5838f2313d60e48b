"""The hub's GPU monitor: every ``interval`` seconds it takes the GPUs' readings, keeps the last
hour of each GPU's utilisation, books GPU-hours (:mod:`gpulab.hub.usagebook`), applies the reclaim
policy (:mod:`gpulab.core.gpus.reclaim`) to every server that holds GPUs, and carries out its decisions through the
callables it was given (stop a server, log). It runs on the hub's event loop; readings that
need I/O are taken in a thread.

Readings come from a :class:`~gpulab.core.gpus.readings.ReadingsSource`: NVML on the hub's host
(one host), or :class:`~gpulab.core.gpus.readings.PushedReadings`, which the nodes' collectors
(``gpulab collect``) fill through the hub API (a Swarm, and a hub that cannot see its host's GPUs).
"""

import asyncio
import bisect
import collections
import inspect
import logging
import math
import time

from ...core.gpujobs import is_job_holder
from ...core.gpus import reclaim

HISTORY_SECONDS = 3600


class _Agos(dict):
    """A round's time -> round(now - time), made on first use (every GPU's hour has the same)."""

    __slots__ = ("now",)

    def __init__(self, now):
        super().__init__()
        self.now = now

    def __missing__(self, t):
        ago = self[t] = round(self.now - t)
        return ago


class GPUMonitor:
    def __init__(
        self,
        manager,
        readings_source,
        policy,
        *,
        usage=None,
        stop=None,
        interval=30.0,
        profile_minutes=None,
        log=None,
        metrics=None,
    ):
        """``readings_source``: a :class:`~gpulab.core.gpus.readings.ReadingsSource`.
        ``stop(holder, reason)``: stop a server (async or not). ``profile_minutes(holder)``:
        the server's profile's own idle minutes, or None."""
        self.manager = manager
        self.readings_source = readings_source
        self.policy = policy
        self.usage = usage
        self.stop = stop
        self.interval = interval
        self.profile_minutes = profile_minutes or (lambda holder: None)
        self.log = log or logging.getLogger(__name__)
        self.metrics = metrics
        self.watches = {}  # holder -> reclaim.Watch
        self.readings = {}  # uuid -> GPUReading (the latest fresh one)
        # uuid -> deque[(time, utilisation %, memory used bytes)]: the last hour, for the GPU page
        self.history = collections.defaultdict(collections.deque)
        self.gpu_idle_since = {}  # uuid -> when it last went under the threshold
        self.last_tick = None
        self._agos = _Agos(None)  # the rounds' seconds ago at the last gpu_view's now
        self._task = None

    # --- one round ---

    async def tick(self, now=None):
        now = time.time() if now is None else now
        readings = self.readings_source.read()
        if inspect.isawaitable(readings):
            readings = await readings
        self._take(readings, now)
        self._book(now)
        actions = self._judge(now)
        for holder, decision in actions:
            await self._carry_out(holder, decision, now)
        if self.metrics:
            self.metrics.update(self, now)
        self.last_tick = now
        return actions

    def _take(self, readings, now):
        self.readings = {r.uuid: r for r in readings}
        for r in readings:
            h = self.history[r.uuid]
            h.append((now, r.utilization, r.memory_used))
            while h and h[0][0] < now - HISTORY_SECONDS:
                h.popleft()
            if r.utilization < self.policy.idle_percent:
                self.gpu_idle_since.setdefault(r.uuid, now)
            else:
                self.gpu_idle_since.pop(r.uuid, None)
        for uuid in list(self.gpu_idle_since):
            if uuid not in self.readings:
                del self.gpu_idle_since[uuid]

    def utilisation(self):
        return {u: r.utilization for u, r in self.readings.items()}

    def _book(self, now):
        """GPU-hours since the last round (at most two intervals: time the hub was down is not booked)."""
        if self.usage is None or self.last_tick is None:
            return
        start = max(self.last_tick, now - 2 * self.interval)
        per_user = {}  # (user, "server" or "job") -> (GPUs held, sum of their utilisation)
        util = self.utilisation()
        for holder, holding in self.manager.allocator.holdings.items():
            key = (holder[0], "job" if is_job_holder(holder) else "server")
            held, used = per_user.get(key, (0, 0.0))
            for u in holding.uuids:
                held += 1
                used += (util.get(u) or 0.0) / 100.0
            per_user[key] = (held, used)
        self.usage.record(start, now, per_user)

    def _judge(self, now):
        holdings = self.manager.allocator.holdings
        for holder in list(self.watches):
            if (
                holder not in holdings
                or tuple(holdings[holder].uuids) != self.watches[holder].uuids
            ):
                del self.watches[holder]  # stopped, or a new server under the same name
        util = self.utilisation()
        queue_waiting = any(
            not w.future.done() for w in self.manager.allocator.queue if w.future is not None
        )
        actions = []
        for holder, holding in holdings.items():
            watch = self.watches.get(holder)
            if watch is None:  # a server's profile does not change while it runs: asked once
                watch = self.watches[holder] = reclaim.Watch(
                    holder, tuple(holding.uuids), holding.since
                )
                watch.profile_idle_minutes = self.profile_minutes(holder)
            reclaim.observe(watch, util, now, self.policy)
            if is_job_holder(holder):
                continue  # a job ends by itself (its time limit): never reclaimed, shown idle
            decision = reclaim.decide(watch, now, self.policy, queue_waiting)
            if decision:
                actions.append((holder, decision))
        return actions

    async def _carry_out(self, holder, decision, now):
        user, server = holder
        who = f"{user}/{server}" if server else user
        if decision.action == reclaim.WARN:
            self.log.warning(
                "gpulab reclaim: warned %s (%s): %s",
                who,
                ",".join(self.watches[holder].uuids),
                decision.reason,
            )
        elif decision.action == reclaim.CLEAR:
            self.log.info("gpulab reclaim: warning withdrawn for %s: %s", who, decision.reason)
        elif decision.action == reclaim.RECLAIM:
            uuids = list(self.watches[holder].uuids)
            self.log.warning(
                "gpulab reclaim: stopping %s (%s): %s", who, ",".join(uuids), decision.reason
            )
            if self.usage is not None:
                self.usage.add_reclaim(now, user, server, uuids, decision.reason)
            if self.metrics:
                self.metrics.reclaimed(decision.reason)
            if self.stop:
                try:
                    result = self.stop(holder, decision.reason)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    self.log.exception("gpulab reclaim: stopping %s failed", who)

    # --- what users and admins ask ---

    def notice(self, holder):
        watch = self.watches.get(holder)
        return watch.notice() if watch else None

    def keep(self, holder, now=None):
        """The user keeps a warned server (its idle clock starts again). Only a warning can be
        answered: a server that was not warned is not kept ahead of time."""
        watch = self.watches.get(holder)
        if watch is None or watch.notice() is None or watch.notice()["reason"] != "idle":
            return False
        reclaim.keep(watch, time.time() if now is None else now)
        self.log.info("gpulab reclaim: %s asked to keep %s", holder[0], ",".join(watch.uuids))
        return True

    def gpu_view(self, uuid, now=None, hour=True):
        """Utilisation now, mean over the last hour, idle since, processes, for the GPU page;
        ``hour``: the last hour too, for its chart (``gpulab-status.json`` needs none), as
        [(seconds ago, %, bytes)], or with ``hour="columns"`` as (seconds ago, %s, bytes), oldest
        first (what :func:`gpulab.hub.charts.sparkline_columns` draws, without a tuple a point)."""
        now = time.time() if now is None else now
        r = self.readings.get(uuid)
        since = now - HISTORY_SECONDS
        points = self.history.get(uuid)
        ts = us = ms = ()
        if points:
            # the page asks for every GPU's hour: its columns in C (zip), not a loop per point
            ts, us, ms = zip(*points, strict=True)
            if min(ts) < since:  # asked after a round: its oldest points are over an hour old
                i = bisect.bisect_left(ts, since)
                if max(ts[:i], default=-math.inf) < since <= min(ts[i:], default=math.inf):
                    ts, us, ms = ts[i:], us[i:], ms[i:]
                else:  # (not in time order: a clock that stepped back)
                    kept = [p for p in points if p[0] >= since]
                    ts, us, ms = zip(*kept, strict=True) if kept else ((), (), ())
        view = {
            "utilization": r.utilization if r else None,
            "utilization_hour": sum(us) / len(us) if us else None,
            "memory_used": r.memory_used if r else None,
            "idle_since": self.gpu_idle_since.get(uuid),
            "processes": [{"pid": p.pid, "memory_used": p.memory_used} for p in r.processes]
            if r
            else [],
            "read_at": r.time if r else None,
        }
        if hour:  # every GPU's points are at the same rounds: their seconds ago are looked up
            agos = self._agos if self._agos.now == now else _Agos(now)
            self._agos = agos
            agos = tuple(map(agos.__getitem__, ts))
            view["hour"] = (
                (agos, us, ms) if hour == "columns" else list(zip(agos, us, ms, strict=True))
            )
        return view

    # --- running ---

    def start(self):
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        return self._task

    async def _run(self):
        while True:
            try:
                await self.manager.ensure_synced()
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("gpulab monitor: a round failed")
            await asyncio.sleep(self.interval)

    def close(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None
