"""Small inline SVG charts for the hub's pages (no script, no external service): a GPU's last hour
of utilisation and memory, and GPU-hours per day. Only numbers go into the SVG."""

HOUR = 3600


def sparkline(points, memory_total, width=160, height=32):
    """``points``: (seconds ago, utilisation %, memory used bytes), newest last. Utilisation as a
    filled area, memory as a line, over the last hour (right edge: now)."""
    if not points:
        return ""

    def x(ago):
        return round(width * (1 - min(max(ago, 0), HOUR) / HOUR), 1)

    def y(fraction):
        return round(height - 1 - (height - 2) * min(max(fraction, 0.0), 1.0), 1)

    util = " ".join(f"{x(a)},{y(u / 100)}" for a, u, _ in points)
    first, last = x(points[0][0]), x(points[-1][0])
    area = f"{first},{height} {util} {last},{height}"
    parts = [
        f'<svg class="gpulab-spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="utilisation and memory, last hour">',
        f'<rect width="{width}" height="{height}" fill="#f4f6f8"/>',
        f'<polygon points="{area}" fill="#4c9be8" fill-opacity="0.45"/>',
    ]
    if memory_total:
        mem = " ".join(f"{x(a)},{y(m / memory_total)}" for a, _, m in points)
        parts.append(f'<polyline points="{mem}" fill="none" stroke="#d9534f" stroke-width="1.2"/>')
    parts.append("</svg>")
    return "".join(parts)


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
