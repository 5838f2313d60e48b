"""gpulab vs stock DockerSpawner, measured in one run on this machine.

    .venv/bin/python -m benchmarks.run --n 20        # (make bench)

Prints a table and one JSON line (prefixed ``BENCH_JSON``). Every ratio is
gpulab / baseline, both measured in this same run; absolute times mean little on a
shared machine. All load goes to 127.0.0.1 and is bounded in count and time;
everything started is removed at the end.
"""

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import docker
import requests

from benchmarks import extra
from benchmarks.hubs import GpulabHub, StockHub
from gpulab import contract
from harness.hub import BASE_IMAGE


def pct(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def floor_docker_run(client, network, runs):
    """`docker run` of the same image until its Jupyter server answers (no hub)."""
    times = []
    for i in range(runs):
        t0 = time.monotonic()
        c = client.containers.run(
            BASE_IMAGE,
            ["gpulab-start", "jupyter-server", "--ip=0.0.0.0", "--port=8888", "--IdentityProvider.token=bench"],
            environment={contract.NB_USER: "jovyan", contract.NB_UID: "1000", contract.NB_GID: "100"},
            network=network,
            detach=True,
            labels={contract.L_DEPLOYMENT: network},
            name=f"{network}-floor-{i}",
        )
        try:
            deadline = t0 + 120
            while time.monotonic() < deadline:
                c.reload()
                ip = c.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
                try:
                    if ip and requests.get(f"http://{ip}:8888/api/status?token=bench", timeout=1).status_code == 200:
                        times.append(time.monotonic() - t0)
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.05)
            else:
                raise RuntimeError("floor container never answered")
        finally:
            c.remove(force=True)
    return times


def spawn_and_wait(hub, name, timeout=300):
    t0 = time.monotonic()
    r = hub.api("POST", f"/users/{name}/server", json={})
    if r.status_code not in (201, 202):
        raise RuntimeError(f"spawn {name}: {r.status_code} {r.text}")
    hub.wait_ready(name, timeout)
    return time.monotonic() - t0


def single_spawns(hub, runs, prefix):
    times = []
    for i in range(runs):
        name = f"{prefix}{i}"
        hub.create_user(name)
        times.append(spawn_and_wait(hub, name))
        hub.stop_server(name, timeout=120)
    return times


def watch_containers(client, deployment, t0, seen, stop):
    """Record when each user's container is first seen running (the Docker part of a spawn)."""
    while not stop.is_set():
        for c in client.api.containers(filters={"label": contract.deployment_filter(deployment), "status": "running"}):
            seen.setdefault(c["Labels"].get(contract.L_USER), time.monotonic() - t0)
        time.sleep(0.1)


def concurrent_spawns(hub, n, prefix):
    names = [f"{prefix}{i}" for i in range(n)]
    for name in names:
        hub.create_user(name)
    seen, stop = {}, threading.Event()
    t0 = time.monotonic()
    watcher = threading.Thread(target=watch_containers, args=(hub.client, hub.name, t0, seen, stop))
    watcher.start()
    try:
        with ThreadPoolExecutor(n) as pool:
            per_user = list(pool.map(lambda name: spawn_and_wait(hub, name), names))
    finally:
        stop.set()
        watcher.join()
    wall = time.monotonic() - t0
    return wall, per_user, names, [seen[n] for n in names if n in seen]


def stop_all(hub, names):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: hub.stop_server(n, timeout=180), names))


def measure(kind, hub_cls, client, args, workdir):
    hub = hub_cls(tempfile.mkdtemp(prefix=f"{kind}-", dir=workdir), client)
    hub.start(timeout=120)
    out = {}
    try:
        print(f"[{kind}] single spawns x{args.runs}", file=sys.stderr, flush=True)
        out["single"] = single_spawns(hub, args.runs, "single")
        print(f"[{kind}] {args.n} concurrent spawns", file=sys.stderr, flush=True)
        wall, per_user, names, running = concurrent_spawns(hub, args.n, "conc")
        out.update(concurrent_wall=wall, concurrent_per_user=per_user, concurrent_container_running=running)
        out["idle_rss"] = extra.idle_rss(hub, client, names[0], settle=args.settle)  # before TensorBoard runs in it
        if kind == "gpulab":
            out.update(extra.measure_gpulab_extras(hub, client, names[0], args))
        stop_all(hub, names)
        if kind == "gpulab":
            out["floor"] = floor_docker_run(client, hub.name, args.runs)
    except Exception:
        print(f"[{kind}] failed; the hub's log ends with:\n{hub.log_tail(80)}", file=sys.stderr)
        raise
    finally:
        hub.stop()
        hub.cleanup()
    return out


def report(stock, gpulab, n):
    rows = []

    def row(what, s, g, unit="s"):
        ratio = g / s if s else float("nan")
        rows.append({"metric": what, "stock": s, "gpulab": g, "ratio": ratio, "unit": unit})

    row("single spawn, POST to ready (median)", statistics.median(stock["single"]), statistics.median(gpulab["single"]))
    row(f"{n} concurrent spawns, wall time", stock["concurrent_wall"], gpulab["concurrent_wall"])
    row(f"{n} concurrent spawns, per-user p50", pct(stock["concurrent_per_user"], 50), pct(gpulab["concurrent_per_user"], 50))
    row(f"{n} concurrent spawns, per-user p95", pct(stock["concurrent_per_user"], 95), pct(gpulab["concurrent_per_user"], 95))
    row(
        f"{n} concurrent spawns, all containers running (Docker calls)",
        max(stock["concurrent_container_running"]),
        max(gpulab["concurrent_container_running"]),
    )
    row("idle RSS of one user container", stock["idle_rss"] / 2**20, gpulab["idle_rss"] / 2**20, "MiB")
    floor = statistics.median(gpulab["floor"])
    rows.append(
        {
            "metric": "floor: docker run until the server answers (median)",
            "stock": None,
            "gpulab": floor,
            "ratio": statistics.median(gpulab["single"]) / floor,
            "unit": "s",
        }
    )
    for key in ("tensorboard", "ssh"):
        if key in gpulab:
            rows.extend(gpulab[key])
    return rows


def print_table(rows):
    print(f"{'metric':58} {'baseline':>12} {'gpulab':>12} {'ratio':>7}")
    for r in rows:

        def fmt(v, unit=r["unit"]):
            return "-" if v is None else f"{v:.2f} {unit}"

        print(f"{r['metric']:58} {fmt(r['stock']):>12} {fmt(r['gpulab']):>12} {r['ratio']:7.2f}")
    print("ratio = gpulab / baseline. Baseline: stock DockerSpawner for spawn and memory rows; the direct path")
    print("(container port) for the TensorBoard and SSH rows, whose gpulab column is the path through the hub;")
    print("the floor row compares gpulab's median single spawn with a bare docker run of the same image;")
    print("the swarm rows compare a Swarm of GPU servers (Docker-in-Docker nodes on this machine) with one host.")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20, help="concurrent spawns (default 20)")
    p.add_argument("--runs", type=int, default=5, help="single-spawn runs per hub (default 5)")
    p.add_argument("--requests", type=int, default=50, help="TensorBoard requests per path (default 50)")
    p.add_argument("--scp-mib", type=int, default=64, help="size of the SSH throughput file (default 64 MiB)")
    p.add_argument("--settle", type=float, default=5, help="seconds before reading idle RSS (default 5)")
    p.add_argument("--swarm", action="store_true", help="also measure a hub for a Swarm of GPU servers (Docker-in-Docker nodes)")
    args = p.parse_args(argv)
    if not 1 <= args.n <= 40 or not 1 <= args.runs <= 10 or not 1 <= args.requests <= 500:
        p.error("keep the load bounded: --n 1..40, --runs 1..10, --requests 1..500")
    client = docker.from_env(version="auto")
    client.ping()
    with tempfile.TemporaryDirectory(prefix="gpulab-bench-") as workdir:
        stock = measure("stock", StockHub, client, args, workdir)
        gpulab = measure("gpulab", GpulabHub, client, args, workdir)
    rows = report(stock, gpulab, args.n)
    raw = {"stock": stock, "gpulab": gpulab}
    if args.swarm:
        from benchmarks import swarm

        raw["swarm"] = swarm.measure(client, args)
        rows.extend(swarm.rows(raw["swarm"], gpulab, args.n))
    print_table(rows)
    print("BENCH_JSON " + json.dumps({"n": args.n, "runs": args.runs, "rows": rows, "raw": raw}))


if __name__ == "__main__":
    main()
