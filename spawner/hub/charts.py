"""Small inline SVG charts for the hub's pages (no script, no external service): a GPU's last hour
of utilisation and memory, and GPU-hours per day. Only numbers go into the SVG."""

import operator

HOUR = 3600


def sparkline(points, memory_total, width=160, height=32):
    """``points``: (seconds ago, utilisation %, memory used bytes), newest last. Utilisation as a
    filled area, memory as a line, over the last hour (right edge: now)."""
    if not points:
        return ""
    return sparkline_columns(*zip(*points, strict=True), memory_total, width, height)


def sparkline_columns(agos, utils, mems, memory_total, width=160, height=32):
    """:func:`sparkline` of the points' columns: seconds ago, utilisation %, memory used bytes."""
    if not agos:
        return ""
    # the page draws one per GPU, an hour of points each, so each coordinate's text is looked up:
    # every GPU's points are at the monitor's rounds (the same seconds ago), and a GPU's
    # utilisation (whole percents from NVML) and memory in use repeat. The text is
    # str(round(v, 1)) of x = width * (1 - clamp(ago, 0, HOUR) / HOUR) and
    # y = height - 1 - (height - 2) * clamp(value / full, 0, 1), written as "{v:.1f}" (the same
    # correctly rounded digits); the lookups and joins run in C (map), not a loop per point
    global _last_xs
    prev = _last_xs
    if prev[0] == width and prev[1] == agos:  # every GPU's hour has the same rounds
        xs = prev[2]
    else:
        xs = list(map(_x_texts(width).__getitem__, agos))  # "x," each
        _last_xs = (width, agos, xs)
    util = " ".join(map(operator.add, xs, map(_y_texts(height, 100).__getitem__, utils)))
    first, last = xs[0][:-1], xs[-1][:-1]
    area = f"{first},{height} {util} {last},{height}"
    parts = [
        f'<svg class="gpulab-spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="utilisation and memory, last hour">',
        f'<rect width="{width}" height="{height}" fill="#f4f6f8"/>',
        f'<polygon points="{area}" fill="#4c9be8" fill-opacity="0.45"/>',
    ]
    if memory_total:
        mem = " ".join(map(operator.add, xs, map(_y_texts(height, memory_total).__getitem__, mems)))
        parts.append(f'<polyline points="{mem}" fill="none" stroke="#d9534f" stroke-width="1.2"/>')
    parts.append("</svg>")
    return "".join(parts)


_last_xs = (None, (), [])  # the last chart's width, seconds ago and x texts
_MOST = 1 << 16  # texts kept per scale (then forgotten all at once)


class _Texts(dict):
    """A scale's coordinate texts: value -> text, made on first use."""

    __slots__ = ("make",)

    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, value):
        if len(self) > _MOST:
            self.clear()
        text = self[value] = self.make(value)
        return text


_X = {}  # width -> _Texts: seconds ago -> "x,"
_Y = {}  # (height, full) -> _Texts: value -> "y"


def _x_texts(width):
    texts = _X.get(width)
    if texts is None:
        if len(_X) > 64:
            _X.clear()
        texts = _X[width] = _Texts(
            lambda a: f"{width * (1 - (0 if a < 0 else HOUR if a > HOUR else a) / HOUR):.1f},"
        )
    return texts


def _y_texts(height, full):
    texts = _Y.get((height, full))
    if texts is None:
        if len(_Y) > 64:  # a scale per GPU memory size: a few
            _Y.clear()
        top, span = height - 1, height - 2

        def make(v):
            f = v / full
            return f"{top - span * (0.0 if f < 0.0 else 1.0 if f > 1.0 else f):.1f}"

        texts = _Y[(height, full)] = _Texts(make)
    return texts


def day_bars(rows, width=420, height=120):
    """``rows``: (day label, hours held, hours used), oldest first: one bar per day, the used part
    darker, with the day under it."""
    if not rows:
        return ""
    top = max(held for _, held, _ in rows) or 1.0
    slot = width / len(rows)
    bar = max(slot * 0.6, 2)
    chart = height - 16
    parts = [
        f'<svg class="gpulab-bars" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="GPU-hours per day">'
    ]
    for i, (day, held, used) in enumerate(rows):
        x0 = round(i * slot + (slot - bar) / 2, 1)
        h_held = round(chart * held / top, 1)
        h_used = round(chart * min(used, held) / top, 1)
        parts.append(
            f'<rect x="{x0}" y="{chart - h_held}" width="{bar:.1f}" height="{h_held}" fill="#a9c8ef"/>'
            f'<rect x="{x0}" y="{chart - h_used}" width="{bar:.1f}" height="{h_used}" fill="#2f6fb8"/>'
            f'<text x="{round(x0 + bar / 2, 1)}" y="{height - 3}" font-size="10" text-anchor="middle">'
            f"{int(day[-2:]) if str(day)[-2:].isdigit() else ''}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
