"""A hostile lab member against the hub itself, for real: the lock-out, the GPU queue's messages,
the GPU readings, and an admin's own roles that would have dropped gpulab's scopes."""

import ipaddress
import os
import subprocess
import sys

import requests

from harness.hub import BASE_IMAGE

GPULAB = os.path.join(os.path.dirname(sys.executable), "gpulab")


def login(base, name, password, headers=None):
    """A login at ``base`` (the hub through its proxy, or its own API port); True when it worked."""
    s = requests.Session()
    s.get(base + "/hub/login", timeout=30)
    r = s.post(
        base + "/hub/login",
        data={"username": name, "password": password, "_xsrf": s.cookies.get("_xsrf")},
        headers=headers or {},
        timeout=60,
        allow_redirects=False,
    )
    return r.status_code == 302 and "/hub/login" not in r.headers.get("Location", "")


def test_a_lock_out_is_per_name_and_source_and_cannot_be_dodged_with_headers(make_hub):
    hub = make_hub(
        {"auth": {"admin_users": ["admin"], "failed_logins": 3, "lockout_seconds": 300}},
        site_auth=True,
    )
    pw = os.path.join(hub.workdir, "pw")
    with open(pw, "w") as f:
        f.write("owners-password-1\n")
    r = subprocess.run(
        [GPULAB, "--site", hub.site_path, "admin", "create", "owner", "--password-file", pw],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    # another address (the hub's own port on the user bridge, not through the proxy) guesses: it is locked out...
    gateway = str(next(ipaddress.ip_network(hub.site["hub"]["subnet"]).hosts()))
    direct = f"http://{gateway}:{hub.site['hub']['api_port']}"
    for _ in range(3):
        assert not login(direct, "owner", "a wrong guess")
    assert not login(direct, "owner", "owners-password-1"), (
        "locked out from where the guesses came from"
    )
    # ...and the owner, from elsewhere, is not
    assert login(hub.url, "owner", "owners-password-1")
    # guesses through the proxy with forged addresses stay one source: locked after 3 all the same
    for i in range(3):
        forged = {"X-Real-Ip": f"203.0.113.{i + 1}", "X-Forwarded-For": f"198.51.100.{i + 1}"}
        assert not login(hub.url, "owner", "a wrong guess", forged)
    assert not login(hub.url, "owner", "owners-password-1", {"X-Real-Ip": "203.0.113.77"})


def test_hidden_holders_stay_hidden_in_refusals(make_hub):
    gpus = [{"index": i, "uuid": f"GPU-hide-{i}", "model": "T", "memory": "1G"} for i in range(2)]
    profiles = [{"name": "gpu", "image": BASE_IMAGE, "max_gpus": 2}]
    hub = make_hub(
        {"gpus": {"devices": gpus, "show_holders": False, "wait": False}, "profiles": profiles}
    )
    for name in ("alice", "bob"):
        hub.create_user(name)
    hub.spawn("alice", {"profile": "gpu", "gpus": 2})
    r = hub.api("POST", "/users/bob/server", json={"profile": "gpu", "gpus": 1})
    assert r.status_code == 409 and "alice" not in r.text and "1 other server(s)" in r.text, r.text
    hub.stop_server("alice")


def test_readings_speak_only_for_their_own_node(make_hub):
    gpus = [{"index": 0, "uuid": "GPU-read-0", "model": "T", "memory": "1G"}]
    hub = make_hub({"gpus": {"devices": gpus, "readings": "push"}})
    hub.create_user("admin")
    token = hub.user_token("admin")  # admins hold the readings scope
    reading = {"uuid": "GPU-read-0", "utilization": 0, "memory_used": 0, "memory_total": 1 << 30}
    url = f"{hub.url}/hub/api/gpulab/readings"
    headers = {"Authorization": f"token {token}"}
    r = requests.post(
        url,
        json={"node": "n1", "gpus": [{**reading, "uuid": "GPU-not-here"}]},
        headers=headers,
        timeout=30,
    )
    assert r.status_code == 403 and "not a GPU of node" in r.text, r.text
    assert (
        requests.post(
            url, json={"node": "n1", "gpus": [reading]}, headers=headers, timeout=30
        ).status_code
        == 200
    )
    r = requests.post(url, json={"node": "n2", "gpus": [reading]}, headers=headers, timeout=30)
    assert r.status_code == 403 and "each node needs a token of its own" in r.text, r.text


def test_an_admins_own_roles_keep_gpulabs_scopes(make_hub, tmp_path):
    # set after the site file, this used to drop the user role's gpulab scopes: the keys page failed
    redefined = '\nc.JupyterHub.load_roles = [r for r in c.JupyterHub.load_roles if r["name"] != "user"] + [{"name": "user", "scopes": ["self"]}]\n'
    hub = make_hub(extra_config=redefined)
    hub.create_user("rita")
    r = requests.get(
        f"{hub.url}/hub/api/gpulab/ssh/keys",
        headers={"Authorization": f"token {hub.user_token('rita')}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert "load_roles (set after the site file) left out" in hub.log_tail(400)
