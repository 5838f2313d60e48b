"""Saved environments for real: a change made with sudo outside the home survives a stop only in a
save; a rebuild (the profile's image) drops it and keeps the home; limits; another user's saves."""

import os
import subprocess
import sys

import requests

from harness.ssh import Browser

GPULAB_CLIENT = os.path.join(os.path.dirname(sys.executable), "gpulab-client")


def run_as(container, command):
    r = container.exec_run(["bash", "-c", command], user=container.labels["gpulab.uid"], demux=True)
    out, err = r.output
    return r.exit_code, (out or b"").decode(), (err or b"").decode()


def running(hub, name):
    (c,) = [c for c in hub.containers(name) if c.status == "running"]
    return c


def test_save_restart_from_it_rebuild_limits_and_strangers(make_hub, docker_client, tmp_path):
    hub = make_hub(
        {
            "users": {"sudo": True},
            "ssh": {"port_base": 0},
            "saves": {"max_per_user": 1, "max_size": "1G"},
        },
        subdomains=True,
    )
    for n in ("alice", "bob"):
        hub.create_user(n)
    token = hub.user_token("alice")
    auth = {"Authorization": f"token {token}"}
    saves_url = f"{hub.url}/hub/api/gpulab/users/alice/saves"
    # nothing to save while stopped
    r = requests.post(saves_url, json={}, headers=auth, timeout=60)
    assert r.status_code == 409 and "not running" in r.json()["message"]

    hub.spawn("alice", {"profile": "small"})
    c = running(hub, "alice")
    code, _, err = run_as(
        c,
        "echo thesis > ~/thesis.txt && printf '#!/bin/sh\\necho lab tool 1.0\\n' | sudo tee /usr/local/bin/labtool >/dev/null && sudo chmod 755 /usr/local/bin/labtool",
    )
    assert code == 0, err
    # save with the laptop client and alice's token
    token_file = tmp_path / "token"
    token_file.write_text(token)
    env = dict(os.environ, GPULAB_HUB_URL=hub.url)
    out = subprocess.run(
        [GPULAB_CLIENT, "env", "save", "--token-file", str(token_file), "--note", "with labtool"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and "saved as" in out.stdout, out.stderr
    (save,) = requests.get(saves_url, headers=auth, timeout=30).json()
    assert save["profile"] == "small" and save["note"] == "with labtool" and save["user"] == "alice"
    image = docker_client.images.get(save["image"])
    env_of_image = dict(e.split("=", 1) for e in image.attrs["Config"]["Env"] or [])
    assert env_of_image["JUPYTERHUB_API_TOKEN"] == "" and token not in str(
        env_of_image
    )  # the hub's secrets stay out
    listed = subprocess.run(
        [GPULAB_CLIENT, "env", "list", "--token-file", str(token_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert save["tag"] in listed.stdout and "with labtool" in listed.stdout
    # the Environments page and the spawn form show it to alice, and to an admin
    alice_page = Browser(hub, "alice")
    assert (
        f'data-tag="{save["tag"]}"'
        in alice_page.s.get(hub.url + "/hub/environments", timeout=30).text
    )
    hub.create_user("admin")
    admin_page = Browser(hub, "admin").s.get(hub.url + "/hub/environments", timeout=30).text
    assert "Everyone's saves" in admin_page and "alice" in admin_page and save["tag"] in admin_page

    # over the count limit: refused, nothing made
    before = {i.id for i in docker_client.images.list()}
    r = requests.post(saves_url, json={"note": "second"}, headers=auth, timeout=120)
    assert r.status_code == 400 and "limit is 1" in r.json()["message"]
    assert {i.id for i in docker_client.images.list()} == before

    # stop: the change outside the home is gone on a plain start, there in a start from the save
    hub.stop_server("alice")
    form = alice_page.s.get(hub.url + "/hub/spawn", timeout=60).text
    assert f'<option value="{save["tag"]}" data-profile="small">' in form and 'name="save"' in form
    hub.spawn("alice", {"profile": "small", "save": save["tag"]})
    c = running(hub, "alice")
    assert c.image.id == image.id
    assert run_as(c, "labtool && cat ~/thesis.txt")[1] == "lab tool 1.0\nthesis\n"
    hub.stop_server("alice")
    hub.spawn("alice", {"profile": "small"})  # rebuild: the profile's image, home kept
    code, out, _ = run_as(running(hub, "alice"), "command -v labtool; cat ~/thesis.txt")
    assert out == "thesis\n"

    # bob sees none of it and cannot start it
    bob = {"Authorization": f"token {hub.user_token('bob')}"}
    assert (
        requests.get(f"{hub.url}/hub/api/gpulab/users/bob/saves", headers=bob, timeout=30).json()
        == []
    )
    assert requests.get(saves_url, headers=bob, timeout=30).status_code == 404
    assert requests.delete(f"{saves_url}/{save['tag']}", headers=bob, timeout=30).status_code == 404
    r = hub.api("POST", "/users/bob/server", json={"profile": "small", "save": save["tag"]})
    assert r.status_code == 400 and "not one of your saved environments" in r.json()["message"]
    assert not hub.containers("bob")

    # delete frees the space
    r = requests.delete(f"{saves_url}/{save['tag']}", headers=auth, timeout=60)
    assert r.status_code == 204
    assert requests.get(saves_url, headers=auth, timeout=30).json() == []
    assert save["image"] not in [t for i in docker_client.images.list() for t in i.tags]
    hub.stop_server("alice")


def test_a_save_over_the_size_limit_is_refused_before_anything_is_written(make_hub, docker_client):
    hub = make_hub(
        {"users": {"sudo": True}, "ssh": {"port_base": 0}, "saves": {"max_size": "8M"}},
        subdomains=True,
    )
    hub.create_user("carl")
    hub.spawn("carl", {"profile": "small"})
    c = running(hub, "carl")
    assert run_as(c, "sudo dd if=/dev/urandom of=/opt/blob bs=1M count=16 status=none")[0] == 0
    before = {i.id for i in docker_client.images.list()}
    r = requests.post(
        f"{hub.url}/hub/api/gpulab/users/carl/saves",
        json={},
        headers={"Authorization": f"token {hub.user_token('carl')}"},
        timeout=120,
    )
    assert (
        r.status_code == 400 and "over what your limit leaves (0.01 GiB)" in r.json()["message"]
    ), r.text
    assert {i.id for i in docker_client.images.list()} == before
    hub.stop_server("carl")


def test_home_backup_and_restore_into_a_new_folder(make_hub, tmp_path):
    backups = tmp_path / "nas"
    hub = make_hub({"storage": {"home": "{prefix}-home-{username}", "backups": str(backups)}})
    for n in ("alice", "bob"):
        hub.create_user(n)
    hub.spawn("alice")
    c = running(hub, "alice")
    assert (
        run_as(
            c,
            "mkdir -p ~/thesis/data && echo 'chapter 1' > ~/thesis/ch1.txt && head -c 2000000 /dev/urandom > ~/thesis/data/raw.bin",
        )[0]
        == 0
    )
    before = run_as(c, "cd ~/thesis && find . -type f | sort | xargs sha256sum")[1]
    token_file = tmp_path / "token"
    token_file.write_text(hub.user_token("alice"))
    env = dict(os.environ, GPULAB_HUB_URL=hub.url)
    out = subprocess.run(
        [GPULAB_CLIENT, "home", "backup", "--token-file", str(token_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and "backup done" in out.stdout, out.stdout + out.stderr
    (archive,) = list(backups.rglob("home-*.tar.gz"))
    assert oct(archive.stat().st_mode & 0o777) == "0o600" and archive.stat().st_size > 1_000_000
    listed = subprocess.run(
        [GPULAB_CLIENT, "home", "list", "--token-file", str(token_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert archive.name in listed.stdout

    assert (
        run_as(c, "echo 'chapter 1, rewritten' > ~/thesis/ch1.txt")[0] == 0
    )  # a change after the backup
    out = subprocess.run(
        [GPULAB_CLIENT, "home", "restore", archive.name, "--token-file", str(token_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and "restore done" in out.stdout, out.stdout + out.stderr
    target = out.stdout.strip().rsplit("(", 1)[1].rstrip(")")
    assert target.startswith("restored-")
    restored = run_as(c, f"cd ~/{target}/thesis && find . -type f | sort | xargs sha256sum")[1]
    assert restored == before  # the same contents, in a new folder
    assert run_as(c, "cat ~/thesis/ch1.txt")[1] == "chapter 1, rewritten\n"  # nothing overwritten
    assert (
        run_as(c, f"stat -c %u ~/{target}/thesis/ch1.txt")[1].strip() == c.labels["gpulab.uid"]
    )  # the user's files

    # bob can neither list nor restore alice's backups
    bob = {"Authorization": f"token {hub.user_token('bob')}"}
    assert (
        requests.get(
            f"{hub.url}/hub/api/gpulab/users/alice/home-backups", headers=bob, timeout=30
        ).status_code
        == 404
    )
    r = requests.post(
        f"{hub.url}/hub/api/gpulab/users/alice/home-backups/{archive.name}/restore",
        headers=bob,
        timeout=30,
    )
    assert r.status_code == 404
    r = requests.post(
        f"{hub.url}/hub/api/gpulab/users/bob/home-backups/{archive.name}/restore",
        headers=bob,
        timeout=30,
    )
    assert r.status_code == 404 and "no backup" in r.json()["message"]  # not one of bob's
    hub.stop_server("alice")
