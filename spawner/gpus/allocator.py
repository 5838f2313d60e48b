"""Exclusive (or N-way shared) GPU allocation with a FIFO wait queue.

All state changes are synchronous methods called from the hub's single event loop,
so check-and-claim can never interleave with another spawn: that is what makes
allocation atomic.  Waiting is the only ``await`` (``acquire``), and a waiter that
gives up (timeout, cancel) leaves the queue and returns anything it was granted.
"""

import asyncio
import time
from dataclasses import dataclass, field

from .. import contract


class GPUsBusy(Exception):
    """The request cannot be served now (waiting disabled or timed out)."""


class QuotaExceeded(Exception):
    """The request would take the user over their GPU quota (checked atomically, at the claim)."""


@dataclass
class Holding:
    uuids: list
    since: float


@dataclass
class Waiter:
    holder: tuple
    count: int
    wanted: tuple
    future: asyncio.Future
    on_wait: object = None
    enqueued: float = field(default_factory=time.time)


class Allocator:
    def __init__(self, gpus):
        self.gpus = {g.uuid: g for g in gpus}
        self.order = [g.uuid for g in sorted(gpus, key=lambda g: g.index)]
        self.holdings = {}  # (user, server) -> Holding
        self.queue = []  # FIFO of Waiter

    # --- the table ---

    def users_of(self, uuid):
        return [h for h, holding in self.holdings.items() if uuid in holding.uuids]

    def free_slots(self, uuid):
        return self.gpus[uuid].max_shared - len(self.users_of(uuid))

    def held_by_user(self, username):
        return sum(len(h.uuids) for (user, _), h in self.holdings.items() if user == username)

    def load(self, holdings):
        """Replace the table (after a hub restart) from {holder: (uuids, since)}.

        Unknown GPUs are kept in the table (so they are never handed out twice if the
        inventory shrank) but reported by ``snapshot``.
        """
        self.holdings = {h: Holding(list(uuids), since) for h, (uuids, since) in holdings.items()}
        self._dispatch()

    def _pick(self, count, wanted):
        if wanted:
            return list(wanted) if all(u in self.gpus and self.free_slots(u) > 0 for u in wanted) else None
        # least-used first (spreads shared GPUs), then by index
        free = sorted((u for u in self.order if self.free_slots(u) > 0), key=lambda u: (len(self.users_of(u)), self.order.index(u)))
        return free[:count] if len(free) >= count else None

    def _claim(self, holder, uuids):
        self.holdings[holder] = Holding(list(uuids), time.time())
        return list(uuids)

    def release(self, holder):
        """Give back what ``holder`` holds (no-op if nothing); wake the queue."""
        holding = self.holdings.pop(holder, None)
        self._dispatch()
        return holding.uuids if holding else []

    def _dispatch(self):
        """Serve waiters strictly in order; the head blocks those behind it."""
        while self.queue:
            head = self.queue[0]
            if head.future.done():
                self.queue.pop(0)
                continue
            got = self._pick(head.count, head.wanted)
            if got is None:
                break
            self.queue.pop(0)
            head.future.set_result(self._claim(head.holder, got))
        self._tell_positions()

    def _tell_positions(self):
        for position, waiter in enumerate(self.queue, 1):
            if waiter.on_wait:
                waiter.on_wait(position, self.blocking_holders(waiter))

    def blocking_holders(self, waiter):
        wanted = waiter.wanted or self.order
        return sorted({h for u in wanted for h in self.users_of(u)})

    # --- asking ---

    def requested_by_user(self, username):
        """GPUs the user holds plus those their servers wait for in the queue."""
        return self.held_by_user(username) + sum(w.count for w in self.queue if w.holder[0] == username and not w.future.done())

    async def acquire(self, holder, count, wanted=(), *, quota=None, wait=True, timeout=None, on_wait=None):
        """Claim ``count`` GPUs (or exactly ``wanted``) for ``holder``; returns UUIDs.

        ``quota`` caps the GPUs the holder's user may hold or wait for across all their servers
        (None: no cap); checked here, in the same synchronous step as the claim, so two
        concurrent spawns of one user cannot both pass it. Raises QuotaExceeded, or GPUsBusy
        when waiting is off or ``timeout`` seconds pass.
        """
        wanted = tuple(wanted or ())
        if holder in self.holdings:
            return list(self.holdings[holder].uuids)
        if not count and not wanted:
            return []
        count = len(wanted) or count
        if quota is not None:
            already = self.requested_by_user(holder[0])
            if already + count > quota:
                extra = f" ({already} already held or requested by your other servers)" if already else ""
                raise QuotaExceeded(f"{count} is over your GPU quota of {quota}{extra}")
        if not self.queue:
            got = self._pick(count, wanted)
            if got is not None:
                return self._claim(holder, got)
        if not wait:
            busy = self.blocking_holders(Waiter(holder, count, wanted, None))
            raise GPUsBusy(f"no free GPU for {count} GPU(s){' ' + ','.join(wanted) if wanted else ''}; held by " + describe(busy))
        future = asyncio.get_running_loop().create_future()
        waiter = Waiter(holder, count, wanted, future, on_wait)
        self.queue.append(waiter)
        self._tell_positions()
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except BaseException as e:
            if future.done() and not future.cancelled():
                self.release(holder)  # granted just as we gave up
            else:
                future.cancel()
            if waiter in self.queue:
                self.queue.remove(waiter)
            self._dispatch()
            if isinstance(e, asyncio.TimeoutError):
                raise GPUsBusy(f"waited {timeout:.0f}s for {count} GPU(s); still held by " + describe(self.blocking_holders(waiter)))
            raise

    def cancel_waiting(self, holder):
        """Drop ``holder`` from the queue (its acquire() raises CancelledError)."""
        for waiter in list(self.queue):
            if waiter.holder == holder:
                waiter.future.cancel()
        self._dispatch()

    # --- views ---

    def snapshot(self, show_holders=True):
        rows = []
        for uuid in self.order:
            gpu = self.gpus[uuid]
            holders = [
                {"user": u if show_holders else "(hidden)", "server": s if show_holders else "", "since": self.holdings[(u, s)].since}
                for (u, s) in self.users_of(uuid)
            ]
            rows.append({**gpu.as_dict(), "holders": holders, "free_slots": gpu.max_shared - len(holders)})
        queue = [{"user": w.holder[0] if show_holders else "(hidden)", "gpus": w.count, "since": w.enqueued} for w in self.queue]
        return {"gpus": rows, "queue": queue}


def describe(holders):
    return ", ".join(f"{u}{'/' + s if s else ''}" for u, s in holders) or "nobody (GPU does not exist or is reserved)"


def holdings_from_containers(containers):
    """{holder: (uuids, since)} from running gpulab containers' labels (the source of truth)."""
    out = {}
    for c in containers:
        labels = c.get("Labels") or {}
        uuids = list(contract.parse_gpu_list(labels.get(contract.L_GPUS)))
        if not uuids:
            continue
        holder = (labels.get(contract.L_USER, ""), labels.get(contract.L_SERVER, ""))
        out[holder] = (uuids, float(c.get("Created") or time.time()))
    return out
