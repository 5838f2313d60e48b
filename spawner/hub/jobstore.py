"""The hub's list of users' GPU jobs (SQLite, ``gpulab-jobs.sqlite`` in the state directory) and
a running job's output as it comes (:mod:`gpulab.hub.gpujobs` runs the jobs)."""

import asyncio
import collections
import os
import sqlite3
import threading

from ..core import gpujobs

_SCHEMA = """
create table if not exists jobs (
    id integer primary key autoincrement,
    user text not null, user_id integer not null, name text not null default '',
    state text not null, reason text not null default '',
    gpus integer not null, nodes integer not null default 1,
    profile text not null, save text not null default '', request text not null,
    hours real not null, submitted real not null, started real, ended real,
    exit_status integer, gpu_uuids text not null default '', tail text not null default '',
    tail_first integer not null default 0);
create index if not exists jobs_by_user on jobs (user_id, id);
"""
COLUMNS = [
    "id",
    "user",
    "user_id",
    "name",
    "state",
    "reason",
    "gpus",
    "nodes",
    "profile",
    "save",
    "request",
    "hours",
    "submitted",
    "started",
    "ended",
    "exit_status",
    "gpu_uuids",
    "tail",
    "tail_first",
]
KEEP_LINES = 2000  # lines of a running job's output the hub keeps for `job logs` (~8 MiB at most)


class JobStore:
    """The job list, in SQLite next to the hub's database."""

    def __init__(self, path):
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        if path != ":memory:":
            os.chmod(path, 0o600)

    def add(self, **row):
        names = ", ".join(row)
        cur = self._db.execute(
            f"insert into jobs ({names}) values ({', '.join('?' for _ in row)})",
            tuple(row.values()),
        )
        return cur.lastrowid

    def update(self, job_id, **fields):
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._db.execute(f"update jobs set {sets} where id = ?", (*fields.values(), job_id))

    def _rows(self, where, args):
        cur = self._db.execute(f"select {', '.join(COLUMNS)} from jobs where {where}", args)
        return [dict(zip(COLUMNS, r, strict=True)) for r in cur]

    def get(self, job_id):
        rows = self._rows("id = ?", (job_id,))
        return rows[0] if rows else None

    def of_user(self, user_id, since=0.0):
        return self._rows(
            "user_id = ? and (ended is null or ended >= ?) order by id desc", (user_id, since)
        )

    def everyone(self, since=0.0):
        return self._rows("ended is null or ended >= ? order by id desc", (since,))

    def prune(self, before):
        """Forget jobs that ended before ``before`` (``jobs.keep_days``)."""
        self._db.execute("delete from jobs where ended is not null and ended < ?", (before,))

    def live(self):
        marks = ", ".join("?" for _ in gpujobs.LIVE)
        return self._rows(f"state in ({marks}) order by id", gpujobs.LIVE)

    def close(self):
        self._db.close()


class Output:
    """A running job's output as it comes (from the container's follower thread), for `job logs -f`:
    the last :data:`KEEP_LINES` lines (each at most 4 KiB), handed to the event loop in batches
    (a job that prints as fast as it can costs the hub one wake-up per batch, not per line)."""

    def __init__(self, loop):
        self.loop = loop
        self.lines = collections.deque(maxlen=KEEP_LINES)
        self.first = 0  # the number of the oldest line kept
        self.changed = asyncio.Event()
        self.done = False
        self._incoming = collections.deque(maxlen=KEEP_LINES)
        self._dropped = 0  # lines that came faster than the loop took them (counted, not kept)
        self._lock = threading.Lock()
        self._scheduled = False

    def add_threadsafe(self, line):
        with self._lock:
            if len(self._incoming) == self._incoming.maxlen:
                self._dropped += 1
            self._incoming.append(line)
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._drain)

    def flush(self):
        """Take what the follower thread handed over but the loop has not yet (at the job's end)."""
        self._drain()

    def _drain(self):
        with self._lock:
            batch, dropped = list(self._incoming), self._dropped
            self._incoming.clear()
            self._dropped = 0
            self._scheduled = False
        for line in batch:
            self._add(line)
        self.first += dropped
        self._wake()

    def _add(self, line):
        if len(self.lines) == self.lines.maxlen:
            self.first += 1
        self.lines.append(line)

    def finish(self):
        self.done = True
        self._wake()

    def _wake(self):
        self.changed.set()
        self.changed = asyncio.Event()

    def since(self, n):
        start = max(n, self.first) - self.first
        return list(self.lines)[start:], self.first + len(self.lines)
