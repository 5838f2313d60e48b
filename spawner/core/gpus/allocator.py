"""Exclusive (or N-way shared) GPU allocation with a wait queue.

All state changes are synchronous methods called from the hub's single event loop,
so check-and-claim can never interleave with another spawn: that is what makes
allocation atomic.  Waiting is the only ``await`` (``acquire``), and a waiter that
gives up (timeout, cancel) leaves the queue and returns anything it was granted.

The queue is served in order: first come, or (``priority``, ``gpus.queue_order: fair-share``)
the user with fewer recent GPU-hours first, then first come. Servers and jobs wait in it alike.
"""

import asyncio
import time
from dataclasses import dataclass, field

from .. import contract
from ..gpujobs import is_job_holder


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
    where: object = None  # a GPU -> bool constraint (node, model), or None for any GPU
    enqueued: float = field(default_factory=time.time)
    gang: tuple = ()  # a multi-node job's task holders: ``count`` GPUs each, on different nodes

    def could_use(self, gpu):
        if self.wanted:
            return gpu.uuid in self.wanted
        return self.where is None or self.where(gpu)

    @property
    def general(self):
        """Any GPUs will do: such a waiter keeps its place ahead of everyone behind it."""
        return not self.wanted and self.where is None


class Allocator:
    """The GPU table. GPUs carry a ``node`` ('' on a single host); one holding is on one node."""

    def __init__(self, gpus, priority=None):
        """``priority(user)`` -> a number, lower served first (fair-share: the user's recent
        GPU-hours); None: first come, first served."""
        self.holdings = {}  # (user, server) -> Holding
        self.queue = []  # Waiter, in arrival order (served in :meth:`ordered` order)
        self.priority = priority
        self.set_inventory(gpus)

    def ordered(self):
        """The live waiters in the order they are served."""
        live = [w for w in self.queue if not w.future or not w.future.done()]
        if self.priority is None:
            return live
        ranks = {}
        for w in live:
            if w.holder[0] not in ranks:
                ranks[w.holder[0]] = self.priority(w.holder[0])
        return sorted(live, key=lambda w: (ranks[w.holder[0]], w.enqueued))

    def set_inventory(self, gpus):
        """Replace the GPUs that can be handed out (nodes come and go); holdings are kept, so a
        GPU of a node that went away is never handed out twice when it comes back."""
        self.gpus = {g.uuid: g for g in gpus}
        self.order = [g.uuid for g in sorted(gpus, key=lambda g: (g.node, g.index))]
        self._dispatch()

    # --- the table ---

    def users_of(self, uuid):
        return [h for h, holding in self.holdings.items() if uuid in holding.uuids]

    def holders_by_gpu(self):
        """{uuid: [holders]} for every held GPU, in the order of :attr:`holdings` (what
        :meth:`users_of` gives for each GPU, read in one pass: a table-wide view costs
        GPUs + holdings, not GPUs x holdings)."""
        out = {}
        for h, holding in self.holdings.items():
            for u in dict.fromkeys(holding.uuids):
                out.setdefault(u, []).append(h)
        return out

    def free_slots(self, uuid):
        return self.gpus[uuid].max_shared - len(self.users_of(uuid)) if uuid in self.gpus else 0

    def _free_by_node(self, where, exclude):
        """{node: [free uuids in order]} and {uuid: servers holding it} for the pickers."""
        users = self.holders_by_gpu()
        by_node = {}
        for u in self.order:
            gpu = self.gpus[u]
            if (
                gpu.max_shared - len(users.get(u, ())) > 0
                and u not in exclude
                and (where is None or where(gpu))
            ):
                by_node.setdefault(gpu.node, []).append(u)
        return by_node, users

    def _least_used(self, free, users):
        """``free`` least-used first (spreads shared GPUs), then in table order."""
        position = {u: i for i, u in enumerate(self.order)}
        return sorted(free, key=lambda u: (len(users.get(u, ())), position[u]))

    def held_by_user(self, username):
        return sum(len(h.uuids) for (user, _), h in self.holdings.items() if user == username)

    def node_of(self, holder):
        holding = self.holdings.get(holder)
        nodes = {self.gpus[u].node for u in holding.uuids if u in self.gpus} if holding else set()
        return nodes.pop() if len(nodes) == 1 else ""

    def load(self, holdings):
        """Replace the table (after a hub restart) from {holder: (uuids, since)}.

        Unknown GPUs are kept in the table (so they are never handed out twice if the
        inventory shrank) but reported by ``snapshot``.
        """
        self.holdings = {h: Holding(list(uuids), since) for h, (uuids, since) in holdings.items()}
        self._dispatch()

    def replace(self, holder, uuids):
        """Record the GPUs a holder really got (Swarm picks the GPUs on the node we chose)."""
        if holder in self.holdings:
            self.holdings[holder].uuids = list(uuids)

    def _pick(self, count, wanted, where=None, exclude=()):
        """GPUs for a request, all on one node, or None. Never ``exclude`` (wanted by others ahead)."""
        if wanted:
            if (
                all(u in self.gpus and self.free_slots(u) > 0 for u in wanted)
                and len({self.gpus[u].node for u in wanted}) == 1
            ):
                return list(wanted)
            return None
        by_node, users = self._free_by_node(where, exclude)
        fitting = [(len(free), node) for node, free in by_node.items() if len(free) >= count]
        if not fitting:
            return None
        _, node = min(fitting)  # the fullest node that fits keeps bigger holes for bigger requests
        # least-used first (spreads shared GPUs), then by index
        return self._least_used(by_node[node], users)[:count]

    def _pick_gang(self, count, nodes, where=None, exclude=()):
        """``count`` GPUs on each of ``nodes`` different nodes, or None: the fullest nodes that fit
        (bigger holes stay for bigger requests)."""
        by_node, users = self._free_by_node(where, exclude)
        fitting = sorted((len(free), node) for node, free in by_node.items() if len(free) >= count)
        if len(fitting) < nodes:
            return None
        return [self._least_used(by_node[node], users)[:count] for _, node in fitting[:nodes]]

    def nodes_that_fit(self, count, where=None):
        """How many nodes could ever give ``count`` GPUs to one task (free or not)."""
        sizes = {}
        for gpu in self.gpus.values():
            if where is None or where(gpu):
                sizes[gpu.node] = sizes.get(gpu.node, 0) + 1
        return sum(1 for n in sizes.values() if n >= count)

    def largest_request(self, where=None):
        """The most GPUs one request could ever get (the largest node, free or not)."""
        sizes = {}
        for gpu in self.gpus.values():
            if where is None or where(gpu):
                sizes[gpu.node] = sizes.get(gpu.node, 0) + 1
        return max(sizes.values(), default=0)

    def _claim(self, holder, uuids):
        self.holdings[holder] = Holding(list(uuids), time.time())
        return list(uuids)

    def release(self, holder):
        """Give back what ``holder`` holds (no-op if nothing); wake the queue."""
        holding = self.holdings.pop(holder, None)
        self._dispatch()
        return holding.uuids if holding else []

    def _dispatch(self):
        """Serve the queue in order. A server's waiter for any GPUs keeps everyone behind it
        waiting (no starving of big requests); a waiter for specific GPUs or a node/model does not
        block those behind it, who may take GPUs it cannot use. A job's waiter (batch work, that
        may wait for hours) blocks nobody: those behind it take what it cannot use yet."""
        progress = True
        while progress:
            progress = False
            self.queue = [w for w in self.queue if not w.future.done()]
            reserved = set()  # GPUs constrained waiters ahead are waiting for
            for waiter in self.ordered():
                if waiter.gang:
                    got = self._pick_gang(
                        waiter.count, len(waiter.gang), waiter.where, exclude=reserved
                    )
                    if got is not None:  # every task's GPUs in one step, or none of them
                        self.queue.remove(waiter)
                        claimed = [self._claim(h, u) for h, u in zip(waiter.gang, got, strict=True)]
                        waiter.future.set_result(claimed)
                        progress = True
                        break
                else:
                    got = self._pick(waiter.count, waiter.wanted, waiter.where, exclude=reserved)
                    if got is not None:
                        self.queue.remove(waiter)
                        waiter.future.set_result(self._claim(waiter.holder, got))
                        progress = True
                        break
                if is_job_holder(waiter.holder):
                    continue  # a job (batch) lets those behind it use what it cannot: backfill
                if waiter.general:
                    break
                reserved |= {u for u, gpu in self.gpus.items() if waiter.could_use(gpu)}
        self._tell_positions()

    def _tell_positions(self):
        for position, waiter in enumerate(self.ordered(), 1):
            if waiter.on_wait:
                waiter.on_wait(position, self.blocking_holders(waiter))

    def blocking_holders(self, waiter):
        usable = [u for u, gpu in self.gpus.items() if waiter.could_use(gpu)] or list(waiter.wanted)
        users = self.holders_by_gpu()
        return sorted({h for u in usable for h in users.get(u, ())})

    # --- asking ---

    def requested_by_user(self, username):
        """GPUs the user holds plus those their servers and jobs wait for in the queue."""
        return self.held_by_user(username) + sum(
            w.count * max(1, len(w.gang))
            for w in self.queue
            if w.holder[0] == username and not w.future.done()
        )

    async def acquire_gang(
        self, holder, tasks, count, *, where=None, quota=None, timeout=None, on_wait=None
    ):
        """``count`` GPUs for each of ``tasks`` (holders: a multi-node job's tasks), every task on
        a different node, granted all together or not at all: nothing is held while the rest is
        waited for, so two gangs can never hold each other up. ``holder`` is the request's name in
        the queue (the job). Returns [uuids] per task; waits (``timeout``: GPUsBusy) otherwise."""
        tasks = tuple(tasks)
        if all(t in self.holdings for t in tasks):
            return [list(self.holdings[t].uuids) for t in tasks]
        total = count * len(tasks)
        if quota is not None:
            already = self.requested_by_user(holder[0])
            if already + total > quota:
                raise QuotaExceeded(
                    f"{total} is over your GPU quota of {quota}"
                    + (f" ({already} already held or requested)" if already else "")
                )
        future = asyncio.get_running_loop().create_future()
        waiter = Waiter(holder, count, (), future, on_wait, where, gang=tasks)
        self.queue.append(waiter)
        self._dispatch()
        if future.done():
            return future.result()
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except BaseException as e:
            if future.done() and not future.cancelled():
                for t in tasks:
                    self.holdings.pop(t, None)
            else:
                future.cancel()
            if waiter in self.queue:
                self.queue.remove(waiter)
            self._dispatch()
            if isinstance(e, asyncio.TimeoutError):
                raise GPUsBusy(f"waited {timeout:.0f}s for {len(tasks)} x {count} GPU(s)")
            raise

    async def acquire(
        self,
        holder,
        count,
        wanted=(),
        *,
        where=None,
        quota=None,
        wait=True,
        timeout=None,
        on_wait=None,
        show_holders=True,
    ):
        """Claim ``count`` GPUs (or exactly ``wanted``) for ``holder``, all on one node; returns UUIDs.

        ``where`` limits the GPUs to those it accepts (a node, a model). ``quota`` caps the GPUs the holder's user may hold or wait for across all their servers
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
                extra = (
                    f" ({already} already held or requested by your other servers)"
                    if already
                    else ""
                )
                raise QuotaExceeded(f"{count} is over your GPU quota of {quota}{extra}")
        future = asyncio.get_running_loop().create_future()
        waiter = Waiter(holder, count, wanted, future, on_wait, where)
        # served now if its place in the queue's order lets it (the queue may be empty)
        self.queue.append(waiter)
        self._dispatch()
        if future.done():
            return future.result()
        if not wait:
            self.queue.remove(waiter)
            future.cancel()
            self._tell_positions()
            busy = self.blocking_holders(waiter)
            raise GPUsBusy(
                f"no free GPU for {count} GPU(s){' ' + ','.join(wanted) if wanted else ''}; held by "
                + describe(busy, show_holders)
            )
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
                raise GPUsBusy(
                    f"waited {timeout:.0f}s for {count} GPU(s); still held by "
                    + describe(self.blocking_holders(waiter), show_holders)
                )
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
        users = self.holders_by_gpu()
        for uuid in self.order:
            gpu = self.gpus[uuid]
            holders = [
                {
                    "user": u if show_holders else "(hidden)",
                    "server": s if show_holders else "",
                    "since": self.holdings[(u, s)].since,
                }
                for (u, s) in users.get(uuid, ())
            ]
            rows.append(
                {**gpu.as_dict(), "holders": holders, "free_slots": gpu.max_shared - len(holders)}
            )
        queue = [
            {
                "user": w.holder[0] if show_holders else "(hidden)",
                "gpus": w.count * max(1, len(w.gang)),
                "nodes": max(1, len(w.gang)),
                "since": w.enqueued,
                "job": is_job_holder(w.holder),
            }
            for w in self.ordered()
        ]
        return {"gpus": rows, "queue": queue}


def describe(holders, show_holders=True):
    """Who holds GPUs, in words: their names, or only how many (``gpus.show_holders: false``)."""
    if not show_holders:
        return (
            f"{len(holders)} other server(s)"
            if holders
            else "nobody (GPU does not exist or is reserved)"
        )
    return (
        ", ".join(f"{u}{'/' + s if s else ''}" for u, s in holders)
        or "nobody (GPU does not exist or is reserved)"
    )


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
