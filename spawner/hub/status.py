"""The hub's own account of itself, written every few seconds to ``<state>/gpulab-status.json``
(0600, root's): its GPUs with holders, utilisation and idle time, the queue, the jobs under way,
the last reclaims. ``gpulab status`` reads it on the hub's machine with no token and no hub API;
how old it is tells whether the hub is alive."""

import asyncio
import json
import os
import time

FILE = "gpulab-status.json"
EVERY = 10.0


def status_path(state_dir):
    return os.path.join(state_dir, FILE)


def document(lab, service, now):
    """What the hub writes: a plain JSON document."""
    from .pages.gpus import gpu_rows

    rows, queue = gpu_rows(service, True, now, charts=False)  # no hour of points, no sparklines
    gpus = [
        {
            key: g.get(key)
            for key in (
                "uuid",
                "index",
                "model",
                "node",
                "memory_total",
                "memory_used",
                "utilization",
                "utilization_hour",
                "idle_for",
                "outside",
            )
        }
        | {
            "holders": [
                f"{h['user']}{'/' + h['server'] if h['server'] else ''}" for h in g["holders"]
            ]
        }
        for g in rows
    ]
    backups = [
        {"user": job.username, "kind": job.kind, "running_for": now - job.started}
        for job in lab.home_backups.jobs.values()
        if job.state == "running"
    ]
    return {
        "time": now,
        "hub": lab.name,
        "mode": lab.backend.mode,
        "gpus": gpus,
        "queue": [
            {"user": q["user"], "gpus": q["gpus"], "waiting": now - q["since"]} for q in queue
        ],
        "jobs": {"backups": backups, "saves": len(lab.saves_in_flight)},
        "reclaims": [
            {"time": r["time"], "user": r["user"], "server": r["server"], "reason": r["reason"]}
            for r in service.usage.reclaims(now - 86400)[-10:]
        ],
        "readings": service.mode,
    }


def write(path, doc):
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


async def keep_writing(lab, service, log, every=EVERY):
    path = status_path(lab.state_dir)
    while True:
        try:
            write(path, document(lab, service, time.time()))
        except Exception as e:  # a full disk must not stop the hub
            log.warning("gpulab: could not write %s: %s", path, e)
        await asyncio.sleep(every)
