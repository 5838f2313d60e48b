"""The multi-host section of the benchmark: a hub for a Swarm of GPU servers against one host.

The Swarm is the test set-up (harness.swarm.SwarmLab: Docker-in-Docker nodes on this one
machine, a registry, the hub in a container on the manager). Workers pull the image once before
anything is timed, as a lab's nodes have it after the first server.
"""

import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from harness.swarm import SwarmLab


def timed_spawn(hub, name, options, timeout=600):
    t0 = time.monotonic()
    r = hub.api("POST", f"/users/{name}/server", json=options)
    if r.status_code not in (201, 202):
        raise RuntimeError(f"spawn {name}: {r.status_code} {r.text}")
    hub.wait_ready(name, timeout)
    return time.monotonic() - t0


def measure(client, args):
    """{'single': [s...], 'concurrent_wall': s, 'concurrent_per_user': [s...], 'nodes': {...}}."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="gpulab-bench-swarm-") as shared, SwarmLab(client, f"glbs{int(time.time()) % 100000}", shared) as lab:
        hub = lab.hub
        print("[swarm] warming the workers (first pull of the image)", file=sys.stderr, flush=True)
        for node in lab.cluster.workers:
            name = f"warm{node}"
            hub.create_user(name)
            timed_spawn(hub, name, {"profile": "cpu", "node": lab.cluster.node_name(node)})
            hub.stop_server(name, timeout=180)
        print(f"[swarm] single spawns x{args.runs}", file=sys.stderr, flush=True)
        out["single"] = []
        for i in range(args.runs):
            name = f"single{i}"
            hub.create_user(name)
            out["single"].append(timed_spawn(hub, name, {"profile": "cpu"}))
            hub.stop_server(name, timeout=180)
        print(f"[swarm] {args.n} concurrent spawns", file=sys.stderr, flush=True)
        names = [f"conc{i}" for i in range(args.n)]
        for name in names:
            hub.create_user(name)
        t0 = time.monotonic()
        with ThreadPoolExecutor(args.n) as pool:
            out["concurrent_per_user"] = list(pool.map(lambda n: timed_spawn(hub, n, {"profile": "cpu"}), names))
        out["concurrent_wall"] = time.monotonic() - t0
        out["nodes"] = {}
        for name in names:
            node, _ = hub.task(name)
            out["nodes"][node] = out["nodes"].get(node, 0) + 1
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: hub.stop_server(n, timeout=180), names))
    return out


def rows(swarm, gpulab, n):
    """Rows for the table: ratio = swarm / single host (the single-host gpulab numbers of the same run)."""
    single_swarm, single_host = statistics.median(swarm["single"]), statistics.median(gpulab["single"])
    spread = ", ".join(f"{k.rsplit('-', 1)[-1]}: {v}" for k, v in sorted(swarm["nodes"].items()))
    return [
        {
            "metric": "swarm: single spawn on a worker vs one host (median)",
            "stock": single_host,
            "gpulab": single_swarm,
            "ratio": single_swarm / single_host,
            "unit": "s",
        },
        {
            "metric": f"swarm: {n} concurrent spawns on 2 workers ({spread}) vs one host, wall",
            "stock": gpulab["concurrent_wall"],
            "gpulab": swarm["concurrent_wall"],
            "ratio": swarm["concurrent_wall"] / gpulab["concurrent_wall"],
            "unit": "s",
        },
    ]
