"""Faults on a lab day, for real: the proxy killed under running servers, the hub killed in the
middle of a burst of spawns (some waiting for GPUs) and started again on the same state, and a
full disk under the home backups and under the hub's state directory. Each test says what must
hold afterwards, and checks it against Docker's own view."""

import os
import signal
import subprocess
import threading
import time

import pytest
import requests
from jupyterhub.proxy import ConfigurableHTTPProxy

from harness import gpuhost
from harness.hub import BASE_IMAGE
from harness.ssh import keygen

# JupyterHub restarts a proxy it started when it finds it gone, every check_running_interval
# seconds (the test hubs, as gpulab's configuration, keep JupyterHub's default)
PROXY_CHECK = ConfigurableHTTPProxy.class_traits()["check_running_interval"].default_value
PROXY_SLACK = 5  # the new proxy's own start (node) and the routes put back, on a 2-core host


def status_through_proxy(hub, name, token, timeout=5):
    """The status code of the user's server's API, asked through the hub's public URL (None: no
    answer at all)."""
    try:
        return requests.get(
            hub.user_url(name, "api/status"),
            headers={"Authorization": f"token {token}"},
            timeout=timeout,
        ).status_code
    except requests.RequestException:
        return None


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (killed, not yet reaped by the hub) is gone for our purpose
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_killed_proxy_is_restarted_with_its_routes_within_one_check(make_hub):
    hub = make_hub()
    tokens = {}
    for name in ("alice", "bob"):
        hub.create_user(name)
        tokens[name] = hub.user_token(name)
    for name in ("alice", "bob"):
        hub.spawn(name, {"profile": "base"})
        assert status_through_proxy(hub, name, tokens[name]) == 200
    old = hub.proxy_pid()
    assert pid_alive(old)

    os.kill(old, signal.SIGKILL)
    killed = time.monotonic()
    down_seen = False
    recovered = {}
    deadline = killed + PROXY_CHECK + 60  # far past the bound: measure, then judge
    while len(recovered) < 2 and time.monotonic() < deadline:
        for name in ("alice", "bob"):
            if name in recovered:
                continue
            code = status_through_proxy(hub, name, tokens[name], timeout=2)
            if code == 200:
                recovered[name] = time.monotonic() - killed
            else:
                down_seen = True
        time.sleep(0.1)
    print(
        f"\n[faults] proxy SIGKILLed; check interval {PROXY_CHECK} s; users back after "
        + ", ".join(f"{n} {t:.2f} s" for n, t in sorted(recovered.items()))
    )
    assert down_seen, "the proxy answered right after it was killed: the test killed nothing"
    assert set(recovered) == {"alice", "bob"}, f"not reachable again: {recovered}\n{hub.log_tail()}"
    assert max(recovered.values()) <= PROXY_CHECK + PROXY_SLACK, (recovered, hub.log_tail())
    new = hub.proxy_pid()
    assert new != old and pid_alive(new), "the hub did not start a proxy of its own"
    assert "Proxy stopped with exit code" in hub.log_tail(400)
    # the hub itself kept serving, and the servers are still the same ones
    assert requests.get(hub.url + "/hub/api/", timeout=10).status_code == 200
    for name in ("alice", "bob"):
        assert [c.status for c in hub.containers(name)] == ["running"], name
        hub.stop_server(name)


# --- the hub killed during a burst of spawns ---

GPUS = gpuhost.devices()[:3]  # three made-up GPUs with the test hook (the real ones on a GPU host)
BURST_SITE = {
    "gpus": {"devices": GPUS, "wait_timeout": 300},
    "profiles": [
        {"name": "gpu", "image": BASE_IMAGE, "gpus": 1, "max_gpus": 1, "mem_limit": "1G"},
        {"name": "cpu", "image": BASE_IMAGE, "gpus": 0, "max_gpus": 0, "mem_limit": "1G"},
    ],
}
BURST = {f"u{i}": "gpu" for i in range(1, 6)} | {"u6": "cpu"}  # five want a GPU, three exist


def server_of(hub, name):
    return hub.api("GET", f"/users/{name}").json().get("servers", {}).get("")


def live_containers(hub, name):
    out = []
    for c in hub.containers(name):
        c.reload()
        if c.status in ("created", "running", "restarting"):
            out.append(c)
    return out


def gpu_table(hub):
    r = hub.api("GET", "/gpulab/gpus")
    assert r.status_code == 200, r.text
    return r.json()


def held_by_containers(hub):
    """{(user, server): sorted uuids} from the live containers' labels (Docker's own view)."""
    out = {}
    for c in hub.containers():
        c.reload()
        if c.status in ("created", "running", "restarting") and c.labels.get("gpulab.gpus"):
            holder = (c.labels["gpulab.user"], c.labels.get("gpulab.server", ""))
            out[holder] = sorted(c.labels["gpulab.gpus"].split(","))
    return out


def held_by_hub(hub):
    out = {}
    for g in gpu_table(hub)["gpus"]:
        for h in g["holders"]:
            out.setdefault((h["user"], h["server"]), []).append(g["uuid"])
    return {k: sorted(v) for k, v in out.items()}


def test_the_hub_killed_mid_burst_restarts_consistent_with_docker(make_hub):
    hub = make_hub(BURST_SITE, extra_config="\nc.Spawner.poll_interval = 2\n")
    tokens = {}
    for name in BURST:
        hub.create_user(name)
        tokens[name] = hub.user_token(name)
    began = time.monotonic()
    posts = {}

    def post(name):
        posts[name] = hub.api("POST", f"/users/{name}/server", json={"profile": BURST[name]})

    threads = [threading.Thread(target=post, args=(n,)) for n in BURST]
    for t in threads:
        t.start()
        time.sleep(0.2)
    # mid-burst: some wait in the GPU queue, some containers exist, not every server is up yet
    deadline = time.monotonic() + 60
    while True:
        queued = [w["user"] for w in gpu_table(hub)["queue"]]
        made = [c.labels["gpulab.user"] for c in hub.containers()]
        ready = [n for n in BURST if (server_of(hub, n) or {}).get("ready")]
        if queued and made and len(ready) < len(BURST) - len(queued):
            break
        assert time.monotonic() < deadline, (queued, made, ready, hub.log_tail())
        time.sleep(0.1)
    hub.kill()
    killed_at = time.monotonic() - began
    for t in threads:
        t.join(40)
    before = {c.name: c.status for c in hub.containers()}
    print(
        f"\n[faults] hub SIGKILLed {killed_at:.1f} s into the burst: queued {queued}, "
        f"ready {ready}, containers {before}"
    )

    t0 = time.monotonic()
    hub.start(timeout=150)
    restarted = time.monotonic() - t0
    # the hub settles: no server left pending (adopted and ready, or stopped)
    deadline = time.monotonic() + 150
    while True:
        servers = {n: server_of(hub, n) for n in BURST}
        if all(s is None or (s["ready"] and not s["pending"]) for s in servers.values()):
            break
        assert time.monotonic() < deadline, (servers, hub.log_tail(120))
        time.sleep(0.5)
    settled = time.monotonic() - t0
    running = sorted(n for n, s in servers.items() if s)
    print(
        f"[faults] hub back in {restarted:.1f} s, settled in {settled:.1f} s; running {running}, "
        f"stopped {sorted(set(BURST) - set(running))}"
    )

    # every server the hub calls running is one live container, reachable through the proxy;
    # every server it calls stopped has no container left (none starting, none running)
    for name, server in servers.items():
        live = live_containers(hub, name)
        if server:
            assert [c.status for c in live] == ["running"], (name, live)
            assert status_through_proxy(hub, name, tokens[name], timeout=10) == 200, name
        else:
            assert live == [], f"{name}'s server is stopped but {live} are left\n{hub.log_tail()}"
    # the GPU table is Docker's: no holding without a container, no container holding unseen;
    # nobody is left in a queue the restart emptied
    assert held_by_hub(hub) == held_by_containers(hub), (held_by_hub(hub), held_by_containers(hub))
    for user, _server in held_by_hub(hub):
        assert servers[user], f"{user} holds a GPU without a running server"
    assert len({u for v in held_by_hub(hub).values() for u in v}) == sum(
        map(len, held_by_hub(hub).values())
    ), "a GPU handed out twice"
    assert gpu_table(hub)["queue"] == []

    # whoever was waiting for a GPU, or was still starting, and lost that start to the restart is
    # told so (not left to wonder why the server is gone)
    for name in set(BURST) - set(running):
        r = requests.get(
            f"{hub.url}/hub/api/gpulab/users/{name}/notices",
            headers={"Authorization": f"token {tokens[name]}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        lost = r.json().get("lost_starts") or []
        assert lost and "restart" in lost[0]["message"], (name, r.json())

    # and the hub works as before: a stopped user starts again, the GPUs go round
    for name in running:
        hub.stop_server(name)
    assert held_by_hub(hub) == {} == held_by_containers(hub)
    waited = sorted(set(BURST) - set(running))
    if waited:
        hub.spawn(waited[0], {"profile": BURST[waited[0]]})
        assert status_through_proxy(hub, waited[0], tokens[waited[0]]) == 200
        hub.stop_server(waited[0])
    assert [c.name for c in hub.containers()] == []


# --- a full disk ---


@pytest.fixture
def tmpfs():
    """mount(path, size): a small tmpfs at ``path``, always unmounted at the end."""
    mounted = []

    def mount(path, size="16m"):
        os.makedirs(path, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )
        mounted.append(str(path))
        return str(path)

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", path], capture_output=True)
        if os.path.ismount(path):
            subprocess.run(["umount", "-l", path], check=True)


def fill(folder):
    """Fill the file system of ``folder`` to the last byte; returns the filler's path."""
    path = os.path.join(folder, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (1 << 20, 4096, 1):
            try:
                while os.write(fd, b"\0" * chunk):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    assert os.statvfs(folder).f_bavail == 0
    return path


def as_user(hub, method, path, token, **kw):
    return requests.request(
        method,
        f"{hub.url}/hub/api{path}",
        headers={"Authorization": f"token {token}"},
        timeout=30,
        **kw,
    )


def wait_backup(hub, name, token, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = as_user(hub, "GET", f"/gpulab/users/{name}/home-backups", token).json()
        if body["job"] and body["job"]["state"] != "running":
            return body
        time.sleep(0.3)
    raise AssertionError(f"the backup of {name}'s home did not end\n{hub.log_tail()}")


def test_a_full_backups_disk_fails_the_backup_clearly_and_leaves_nothing(make_hub, tmpfs, tmp_path):
    backups = tmpfs(tmp_path / "backups", "16m")
    hub = make_hub(start=False)
    hub.site["storage"] = {**hub.site["storage"], "backups": backups}
    hub.start()
    tokens = {}
    for name in ("alice", "bob"):
        hub.create_user(name)
        tokens[name] = hub.user_token(name)
    hub.spawn("alice", {"profile": "base"})  # her home is made at the first start
    hub.stop_server("alice")
    filler = fill(backups)

    t0 = time.monotonic()
    r = as_user(hub, "POST", "/gpulab/users/alice/home-backups", tokens["alice"])
    if r.status_code == 202:
        body = wait_backup(hub, "alice", tokens["alice"])
        job, error = body["job"], body["job"]["error"]
        assert job["state"] == "failed", body
    else:  # refused at once: as clear
        error, body = r.json().get("message", ""), None
        assert r.status_code == 507, r.text
    print(f"\n[faults] backup on a full disk: {error!r} after {time.monotonic() - t0:.1f} s")
    assert "No space left on device" in error or "disk is full" in error, error
    # nothing half-made: no archive listed, no part file left
    listed = as_user(hub, "GET", "/gpulab/users/alice/home-backups", tokens["alice"]).json()
    assert listed["archives"] == [], listed
    left = [os.path.join(d, f) for d, _, fs in os.walk(backups) for f in fs if f != "filler"]
    assert left == [], left

    # the hub keeps serving: its API, another user's start and stop
    assert requests.get(hub.url + "/hub/api/", timeout=10).status_code == 200
    hub.spawn("bob", {"profile": "base"})
    assert status_through_proxy(hub, "bob", tokens["bob"]) == 200
    hub.stop_server("bob")
    # room again: the next backup works
    os.unlink(filler)
    r = as_user(hub, "POST", "/gpulab/users/alice/home-backups", tokens["alice"])
    assert r.status_code == 202, r.text
    body = wait_backup(hub, "alice", tokens["alice"])
    assert body["job"]["state"] == "done" and len(body["archives"]) == 1, body


def test_a_full_state_disk_refuses_writes_clearly_and_the_hub_keeps_serving(
    make_hub, tmpfs, tmp_path
):
    hub = make_hub(start=False)
    tmpfs(hub.site["hub"]["state_dir"], "32m")
    hub.start()
    tokens = {}
    for name in ("alice", "bob", "carol"):
        hub.create_user(name)
        tokens[name] = hub.user_token(name)
    hub.spawn("bob", {"profile": "base"})
    key = keygen(tmp_path / "carol_key")  # made before the disk fills
    filler = fill(hub.site["hub"]["state_dir"])

    # a start needs the database (its server's row): refused, saying why, nothing made
    t0 = time.monotonic()
    r = hub.api("POST", "/users/alice/server", json={"profile": "base"})
    print(f"\n[faults] spawn on a full state disk: {r.status_code} {r.text[:300]!r}")
    assert r.status_code == 507, r.text
    assert "disk" in r.json()["message"] and "full" in r.json()["message"], r.text
    # a new token: another row
    r = hub.api("POST", "/users/carol/tokens", json={"note": "on a full disk"})
    print(f"[faults] token on a full state disk: {r.status_code} {r.text[:300]!r}")
    assert r.status_code == 507, r.text
    assert "disk" in r.json()["message"] and "full" in r.json()["message"], r.text
    print(f"[faults] both refused in {time.monotonic() - t0:.1f} s")
    # the hub keeps serving what needs no new bytes on disk
    assert requests.get(hub.url + "/hub/api/", timeout=10).status_code == 200
    users = {u["name"]: u for u in hub.api("GET", "/users").json()}
    assert users["alice"]["servers"] == {}, users["alice"]
    assert hub.containers("alice") == []
    # (a user's token, used for the first time, is refused while the disk is full: JupyterHub
    # cannot record its first use; that is JupyterHub's own, left as it is)

    # room again: everything works without a restart
    os.unlink(filler)
    assert status_through_proxy(hub, "bob", tokens["bob"]) == 200
    hub.spawn("alice", {"profile": "base"})
    assert status_through_proxy(hub, "alice", tokens["alice"]) == 200
    r = as_user(hub, "POST", "/gpulab/ssh/keys", tokens["carol"], json={"key": key})
    assert r.status_code == 201, r.text
    for name in ("alice", "bob"):
        hub.stop_server(name)
    assert hub.containers() == []
