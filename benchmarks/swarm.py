"""The multi-host section of the benchmark: a hub for a Swarm of GPU servers against one host.

The Swarm is the test set-up (harness.swarm.SwarmLab: Docker-in-Docker nodes on this one
machine, a registry, the hub in a container on the manager). Workers pull the image once before
anything is timed, as a lab's nodes have it after the first server.
"""

import statistics
import sys
import tempfile
import time
import traceback

from benchmarks import phases
from benchmarks.jobs import submit_to_running
from benchmarks.spawning import spawn_and_wait, spawn_many, stop_all
from harness.swarm import SwarmLab


def measure(client, args):
    """{'single': [s...], 'concurrent_wall': s, 'concurrent_per_user': [s...], 'nodes': {...}};
    'errors' says what failed (the rest of the benchmark goes on)."""
    out = {"errors": {}}
    try:
        _measure(client, args, out)
    except Exception as e:
        out["errors"]["swarm"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[
            :300
        ]
        traceback.print_exc(file=sys.stderr)
    return out


def _measure(client, args, out):
    with (
        tempfile.TemporaryDirectory(prefix="gpulab-bench-swarm-") as shared,
        SwarmLab(client, f"glbs{int(time.time()) % 100000}", shared) as lab,
    ):
        hub = lab.hub
        print("[swarm] warming the workers (first pull of the image)", file=sys.stderr, flush=True)
        for node in lab.cluster.workers:
            name = f"warm{node}"
            hub.create_user(name)
            spawn_and_wait(hub, name, {"profile": "cpu", "node": lab.cluster.node_name(node)})
            hub.stop_server(name, timeout=180)
        print(f"[swarm] single spawns x{args.runs}", file=sys.stderr, flush=True)
        out["single"], out["phases"] = [], []
        for i in range(args.runs):
            name = f"single{i}"
            hub.create_user(name)
            posted = time.time()
            out["single"].append(spawn_and_wait(hub, name, {"profile": "cpu"}))
            (service,) = hub.services(name)
            _, container = hub.container_of(name)
            out["phases"].append(phases.swarm(posted, out["single"][-1], service, container.attrs))
            hub.stop_server(name, timeout=180)
        print(f"[swarm] {args.n} concurrent spawns", file=sys.stderr, flush=True)
        names = [f"conc{i}" for i in range(args.n)]
        for name in names:
            hub.create_user(name)
        wall, users = spawn_many(hub, names, {"profile": "cpu"}, timeout=600)
        failed = [f"{u['user']}: {u['error']}" for u in users if u["error"]]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(names)} swarm spawns failed: {failed[0]}")
        out["concurrent_per_user"], out["concurrent_wall"] = [u["seconds"] for u in users], wall
        out["nodes"] = {}
        for name in names:
            node, _ = hub.task(name)
            out["nodes"][node] = out["nodes"].get(node, 0) + 1
        left = stop_all(hub, names)
        if left:
            raise RuntimeError(f"{len(left)} swarm server(s) did not stop: {', '.join(left[:5])}")
        print(f"[swarm] 1-node jobs and 2-node gangs x{args.runs}", file=sys.stderr, flush=True)
        hub.create_user("jobs")
        token = hub.user_token("jobs")
        out["job_1node"], out["job_2node"] = [], []
        for _ in range(args.runs):
            for nodes, key in ((1, "job_1node"), (2, "job_2node")):
                body = {"command": ["sleep", "600"], "gpus": 1, "nodes": nodes, "profile": "gpu"}
                out[key].append(submit_to_running(hub, token, "jobs", body))


def rows(swarm, gpulab, n):
    """Rows for the table: ratio = swarm / single host (the single-host gpulab numbers of the same run)."""
    single_swarm = statistics.median(swarm["single"]) if swarm.get("single") else None
    single_host = statistics.median(gpulab["single"]) if gpulab.get("single") else None
    spread = ", ".join(
        f"{k.rsplit('-', 1)[-1]}: {v}" for k, v in sorted(swarm.get("nodes", {}).items())
    )
    conc_swarm, conc_host = swarm.get("concurrent_wall"), gpulab.get("concurrent_wall")
    one, two = (
        statistics.median(swarm[k]) if swarm.get(k) else None for k in ("job_1node", "job_2node")
    )
    gang = [
        {
            "metric": "swarm: 2-node gang submit-to-running vs a 1-node job, 1 GPU each (median)",
            "stock": one,
            "gpulab": two,
            "ratio": two / one if one and two else None,
            "unit": "s",
        }
    ]
    return (
        gang
        + phases.rows(gpulab.get("phases"), swarm.get("phases"))
        + [
            {
                "metric": "swarm: single spawn on a worker vs one host (median)",
                "stock": single_host,
                "gpulab": single_swarm,
                "ratio": single_swarm / single_host if single_swarm and single_host else None,
                "unit": "s",
            },
            {
                "metric": f"swarm: {n} concurrent spawns on 2 workers ({spread}) vs one host, wall",
                "stock": conc_host,
                "gpulab": conc_swarm,
                "ratio": conc_swarm / conc_host if conc_swarm and conc_host else None,
                "unit": "s",
            },
        ]
    )
