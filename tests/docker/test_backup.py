"""gpulab backup of a running hub, restored under a fresh state directory: the same users, tokens
and SSH keys on the hub that starts from it."""

import os
import subprocess
import sys

import requests

from harness.ssh import keygen

GPULAB = os.path.join(os.path.dirname(sys.executable), "gpulab")


def gpulab(hub, *args):
    env = dict(os.environ, GPULAB_CONFIG=hub.site_path)
    return subprocess.run(
        [GPULAB, *args], env=env, cwd=hub.workdir, capture_output=True, text=True, timeout=120
    )


def test_backup_of_a_running_hub_restores_users_tokens_and_keys(make_hub, tmp_path):
    old = make_hub()
    old.create_user("alice")
    old.create_user("bob")
    token = old.user_token("alice")
    auth = {"Authorization": f"token {token}"}
    r = requests.post(
        old.url + "/hub/api/gpulab/ssh/keys",
        json={"key": keygen(tmp_path / "k")},
        headers=auth,
        timeout=30,
    )
    assert r.status_code == 201, r.text
    fingerprint = r.json()["fingerprint"]

    out = gpulab(old, "backup", "--to", str(tmp_path / "backups"))  # while the hub runs
    assert out.returncode == 0, out.stderr
    (archive,) = (tmp_path / "backups").iterdir()
    old.stop()

    new = make_hub(start=False)
    new.write_files()
    out = gpulab(new, "restore", str(archive))
    assert out.returncode == 0 and "restored into" in out.stdout, out.stderr
    new.start()
    users = {u["name"]: u for u in new.api("GET", "/users").json()}
    assert {"alice", "bob"} <= set(users)  # (groups: tests/unit/test_backup.py)
    # alice's token from the old hub works on the restored one, and her SSH key is there
    keys = requests.get(new.url + "/hub/api/gpulab/ssh/keys", headers=auth, timeout=30)
    assert keys.status_code == 200 and [k["fingerprint"] for k in keys.json()] == [fingerprint]
    # a second restore would overwrite: refused
    again = gpulab(new, "restore", str(archive))
    assert again.returncode == 2 and "already has hub state" in again.stderr
