"""A department on one hub, generated: what each periodic or per-page piece of gpulab costs as the
hub grows from a lab (50 users, 16 GPUs on 1 node) to a department (1000 users, 256 GPUs on 16
nodes). No containers and no Docker: gpulab's real code runs on generated data.

    .venv/bin/python -m benchmarks.scale                          # the table
    .venv/bin/python -m benchmarks.scale --plot docs/img/scale.png
    .venv/bin/python -m benchmarks.scale --runs 3                 # three runs: the spread

A department (seeded): ``users`` JupyterHub users (in an in-memory JupyterHub database, 10
groups), half of them with a running server; 30 % of the servers use no GPU, the others hold 1
GPU (2 for one in five) while there are GPUs, and the rest wait in the allocator's queue; one user
in 40 runs a GPU job. The GPUs are 16 per node, on Swarm nodes described as Docker's
``node inspect`` describes them (the ``gpu`` generic resources, gpulab's node labels). Each node's
collector pushes readings: 60 % of the held GPUs busy (60-100 %), the others idle since a random
time in the last 90 minutes, so the reclaim policy warns and stops servers as the ticks go on.
Before measuring, the monitor runs an hour and a half of ticks (every 30 s for the last hour), so
its history, watches and usage book are a running hub's.

Measured, per tick or per page, the median of ``--ticks`` rounds (time.perf_counter):

1. **monitor tick**: :meth:`gpulab.hub.gpus.monitor.GPUMonitor.tick`, 30 s of simulated time
   apart: readings, history, the usage book (SQLite file), the reclaim policy's decisions (a
   reclaimed server's GPUs go back to the allocator, which serves the queue), the Prometheus
   gauges (``Metrics.update``), and ``GPUService.profile_minutes`` for each new holder (a lookup
   in JupyterHub's users, which asks JupyterHub's database);
2. **swarm inventory**: :meth:`gpulab.backends.swarm.inventory.SwarmInventory.inventory` over the
   nodes' descriptions plus ``GPUManager.set_inventory`` (what ``ensure_synced`` does every 5 s);
3. **/hub/metrics**: ``Metrics.update`` then prometheus_client's ``generate_latest``;
4. **GPU page** (an admin's): :func:`gpulab.hub.pages.gpus.page_data` (the GPU table, the
   notices, the 7-day usage, the groups' usage from JupyterHub's database) and ``gpus.html``
   rendered by Jinja in the hub's environment;
5. **spawn form**: the allocator's snapshot and :func:`gpulab.hub.form.render_form` for one user.

Printed: ms per item and size, the ratio to the 50 ms goal at each size, and per item the growth
exponent (log-log slope between the smallest and the largest size: 1 is linear) along the ladder
(users and GPUs together) and along each axis alone (users 50 -> 1000 at 256 GPUs; GPUs 16 -> 256
at 1000 users).
"""

import argparse
import asyncio
import logging
import math
import os
import random
import statistics
import sys
import tempfile
import time
from types import SimpleNamespace

GOAL_MS = 50.0
ITEMS = ("monitor tick", "swarm inventory", "/hub/metrics", "GPU page", "spawn form")
# (users, GPUs, nodes): a lab to a department
LADDER = [(50, 16, 1), (100, 32, 2), (250, 64, 4), (500, 128, 8), (1000, 256, 16)]
GPUS_PER_NODE = 16
INTERVAL = 30.0
PROFILES = [
    {
        "name": "cpu",
        "display_name": "CPU only",
        "image": "gpulab/base:latest",
        "description": "Notebooks without a GPU",
        "cpu_limit": 4,
        "mem_limit": 16 << 30,
        "shm_size": 1 << 30,
        "gpus": 0,
        "max_gpus": 0,
    },
    {
        "name": "gpu",
        "display_name": "PyTorch with GPUs",
        "image": "gpulab/pytorch:latest",
        "description": "PyTorch, CUDA, JupyterLab",
        "cpu_limit": 8,
        "mem_limit": 64 << 30,
        "shm_size": 8 << 30,
        "gpus": 1,
        "max_gpus": 4,
        "gpu_idle_minutes": 45,
    },
]


def _quiet():
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _silent():
    """The monitor's log: its warnings are not what is measured (nor printed)."""
    log = logging.Logger("gpulab.scale", logging.CRITICAL)
    log.addHandler(logging.NullHandler())
    return log


# --- the department ---


def swarm_nodes(n_gpus, n_nodes):
    """Node descriptions as ``docker node inspect`` gives them: a manager without GPUs, and
    ``n_nodes`` workers with ``n_gpus / n_nodes`` GPUs each as ``gpu`` generic resources."""
    from gpulab.core import contract

    per = n_gpus // n_nodes
    nodes = [
        {
            "ID": "m" * 25,
            "Spec": {"Role": "manager", "Availability": "active", "Labels": {}},
            "Description": {
                "Hostname": "hub",
                "Resources": {"NanoCPUs": 16 * 10**9, "MemoryBytes": 64 << 30},
            },
            "Status": {"State": "ready", "Addr": "10.0.0.1"},
        }
    ]
    for n in range(n_nodes):
        name = f"gpu{n + 1:02d}"
        nodes.append(
            {
                "ID": f"{n:025x}",
                "Version": {"Index": 100 + n},
                "Spec": {
                    "Role": "worker",
                    "Availability": "active",
                    "Labels": {
                        contract.NL_GPU_MODEL: "NVIDIA A100-SXM4-80GB",
                        contract.NL_GPU_COUNT: str(per),
                        contract.NL_GPU_MEMORY: str(80 << 30),
                        contract.NL_GPU_ISOLATION: contract.GPU_ISOLATION,
                    },
                },
                "Description": {
                    "Hostname": name,
                    "Platform": {"Architecture": "x86_64", "OS": "linux"},
                    "Resources": {
                        "NanoCPUs": 128 * 10**9,
                        "MemoryBytes": 1 << 40,
                        "GenericResources": [
                            {
                                "NamedResourceSpec": {
                                    "Kind": contract.GPU_RESOURCE,
                                    "Value": f"GPU-{n:04x}{g:04x}-5ca1-e000-0000-{n * per + g:012x}",
                                }
                            }
                            for g in range(per)
                        ],
                    },
                    "Engine": {"EngineVersion": "27.3.1"},
                },
                "Status": {"State": "ready", "Addr": f"10.0.1.{n + 1}"},
            }
        )
    return nodes


class SwarmAPI:
    """What SwarmInventory asks of the Docker API (``nodes()``), answered with generated nodes."""

    def __init__(self, nodes):
        self._nodes = nodes

    def nodes(self):
        return self._nodes


class Department:
    """A generated department and gpulab's real objects over it, driven in simulated time."""

    def __init__(self, users, n_gpus, n_nodes, seed=1, book_on_disk=True):
        """``book_on_disk``: the usage book in a file, as the hub keeps it (False: in memory,
        no fsync per tick: the unit test's)."""
        import sqlalchemy
        from jupyterhub import orm
        from jupyterhub.user import UserDict
        from prometheus_client import CollectorRegistry

        from gpulab.backends.swarm.inventory import SwarmInventory
        from gpulab.core.gpus import reclaim
        from gpulab.core.gpus.manager import GPUManager
        from gpulab.core.gpus.readings import PushedReadings
        from gpulab.hub.gpus.metrics import Metrics
        from gpulab.hub.gpus.monitor import GPUMonitor
        from gpulab.hub.gpus.service import GPUService
        from gpulab.hub.usagebook import UsageStore

        self.n_users, self.n_gpus, self.n_nodes = users, n_gpus, n_nodes
        self.rnd = random.Random(seed)
        self.now = time.time()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory(prefix="gpulab-scale-")

        # JupyterHub's database: the users and their groups
        self.db = orm.new_session_factory("sqlite:///:memory:")()
        groups = [orm.Group(name=f"group{i}") for i in range(10)]
        self.db.add_all(groups)
        self.names = [f"user{i:04d}" for i in range(users)]
        orm_users = []
        for i, name in enumerate(self.names):
            u = orm.User(name=name, admin=i == 0)
            u.groups.append(groups[i % len(groups)])
            orm_users.append(u)
        self.db.add_all(orm_users)
        self.db.add_all(orm.Spawner(user=u, name="") for u in orm_users)  # their default server
        self.db.commit()
        self.admin = orm_users[0]
        self.queries = 0  # statements sent to JupyterHub's database

        def count(*args):
            self.queries += 1

        sqlalchemy.event.listen(self.db.get_bind(), "before_cursor_execute", count)
        # the page chrome's user (JupyterHub's User: name, admin, its default spawner's form)
        self.page_user = SimpleNamespace(
            name=self.admin.name, admin=True, spawner=SimpleNamespace(options_form=None)
        )
        self.users = UserDict(lambda: self.db, {})

        # the Swarm and the GPU table
        self.nodes = swarm_nodes(n_gpus, n_nodes)
        self.inventory = SwarmInventory("scale", lambda: SwarmAPI(self.nodes))
        self.manager = GPUManager({"show_holders": True}, self.inventory)
        self.manager.set_inventory(self.loop.run_until_complete(self.inventory.inventory()))
        self.manager.synced = True
        alloc = self.manager.allocator

        # the servers: half the users; the GPU ones take GPUs while there are, then queue
        servers = self.rnd.sample(self.names, users // 2)
        free = list(alloc.order)
        holdings, waiting = {}, []
        for i, name in enumerate(self.names):
            if i % 40 == 7 and free:  # a GPU job
                holdings[(name, f"job/{i + 1}")] = ([free.pop(0)], self.now - 3600)
        for name in servers:
            if self.rnd.random() < 0.3:
                continue  # CPU only
            want = 2 if self.rnd.random() < 0.2 else 1
            since = self.now - self.rnd.uniform(0.5, 30) * 3600
            if len(free) >= want and alloc.gpus[free[0]].node == alloc.gpus[free[want - 1]].node:
                holdings[(name, "")] = ([free.pop(0) for _ in range(want)], since)
            else:
                waiting.append(((name, ""), want))
        alloc.load(holdings)
        # the hub loads the users with servers when it starts (JupyterHub's init_spawners)
        by_name = {u.name: u for u in orm_users}
        for name in servers:
            self.users[by_name[name]]
        self.waiters = [
            self.loop.create_task(alloc.acquire(holder, want)) for holder, want in waiting
        ]
        self.loop.run_until_complete(asyncio.sleep(0))

        # when each held GPU's server went idle (None: busy), and busy utilisation
        self.idle_from = {}
        for holder in alloc.holdings:
            self.idle_from[holder[0]] = (
                None if self.rnd.random() < 0.6 else self.now - self.rnd.uniform(0, 90) * 60
            )
        self.busy_util = {u: self.rnd.uniform(60, 100) for u in alloc.gpus}

        # the hub's side: readings pushed per node, the usage book, metrics, the monitor
        self.pushed = PushedReadings(max_age=3 * INTERVAL + 30, clock=lambda: self.now)
        self.usage = UsageStore(
            os.path.join(self.tmp.name, "gpulab-usage.sqlite") if book_on_disk else ":memory:"
        )
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.policy = reclaim.Policy(
            enabled=True, idle_minutes=60, grace_minutes=15, full_idle_minutes=30
        )
        # GPUService's own profile_minutes (JupyterHub's users, its database), without a hub
        self.service = GPUService.__new__(GPUService)
        self.service.app = SimpleNamespace(users=self.users)
        self.service.lab = SimpleNamespace(profiles=PROFILES)
        self.service.manager = self.manager
        self.service.usage = self.usage
        self.service.policy = self.policy
        self.reclaimed = []
        self.tick_queries = []
        self.queries = 0
        self.monitor = GPUMonitor(
            self.manager,
            self.pushed,
            self.policy,
            usage=self.usage,
            stop=self.stop,
            interval=INTERVAL,
            profile_minutes=self.service.profile_minutes,
            log=_silent(),
            metrics=self.metrics,
        )
        self.service.monitor = self.monitor
        self._templates = None

    def stop(self, holder, reason):
        """A reclaimed server stops: its GPUs go back (what the spawner's stop ends with)."""
        self.reclaimed.append(holder)
        self.manager.allocator.release(holder)

    def push(self):
        """Each node's collector reports its GPUs (the API handler's push), at ``self.now``."""
        from gpulab.core.gpus.readings import GPUReading, ProcessReading

        alloc = self.manager.allocator
        held = {u: h for h, holding in alloc.holdings.items() for u in holding.uuids}
        by_node = {}
        for uuid in alloc.order:
            gpu = alloc.gpus[uuid]
            holder = held.get(uuid)
            if holder is None:
                util, procs = 0.0, ()
            else:
                idle_from = self.idle_from.get(holder[0])
                busy = idle_from is None or self.now < idle_from
                util = self.busy_util[uuid] if busy else 1.0
                procs = (ProcessReading(4000 + gpu.index, 30 << 30),)
            by_node.setdefault(gpu.node, []).append(
                GPUReading(
                    uuid,
                    util,
                    procs[0].memory_used if procs else 0,
                    gpu.memory_total,
                    processes=procs,
                    node=gpu.node,
                    time=self.now,
                )
            )
        for node, readings in by_node.items():
            self.pushed.push(node, readings)

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def warm_up(self, every=INTERVAL):
        """An hour and a half of the monitor: every 5 min, then every ``every`` s for the last hour.
        Returns the first tick's seconds and JupyterHub database statements (a hub that has just
        started: every holder is new to the monitor)."""
        end = self.now
        t = end - 90 * 60
        first = None
        while t < end:
            self.now = t
            self.push()
            q, t0 = self.queries, time.perf_counter()
            self.run(self.monitor.tick(t))
            if first is None:
                first = (time.perf_counter() - t0, self.queries - q)
            t += 300 if t < end - 3600 else every
        self.now = end
        return first

    # --- the items ---

    def tick(self):
        self.now += INTERVAL
        self.push()
        q, t0 = self.queries, time.perf_counter()
        self.run(self.monitor.tick(self.now))
        elapsed = time.perf_counter() - t0
        self.tick_queries.append(self.queries - q)
        return elapsed

    def inventory_refresh(self):
        t0 = time.perf_counter()
        self.run(self._refresh())
        return time.perf_counter() - t0

    async def _refresh(self):
        self.manager.set_inventory(await self.inventory.inventory())

    def metrics_page(self):
        from prometheus_client import generate_latest

        t0 = time.perf_counter()
        self.metrics.update(self.monitor, self.now)
        body = generate_latest(self.registry)
        elapsed = time.perf_counter() - t0
        assert b"gpulab_gpus_held" in body
        return elapsed

    def templates(self):
        """The hub's Jinja environment (JupyterHub's loaders, gpulab's template path first)."""
        if self._templates is None:
            import jupyterhub
            from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader

            import gpulab.hub

            jh = os.path.join(sys.prefix, "share", "jupyterhub", "templates")
            if not os.path.isdir(jh):
                jh = os.path.join(os.path.dirname(jupyterhub.__file__), "templates")
            ours = os.path.join(os.path.dirname(gpulab.hub.__file__), "templates")
            loader = ChoiceLoader(
                [
                    PrefixLoader({"templates": FileSystemLoader([jh])}, "/"),
                    FileSystemLoader([ours, jh]),
                ]
            )
            self._templates = Environment(loader=loader, autoescape=True, enable_async=True)
        return self._templates

    def gpu_page(self, admin=True):
        """What GPUPageHandler.page does for an admin (the groups' usage included), rendered."""
        t0 = time.perf_counter()
        html = self.run(self._gpu_page(admin))
        elapsed = time.perf_counter() - t0
        assert "gpulab-gpu-table" in html
        return elapsed

    async def _gpu_page(self, admin):
        from gpulab.hub.pages.gpus import page_data

        data = page_data(self.service, self.db, self.admin.name, admin, self.now)
        template = self.templates().get_template("gpus.html")
        # JupyterHub's template namespace (BaseHandler.template_namespace), then the page's
        return await template.render_async(
            base_url="/hub/",
            prefix="/",
            user=self.page_user,
            login_url="/hub/login",
            logout_url="/hub/logout",
            static_url=lambda path, **kw: f"/hub/static/{path}",
            version_hash="",
            services=[],
            parsed_scopes={},
            expanded_scopes=set(),
            xsrf="x",
            gpulab_gpus=True,
            messages=[],
            monitor_mode="push",
            single_host=False,
            **data,
        )

    def spawn_form(self):
        from gpulab.hub.form import render_form

        t0 = time.perf_counter()
        html = render_form(
            PROFILES,
            "gpu",
            self.manager.snapshot(),
            {},
            nodes=sorted(self.inventory.servers),
            saves=None,
            limited={},
        )
        elapsed = time.perf_counter() - t0
        assert "gpulab-gpus" in html
        return elapsed

    def close(self):
        for t in self.waiters:
            t.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()
        self.usage.close()
        self.db.close()
        self.tmp.cleanup()


def measure(users, n_gpus, n_nodes, ticks=7, seed=1, summary=statistics.median, quick=False):
    """{item: median seconds (or ``summary``'s)} for one department, and what it held.
    ``quick``: the usage book in memory and the monitor's last hour every 5 min (the unit test)."""
    dep = Department(users, n_gpus, n_nodes, seed, book_on_disk=not quick)
    try:
        first, first_queries = dep.warm_up(300 if quick else INTERVAL)
        fns = {
            "monitor tick": dep.tick,
            "swarm inventory": dep.inventory_refresh,
            "/hub/metrics": dep.metrics_page,
            "GPU page": dep.gpu_page,
            "spawn form": dep.spawn_form,
        }
        out = {}
        for item in ITEMS:
            out[item] = summary([fns[item]() for _ in range(ticks)])
        alloc = dep.manager.allocator
        facts = {
            "holders": len(alloc.holdings),
            "queue": sum(1 for w in alloc.queue if not w.future.done()),
            "reclaimed": len(dep.reclaimed),
            "first tick": first,
            "first tick queries": first_queries,
            "tick queries": max(dep.tick_queries),
        }
        return out, facts
    finally:
        dep.close()


def growth(small, large, ticks=5, tries=3):
    """{item: cost at ``large`` / cost at ``small``}, each the fastest of ``ticks`` rounds (the
    least noisy); an item over 6x is measured again, up to ``tries`` times, and its best kept."""
    best = {}
    for _ in range(tries):
        a, _ = measure(*small, ticks=ticks, summary=min, quick=True)
        b, _ = measure(*large, ticks=ticks, summary=min, quick=True)
        for item in ITEMS:
            best[item] = min(best.get(item, math.inf), b[item] / a[item])
        if max(best.values()) <= 6:
            break
    return best


def slope(a, b, xa, xb):
    return math.log(b / a) / math.log(xb / xa) if a > 0 and b > 0 else float("nan")


def run_all(ladder, ticks, runs, axes=True, seed=1):
    """{"ladder": [(size, [per-run {item: s}])], "users": ..., "gpus": ...} and facts."""
    points = list(ladder)
    big = ladder[-1]
    small = ladder[0]
    extra = []
    if axes:
        extra = [(small[0], big[1], big[2]), (big[0], small[1], small[2])]
    results = {}
    facts = {}
    for size in points + [s for s in extra if s not in points]:
        per_run = []
        for _ in range(runs):
            m, f = measure(*size, ticks=ticks, seed=seed)
            per_run.append(m)
            facts[size] = f
        results[size] = per_run
    return results, facts


def med(per_run, item):
    return statistics.median(m[item] for m in per_run)


def report(results, facts, ladder, runs, axes=True, out=sys.stdout):
    p = lambda *a: print(*a, file=out)  # noqa: E731
    head = f"{'users/GPUs/nodes':>18} {'holders':>7} {'queue':>5} " + " ".join(
        f"{i:>22}" for i in ITEMS
    )
    p(
        f"ms per item (median of the ticks; {'min-max over %d runs, ' % runs if runs > 1 else ''}"
        f"x = share of the {GOAL_MS:.0f} ms goal)"
    )
    p(head)
    for size in ladder:
        f = facts[size]
        cells = []
        for item in ITEMS:
            vals = [m[item] * 1000 for m in results[size]]
            mid = statistics.median(vals)
            spread = f"{min(vals):.1f}-{max(vals):.1f}" if runs > 1 else f"{mid:.2f}"
            cells.append(f"{spread:>13} {mid / GOAL_MS:>7.2f}x")
        label = f"{size[0]}/{size[1]}/{size[2]}"
        p(f"{label:>18} {f['holders']:>7} {f['queue']:>5} " + " ".join(cells))
    lo, hi = ladder[0], ladder[-1]
    p("")
    p("growth exponent (log-log slope, 1 = linear):")
    rows = [(f"ladder {lo[1]}->{hi[1]} GPUs with {lo[0]}->{hi[0]} users (vs GPUs)", lo, hi, 1)]
    if axes:
        rows += [
            (f"users {lo[0]}->{hi[0]} at {hi[1]} GPUs", (lo[0], hi[1], hi[2]), hi, 0),
            (f"GPUs {lo[1]}->{hi[1]} at {hi[0]} users", (hi[0], lo[1], lo[2]), hi, 1),
        ]
    p(f"{'':>44} " + " ".join(f"{i:>16}" for i in ITEMS))
    exps = {}
    for label, a, b, axis in rows:
        vals = []
        for item in ITEMS:
            e = slope(med(results[a], item), med(results[b], item), a[axis], b[axis])
            exps[(label, item)] = e
            vals.append(f"{e:>16.2f}")
        p(f"{label:>44} " + " ".join(vals))
    p("")
    p(
        "JupyterHub database statements from the monitor (GPUService.profile_minutes looks each "
        "new holder up in app.users, a query by name):"
    )
    for size in ladder:
        f = facts[size]
        p(
            f"{size[0]:>6} users, {f['holders']:>3} holders: at most {f['tick queries']} per steady "
            f"tick; the first tick after a start: {f['first tick queries']} statements, "
            f"{f['first tick'] * 1000:.1f} ms"
        )
    worst = max(med(results[hi], i) for i in ITEMS) * 1000
    p("")
    p(
        f"at {hi[0]} users / {hi[0] // 2} servers / {hi[1]} GPUs on {hi[2]} nodes: "
        f"the slowest item takes {worst:.1f} ms ({'within' if worst <= GOAL_MS else 'OVER'} the "
        f"{GOAL_MS:.0f} ms goal)"
    )
    return exps


def plot(results, ladder, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    xs = [s[1] for s in ladder]
    for item in ITEMS:
        ys = [med(results[s], item) * 1000 for s in ladder]
        lo = [min(m[item] for m in results[s]) * 1000 for s in ladder]
        hi = [max(m[item] for m in results[s]) * 1000 for s in ladder]
        line = ax.plot(xs, ys, marker="o", label=item)[0]
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2)
    ax.axhline(GOAL_MS, color="black", linestyle="--", label=f"goal: {GOAL_MS:.0f} ms")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{g} GPUs\n{u} users" for u, g, _ in ladder])
    ax.set_ylabel("ms per tick / page (median)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("gpulab's periodic work and pages as the hub grows (benchmarks/scale.py)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--ticks", type=int, default=7, help="rounds per item (median; default 7)")
    p.add_argument("--runs", type=int, default=1, help="whole runs, for the spread (default 1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--plot", default="", help="a PNG of cost against size")
    p.add_argument("--no-axes", action="store_true", help="only the ladder, not each axis alone")
    args = p.parse_args(argv)
    _quiet()
    results, facts = run_all(LADDER, args.ticks, args.runs, axes=not args.no_axes, seed=args.seed)
    report(results, facts, LADDER, args.runs, axes=not args.no_axes)
    if args.plot:
        plot(results, LADDER, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
