"""The client's progress line (gpulab_client.progress): a bar redrawn in place on a terminal, a
plain line now and then elsewhere."""

import io

from gpulab_client.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_on_a_terminal_one_line_is_redrawn_with_a_bar():
    out, clock = Terminal(), Clock()
    p = Progress("starting", stream=out, clock=clock)
    p.update(0.5, "Pulling image")
    clock.t = 3
    p.update(1.0, "Started")
    p.done("ready")
    text = out.getvalue()
    assert "\n" not in text.split("ready")[0], "no new line while it runs"
    assert "[############------------]  50% Pulling image (0 s)" in text
    assert "[########################] 100% Started (3 s)" in text and text.endswith("ready\n")


def test_elsewhere_plain_lines_at_most_every_few_seconds():
    out, clock = io.StringIO(), Clock()
    p = Progress("backup", stream=out, every=5, clock=clock)
    for t, text in ((0, "1 MiB"), (1, "2 MiB"), (6, "9 MiB")):
        clock.t = t
        p.update(None, text)
    p.update(1.0, "done")
    assert out.getvalue().splitlines() == ["backup: 1 MiB", "backup: 9 MiB", "backup: 100% done"]
