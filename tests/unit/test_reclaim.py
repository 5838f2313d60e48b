"""The reclaim policy, the monitor around it and the usage book, driven in fast time."""

import asyncio

import pytest

from gpulab.core.gpus import reclaim
from gpulab.core.gpus.allocator import Allocator
from gpulab.core.gpus.inventory import GPU
from gpulab.core.gpus.readings import GPUReading, PushedReadings, StaticSource
from gpulab.core.gpus.usage import by_group, render
from gpulab.hub.gpus.monitor import GPUMonitor
from gpulab.hub.usagebook import UsageStore

P = reclaim.Policy(enabled=True, idle_percent=5, idle_minutes=60, grace_minutes=15)
MIN = 60


def run(watch, util, start, end, step=MIN, policy=P, queue=False):
    """Feed the same utilisation every ``step`` seconds; return [(time, Decision)]."""
    out = []
    t = start
    while t <= end:
        reclaim.observe(watch, util, t, policy)
        d = reclaim.decide(watch, t, policy, queue)
        if d:
            out.append((t, d))
            if d.action == "reclaim":
                break  # the server is gone
        t += step
    return out


def test_idle_gpu_is_warned_then_reclaimed_after_the_grace():
    w = reclaim.Watch(("alice", ""), ("GPU-a",), started=0)
    got = run(w, {"GPU-a": 1.0}, 0, 120 * MIN)
    assert [(t // MIN, d.action) for t, d in got] == [(60, "warn"), (75, "reclaim")]
    assert "under 5% utilisation for 60 min" in got[0][1].reason
    assert "75 min" in got[1][1].reason


def test_busy_gpu_is_never_touched_however_long():
    w = reclaim.Watch(("bob", ""), ("GPU-a", "GPU-b"), started=0)
    assert run(w, {"GPU-a": 97.0, "GPU-b": 80.0}, 0, 30 * 24 * 60 * MIN, step=10 * MIN) == []
    # one of two GPUs busy: the server is busy
    assert run(w, {"GPU-a": 0.0, "GPU-b": 50.0}, 0, 600 * MIN) == []


def test_no_reading_is_no_evidence():
    w = reclaim.Watch(("carol", ""), ("GPU-a",), started=0)
    assert run(w, {}, 0, 600 * MIN) == []
    assert run(w, {"GPU-a": None}, 0, 600 * MIN) == []


def test_busy_again_during_the_grace_withdraws_the_warning():
    w = reclaim.Watch(("dan", ""), ("GPU-a",), started=0)
    assert [d.action for _, d in run(w, {"GPU-a": 0.0}, 0, 65 * MIN)] == ["warn"]
    got = run(w, {"GPU-a": 60.0}, 66 * MIN, 67 * MIN)
    assert [d.action for _, d in got] == ["clear"] and w.notice() is None
    # idle again: a full idle period before the next warning
    got = run(w, {"GPU-a": 0.0}, 68 * MIN, 200 * MIN)
    assert [(t // MIN, d.action) for t, d in got] == [(128, "warn"), (143, "reclaim")]


def test_keep_restarts_the_idle_clock():
    w = reclaim.Watch(("eve", ""), ("GPU-a",), started=0)
    run(w, {"GPU-a": 0.0}, 0, 70 * MIN)
    assert w.notice()["reason"] == "idle" and w.notice()["stop_at"] == 75 * MIN
    reclaim.keep(w, 70 * MIN)
    assert w.notice() is None
    got = run(w, {"GPU-a": 0.0}, 71 * MIN, 200 * MIN)
    assert [(t // MIN, d.action) for t, d in got] == [(130, "warn"), (145, "reclaim")]


def test_a_full_lab_shortens_the_idle_limit_and_profiles_set_their_own():
    policy = reclaim.Policy(enabled=True, idle_minutes=60, grace_minutes=10, full_idle_minutes=20)
    w = reclaim.Watch(("f", ""), ("GPU-a",), started=0)
    got = run(w, {"GPU-a": 0.0}, 0, 60 * MIN, policy=policy, queue=True)
    assert [(t // MIN, d.action) for t, d in got] == [(20, "warn"), (30, "reclaim")]
    assert "while others waited" in got[1][1].reason
    w = reclaim.Watch(("f", ""), ("GPU-a",), started=0, profile_idle_minutes=240)
    got = run(w, {"GPU-a": 0.0}, 0, 300 * MIN, policy=policy)
    assert [(t // MIN, d.action) for t, d in got] == [(240, "warn"), (250, "reclaim")]


def test_max_lifetime_stops_even_a_busy_server_and_keep_does_not_extend_it():
    policy = reclaim.Policy(enabled=True, grace_minutes=15, max_hours=2)
    w = reclaim.Watch(("g", ""), ("GPU-a",), started=0)
    got = run(w, {"GPU-a": 99.0}, 0, 110 * MIN, policy=policy)
    assert [(t // MIN, d.action) for t, d in got] == [(105, "warn")] and w.notice()[
        "stop_at"
    ] == 120 * MIN
    reclaim.keep(w, 110 * MIN)
    got = run(w, {"GPU-a": 99.0}, 111 * MIN, 130 * MIN, policy=policy)
    assert (
        got[0][0] == 120 * MIN
        and got[0][1].action == "reclaim"
        and "maximum lifetime of 2 h" in got[0][1].reason
    )


def test_disabled_policy_does_nothing():
    w = reclaim.Watch(("h", ""), ("GPU-a",), started=0)
    assert run(w, {"GPU-a": 0.0}, 0, 600 * MIN, policy=reclaim.Policy(enabled=False)) == []


# --- the monitor: readings -> watches -> a real allocator ---


def gpus(n):
    return [GPU(i, f"GPU-{i}", "T4", 16 << 30) for i in range(n)]


class Manager:
    def __init__(self, n):
        self.allocator = Allocator(gpus(n))

    async def ensure_synced(self):
        pass


def readings(util):
    return [GPUReading(u, v, 1 << 30, 16 << 30) for u, v in util.items()]


def test_monitor_reclaims_an_idle_holder_and_the_next_in_queue_gets_the_gpu(tmp_path):
    async def main():
        manager = Manager(1)
        a = manager.allocator
        source = StaticSource(readings({"GPU-0": 0.0}))
        stopped = []

        async def stop(holder, reason):
            stopped.append((holder, reason))
            a.release(holder)

        usage = UsageStore(str(tmp_path / "u.sqlite"))
        policy = reclaim.Policy(enabled=True, idle_minutes=10, grace_minutes=5)
        m = GPUMonitor(manager, source, policy, usage=usage, stop=stop, interval=MIN)
        assert await a.acquire(("alice", ""), 1) == ["GPU-0"]
        waiting = asyncio.ensure_future(a.acquire(("bob", ""), 1))
        await asyncio.sleep(0)
        t0 = a.holdings[("alice", "")].since
        for minute in range(0, 16):
            await m.tick(t0 + minute * MIN)
            if minute == 10:
                assert m.notice(("alice", ""))["reason"] == "idle"
        assert (
            stopped
            and stopped[0][0] == ("alice", "")
            and "for 15 min while others waited" in stopped[0][1]
        )
        assert await waiting == ["GPU-0"]
        # bob is busy: never reclaimed
        source.set(readings({"GPU-0": 90.0}))
        for minute in range(16, 300, 5):
            await m.tick(t0 + minute * MIN)
        assert len(stopped) == 1
        r = usage.reclaims()
        assert [(x["user"], x["gpus"]) for x in r] == [("alice", ["GPU-0"])] and "15 min" in r[0][
            "reason"
        ]

    asyncio.run(main())


def test_monitor_keep_and_history(tmp_path):
    async def main():
        manager = Manager(2)
        source = StaticSource(readings({"GPU-0": 0.0, "GPU-1": 40.0}))
        m = GPUMonitor(
            manager,
            source,
            reclaim.Policy(enabled=True, idle_minutes=10, grace_minutes=5),
            interval=MIN,
        )
        await manager.allocator.acquire(("alice", "x"), 1)
        t0 = manager.allocator.holdings[("alice", "x")].since
        for minute in range(0, 12):
            await m.tick(t0 + minute * MIN)
        assert m.notice(("alice", "x"))
        assert m.keep(("alice", "x"), t0 + 12 * MIN) and m.notice(("alice", "x")) is None
        assert not m.keep(("bob", ""))
        view = m.gpu_view("GPU-1", now=t0 + 12 * MIN)
        assert (
            view["utilization"] == 40.0
            and view["utilization_hour"] == 40.0
            and view["idle_since"] is None
        )
        assert m.gpu_view("GPU-0", now=t0 + 12 * MIN)["idle_since"] == t0

    asyncio.run(main())


def test_pushed_readings_go_stale():
    clock = [1000.0]
    p = PushedReadings(max_age=90, clock=lambda: clock[0])
    p.push("w1", [GPUReading("GPU-a", 3.0, 0, 1).as_dict()])
    p.push("w2", readings({"GPU-b": 50.0}))
    assert {r.uuid for r in p.read()} == {"GPU-a", "GPU-b"}
    clock[0] += 60
    p.push("w2", readings({"GPU-b": 40.0}))
    clock[0] += 60
    assert {r.uuid for r in p.read()} == {"GPU-b"}


# --- the usage book ---


def test_usage_books_held_and_used_hours_per_day_split_at_midnight(tmp_path):
    u = UsageStore(str(tmp_path / "u.sqlite"))
    midnight = 1_700_006_400  # 2023-11-15 00:00 UTC
    u.record(midnight - 1800, midnight + 1800, {"alice": (2, 1.0), "bob": (1, 0.25)})
    rows = u.rows(days=7, now=midnight + 3600)
    server = {"kind": "server"}
    assert rows == [
        {"day": "2023-11-14", "user": "alice", **server, "held_hours": 1.0, "used_hours": 0.5},
        {"day": "2023-11-14", "user": "bob", **server, "held_hours": 0.5, "used_hours": 0.125},
        {"day": "2023-11-15", "user": "alice", **server, "held_hours": 1.0, "used_hours": 0.5},
        {"day": "2023-11-15", "user": "bob", **server, "held_hours": 0.5, "used_hours": 0.125},
    ]
    u.record(midnight + 1800, midnight + 3600, {"alice": (2, 2.0)})
    today = [r for r in u.rows(days=1, now=midnight + 3600)]
    assert today[0]["held_hours"] == 2.0 and today[0]["used_hours"] == 1.5
    groups = by_group(
        u.rows(days=1, now=midnight + 3600),
        lambda user: {"alice": ["phd", "vision"], "bob": ["phd"]}[user],
    )
    assert [(g["group"], g["held_hours"]) for g in groups] == [("phd", 2.5), ("vision", 2.0)]
    assert (
        "alice" in render(today)
        and render(today, "csv").splitlines()[0] == "day,user,kind,held_hours,used_hours"
    )
    # a job's GPU-hours are booked apart, and count for fair-share with the servers'
    u.record(midnight + 1800, midnight + 3600, {("bob", "job"): (4, 4.0)})
    kinds = {(r["user"], r["kind"]): r["held_hours"] for r in u.rows(days=1, now=midnight + 3600)}
    assert kinds == {("alice", "server"): 2.0, ("bob", "server"): 0.5, ("bob", "job"): 2.0}
    assert u.held_hours(days=2, now=midnight + 3600) == {"alice": 3.0, "bob": 3.0}
    assert "job" in render(u.rows(days=1, now=midnight + 3600))

    assert oct((tmp_path / "u.sqlite").stat().st_mode & 0o777) == "0o600"


def test_a_usage_book_from_before_jobs_keeps_its_rows_as_servers(tmp_path):
    import sqlite3

    path = str(tmp_path / "old.sqlite")
    with sqlite3.connect(path) as db:
        db.execute(
            "create table usage (day text not null, user text not null, held_seconds real not "
            "null default 0, used_seconds real not null default 0, primary key (day, user))"
        )
        db.execute("insert into usage values ('2023-11-15', 'alice', 7200, 3600)")
    u = UsageStore(path)
    assert u.rows(days=1, now=1_700_006_400 + 60) == [
        {
            "day": "2023-11-15",
            "user": "alice",
            "kind": "server",
            "held_hours": 2.0,
            "used_hours": 1.0,
        }
    ]
    u.record(1_700_006_400, 1_700_006_400 + 3600, {("alice", "job"): (1, 1.0)})
    assert len(u.rows(days=1, now=1_700_006_400 + 3600)) == 2
    assert render([], "json") == "[]" and "no GPU usage" in render([])


@pytest.mark.parametrize("bad", [{"idle_percent": 150}, {"grace_minutes": -1}, {"enabled": "yes"}])
def test_reclaim_settings_are_checked_with_the_key_path(bad):
    from gpulab.core.site.model import check_gpus
    from gpulab.core.site.schema import ConfigError

    with pytest.raises(ConfigError) as e:
        check_gpus({"reclaim": bad})
    assert str(e.value).startswith(f"gpus.reclaim.{next(iter(bad))}")


# --- around the policy: the culler's arbiter, where readings come from, metrics, the collector ---


def test_idle_culler_leaves_gpu_servers_to_the_reclaim_policy():
    from datetime import timedelta

    hour = timedelta(hours=1)
    assert (
        reclaim.cull_cpu_only(
            inactive=hour, inactive_limit=600, server={"state": {"gpu_uuids": ["GPU-a"]}}
        )
        is False
    )
    assert reclaim.cull_cpu_only(inactive=hour, inactive_limit=600, server={"state": {}}) is True
    assert (
        reclaim.cull_cpu_only(inactive=timedelta(seconds=5), inactive_limit=600, server={}) is False
    )


def test_culler_config_file_is_what_the_hub_passes():
    import runpy

    from gpulab.hub.wiring import CULLER_CONFIG

    class Section:
        pass

    c = type("C", (), {"IdleCuller": Section()})()
    runpy.run_path(CULLER_CONFIG, init_globals={"get_config": lambda: c})
    assert c.IdleCuller.cull_arbiter_hook is reclaim.cull_cpu_only


def test_readings_mode():
    from gpulab.hub.gpus.service import readings_mode

    class NVML:
        def nvmlInit(self):
            pass

        def nvmlShutdown(self):
            pass

    class Broken(NVML):
        class NVMLError(Exception):
            pass

        def nvmlInit(self):
            raise self.NVMLError("driver not loaded")

    assert readings_mode({"readings": "auto"}, hub_sees_gpus=False, nvml_loader=NVML) == "push"
    assert readings_mode({"readings": "auto"}, hub_sees_gpus=True, nvml_loader=NVML) == "nvml"
    assert (
        readings_mode({"readings": "auto"}, hub_sees_gpus=True, nvml_loader=lambda: None) == "push"
    )
    assert readings_mode({"readings": "auto"}, hub_sees_gpus=True, nvml_loader=Broken) == "push"
    assert (
        readings_mode({"readings": "nvml"}, hub_sees_gpus=False, nvml_loader=lambda: None) == "nvml"
    )


def test_metrics_follow_the_table_and_readings():
    from prometheus_client import CollectorRegistry, generate_latest

    from gpulab.hub.gpus.metrics import Metrics

    async def main():
        registry = CollectorRegistry()
        metrics = Metrics(registry)
        manager = Manager(3)
        m = GPUMonitor(
            manager,
            StaticSource(readings({"GPU-0": 1.0, "GPU-1": 70.0, "GPU-2": 0.0})),
            P,
            metrics=metrics,
        )
        await manager.allocator.acquire(("alice", ""), 2)
        await m.tick()
        text = generate_latest(registry).decode()
        assert 'gpulab_gpus{model="T4",node=""} 3.0' in text
        assert 'gpulab_gpus_held{model="T4",node=""} 2.0' in text
        assert 'gpulab_gpus_held_idle{model="T4",node=""} 1.0' in text
        assert 'gpulab_user_gpus_held{user="alice"} 2.0' in text
        assert 'gpulab_gpu_utilization_percent{gpu="GPU-1",model="T4",node=""} 70.0' in text
        manager.allocator.release(("alice", ""))
        await m.tick()
        text = generate_latest(registry).decode()
        assert 'user="alice"' not in text and 'gpulab_gpus_held{model="T4",node=""} 0.0' in text
        metrics.reclaimed("ran for the maximum lifetime of 2 h")
        assert 'gpulab_reclaims_total{reason="lifetime"} 1.0' in generate_latest(registry).decode()

    asyncio.run(main())


def test_collector_reports_nvml_readings_to_the_hub_api():
    """``gpulab collect --once`` against a real HTTP server standing in for the hub's API."""
    import http.server
    import json
    import threading

    from gpulab.agents import collect
    from gpulab.core.gpus.readings import NVMLSource

    from .test_readings import FakeNVML

    got = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got.append((self.path, self.headers["Authorization"], body))
            code = 200 if self.headers["Authorization"] == "token good" else 403
            self.send_response(code)
            self.end_headers()
            self.wfile.write(json.dumps({"accepted": len(body["gpus"])}).encode())

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    fake = FakeNVML(
        [
            {
                "uuid": "GPU-a",
                "util": 42,
                "total": 16 << 30,
                "used": 1 << 30,
                "procs": [(99, 1 << 30)],
            }
        ]
    )
    logs = []
    try:
        assert (
            collect.run(
                url,
                "good",
                node="w1",
                once=True,
                source=NVMLSource(lambda: fake, node="w1"),
                log=logs.append,
            )
            == 0
        )
        assert (
            collect.run(
                url,
                "bad",
                node="w1",
                once=True,
                source=NVMLSource(lambda: fake, node="w1"),
                log=logs.append,
            )
            == 2
        )
    finally:
        server.shutdown()
    path, auth, body = got[0]
    assert path == "/hub/api/gpulab/readings" and auth == "token good" and body["node"] == "w1"
    assert [g["uuid"] for g in body["gpus"]] == [
        g.uuid for g in NVMLSource(lambda: fake).read()
    ] and body["gpus"]
    assert "accepted" in logs[0] and "403" in logs[1]


def test_warning_reaches_the_users_terminals(tmp_path):
    """The container side writes the warning to the user's ptys (JupyterLab terminals, SSH)."""
    import os
    import sys

    sys.path.insert(
        0,
        os.path.join(
            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
            "hooks",
            "python",
        ),
    )
    from gpulab_hooks.notices import message, write_to_terminals

    master, slave = os.openpty()
    pts = tmp_path / "pts"
    pts.mkdir()
    os.symlink(os.ttyname(slave), pts / "7")
    (pts / "ptmx").write_text("")  # not a terminal: skipped
    text = message(
        {
            "reason": "idle",
            "text": "its GPUs have been under 5% utilisation for 60 min",
            "stop_at": 0,
        },
        "",
    )
    assert write_to_terminals(text, pts=str(pts)) == 1
    assert "will be stopped" in os.read(master, 4096).decode()
    assert (
        write_to_terminals(text, uid=os.getuid() + 1, pts=str(pts)) == 0
    )  # someone else's terminal
    os.close(master)
    os.close(slave)


def test_grafana_dashboard_only_uses_metrics_gpulab_exports():
    """The shipped dashboard (grafana/gpulab.json) asks for no metric that does not exist."""
    import json
    import os
    import re

    from prometheus_client import CollectorRegistry, generate_latest

    from gpulab.hub.gpus.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    text = generate_latest(registry).decode()
    families = set(re.findall(r"^# TYPE (\S+) (\S+)", text, re.M))
    exported = {name for name, _ in families}
    exported |= {
        f"{name}_{suffix}"
        for name, kind in families
        if kind == "histogram"
        for suffix in ("bucket", "count", "sum")
    }
    exported |= {f"{name}_total" for name, kind in families if kind == "counter"}
    path = os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        "grafana",
        "gpulab.json",
    )
    with open(path) as f:
        dashboard = json.load(f)
    used = {
        m
        for p in dashboard["panels"]
        for t in p["targets"]
        for m in re.findall(r"\bgpulab_[a-z_]+", t["expr"])
    }
    assert used and used <= exported, used - exported
    assert {
        "gpulab_gpus",
        "gpulab_gpus_held",
        "gpulab_gpus_held_idle",
        "gpulab_queue_length",
        "gpulab_reclaims_total",
    } <= used
