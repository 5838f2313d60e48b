"""GPU allocation for real: Docker's GPU request path (with the test hook on CPU-only hosts)."""

import os
import random
import subprocess
import sys
import threading
import time

import pytest

from harness import gpuhost

GPULAB = os.path.join(os.path.dirname(sys.executable), "gpulab")
GPUS = gpuhost.devices()  # three made-up GPUs with the test hook; the real ones on a GPU host
UUIDS = [g["uuid"] for g in GPUS]
if len(GPUS) < 3:
    pytest.skip(
        f"these tests need 3 GPUs; this host's real runtime has {len(GPUS)}",
        allow_module_level=True,
    )
SITE = {
    "gpus": {"devices": GPUS, "wait_timeout": 120, "quota": {"default": 2, "users": {"quinn": 1}}},
    "profiles": [
        {
            "name": "gpu",
            "image": "localhost/gpulab/base:latest",
            "gpus": 1,
            "max_gpus": 2,
            "mem_limit": "1G",
            "shm_size": "64M",
        },
        {
            "name": "cpu",
            "image": "localhost/gpulab/base:latest",
            "gpus": 0,
            "max_gpus": 0,
            "mem_limit": "1G",
            "shm_size": "64M",
        },
    ],
}


@pytest.fixture(scope="module")
def gpu_hub(make_hub):
    # the hub checks every server every 2 s (default 30 s), so a dead container is noticed quickly
    return make_hub(SITE, extra_config="\nc.Spawner.poll_interval = 2\n")


def visible_devices(container):
    r = container.exec_run(["sh", "-c", 'printf %s "$NVIDIA_VISIBLE_DEVICES"'])
    assert r.exit_code == 0
    return r.output.decode()


def requested_ids(container):
    container.reload()
    reqs = container.attrs["HostConfig"].get("DeviceRequests") or []
    return [i for r in reqs for i in r.get("DeviceIDs") or []]


def admin_gpus(hub):
    r = hub.api("GET", "/gpulab/gpus")
    assert r.status_code == 200, r.text
    return r.json()


def holders_by_gpu(hub):
    return {g["uuid"]: sorted(h["user"] for h in g["holders"]) for g in admin_gpus(hub)["gpus"]}


def running_holdings(hub):
    """uuid -> users, from the running containers themselves."""
    out = {}
    for c in hub.containers():
        c.reload()
        if c.status in ("running", "created", "restarting"):
            for u in filter(None, c.labels.get("gpulab.gpus", "").split(",")):
                out.setdefault(u, []).append(c.labels["gpulab.user"])
    return {u: sorted(v) for u, v in out.items()}


def stop_all(hub, names):
    for n in names:
        if hub.api("GET", f"/users/{n}").json().get("servers"):
            hub.stop_server(n)


def test_two_users_get_different_gpus_third_waits(gpu_hub):
    hub = gpu_hub
    for n in ("alice", "bob", "carol", "dave"):
        hub.create_user(n)
    hub.spawn("alice", {"profile": "gpu"})
    hub.spawn("bob", {"profile": "gpu"})
    hub.spawn("dave", {"profile": "gpu", "gpu_ids": [2]})
    (a,), (b,), (d,) = hub.containers("alice"), hub.containers("bob"), hub.containers("dave")
    va, vb = visible_devices(a), visible_devices(b)
    assert va != vb and {va, vb} == {UUIDS[0], UUIDS[1]}
    assert requested_ids(a) == [va] and requested_ids(b) == [vb]
    assert visible_devices(d) == UUIDS[2] == d.labels["gpulab.gpus"]

    # the admin's table, from the running hub through its REST API
    cli = subprocess.run(
        [GPULAB, "gpus", "--hub-url", hub.url, "--token", hub.token],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert cli.returncode == 0, cli.stderr
    lines = cli.stdout.splitlines()
    assert lines[0].split()[:4] == ["GPU", "MODEL", "MEMORY", "HOLDER"]
    assert {line.split()[0]: line.split()[5] for line in lines[1:4]} == {
        str(int(va[-1])): "alice",
        str(int(vb[-1])): "bob",
        "2": "dave",
    }
    denied = subprocess.run(
        [GPULAB, "gpus", "--hub-url", hub.url, "--token", hub.user_token("alice")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert denied.returncode == 1 and "403" in denied.stderr, "only admins see the table"

    # carol waits; the spawn page's progress shows her place and who holds the GPUs
    result = {}
    follower = threading.Thread(
        target=lambda: result.update(
            zip(
                ("status", "events"),
                hub.spawn_following_progress("carol", {"profile": "gpu"}),
                strict=True,
            )
        )
    )
    follower.start()
    deadline = time.monotonic() + 30
    while not admin_gpus(hub)["queue"]:
        assert time.monotonic() < deadline, "carol never queued"
        time.sleep(0.2)
    assert admin_gpus(hub)["queue"][0]["user"] == "carol"
    assert hub.containers("carol") == []
    hub.stop_server("alice")
    follower.join(60)
    events = result["events"]
    assert result["status"] in (201, 202)
    waiting = [e["message"] for e in events if "in the queue" in e.get("message", "")]
    assert waiting and "position 1 in the queue; held by alice, bob, dave" in waiting[0], events
    assert events[-1].get("ready"), events
    (c,) = hub.containers("carol")
    assert visible_devices(c) == va, "carol gets the GPU alice gave back"
    assert holders_by_gpu(hub) == {va: ["carol"], vb: ["bob"], UUIDS[2]: ["dave"]}
    stop_all(hub, ["bob", "carol", "dave"])
    assert all(not h for h in holders_by_gpu(hub).values())


def test_cancelling_a_queued_spawn_leaves_the_queue(gpu_hub):
    hub = gpu_hub
    for n in ("kim", "lee", "max", "ned"):
        hub.create_user(n)
    for n in ("kim", "lee"):
        hub.spawn(n, {"profile": "gpu", "gpus": 1})
    hub.spawn("max", {"profile": "gpu", "gpus": 1})
    r = hub.api("POST", "/users/ned/server", json={"profile": "gpu", "gpus": 1})
    assert r.status_code == 202, r.text  # still waiting after the hub's 10 s
    assert [q["user"] for q in admin_gpus(hub)["queue"]] == ["ned"]
    r = hub.api("DELETE", "/users/ned/server")
    assert r.status_code in (202, 204), r.text
    deadline = time.monotonic() + 30
    while admin_gpus(hub)["queue"] or hub.api("GET", "/users/ned").json()["servers"]:
        assert time.monotonic() < deadline, admin_gpus(hub)
        time.sleep(0.2)
    assert hub.containers("ned") == []
    hub.stop_server("kim")
    time.sleep(1)
    assert all("ned" not in h for h in holders_by_gpu(hub).values()), (
        "a cancelled spawn gets nothing later"
    )
    stop_all(hub, ["lee", "max"])


def test_dead_container_gives_its_gpu_back(gpu_hub, docker_client):
    hub = gpu_hub
    hub.create_user("olga")
    hub.spawn("olga", {"profile": "gpu", "gpus": 1})
    (c,) = hub.containers("olga")
    held = visible_devices(c)
    assert holders_by_gpu(hub)[held] == ["olga"]
    c.kill()
    deadline = time.monotonic() + 30
    while holders_by_gpu(hub)[held]:
        assert time.monotonic() < deadline, "the GPU of a dead container was not released"
        time.sleep(0.5)
    assert not hub.api("GET", "/users/olga").json()["servers"], "the hub noticed the server is gone"


def test_zero_gpu_server_sees_void(gpu_hub, docker_client):
    hub = gpu_hub
    env = docker_client.images.get("localhost/gpulab/base:latest").attrs["Config"]["Env"]
    assert "NVIDIA_VISIBLE_DEVICES=all" in env, "the image itself says all, like CUDA bases"
    hub.create_user("erin")
    hub.spawn("erin", {"profile": "cpu"})
    (c,) = hub.containers("erin")
    assert visible_devices(c) == "void"
    assert requested_ids(c) == []
    # not even through the login shell's profile
    r = c.exec_run(
        ["bash", "-lc", 'printf %s "$NVIDIA_VISIBLE_DEVICES"'], user=c.labels["gpulab.uid"]
    )
    assert r.output.decode() == "void"
    hub.stop_server("erin")


@pytest.mark.parametrize(
    "user, body, text",
    [
        ("quinn", {"profile": "gpu", "gpus": 2}, "over your GPU quota of 1"),
        ("frank", {"profile": "gpu", "gpu_ids": [9]}, "GPU '9' does not exist on this host"),
        ("frank", {"profile": "gpu", "gpu_ids": ["GPU-nope"]}, "does not exist"),
        ("frank", {"profile": "gpu", "gpus": 3}, "over the limit of 2"),
        ("frank", {"profile": "cpu", "gpus": 1}, "over the limit of 0"),
    ],
)
def test_bad_gpu_requests_are_400_and_create_nothing(gpu_hub, user, body, text):
    hub = gpu_hub
    hub.create_user(user)
    r = hub.api("POST", f"/users/{user}/server", json=body)
    assert r.status_code == 400, r.text
    assert text in r.json()["message"]
    assert hub.containers(user) == []
    assert all(user not in h for h in holders_by_gpu(hub).values())


def test_users_cannot_override_visible_devices(gpu_hub):
    hub = gpu_hub
    hub.create_user("gina")
    r = hub.api(
        "POST",
        "/users/gina/server",
        json={"profile": "cpu", "env": {"NVIDIA_VISIBLE_DEVICES": "all"}},
    )
    assert r.status_code == 400 and "env" in r.json()["message"]


def test_hub_restart_rebuilds_the_table(gpu_hub):
    hub = gpu_hub
    for n in ("hank", "ivy", "jack"):
        hub.create_user(n)
    hub.spawn("hank", {"profile": "gpu"})
    hub.spawn("ivy", {"profile": "gpu"})
    before = holders_by_gpu(hub)
    hub.stop()
    assert {c.labels["gpulab.user"] for c in hub.containers() if c.status == "running"} >= {
        "hank",
        "ivy",
    }
    hub.start()
    hub.wait_ready("hank")
    assert holders_by_gpu(hub) == before, "rebuilt from the running containers"
    hub.spawn("jack", {"profile": "gpu"})
    (j,) = hub.containers("jack")
    held = {u for u, users in before.items() if users}
    assert visible_devices(j) not in held and visible_devices(j) in UUIDS
    assert running_holdings(hub) == {u: v for u, v in holders_by_gpu(hub).items() if v}
    stop_all(hub, ["hank", "ivy", "jack"])


def test_randomized_concurrent_spawns_and_stops(gpu_hub):
    """Dozens of overlapping spawns/stops through the real hub; bounded in count and time."""
    hub = gpu_hub
    rng = random.Random(20261124)
    users = [f"rnd{i}" for i in range(7)]
    for n in users:
        hub.create_user(n)
    deadline = time.monotonic() + 240
    ops = 0
    checks = 0
    while ops < 30 and time.monotonic() < deadline:
        n = rng.choice(users)
        server = hub.api("GET", f"/users/{n}").json()["servers"].get("")
        if server is None:
            r = hub.api(
                "POST",
                f"/users/{n}/server",
                json={"profile": "gpu", "gpus": rng.choice([0, 1, 1, 1, 2])},
            )
            assert r.status_code in (201, 202, 400), (
                r.text
            )  # 400: over quota with another server... not here
        elif server.get("pending") in (None, "spawn"):
            r = hub.api("DELETE", f"/users/{n}/server")
            assert r.status_code in (202, 204, 400), r.text  # 400: already stopping
        ops += 1
        time.sleep(rng.random() * 1.5)
        held = running_holdings(hub)
        assert all(len(v) == 1 for v in held.values()), f"a GPU is in two containers: {held}"
        checks += 1
    # let everything settle, then stop everything
    settle = time.monotonic() + 120
    while time.monotonic() < settle:
        servers = [hub.api("GET", f"/users/{n}").json()["servers"].get("") for n in users]
        if (
            all(s is None or (s.get("ready") or (s.get("pending") is None)) for s in servers)
            and not admin_gpus(hub)["queue"]
        ):
            break
        time.sleep(1)
    held = running_holdings(hub)
    assert all(len(v) == 1 for v in held.values()), held
    assert {u: v for u, v in holders_by_gpu(hub).items() if v} == held, (
        "table matches the containers"
    )
    stop_all(hub, users)
    time.sleep(1)
    assert running_holdings(hub) == {}
    snap = admin_gpus(hub)
    assert all(not g["holders"] for g in snap["gpus"]) and snap["queue"] == [], "no leaked GPUs"
    assert ops >= 20 and checks == ops
