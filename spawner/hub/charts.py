"""Small inline SVG charts for the hub's pages (no script, no external service): a GPU's last hour
of utilisation and memory, and GPU-hours per day. Only numbers go into the SVG."""

HOUR = 3600


def sparkline(points, memory_total, width=160, height=32):
    """``points``: (seconds ago, utilisation %, memory used bytes), newest last. Utilisation as a
    filled area, memory as a line, over the last hour (right edge: now)."""
    if not points:
        return ""
    # the page draws one per GPU, an hour of points each, so each coordinate's text is looked up:
    # every GPU's points are at the monitor's rounds (the same seconds ago), and a GPU's
    # utilisation (whole percents from NVML) and memory in use repeat. The text is
    # str(round(v, 1)) of x = width * (1 - clamp(ago, 0, HOUR) / HOUR) and
    # y = height - 1 - (height - 2) * clamp(value / full, 0, 1), written as "{v:.1f}" (the same
    # correctly rounded digits)
    xs = _x_texts(width, [a for a, _, _ in points])
    util = " ".join(
        f"{x},{y}"
        for x, y in zip(xs, _y_texts(height, 100, [u for _, u, _ in points]), strict=True)
    )
    first, last = xs[0], xs[-1]
    area = f"{first},{height} {util} {last},{height}"
    parts = [
        f'<svg class="gpulab-spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="utilisation and memory, last hour">',
        f'<rect width="{width}" height="{height}" fill="#f4f6f8"/>',
        f'<polygon points="{area}" fill="#4c9be8" fill-opacity="0.45"/>',
    ]
    if memory_total:
        mem = " ".join(
            f"{x},{y}"
            for x, y in zip(
                xs, _y_texts(height, memory_total, [m for _, _, m in points]), strict=True
            )
        )
        parts.append(f'<polyline points="{mem}" fill="none" stroke="#d9534f" stroke-width="1.2"/>')
    parts.append("</svg>")
    return "".join(parts)


_X = {}  # (width, seconds ago) -> x as text
_Y = {}  # (height, full, value) -> y as text
_MOST = 1 << 16  # texts kept (then forgotten all at once)


def _x_texts(width, agos):
    if len(_X) > _MOST:
        _X.clear()
    out = []
    for a in agos:
        text = _X.get((width, a))
        if text is None:
            text = _X[(width, a)] = (
                f"{width * (1 - (0 if a < 0 else HOUR if a > HOUR else a) / HOUR):.1f}"
            )
        out.append(text)
    return out


def _y_texts(height, full, values):
    if len(_Y) > _MOST:
        _Y.clear()
    top, span = height - 1, height - 2
    out = []
    for v in values:
        text = _Y.get((height, full, v))
        if text is None:
            f = v / full
            text = _Y[(height, full, v)] = (
                f"{top - span * (0.0 if f < 0.0 else 1.0 if f > 1.0 else f):.1f}"
            )
        out.append(text)
    return out


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
