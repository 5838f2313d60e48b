"""The hub's usage book: GPU-hours per user and day, and every reclaim with its reason, in a
SQLite file in the hub's state directory (``gpulab-usage.sqlite``, :func:`gpulab.core.site.facts.usage_path`),
next to the hub database, so it survives hub restarts. The arithmetic is :mod:`gpulab.core.gpus.usage`."""

import os
import sqlite3
import time

from ..core.gpus.usage import day_of, split_days

_USAGE = """create table if not exists usage (
    day text not null, user text not null, kind text not null default 'server',
    held_seconds real not null default 0, used_seconds real not null default 0,
    primary key (day, user, kind))"""
_SCHEMA = (
    _USAGE
    + """;
create table if not exists reading_tokens (token_id integer primary key, node text not null);

create table if not exists reclaims (
    time real not null, user text not null, server text not null, gpus text not null, reason text not null);
"""
)


class UsageStore:
    def __init__(self, path):
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._migrate()
        self._db.executescript(_SCHEMA)
        if path != ":memory:":
            os.chmod(path, 0o600)

    def _migrate(self):
        """A book from before jobs (no ``kind``): its rows become the servers' ("server")."""
        cols = [r[1] for r in self._db.execute("pragma table_info(usage)")]
        if not cols or "kind" in cols:
            return
        db = self._db
        db.execute("begin")
        try:
            db.execute("alter table usage rename to usage_before_jobs")
            db.execute(_USAGE)
            db.execute(
                "insert into usage (day, user, kind, held_seconds, used_seconds) "
                "select day, user, 'server', held_seconds, used_seconds from usage_before_jobs"
            )
            db.execute("drop table usage_before_jobs")
        except BaseException:
            db.execute("rollback")
            raise
        db.execute("commit")

    def record(self, start, end, per_user):
        """Add ``per_user`` over start..end: {(user, kind): (GPUs held, sum of their utilisation
        fractions)}, kind "server" or "job" (a plain user name: a server's)."""
        rows = []
        for day, seconds in split_days(start, end):
            for key, (held, used) in per_user.items():
                user, kind = key if isinstance(key, tuple) else (key, "server")
                rows.append((day, user, kind, held * seconds, used * seconds))
        if not rows:
            return
        # one transaction for the round: in autocommit mode each row would be a transaction of
        # its own, a journal write and fsync per user every tick (seconds on a department's hub)
        db = self._db
        db.execute("begin")
        try:
            db.executemany(
                "insert into usage (day, user, kind, held_seconds, used_seconds) values (?, ?, ?, ?, ?) "
                "on conflict (day, user, kind) do update set held_seconds = held_seconds + excluded.held_seconds, "
                "used_seconds = used_seconds + excluded.used_seconds",
                rows,
            )
        except BaseException:
            db.execute("rollback")
            raise
        db.execute("commit")

    def held_hours(self, days, now=None):
        """{user: GPU-hours held (servers and jobs)} over the last ``days`` days: fair-share's measure."""
        first = day_of((now or time.time()) - (days - 1) * 86400)
        cur = self._db.execute(
            "select user, sum(held_seconds) from usage where day >= ? group by user", (first,)
        )
        return {u: h / 3600 for u, h in cur}

    def add_reclaim(self, t, user, server, uuids, reason):
        self._db.execute(
            "insert into reclaims values (?, ?, ?, ?, ?)",
            (t, user, server, ",".join(uuids), reason),
        )

    def reclaims(self, since=0.0):
        cur = self._db.execute(
            "select time, user, server, gpus, reason from reclaims where time >= ? order by time",
            (since,),
        )
        return [
            {"time": t, "user": u, "server": s, "gpus": g.split(",") if g else [], "reason": r}
            for t, u, s, g, r in cur
        ]

    def rows(self, days=7, now=None, users=None):
        """[{day, user, kind, held_hours, used_hours}] for the last ``days`` days (today
        included); kind "server" or "job"."""
        now = now or time.time()
        first = day_of(now - (days - 1) * 86400)
        cur = self._db.execute(
            "select day, user, kind, held_seconds, used_seconds from usage where day >= ? "
            "order by day, user, kind",
            (first,),
        )
        return [
            {"day": d, "user": u, "kind": k, "held_hours": h / 3600, "used_hours": s / 3600}
            for d, u, k, h, s in cur
            if users is None or u in users
        ]

    def token_node(self, token_id, node):
        """The node a readings token reports for: bound to the first node it reported, so each
        node needs a token of its own (a node's token cannot speak for another node)."""
        self._db.execute("insert or ignore into reading_tokens values (?, ?)", (token_id, node))
        (bound,) = self._db.execute(
            "select node from reading_tokens where token_id = ?", (token_id,)
        ).fetchone()
        return bound

    def close(self):
        self._db.close()
