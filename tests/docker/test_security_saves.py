"""A hostile lab member against saved environments, home backups and account deletion, for real.

Each test is an attack that worked before gpulab closed it (docs/admin.md, "Security"): a save
that carried the server's token or the password hash, a start hook planted with sudo that ran as
root later, limits raced, a deleted user's saves and backups passing to a new account of that
name, a failed backup's part left behind, a restore that unpacked as root.
"""

import io
import json
import os
import re
import subprocess
import tarfile
import tempfile
import threading
import time

import docker
import pytest
import requests

from harness.hub import free_port_base
from harness.ssh import SSH, Browser

PASSWORD = "correct horse battery staple"


def run_as(container, command, user=None):
    r = container.exec_run(
        ["bash", "-c", command], user=user or container.labels["gpulab.uid"], demux=True
    )
    out, err = r.output
    return r.exit_code, (out or b"").decode(), (err or b"").decode()


def running(hub, name):
    (c,) = [c for c in hub.containers(name) if c.status == "running"]
    return c


def auth(hub, name):
    return {"Authorization": f"token {hub.user_token(name)}"}


def server_token(container):
    return dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])["JUPYTERHUB_API_TOKEN"]


def holding(image, *secrets):
    """{secret: [the files of the image that hold it]}: its config, manifest and every file of
    every layer (a `docker save`, streamed to a file: a save is as large as its profile's image)."""
    api = docker.APIClient(timeout=900)  # `docker save` of a GB image takes its time to start
    found = {s: [] for s in secrets}

    def look(name, data):
        for s in secrets:
            if s in data:
                found[s].append(name)

    with tempfile.TemporaryFile() as f:
        for chunk in api.get_image(image):
            f.write(chunk)
        f.seek(0)
        with tarfile.open(fileobj=f) as outer:
            for member in outer.getmembers():
                if not member.isfile():
                    continue
                data = outer.extractfile(member).read()
                try:
                    with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                        for g in layer.getmembers():
                            if g.isfile():
                                look(f"{member.name}:{g.name}", layer.extractfile(g).read())
                    continue
                except tarfile.TarError:
                    look(member.name, data)
    return found


@pytest.fixture(scope="module")
def lab(make_hub, tmp_path_factory):
    """Per-user subdomains and sudo (the only way the site file allows sudo), password logins on,
    a direct SSH port, home backups on a folder of the test's own, one save and two backups each."""
    work = tmp_path_factory.mktemp("saves")
    hub = make_hub(
        {
            "users": {"sudo": True},
            "ssh": {"port_base": free_port_base(), "password_login": True},
            "saves": {"max_per_user": 1, "max_size": "2G"},
            "storage": {"backups": str(work / "nas"), "backups_per_user": 2},
        },
        subdomains=True,
    )
    return {"hub": hub, "work": work}


def port_of(hub, name):
    return int(re.search(r"^ +Port (\d+)$", Browser(hub, name).page(), re.M).group(1))


def test_a_save_keeps_no_token_and_no_password_and_a_cleared_password_stops_working(
    lab, docker_client
):
    hub, work = lab["hub"], lab["work"]
    hub.create_user("tina")
    page = Browser(hub, "tina")
    assert page.post(action="set_password", password=PASSWORD).status_code == 200
    hub.spawn("tina")
    c = running(hub, "tina")
    token = server_token(c)
    ssh = SSH(str(work))  # passwords only
    port = port_of(hub, "tina")
    r = ssh.run(SSH.direct(port), "tina", "id", "-un", password=PASSWORD)
    assert r.returncode == 0 and r.stdout.strip() == "tina", r.stderr
    shadow = c.exec_run(["getent", "shadow", "tina"]).output.decode()
    assert "$2b$" not in shadow, (
        "the password is checked against the hub, never kept in the container"
    )
    # the token the SSH helpers need is on a tmpfs, not in the container's layer
    assert run_as(c, "test -e /etc/gpulab/ssh/token", "0")[0] != 0
    assert run_as(c, "grep -q ' /run/gpulab tmpfs ' /proc/mounts", "0")[0] == 0
    r = requests.post(
        f"{hub.url}/hub/api/gpulab/users/tina/saves",
        json={"note": "mine"},
        headers=auth(hub, "tina"),
        timeout=300,
    )
    assert r.status_code == 201, r.text
    save = r.json()
    hashed = json.loads(
        requests.get(
            f"{hub.url}/hub/api/gpulab/ssh/account",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        ).text
    )["password_hash"]
    assert hashed.startswith("$2b$")
    found = holding(save["image"], token.encode(), hashed.encode())
    assert found == {token.encode(): [], hashed.encode(): []}, (
        "the server's live token or the password hash is in the save",
        found,
    )

    # the password removed on the hub: it fails at once, also in a server started from the save
    assert page.post(action="clear_password").status_code == 200
    hub.stop_server("tina")
    hub.spawn("tina", {"save": save["tag"]})
    assert running(hub, "tina").image.id == docker_client.images.get(save["image"]).id
    assert ssh.run(SSH.direct(port), "tina", "true", password=PASSWORD).returncode == 255
    hub.stop_server("tina")


def test_what_runs_as_root_at_start_cannot_be_planted_with_sudo(lab, docker_client):
    hub = lab["hub"]
    hub.create_user("mallory")
    hub.spawn("mallory")
    c = running(hub, "mallory")
    plant = "printf '#!/bin/sh\\ntouch /pwned-as-root\\n'"
    # the start script and the hooks are the hub's, read-only: sudo cannot change them
    for target in (
        "/etc/gpulab/hooks/start.d/99-mine.sh",
        "/usr/local/bin/gpulab-start",
        "/etc/gpulab/hooks/ssh/authorized-keys",
    ):
        code, _, err = run_as(c, f"{plant} | sudo tee {target} >/dev/null")
        assert code != 0 and "Read-only file system" in err, (target, err)
    # what the start runs as root from the image itself: changed with sudo, the save is refused
    assert run_as(c, "sudo cp /bin/true /usr/sbin/usermod")[0] == 0
    r = requests.post(
        f"{hub.url}/hub/api/gpulab/users/mallory/saves",
        json={},
        headers=auth(hub, "mallory"),
        timeout=300,
    )
    assert (
        r.status_code == 400
        and "/usr/sbin/usermod" in r.json()["message"]
        and "runs as root" in r.json()["message"]
    ), r.text
    assert (
        requests.get(
            f"{hub.url}/hub/api/gpulab/users/mallory/saves",
            headers=auth(hub, "mallory"),
            timeout=30,
        ).json()
        == []
    )
    hub.stop_server("mallory")


def test_one_save_at_a_time_and_the_limits_hold(lab, docker_client):
    hub = lab["hub"]
    hub.create_user("quinn")
    hub.spawn("quinn")
    c = running(hub, "quinn")
    assert run_as(c, "sudo dd if=/dev/urandom of=/opt/blob bs=1M count=64 status=none")[0] == 0
    url = f"{hub.url}/hub/api/gpulab/users/quinn/saves"
    headers = auth(hub, "quinn")
    answers = []

    def save():
        answers.append(requests.post(url, json={}, headers=headers, timeout=300))

    threads = [threading.Thread(target=save) for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    codes = sorted(a.status_code for a in answers)
    assert codes.count(201) == 1, [a.text for a in answers]
    assert all(a.status_code in (400, 409) for a in answers if a.status_code != 201)
    assert any(
        "already running" in a.text or "limit is 1" in a.text
        for a in answers
        if a.status_code != 201
    )
    (row,) = requests.get(url, headers=headers, timeout=30).json()
    assert row["bytes"] >= 64 * 1024**2 and row["profile"] == "base" and row["user_id"] > 0
    # GET or POST on one save's URL is a 405, not a 500
    for method in ("GET", "POST"):
        assert (
            requests.request(method, f"{url}/{row['tag']}", headers=headers, timeout=30).status_code
            == 405
        )
    hub.stop_server("quinn")

    # a user whose name is quinn's id finds none of quinn's saves (they are keyed by id, not name)
    numeric = str(row["user_id"])
    hub.create_user(numeric)
    theirs = auth(hub, numeric)
    mine = requests.get(
        f"{hub.url}/hub/api/gpulab/users/{numeric}/saves", headers=theirs, timeout=30
    ).json()
    assert mine == []
    r = hub.api("POST", f"/users/{numeric}/server", json={"save": row["tag"]})
    assert r.status_code == 400 and "save" in r.text, r.text

    # quinn's save was made with sudo: once the admin turns sudo off, it does not start (whatever
    # was changed as root then would run as root again), and says why
    assert row["sudo"] is True
    admin = Browser(hub, "admin")
    try:
        assert admin.post(action="admin_settings", sudo="0").status_code == 200
        r = hub.api("POST", "/users/quinn/server", json={"save": row["tag"]})
        assert r.status_code == 400 and "sudo" in r.text, r.text
        assert not [c for c in hub.containers("quinn") if c.status == "running"]
    finally:
        admin.post(action="admin_settings", sudo="1")


def test_a_deleted_users_saves_and_backups_do_not_pass_to_the_next_account_of_that_name(
    lab, docker_client
):
    hub = lab["hub"]
    hub.create_user("dora")
    hub.spawn("dora")
    c = running(hub, "dora")
    assert run_as(c, "echo diary > ~/diary.txt")[0] == 0
    headers = auth(hub, "dora")
    r = requests.post(
        f"{hub.url}/hub/api/gpulab/users/dora/saves", json={}, headers=headers, timeout=300
    )
    assert r.status_code == 201, r.text
    image = r.json()["image"]
    r = requests.post(
        f"{hub.url}/hub/api/gpulab/users/dora/home-backups", headers=headers, timeout=30
    )
    assert r.status_code == 202, r.text
    wait_job(hub, "dora", headers)
    hub.stop_server("dora")
    assert hub.api("DELETE", "/users/dora").status_code == 204
    assert not [i for i in docker_client.images.list() if image in i.tags], (
        "the save's image is gone"
    )
    hub.create_user("dora")
    headers = auth(hub, "dora")
    assert (
        requests.get(
            f"{hub.url}/hub/api/gpulab/users/dora/saves", headers=headers, timeout=30
        ).json()
        == []
    )
    listed = requests.get(
        f"{hub.url}/hub/api/gpulab/users/dora/home-backups", headers=headers, timeout=30
    ).json()
    assert listed["archives"] == []
    archived = [
        n
        for n in os.listdir(os.path.join(hub.site["hub"]["state_dir"], "archive"))
        if n.endswith("-home-backups")
    ]
    assert archived, "the old backups were archived, like the home"


def wait_job(hub, name, headers, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(
            f"{hub.url}/hub/api/gpulab/users/{name}/home-backups", headers=headers, timeout=30
        ).json()
        if job["job"] and job["job"]["state"] != "running":
            return job
        time.sleep(0.3)
    raise AssertionError("the job did not finish")


def test_home_backups_are_sparse_limited_and_never_half_made(lab, tmp_path):
    hub = lab["hub"]
    hub.create_user("sam")
    headers = auth(hub, "sam")
    url = f"{hub.url}/hub/api/gpulab/users/sam/home-backups"
    r = requests.post(url, headers=headers, timeout=30)
    assert r.status_code == 409 and "no home yet" in r.json()["message"], (
        "nothing before the first start makes the home"
    )
    hub.spawn("sam")
    c = running(hub, "sam")
    assert run_as(c, "truncate -s 1G ~/sparse.img && echo data > ~/small.txt")[0] == 0
    assert requests.post(url, headers=headers, timeout=30).status_code == 202
    job = wait_job(hub, "sam", headers)
    assert job["job"]["state"] == "done", job
    (archive,) = job["archives"]
    assert archive["bytes"] < 10 * 1024**2, "a sparse file is archived sparse"
    r = requests.post(f"{url}/{archive['name']}/restore", headers=headers, timeout=30)
    assert r.status_code == 202, r.text
    done = wait_job(hub, "sam", headers)
    assert done["job"]["state"] == "done", done
    target = done["job"]["target"]
    code, out, _ = run_as(c, f"stat -c '%s %b %U' ~/{target}/sparse.img")
    size, blocks, owner = out.split()
    assert code == 0 and int(size) == 1024**3 and int(blocks) < 4096 and owner == "sam", out
    # a backup past the count limit is refused; one can be deleted, then one made again
    assert requests.post(url, headers=headers, timeout=30).status_code == 202
    wait_job(hub, "sam", headers)
    r = requests.post(url, headers=headers, timeout=30)
    assert r.status_code == 409 and "the limit is 2" in r.json()["message"]
    assert (
        requests.delete(f"{url}/{archive['name']}", headers=headers, timeout=30).status_code == 204
    )
    # a backup that fails on the way (the backup folder's disk is full) leaves no part behind
    nas = hub.site["storage"]["backups"]
    (user_dir,) = [os.path.join(nas, d) for d in os.listdir(nas) if d.endswith("-sam")]
    assert run_as(c, "head -c 8000000 /dev/urandom > ~/noise.bin")[0] == 0
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", user_dir], check=True)
    try:
        assert requests.post(url, headers=headers, timeout=30).status_code == 202
        failed = wait_job(hub, "sam", headers)
        assert failed["job"]["state"] == "failed", failed
        assert [n for n in os.listdir(user_dir) if n.endswith(".part")] == [], os.listdir(user_dir)
    finally:
        subprocess.run(["umount", user_dir], check=True)
    hub.stop_server("sam")


def test_a_server_cannot_bind_a_port_below_1024(lab):
    hub = lab["hub"]
    hub.create_user("pete")
    hub.spawn("pete")
    c = running(hub, "pete")
    code, _, err = run_as(c, "python3 -c 'import socket; socket.socket().bind((\"0.0.0.0\", 700))'")
    assert code != 0 and "Permission denied" in err, err
    assert (
        run_as(c, "python3 -c 'import socket; socket.socket().bind((\"0.0.0.0\", 7000))'")[0] == 0
    )
    hub.stop_server("pete")
