"""Container starts admitted in bounded waves, first come first served, per Docker host.

Starting a single-user server is CPU work on the host that runs it (container setup, the
start hooks, Python importing Jupyter). When forty users press Start at once on a two-core
server, forty starts that share the CPUs all finish late: every user waits for every other.
A gate of ``width`` places per host lets the first users in at once, and every later user
waits for a place (their position is shown in the spawn progress) and then starts on a host
that is not thrashing: most users get their server much sooner, and the last one no later.

A place is held from creating the container until its server answers HTTP (or the start fails).
The gate lives in the hub process; one per host (``""`` on a single host, the node's name on a
Swarm). Waiting is cancellable: a user who gives up leaves the queue.
"""

import asyncio
import collections
import contextlib


class StartGate:
    def __init__(self, width):
        self.width = max(1, int(width))
        self.running = 0
        self._waiters = collections.deque()  # futures, oldest first
        self._watchers = set()  # callables told when positions change

    def position(self, waiter):
        """1-based place in the queue of ``waiter`` (0 once admitted)."""
        try:
            return self._waiters.index(waiter) + 1
        except ValueError:
            return 0

    @property
    def waiting(self):
        return len(self._waiters)

    def _admit(self):
        while self.running < self.width and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.running += 1
                waiter.set_result(None)
        for watcher in list(self._watchers):
            watcher()

    def _release(self):
        self.running -= 1
        self._admit()

    @contextlib.asynccontextmanager
    async def place(self, on_wait=None):
        """Hold one start place for the body of the ``async with``.

        ``on_wait(position, ahead_running)`` is called whenever this caller's position in the
        queue changes while it waits (never when it is admitted at once).
        """
        if self.running < self.width and not self._waiters:
            self.running += 1
        else:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            last = [None]

            def watch():
                pos = self.position(waiter)
                if pos and pos != last[0]:
                    last[0] = pos
                    if on_wait:
                        on_wait(pos, self.running)

            self._watchers.add(watch)
            watch()
            try:
                await waiter
            except BaseException:
                self._watchers.discard(watch)
                if waiter.done() and not waiter.cancelled():
                    self._release()  # admitted just as we were cancelled: give the place back
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                    self._admit()
                raise
            self._watchers.discard(watch)
        try:
            yield
        finally:
            self._release()


def width_for(cpus, configured=0):
    """Places for a host: the admin's ``concurrent_starts`` when set, else its CPUs + 1 (a start
    is partly waiting on Docker; measured best of 2, 3 and 4 places on a 2-core host), at least 2."""
    return configured if configured > 0 else max(2, int(cpus) + 1)


class StartGates:
    """One :class:`StartGate` per host, created on first use with ``width_for(host)`` places."""

    def __init__(self):
        self._gates = {}

    def get(self, host, width):
        gate = self._gates.get(host)
        if gate is None:
            gate = self._gates[host] = StartGate(width)
        elif gate.width != max(1, int(width)):  # a changed setting or a node's new CPU count
            gate.width = max(1, int(width))
            gate._admit()
        return gate
