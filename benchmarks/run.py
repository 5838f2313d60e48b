"""gpulab vs stock DockerSpawner, measured in one run on this machine.

    .venv/bin/python -m benchmarks.run --n 20 --burst 40        # (make bench)

Prints a table and one JSON line (prefixed ``BENCH_JSON``) and writes a PNG plot of each
user's wait in the burst. Every ratio is gpulab / baseline, both measured in this same run;
absolute times mean little on a shared machine. A baseline that fails (its hub stops
answering, a spawn errors) is reported as failed, with the reason, and gpulab is still
measured. All load goes to 127.0.0.1 and is bounded in count and time; everything started is
removed at the end.
"""

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import traceback

import docker
import requests

from benchmarks import extra
from benchmarks import phases as spawn_phases
from benchmarks.hubs import GpulabHub, StockHub
from benchmarks.spawning import Bystander, spawn_and_wait, spawn_many, stop_all
from benchmarks.stats import pct
from gpulab.core import contract
from harness.hub import BASE_IMAGE


def floor_docker_run(client, network, runs):
    """`docker run` of the same image until its Jupyter server answers (no hub)."""
    times = []
    for i in range(runs):
        t0 = time.monotonic()
        c = client.containers.run(
            BASE_IMAGE,
            [
                "gpulab-start",
                "jupyter-server",
                "--ip=0.0.0.0",
                "--port=8888",
                "--IdentityProvider.token=bench",
            ],
            environment={
                contract.NB_USER: "jovyan",
                contract.NB_UID: "1000",
                contract.NB_GID: "100",
            },
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
                    if (
                        ip
                        and requests.get(
                            f"http://{ip}:8888/api/status?token=bench", timeout=1
                        ).status_code
                        == 200
                    ):
                        times.append(time.monotonic() - t0)
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.02)
            else:
                raise RuntimeError("floor container never answered")
        finally:
            c.remove(force=True)
    return times


def single_spawns(hub, runs, prefix, phases=None):
    """Seconds of each spawn; with ``phases`` (a list) gpulab's phases of each one are added."""
    times = []
    for i in range(runs):
        name = f"{prefix}{i}"
        hub.create_user(name)
        posted = time.time()
        times.append(spawn_and_wait(hub, name))
        if phases is not None:
            (c,) = hub.containers(name)
            phases.append(spawn_phases.one_host(posted, times[-1], c.attrs))
        hub.stop_server(name, timeout=120)
    return times


def watch_containers(client, deployment, t0, seen, stop):
    """Record when each user's container is first seen running (the Docker part of a spawn)."""
    while not stop.is_set():
        try:
            for c in client.api.containers(
                filters={"label": contract.deployment_filter(deployment), "status": "running"}
            ):
                seen.setdefault(c["Labels"].get(contract.L_USER), time.monotonic() - t0)
        except docker.errors.APIError:
            pass
        time.sleep(0.1)


def concurrent_spawns(hub, n, prefix):
    """n users press Start at once: (wall, per-user results, names, when each container ran)."""
    names = _users(hub, prefix, n)
    seen, stop = {}, threading.Event()
    watcher = threading.Thread(
        target=watch_containers, args=(hub.client, hub.name, time.monotonic(), seen, stop)
    )
    watcher.start()
    try:
        wall, users = spawn_many(hub, names)
    finally:
        stop.set()
        watcher.join()
    return wall, users, names, [seen[n] for n in names if n in seen]


class Phases:
    """Runs the phases of one hub's measurement; a failing phase is recorded (with its reason)
    and the next one still runs, so a failing baseline never ends the benchmark."""

    def __init__(self, kind, hub, out):
        self.kind, self.hub, self.out = kind, hub, out
        out.setdefault("errors", {})

    def run(self, phase, fn):
        print(f"[{self.kind}] {phase}", file=sys.stderr, flush=True)
        try:
            return fn()
        except Exception as e:
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
            self.out["errors"][phase] = reason
            print(f"[{self.kind}] {phase} failed: {reason}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            try:
                print(
                    f"[{self.kind}] the hub's log ends with:\n{self.hub.log_tail(40)}",
                    file=sys.stderr,
                )
            except Exception:
                pass
            return None


def measure(kind, hub_cls, client, args, workdir, **hub_kwargs):
    out = {"errors": {}}
    hub = hub_cls(tempfile.mkdtemp(prefix=f"{kind}-", dir=workdir), client, **hub_kwargs)
    phases = Phases(kind, hub, out)
    try:
        phases.run("hub start", lambda: hub.start(timeout=120))
        if "hub start" in out["errors"]:
            return out
        steps = out.setdefault("phases", []) if kind == "gpulab" else None
        single = phases.run(
            f"single spawns x{args.runs}", lambda: single_spawns(hub, args.runs, "single", steps)
        )
        if single:
            out["single"] = single
        conc = phases.run(
            f"{args.n} concurrent spawns", lambda: concurrent_spawns(hub, args.n, "conc")
        )
        if conc:
            wall, users, names, running = conc
            out.update(
                concurrent_wall=wall, concurrent_users=users, concurrent_container_running=running
            )
            out["concurrent_per_user"] = [u["seconds"] for u in users if u["seconds"] is not None]
            if names and users[0]["seconds"] is not None:
                rss = phases.run(
                    "idle RSS", lambda: extra.idle_rss(hub, client, names[0], settle=args.settle)
                )
                if rss:
                    out["idle_rss"] = rss  # before TensorBoard runs in it
                if kind == "gpulab":
                    extras = phases.run(
                        "TensorBoard and SSH",
                        lambda: extra.measure_gpulab_extras(hub, client, names[0], args),
                    )
                    if extras:
                        out.update(extras)
            phases.run("stop", lambda: _stopped(hub, names))
        if args.burst:
            burst = phases.run(
                f"{args.burst}-user burst", lambda: burst_with_bystander(hub, args, out)
            )
            if burst:
                out["burst_wall"], out["burst_users"] = burst
                phases.run("stop", lambda: _stopped(hub, [u["user"] for u in out["burst_users"]]))
        if kind == "gpulab":
            floor = phases.run(
                "floor: docker run", lambda: floor_docker_run(client, hub.name, args.runs)
            )
            if floor:
                out["floor"] = floor
    finally:
        phases.run("clean up", lambda: (hub.stop(), hub.cleanup()))
    return out


def burst_with_bystander(hub, args, out):
    """The class start: ``args.burst`` users press Start together while one more user, who is not
    starting, keeps asking the hub a trivial API question; its latencies go to ``out``."""
    names = _users(hub, "burst", args.burst)
    with Bystander(hub) as bystander:
        result = spawn_many(hub, names, timeout=args.burst_timeout)
    out["bystander"] = bystander.times
    out["bystander_errors"] = bystander.errors
    return result


def _users(hub, prefix, n):
    names = [f"{prefix}{i}" for i in range(n)]
    for name in names:
        hub.create_user(name)
    return names


def _stopped(hub, names):
    left = stop_all(hub, names)
    if left:
        raise RuntimeError(f"{len(left)} server(s) did not stop: {', '.join(left[:5])}")
    return True


def _ok(users):
    return [u["seconds"] for u in users if u["seconds"] is not None]


def report(stock, gpulab, n, burst):
    """Rows: metric, baseline, gpulab, ratio (gpulab / baseline), unit. A side that could not be
    measured is None and its reason is in ``failed``."""
    rows = []

    def row(what, s, g, unit="s", ratio=True):
        r = g / s if ratio and s and g is not None else None
        rows.append({"metric": what, "stock": s, "gpulab": g, "ratio": r, "unit": unit})

    def get(side, key, fn):
        value = side.get(key)
        return fn(value) if value else None

    med = statistics.median
    row(
        "single spawn, POST to ready (median)",
        get(stock, "single", med),
        get(gpulab, "single", med),
    )
    floor = get(gpulab, "floor", med)
    rows.append(
        {
            "metric": "floor: docker run until the server answers (median)",
            "stock": floor,
            "gpulab": get(gpulab, "single", med),
            "ratio": get(gpulab, "single", med) / floor if floor and gpulab.get("single") else None,
            "unit": "s",
        }
    )
    row(
        f"{n} concurrent spawns, wall time",
        stock.get("concurrent_wall"),
        gpulab.get("concurrent_wall"),
    )
    for p in (50, 95):
        row(
            f"{n} concurrent spawns, per-user p{p}",
            get(stock, "concurrent_per_user", lambda v, p=p: pct(v, p)),
            get(gpulab, "concurrent_per_user", lambda v, p=p: pct(v, p)),
        )
    row(
        f"{n} concurrent spawns, all containers running (Docker calls)",
        get(stock, "concurrent_container_running", max),
        get(gpulab, "concurrent_container_running", max),
    )
    if burst:
        for side in (stock, gpulab):
            users = side.get("burst_users") or []
            side["burst_ok"] = _ok(users)
        row(
            f"{burst}-user burst: servers ready",
            len(stock["burst_ok"]) if stock.get("burst_users") else None,
            len(gpulab["burst_ok"]) if gpulab.get("burst_users") else None,
            unit=f"of {burst}",
            ratio=False,
        )
        row(
            f"{burst}-user burst: wall time",
            stock.get("burst_wall") if stock.get("burst_ok") else None,
            gpulab.get("burst_wall") if gpulab.get("burst_ok") else None,
        )
        for p in (50, 95):
            row(
                f"{burst}-user burst: per-user p{p}",
                get(stock, "burst_ok", lambda v, p=p: pct(v, p)),
                get(gpulab, "burst_ok", lambda v, p=p: pct(v, p)),
            )
        share = {
            k: (pct(side["burst_ok"], 50) / side["burst_wall"] if side.get("burst_ok") else None)
            for k, side in (("stock", stock), ("gpulab", gpulab))
        }
        row(
            f"{burst}-user burst: per-user p50 / wall time",
            share["stock"],
            share["gpulab"],
            unit="",
            ratio=False,
        )
        for p in (50, 95):
            row(
                f"{burst}-user burst: another user's API call p{p}",
                get(stock, "bystander", lambda v, p=p: pct(v, p) * 1000),
                get(gpulab, "bystander", lambda v, p=p: pct(v, p) * 1000),
                unit="ms",
            )
        row(
            f"{burst}-user burst: another user's API calls failed",
            len(stock["bystander_errors"]) if "bystander_errors" in stock else None,
            len(gpulab["bystander_errors"]) if "bystander_errors" in gpulab else None,
            unit="",
            ratio=False,
        )
    row(
        "idle RSS of one user container",
        get(stock, "idle_rss", lambda v: v / 2**20),
        get(gpulab, "idle_rss", lambda v: v / 2**20),
        "MiB",
    )
    for key in ("tensorboard", "ssh"):
        rows.extend(gpulab.get(key) or [])
    return rows


def print_table(rows, failed):
    print(f"{'metric':62} {'baseline':>12} {'gpulab':>12} {'ratio':>7}")
    for r in rows:

        def fmt(v, unit=r["unit"]):
            return (
                "failed"
                if v is None
                else f"{v:.2f} {unit}".strip()
                if isinstance(v, float)
                else f"{v} {unit}".strip()
            )

        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        print(f"{r['metric']:62} {fmt(r['stock']):>12} {fmt(r['gpulab']):>12} {ratio:>7}")
    print(
        "ratio = gpulab / baseline. Baseline: stock DockerSpawner for spawn and memory rows; the direct path"
    )
    print(
        "(container port) for the TensorBoard and SSH rows, whose gpulab column is the path through the hub;"
    )
    print(
        "the floor row's baseline is a bare docker run of the same image (no hub), its gpulab column the single spawn;"
    )
    print(
        "the swarm rows compare a Swarm of GPU servers (Docker-in-Docker nodes on this machine) with one host."
    )
    for side, errors in failed.items():
        for phase, reason in errors.items():
            print(f"FAILED {side}: {phase}: {reason}")


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=20, help="concurrent spawns (default 20)")
    p.add_argument(
        "--burst", type=int, default=100, help="users in the class start (default 100; 0: none)"
    )
    p.add_argument(
        "--burst-timeout",
        type=int,
        default=300,
        help="seconds a burst spawn may take (default 300)",
    )
    p.add_argument("--runs", type=int, default=5, help="single-spawn runs per hub (default 5)")
    p.add_argument(
        "--requests", type=int, default=50, help="TensorBoard requests per path (default 50)"
    )
    p.add_argument(
        "--scp-mib", type=int, default=64, help="size of the SSH throughput file (default 64 MiB)"
    )
    p.add_argument(
        "--settle", type=float, default=5, help="seconds before reading idle RSS (default 5)"
    )
    p.add_argument(
        "--plot",
        default="docs/img/bench-burst.png",
        help="PNG of per-user burst latency ('' for none)",
    )
    p.add_argument(
        "--swarm",
        action="store_true",
        help="also measure a hub for a Swarm of GPU servers (Docker-in-Docker nodes)",
    )
    p.add_argument(
        "--only", choices=["stock", "gpulab"], help=argparse.SUPPRESS
    )  # development: one side
    # tests: a baseline that fails (an image that does not exist), to check the benchmark survives it
    p.add_argument("--stock-image", default=BASE_IMAGE, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if (
        not 1 <= args.n <= 40
        or not 0 <= args.burst <= 100
        or not 1 <= args.runs <= 10
        or not 1 <= args.requests <= 500
    ):
        p.error("keep the load bounded: --n 1..40, --burst 0..100, --runs 1..10, --requests 1..500")
    client = docker.from_env(version="auto")
    client.ping()
    with tempfile.TemporaryDirectory(prefix="gpulab-bench-") as workdir:
        stock = (
            measure("stock", StockHub, client, args, workdir, image=args.stock_image)
            if args.only != "gpulab"
            else {"errors": {"all": "not run (--only)"}}
        )
        gpulab = (
            measure("gpulab", GpulabHub, client, args, workdir)
            if args.only != "stock"
            else {"errors": {"all": "not run (--only)"}}
        )
    rows = report(stock, gpulab, args.n, args.burst)
    raw = {"stock": stock, "gpulab": gpulab}
    if args.only != "stock":
        from benchmarks import jobs

        raw["jobs"] = jobs.measure(client, args)
        rows.extend(jobs.rows(raw["jobs"]))
    if args.swarm:
        from benchmarks import swarm

        raw["swarm"] = swarm.measure(client, args)
        rows.extend(swarm.rows(raw["swarm"], gpulab, args.n))
    failed = {k: v["errors"] for k, v in raw.items() if v.get("errors")}
    print_table(rows, failed)
    if args.plot and args.burst:
        from benchmarks import plot

        plot.burst(
            stock.get("burst_users"), gpulab.get("burst_users"), args.burst, args.plot, failed
        )
        print(f"plot: {args.plot}")
    print(
        "BENCH_JSON "
        + json.dumps(
            {
                "n": args.n,
                "burst": args.burst,
                "runs": args.runs,
                "rows": rows,
                "raw": raw,
                "failed": failed,
            }
        )
    )


if __name__ == "__main__":
    main()
