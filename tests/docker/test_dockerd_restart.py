"""The Docker daemon restarted under a hub while ten spawns are in flight (an engine upgrade, a
crash), with live-restore off and on: every user ends either running (reachable through the
proxy) or cleanly failed with a reason; no GPU is held by a server that does not exist; every
user can start again afterwards.

Only where the daemon is this test machine's own (started by scripts/setup-host.sh): restarting a
lab server's daemon would stop everyone's containers."""

import glob
import ipaddress
import json
import os
import subprocess
import threading
import time

import pytest
import requests

from harness import gpuhost
from harness.hub import BASE_IMAGE

GPUS = gpuhost.devices()
DOCKERD_LOG = "/var/log/gpulab-dockerd.log"  # where scripts/setup-host.sh starts it
SITE = {
    "gpus": {"devices": GPUS, "wait_timeout": 30},
    "profiles": [
        {"name": "gpu", "image": BASE_IMAGE, "gpus": 1, "max_gpus": 1, "mem_limit": "512M"},
        {"name": "cpu", "image": BASE_IMAGE, "gpus": 0, "max_gpus": 0, "mem_limit": "512M"},
    ],
}
USERS = [f"d{i}" for i in range(10)]  # their spawns are in flight when the daemon restarts
SETTLED = ["r0", "r1", "r2"]  # their servers run before: they must live through live-restore


def our_dockerd():
    """The pid of a dockerd this machine's setup started (its command line as setup-host
    writes it), else None."""
    r = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True)
    pids = r.stdout.split()
    if len(pids) != 1:
        return None
    with open(f"/proc/{pids[0]}/cmdline", "rb") as f:
        args = f.read().split(b"\0")[:-1]
    if args[0].endswith(b"dockerd") and set(args[1:]) <= {b"--live-restore"}:
        return int(pids[0])
    return None


def alive(pid):
    """Running (a daemon this test started and that exited stays a zombie until reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def live_restore_on():
    with open(f"/proc/{our_dockerd()}/cmdline", "rb") as f:
        return b"--live-restore" in f.read().split(b"\0")


def restart_dockerd(live_restore):
    pid = our_dockerd()
    subprocess.run(["kill", "-TERM", str(pid)], check=True)
    deadline = time.monotonic() + 60
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    args = ["dockerd", *(["--live-restore"] if live_restore else [])]
    with open(DOCKERD_LOG, "ab") as log:
        subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError(f"dockerd did not come back; see {DOCKERD_LOG}")


@pytest.fixture(scope="module")
def engine_is_ours(docker_client):
    if our_dockerd() is None:
        pytest.skip(
            "the Docker daemon here was not started by scripts/setup-host.sh: restarting it "
            "would stop other containers (a lab server's)"
        )
    yield
    if not live_restore_on():
        restart_dockerd(live_restore=True)  # as setup-host leaves it


@pytest.fixture(scope="module")
def engine_debris(docker_client):
    """What the engine itself loses track of when it dies in the middle of starting a container
    (the cgroups of a container it no longer knows, its port-mapping NAT rules), removed once
    the hub and its network are gone: the run leaves the machine as it found it."""
    subnets = []
    yield subnets
    known = {c.id for c in docker_client.containers.list(all=True)}
    for path in glob.glob("/sys/fs/cgroup/*/docker/*") + glob.glob("/sys/fs/cgroup/docker/*"):
        name = os.path.basename(path)
        if len(name) == 64 and name not in known and os.path.isdir(path):
            try:
                os.rmdir(path)
            except OSError:
                pass
    for subnet in subnets:
        net = ipaddress.ip_network(subnet)
        rules = subprocess.run(
            ["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True
        ).stdout.splitlines()
        for rule in rules:
            addrs = [a.split("/")[0] for a in rule.split() if a[:1].isdigit() and "." in a]
            if rule.startswith("-A ") and any(in_net(a, net) for a in addrs):
                subprocess.run(["iptables", "-w", "-t", "nat", "-D", *rule.split()[1:]])


def in_net(address, net):
    try:
        return ipaddress.ip_address(address) in net
    except ValueError:
        return False


@pytest.fixture(scope="module")
def hub(engine_debris, make_hub, engine_is_ours):
    hub = make_hub(SITE, extra_config="\nc.Spawner.poll_interval = 2\n")
    engine_debris.append(hub.site["hub"]["subnet"])
    for name in USERS + SETTLED:
        hub.create_user(name)
    return hub


def options(name):
    return {"profile": "gpu"} if int(name[1:]) % 2 == 0 else {"profile": "cpu"}  # d0, r0: GPUs


def settle(hub, names, timeout=180):
    """Wait until no user's server is pending; returns {name: server or None}."""
    deadline = time.monotonic() + timeout
    while True:
        state = {n: hub.api("GET", f"/users/{n}").json().get("servers", {}).get("") for n in names}
        if not any(s and s.get("pending") for s in state.values()):
            return state
        assert time.monotonic() < deadline, {n: s and s.get("pending") for n, s in state.items()}
        time.sleep(1)


def holders(hub):
    return {
        g["uuid"]: [h["user"] for h in g["holders"]]
        for g in hub.api("GET", "/gpulab/gpus").json()["gpus"]
    }


def why_stopped(hub, name, token):
    """What the user is told about a server that is not running: a start that failed says why
    in its progress; one that had started and then stopped on its own, in the notices."""
    notices = hub.api("GET", f"/gpulab/users/{name}/notices", token=token).json()
    told = [n["message"] for n in notices.get("ended", []) + notices.get("lost_starts", [])]
    if told:
        return told[-1]
    r = hub.api("GET", f"/users/{name}/server/progress", stream=True)
    events = [
        json.loads(line[5:])
        for line in r.iter_lines(decode_unicode=True)
        if line.startswith("data:")
    ]
    assert events and events[-1].get("failed"), (name, r.status_code, events, notices)
    message = events[-1]["message"]
    assert message not in ("", "Spawn failed"), (name, events)
    return message


def check_consistent(hub, docker_client, state, tokens):
    """Running servers answer through the proxy; stopped ones said why and left no container;
    GPUs are held only by running servers' containers, each by at most one."""
    running = {n for n, s in state.items() if s and s.get("ready")}
    for name in running:
        r = requests.get(
            hub.user_url(name, "api/status"),
            headers={"Authorization": f"token {tokens[name]}"},
            timeout=30,
        )
        assert r.status_code == 200, (name, r.status_code, hub.log_tail())
    reasons = {}
    for name in set(state) - running:
        reasons[name] = why_stopped(hub, name, tokens[name])
        assert not [c for c in hub.containers(name) if c.status == "running"], name
    held = holders(hub)
    for uuid, users in held.items():
        assert len(users) <= 1, held
        for user in users:
            assert user in running, (user, "holds", uuid, "without a running server", held)
            assert [c for c in hub.containers(user) if c.status == "running"], (user, uuid)
    return running, reasons


# on first: the daemon set up with live-restore comes back with it (containers kept); then off (the
# daemon comes back without it and stops what was running)
@pytest.mark.parametrize("live_restore", [True, False], ids=["live-restore-on", "live-restore-off"])
def test_dockerd_restarted_under_ten_spawns(hub, docker_client, live_restore):
    tokens = {n: hub.user_token(n) for n in USERS + SETTLED}
    for name in SETTLED:
        hub.spawn(name, options(name))
    posts = {}

    def post(name):
        posts[name] = hub.api("POST", f"/users/{name}/server", json=options(name)).status_code

    threads = [threading.Thread(target=post, args=(n,)) for n in USERS]
    for t in threads:
        t.start()
        time.sleep(0.1)
    time.sleep(1.5)  # the spawns are in flight: some containers made, some starting, two queued
    t0 = time.monotonic()
    restart_dockerd(live_restore)
    print(
        f"\n[gpulab] dockerd restarted (live-restore {live_restore}) in {time.monotonic() - t0:.1f} s"
    )
    for t in threads:
        t.join(60)
    state = settle(hub, USERS + SETTLED)
    # the hub notices within a poll interval that servers which did not survive have stopped
    time.sleep(6)
    state = settle(hub, USERS + SETTLED)
    running, reasons = check_consistent(hub, docker_client, state, tokens)
    if live_restore:  # the servers that ran before still run, untouched
        assert set(SETTLED) <= running, (running, reasons)
    else:  # they were stopped with the daemon, and their users told so
        assert not set(SETTLED) & running, running
        assert all("stopped on its own" in reasons[n] for n in SETTLED), reasons
    for name, why in reasons.items():
        assert "Errno" not in why and "Connection aborted" not in why, (name, why)
    print(
        f"[gpulab] after the restart: {len(running)} running, {len(reasons)} failed; "
        f"reasons: {sorted(set(reasons.values()))}"
    )
    # everyone can start again (stop the survivors first: the next round starts from nothing)
    for name in USERS + SETTLED:
        if name in running:
            hub.stop_server(name)
    for name in USERS[:4]:
        hub.spawn(name, options(name), timeout=120)
    for name in USERS[:4]:
        hub.stop_server(name)
    assert not any(holders(hub).values()), holders(hub)
