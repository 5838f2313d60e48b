"""How long the hub's event loop is blocked: every request, spawn and proxy check waits on it.

A tick every :data:`TICK` seconds measures how late it runs (the lag: time the loop spent on
something else without yielding), into ``gpulab_event_loop_lag_seconds`` (a histogram) and
``gpulab_event_loop_lag_max_seconds`` (the worst in the last minute). A watchdog thread looks at
the loop from outside: when it has not ticked for :data:`BLOCKED` seconds, the loop thread's stack
is logged once for that block (where the hub was stuck: the cause, not only the symptom).
"""

import asyncio
import collections
import sys
import threading
import time
import traceback

TICK = 0.1
BLOCKED = 0.5  # seconds without a tick before the loop's stack is logged
WINDOW = 60  # seconds the max gauge covers


class LoopWatch:
    def __init__(self, metrics, log):
        self.metrics = metrics
        self.log = log
        self.worst = 0.0  # since start
        self.worst_where = ""  # where the loop was stuck in the worst block seen from outside
        self._block_where = ""
        self._recent = collections.deque()  # (time, lag)
        self._last_tick = time.monotonic()
        self._reported = False
        self._task = None
        self._thread = None
        self._stop = threading.Event()
        self._loop_thread = None

    def start(self):
        self._loop_thread = threading.get_ident()
        self._task = asyncio.get_running_loop().create_task(self._ticks())
        self._thread = threading.Thread(target=self._watch, name="gpulab-loopwatch", daemon=True)
        self._thread.start()

    def close(self):
        self._stop.set()
        if self._task is not None:
            self._task.cancel()

    async def _ticks(self):
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK)
            now = time.monotonic()
            self.record(max(0.0, now - before - TICK), now)

    def record(self, lag, now):
        self._last_tick = now
        self._reported = False
        self.metrics.loop_lag.observe(lag)
        self._recent.append((now, lag))
        while self._recent and self._recent[0][0] < now - WINDOW:
            self._recent.popleft()
        self.metrics.loop_lag_max.set(max(lag for _, lag in self._recent))
        at, self._block_where = self._block_where, ""
        if lag > self.worst:
            self.worst, self.worst_where = lag, at
        if lag >= BLOCKED:
            self.log.warning(
                "gpulab: the event loop was blocked for %.2f s%s", lag, f" (in {at})" if at else ""
            )

    def _watch(self):
        while not self._stop.wait(TICK):
            stalled = time.monotonic() - self._last_tick
            if stalled < BLOCKED + TICK or self._reported:
                continue
            self._reported = True
            frame = sys._current_frames().get(self._loop_thread)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)
            self._block_where = where(stack)
            self.log.warning(
                "gpulab: the event loop has been blocked for %.2f s, at:\n%s",
                stalled,
                "".join(traceback.format_list(stack[-8:])),
            )


def where(stack):
    """The innermost frame of the stack that is not the standard library's: what blocked."""
    for frame in reversed(stack):
        if "/lib/python3" not in frame.filename or "site-packages" in frame.filename:
            return f"{frame.filename}:{frame.lineno} {frame.name}"
    return f"{stack[-1].filename}:{stack[-1].lineno} {stack[-1].name}" if stack else ""
