"""Spawn progress: a small event log that ``Spawner.progress()`` can follow.

Events are JSON-safe dicts ``{"progress": int, "message": str}``; producers may
call :meth:`ProgressLog.emit` from the event loop or, via ``emit_threadsafe``,
from a Docker worker thread (image pulls stream from one).
"""

import asyncio


def pull_summary(layers):
    """Sum per-layer pull progress (from Docker's pull stream) into one line."""
    total = sum(t for _, t in layers.values() if t)
    current = sum(min(c, t) for c, t in layers.values() if t)
    done = sum(1 for c, t in layers.values() if t and c >= t)
    return done, len(layers), current, total


class ProgressLog:
    def __init__(self):
        self.events = []
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def emit(self, progress, message, **extra):
        event = {"progress": int(progress), "message": str(message)}
        event.update(extra)
        self.events.append(event)
        self._changed.set()

    def emit_threadsafe(self, progress, message, **extra):
        self._loop.call_soon_threadsafe(lambda: self.emit(progress, message, **extra))

    async def follow(self, done):
        """Yield every event, in order, until the future ``done`` has finished."""
        sent = 0
        while True:
            while sent < len(self.events):
                yield self.events[sent]
                sent += 1
            if done is None or done.done():
                return
            self._changed.clear()
            waiter = asyncio.ensure_future(self._changed.wait())
            await asyncio.wait([waiter, done], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
