"""Progress on the terminal for the client's long operations (a server start through ssh-proxy, a
save, a home backup or restore): one line redrawn in place, a bar when the share done is known,
the time so far otherwise. When stderr is not a terminal (a script, ssh's ProxyCommand log), a
plain line now and then instead. Standard library only."""

import shutil
import sys
import threading
import time

WIDTH = 24


class Progress:
    def __init__(self, label, stream=None, every=5.0, clock=time.monotonic):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.every = every
        self.clock = clock
        self.started = clock()
        self._last_line = ""
        self._last_time = None
        self._drawn = False

    def _bar(self, fraction):
        if fraction is None:  # not known: a block moving along, so the line shows life
            pos = int((self.clock() - self.started) * 4) % WIDTH
            return "[" + " " * pos + "#" + " " * (WIDTH - pos - 1) + "]"
        filled = int(round(WIDTH * min(max(fraction, 0.0), 1.0)))
        return "[" + "#" * filled + "-" * (WIDTH - filled) + f"] {100 * fraction:3.0f}%"

    def update(self, fraction=None, text=""):
        elapsed = self.clock() - self.started
        if self.tty:
            columns = shutil.get_terminal_size((80, 20)).columns
            line = f"{self.label} {self._bar(fraction)} {text} ({elapsed:.0f} s)"
            self.stream.write("\r" + line[: columns - 1].ljust(columns - 1))
            self.stream.flush()
            self._drawn = True
            return
        now = self.clock()
        line = (
            f"{self.label}: " + (f"{100 * fraction:.0f}% " if fraction is not None else "") + text
        )
        if line != self._last_line and (
            self._last_time is None or now - self._last_time >= self.every or fraction == 1.0
        ):
            print(line, file=self.stream, flush=True)
            self._last_line, self._last_time = line, now

    def done(self, text=""):
        if self.tty and self._drawn:
            self.stream.write("\r" + " " * (shutil.get_terminal_size((80, 20)).columns - 1) + "\r")
        if text:
            print(text, file=self.stream, flush=True)


class Waiting:
    """``with Waiting("saving your environment"):`` around a call that blocks: the time so far,
    redrawn every half second on a terminal."""

    def __init__(self, label, stream=None):
        self.progress = Progress(label, stream)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.5):
            self.progress.update(None, "")

    def __enter__(self):
        if self.progress.tty:
            self._thread.start()
        return self.progress

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self.progress.done()
        return False
