"""The foundation, for real: a hub process, a Docker engine, the gpulab base image."""

import concurrent.futures
import json
import os
import subprocess
import sys
import time

import pytest
import requests

from harness.hub import REPO


def _exec(container, cmd, user):
    return container.exec_run(["bash", "-lc", cmd], user=user, demux=False)


def test_spawn_persist_home_and_respawn(hub):
    name = "alice"
    hub.create_user(name)
    elapsed = hub.spawn(name, {"profile": "base"})
    print(f"\n[gpulab] spawn, API POST to ready: {elapsed:.1f}s")

    status = requests.get(
        hub.user_url(name, "api/status"),
        headers={"Authorization": f"token {hub.token}"},
        timeout=10,
    )
    assert status.status_code == 200, status.text

    (c,) = hub.containers(name)
    uid = c.labels["gpulab.uid"]
    # write a file in the home from inside the container, as the user
    r = _exec(c, "echo persisted > ~/marker.txt && id -u && pwd && stat -c %u ~", user=uid)
    assert r.exit_code == 0, r.output
    out = r.output.decode().split()
    assert out == [uid, "/home/alice", uid]
    # and through the Jupyter server itself (the notebook side writes as the same user)
    put = requests.put(
        hub.user_url(name, "api/contents/from-jupyter.txt"),
        headers={"Authorization": f"token {hub.token}"},
        json={"type": "file", "format": "text", "content": "hello"},
        timeout=10,
    )
    assert put.status_code in (200, 201), put.text

    hub.stop_server(name)
    assert hub.containers(name) == [], "the container should be removed on stop"
    (volume,) = hub.home_volumes(name)

    hub.spawn(name, {"profile": "base"})
    (c2,) = hub.containers(name)
    assert c2.id != c.id
    r = _exec(c2, "cat ~/marker.txt ~/from-jupyter.txt", user=uid)
    assert r.exit_code == 0 and r.output.decode() == "persisted\nhello", r.output
    assert [v.name for v in hub.home_volumes(name)] == [volume.name]
    hub.stop_server(name)


def test_dataset_read_only(hub):
    name = "dora"
    hub.create_user(name)
    hub.spawn(name)
    (c,) = hub.containers(name)
    uid = c.labels["gpulab.uid"]
    r = _exec(c, "cat /datasets/shared/hello.txt", user=uid)
    assert r.exit_code == 0 and r.output.decode() == "shared data\n"
    for user in (uid, "root"):
        r = _exec(c, "touch /datasets/shared/new.txt", user=user)
        assert r.exit_code != 0 and b"Read-only file system" in r.output, r.output
    assert not os.path.exists(os.path.join(hub.datasets_dir, "new.txt"))
    hub.stop_server(name)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"profile": "not-offered"}, "profile"),
        ({"profile": "base", "image": "debian:12"}, "image"),
        ({"profile": "x" * 100_000}, "profile"),
        ({"profile": "base", "gpus": 10**9}, "gpus"),
        ({"user_options": {"profile": "base", "gpus": "lots"}}, "gpus"),
    ],
)
def test_bad_options_are_400_and_create_nothing(hub, body, field):
    name = "mallory"
    hub.create_user(name)
    volumes_before = {v.name for v in hub.client.volumes.list()}
    r = hub.api("POST", f"/users/{name}/server", json=body)
    assert r.status_code == 400, r.text
    assert field in r.json()["message"], r.json()
    assert hub.containers(name) == []
    assert {v.name for v in hub.client.volumes.list()} == volumes_before
    assert not hub.api("GET", f"/users/{name}").json()["servers"]


@pytest.mark.parametrize("raw", [b"{not json", b'["profile", "base"]', b'{"user_options": "base"}'])
def test_malformed_bodies_are_400(hub, raw):
    name = "mallory"
    hub.create_user(name)
    r = hub.api("POST", f"/users/{name}/server", data=raw)
    assert r.status_code == 400, r.text
    assert hub.containers(name) == []


def test_progress_events_in_order_and_serializable(hub):
    name = "paul"
    hub.create_user(name)
    status, events = hub.spawn_following_progress(name, {"profile": "small"})
    assert status in (201, 202)
    messages = [e.get("message", "") for e in events]
    for e in events:
        json.dumps(e)
    ours = [
        m
        for m in messages
        if m.startswith(("Profile", "Image", "Creating", "Starting", "Container"))
    ]
    assert [m.split()[0] for m in ours] == [
        "Profile",
        "Image",
        "Creating",
        "Starting",
        "Container",
    ], messages
    numbers = [e["progress"] for e in events if "progress" in e]
    assert numbers == sorted(numbers), numbers
    assert events[-1].get("ready") is True, events
    hub.stop_server(name)


def test_two_users_never_share(hub):
    names = ["zoë.b@lab", "zoe-b"]  # unicode, dots, @, and a near-collision of the escape
    for n in names:
        hub.create_user(n)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(hub.spawn, names))
    (a,), (b,) = hub.containers(names[0]), hub.containers(names[1])
    assert a.id != b.id and a.name != b.name
    va, vb = hub.home_volumes(names[0]), hub.home_volumes(names[1])
    assert len(va) == len(vb) == 1 and va[0].name != vb[0].name
    servers = [
        hub.api("GET", f"/users/{requests.utils.quote(n, safe='')}").json()["servers"][""]
        for n in names
    ]
    assert servers[0]["url"] != servers[1]["url"]
    a.reload(), b.reload()
    net = hub.site["hub"].get("network") or hub.name
    ip_a = a.attrs["NetworkSettings"]["Networks"][net]["IPAddress"]
    ip_b = b.attrs["NetworkSettings"]["Networks"][net]["IPAddress"]
    assert ip_a != ip_b
    # only each user's own SSH port is published (on 127.0.0.1); never the notebook port
    ports = [c.attrs["HostConfig"]["PortBindings"] for c in (a, b)]
    assert all(list(p) == ["22/tcp"] and p["22/tcp"][0]["HostIp"] == "127.0.0.1" for p in ports), (
        ports
    )
    assert ports[0]["22/tcp"][0]["HostPort"] != ports[1]["22/tcp"][0]["HostPort"], (
        "SSH ports collide"
    )
    # one user's token cannot open the other's server
    token_b = hub.user_token(names[1])
    r = requests.get(
        hub.user_url(names[0], "api/status"),
        headers={"Authorization": f"token {hub.token}"},
        timeout=10,
    )
    assert r.status_code == 200, "the unicode user's server answers its URL"
    r = requests.get(
        hub.user_url(names[0], "api/status"),
        headers={"Authorization": f"token {token_b}"},
        timeout=10,
        allow_redirects=False,
    )
    assert r.status_code == 403, (r.status_code, r.text[:300])
    r = requests.get(
        hub.user_url(names[1], "api/status"),
        headers={"Authorization": f"token {token_b}"},
        timeout=10,
    )
    assert r.status_code == 200
    # and their home mounts are different volumes
    mounts_a = {m["Destination"]: m.get("Name") for m in a.attrs["Mounts"]}
    mounts_b = {m["Destination"]: m.get("Name") for m in b.attrs["Mounts"]}
    assert set(mounts_a.values()).isdisjoint(v for v in mounts_b.values() if v)
    for n in names:
        hub.stop_server(n)


def test_invalid_site_file_stops_startup(tmp_path):
    site = tmp_path / "gpulab.yaml"
    site.write_text(
        "auth: {admin_users: [admin]}\n"
        "profiles: [{name: base, image: localhost/gpulab/base:latest}]\n"
        "storage:\n  datasets:\n"
        "    - {name: a, source: /data/a, target: /datasets/a}\n"
        "    - {name: b, source: /data/b, target: /datasets/b, mode: rx}\n"
    )
    env = dict(os.environ, GPULAB_CONFIG=str(site), PYTHONPATH=REPO)
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "gpulab.hub.app", "-f", os.path.join(REPO, "jupyterhub_config.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert 'storage.datasets[1].mode: must be "ro" or "rw", got "rx"' in proc.stderr, proc.stderr[
        -2000:
    ]
    assert time.monotonic() - t0 < 30


def test_plain_jupyterhub_is_told_to_use_gpulab(make_hub):
    h = make_hub(start=False)
    h.write_files()
    proc = subprocess.run(
        [sys.executable, "-m", "jupyterhub", "-f", h.config_path],
        cwd=h.workdir,
        env=h.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "start the hub with `gpulab up`" in proc.stderr, proc.stderr[
        -2000:
    ]
    assert not os.path.exists(h.site["hub"]["state_dir"]), (
        "loading the configuration created nothing"
    )
    assert not h.client.networks.list(names=[h.name]), "no network either"


@pytest.mark.parametrize(
    "extra, text",
    [
        (
            'c.DockerSpawner.extra_host_config = {"privileged": True}',
            "GPUDockerSpawner.extra_host_config.privileged: would change which devices users see",
        ),
        (
            'c.GPUDockerSpawner.profiles = [{"name": "x", "image": "y", "max_gpus": -1}]',
            "GPUDockerSpawner.profiles[0].max_gpus: must be at least 0",
        ),
        (
            'c.DockerSpawner.image = "other/image:1"',
            "GPUDockerSpawner.image: profiles are configured",
        ),
    ],
)
def test_a_bad_hand_set_trait_stops_startup_naming_it(make_hub, extra, text):
    h = make_hub(start=False, extra_config="\n" + extra + "\n")
    with pytest.raises(RuntimeError) as info:
        h.start(timeout=60)
    assert text in str(info.value), str(info.value)[-3000:]
    assert not h.client.networks.list(names=[h.name]), "stopped before preparing the host"


def test_readme_override_example_reaches_the_container(make_hub):
    """docs/admin.md ("What wins"): a trait set after configure_or_exit(c) wins over the site file's profile."""
    h = make_hub(extra_config='\nc.GPUDockerSpawner.mem_limit = "768M"\n')
    h.create_user("olive")
    h.spawn("olive", {"profile": "base"})  # the profile says mem_limit 2G
    (c,) = h.containers("olive")
    assert c.attrs["HostConfig"]["Memory"] == 768 * 1024**2
    assert (
        c.attrs["HostConfig"]["NanoCpus"] == 0 and c.attrs["HostConfig"]["CpuQuota"] == 100_000
    ), "cpu_limit still from the profile"
    assert c.attrs["HostConfig"]["ShmSize"] == 256 * 1024**2
    h.stop_server("olive")


def test_hub_api_listens_only_on_the_container_bridge(hub):
    import ipaddress

    port = hub.site["hub"]["api_port"]
    gateway = str(next(ipaddress.ip_network(hub.site["hub"]["subnet"]).hosts()))
    assert requests.get(f"http://{gateway}:{port}/hub/api/", timeout=5).status_code == 200
    listeners = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    local = sorted(line.split()[3] for line in listeners if line.strip())
    assert local == [f"{gateway}:{port}"], local
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/hub/api/", timeout=5)


def test_host_path_home_owned_by_the_user(make_hub, tmp_path_factory):
    homes = tmp_path_factory.mktemp("homes")
    h = make_hub({"storage": {"home": f"{homes}/{{username}}"}})
    h.create_user("hanna")
    h.spawn("hanna")
    (c,) = h.containers("hanna")
    uid = int(c.labels["gpulab.uid"])
    r = _exec(c, "echo on-host > ~/from-container.txt", user=str(uid))
    assert r.exit_code == 0, r.output
    home = homes / "hanna"
    st = os.stat(home)
    assert (st.st_uid, oct(st.st_mode & 0o777)) == (uid, "0o700")
    assert (home / "from-container.txt").read_text() == "on-host\n"
    assert os.stat(home / "from-container.txt").st_uid == uid
    h.stop_server("hanna")
    assert (home / "from-container.txt").exists(), "the home outlives the container"
