"""GPU-hours per user and day: held (a GPU was allocated to them) and used (held, weighted by its
utilisation), plus every reclaim with its reason. Kept in a SQLite file in the hub's state
directory (``gpulab-usage.sqlite``), next to the hub database, so it survives hub restarts.

Groups are summed at report time from the hub's current group membership.
Days are UTC days; a stretch of time is split at midnight.
"""

import csv
import io
import json
import os
import sqlite3
import time
from datetime import datetime, timedelta, timezone

FILE = "gpulab-usage.sqlite"

_SCHEMA = """
create table if not exists usage (
    day text not null, user text not null,
    held_seconds real not null default 0, used_seconds real not null default 0,
    primary key (day, user));
create table if not exists reclaims (
    time real not null, user text not null, server text not null, gpus text not null, reason text not null);
"""


def usage_path(state_dir):
    return os.path.join(state_dir, FILE)


def day_of(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d")


def _split_days(start, end):
    """[(day, seconds)] covering start..end, split at UTC midnight."""
    out = []
    while start < end:
        d = datetime.fromtimestamp(start, timezone.utc)
        midnight = (d.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)).timestamp()
        stop = min(end, midnight)
        out.append((day_of(start), stop - start))
        start = stop
    return out


class UsageStore:
    def __init__(self, path):
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        if path != ":memory:":
            os.chmod(path, 0o600)

    def record(self, start, end, per_user):
        """Add ``per_user`` = {user: (gpus held, sum of their utilisation fractions)} over start..end."""
        rows = []
        for day, seconds in _split_days(start, end):
            for user, (held, used) in per_user.items():
                rows.append((day, user, held * seconds, used * seconds))
        if not rows:
            return
        self._db.executemany(
            "insert into usage (day, user, held_seconds, used_seconds) values (?, ?, ?, ?) "
            "on conflict (day, user) do update set held_seconds = held_seconds + excluded.held_seconds, "
            "used_seconds = used_seconds + excluded.used_seconds",
            rows,
        )

    def add_reclaim(self, t, user, server, uuids, reason):
        self._db.execute("insert into reclaims values (?, ?, ?, ?, ?)", (t, user, server, ",".join(uuids), reason))

    def reclaims(self, since=0.0):
        cur = self._db.execute("select time, user, server, gpus, reason from reclaims where time >= ? order by time", (since,))
        return [{"time": t, "user": u, "server": s, "gpus": g.split(",") if g else [], "reason": r} for t, u, s, g, r in cur]

    def rows(self, days=7, now=None, users=None):
        """[{day, user, held_hours, used_hours}] for the last ``days`` days (today included)."""
        now = now or time.time()
        first = day_of(now - (days - 1) * 86400)
        cur = self._db.execute("select day, user, held_seconds, used_seconds from usage where day >= ? order by day, user", (first,))
        return [{"day": d, "user": u, "held_hours": h / 3600, "used_hours": s / 3600} for d, u, h, s in cur if users is None or u in users]

    def close(self):
        self._db.close()


def by_group(rows, groups_of):
    """Sum rows per (day, group); ``groups_of(user)`` -> group names (a user may be in several)."""
    out = {}
    for r in rows:
        for g in groups_of(r["user"]):
            acc = out.setdefault((r["day"], g), {"day": r["day"], "group": g, "held_hours": 0.0, "used_hours": 0.0})
            acc["held_hours"] += r["held_hours"]
            acc["used_hours"] += r["used_hours"]
    return [out[k] for k in sorted(out)]


def render(rows, fmt="table", key="user"):
    """Rows as a table, CSV or JSON (what ``gpulab usage`` prints)."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    cols = ["day", key, "held_hours", "used_hours"]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(cols)
        for r in rows:
            w.writerow([r["day"], r[key], f"{r['held_hours']:.3f}", f"{r['used_hours']:.3f}"])
        return buf.getvalue()
    lines = [f"{'day':<10}  {key:<20}  {'GPU-h held':>10}  {'GPU-h used':>10}  {'used %':>6}"]
    for r in rows:
        pct = 100 * r["used_hours"] / r["held_hours"] if r["held_hours"] else 0.0
        lines.append(f"{r['day']:<10}  {r[key]:<20}  {r['held_hours']:>10.2f}  {r['used_hours']:>10.2f}  {pct:>5.0f}%")
    if not rows:
        lines.append("(no GPU usage recorded in this period)")
    return "\n".join(lines)
