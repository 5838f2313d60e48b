"""GPU-hours arithmetic: a stretch of time split into UTC days, rows summed per group, and the
report ``gpulab usage`` prints. Pure; the book itself (SQLite) is :mod:`gpulab.hub.usagebook`.

Held = a GPU was allocated to the user; used = held, weighted by its utilisation. Each row is of
one kind: a server's GPUs ("server") or a job's ("job"). Groups are
summed at report time from the hub's current group membership.
"""

import csv
import io
import json
from datetime import datetime, timedelta, timezone


def day_of(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d")


def split_days(start, end):
    """[(day, seconds)] covering start..end, split at UTC midnight."""
    out = []
    while start < end:
        d = datetime.fromtimestamp(start, timezone.utc)
        midnight = (
            d.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        ).timestamp()
        stop = min(end, midnight)
        out.append((day_of(start), stop - start))
        start = stop
    return out


def by_group(rows, groups_of):
    """Sum rows per (day, group); ``groups_of(user)`` -> group names (a user may be in several)."""
    out = {}
    for r in rows:
        kind = r.get("kind", "server")
        for g in groups_of(r["user"]):
            acc = out.setdefault(
                (r["day"], g, kind),
                {"day": r["day"], "group": g, "kind": kind, "held_hours": 0.0, "used_hours": 0.0},
            )
            acc["held_hours"] += r["held_hours"]
            acc["used_hours"] += r["used_hours"]
    return [out[k] for k in sorted(out)]


def render(rows, fmt="table", key="user"):
    """Rows as a table, CSV or JSON (what ``gpulab usage`` prints)."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    cols = ["day", key, "kind", "held_hours", "used_hours"]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(cols)
        for r in rows:
            w.writerow(
                [
                    r["day"],
                    r[key],
                    r.get("kind", "server"),
                    f"{r['held_hours']:.3f}",
                    f"{r['used_hours']:.3f}",
                ]
            )
        return buf.getvalue()
    lines = [
        f"{'day':<10}  {key:<20}  {'kind':<6}  {'GPU-h held':>10}  {'GPU-h used':>10}  {'used %':>6}"
    ]
    for r in rows:
        pct = 100 * r["used_hours"] / r["held_hours"] if r["held_hours"] else 0.0
        lines.append(
            f"{r['day']:<10}  {r[key]:<20}  {r.get('kind', 'server'):<6}  {r['held_hours']:>10.2f}  {r['used_hours']:>10.2f}  {pct:>5.0f}%"
        )
    if not rows:
        lines.append("(no GPU usage recorded in this period)")
    return "\n".join(lines)
