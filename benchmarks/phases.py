"""Where a single spawn's time goes, from the engines' own timestamps.

The bench notes the wall clock at the POST and the spawn's length; the engine records when the
container was created and started (on a Swarm also when the service was made). Every node of
the test Swarm is a container on this machine, so all these clocks are the same kernel clock.

Phases (seconds):
- ``hub``: POST to the first object the engine made (one host: the container; Swarm: the
  service): JupyterHub's and gpulab's work before any Docker object exists.
- ``swarm``: service made to container created on a worker (orchestrator, scheduler, dispatch,
  the worker's network attachment). Swarm only.
- ``create``: container created to started (the runtime, mounts, network set-up).
- ``ready``: container started to the hub saying ready (gpulab-start, the Jupyter server
  starting, the hub noticing).
"""

import statistics
from datetime import datetime

PHASES = ("hub", "swarm", "create", "ready")
TITLES = {
    "hub": "POST until the engine makes the first object (hub work)",
    "swarm": "service made until its container exists (Swarm's own scheduling)",
    "create": "container created until started",
    "ready": "container started until the hub says ready",
}


def stamp(value):
    """Docker's RFC 3339 time (nanoseconds, Z) as POSIX seconds."""
    value = value.rstrip("Z")
    head, _, frac = value.partition(".")
    seconds = datetime.fromisoformat(head + "+00:00").timestamp()
    return seconds + (float("0." + frac) if frac else 0.0)


def one_host(posted, seconds, container_attrs):
    created, started = (
        stamp(container_attrs["Created"]),
        stamp(container_attrs["State"]["StartedAt"]),
    )
    return {
        "hub": created - posted,
        "create": started - created,
        "ready": posted + seconds - started,
    }


def swarm(posted, seconds, service, container_attrs):
    """One host's phases, with the hub's split where Swarm made the service."""
    steps = one_host(posted, seconds, container_attrs)
    made = stamp(service["CreatedAt"]) - posted
    return {**steps, "hub": made, "swarm": steps["hub"] - made}


def medians(runs):
    """{phase: median seconds} over the runs that have the phase."""
    return {
        p: statistics.median(r[p] for r in runs if p in r)
        for p in PHASES
        if any(p in r for r in runs)
    }


def rows(host_runs, swarm_runs):
    """Table rows: one host (baseline column) vs a Swarm worker, per phase."""
    host, other = medians(host_runs or []), medians(swarm_runs or [])
    out = []
    for p in PHASES:
        h, s = host.get(p), other.get(p)
        if h is None and s is None:
            continue
        out.append(
            {
                "metric": f"swarm phase: {TITLES[p]} (median)",
                "stock": h if h is not None else 0.0 if p == "swarm" else None,
                "gpulab": s,
                "ratio": s / h if h and s is not None and p != "swarm" else None,
                "unit": "s",
            }
        )
    return out
