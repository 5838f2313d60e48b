"""An upgrade from the previous release, the way the admin guide says (docs/admin.md, Upgrades): the
v0.3.0 hub (JupyterHub 5.5, its own tree, virtual environment and image, built as its README says)
runs servers (one holding a GPU), has a spawn waiting in the queue, SSH keys and a saved
environment; then `gpulab backup`, the hub stopped, `jupyterhub upgrade-db`, this checkout's hub
started on the same state: the running servers keep running and are adopted, the GPU holding and
the keys are kept, the queue starts again clean, and the backup taken first restores here."""

import io
import os
import re
import sqlite3
import subprocess
import sys
import tarfile

import pytest
import requests
import yaml

from gpulab.core.site import facts
from gpulab.core.site.model import load_site
from gpulab.hub.sshstore import SSHStore
from harness import gpuhost
from harness.hub import BASE_IMAGE, REPO, Hub, free_port_base
from harness.ssh import SSH, Browser, keygen

# The last release: tagged v0.3.0 here, named by its commit (an ancestor of main) so that a clone
# without tags, as CI makes, has it too.
PREVIOUS = "0cdcaa84038bc221b120c8cc2a250c3e804a90d9"
OLD_IMAGE = "localhost/gpulab-test/base:v0.3.0"
BOOTSTRAP = "localhost/gpulab/bootstrap:bookworm"
GPU = gpuhost.devices()[0]  # a made-up GPU with the test hook (a real one on a GPU host)


def run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{argv[:4]}: {r.stdout[-2000:]}{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def old(tmp_path_factory, docker_client):
    """The previous release as its README installs it: its tree, a virtual environment with its
    pinned packages, its base image (under a test tag: this checkout's stays)."""
    root = tmp_path_factory.mktemp("v0.3.0")
    git = ["git", "-C", str(REPO)]
    if subprocess.run([*git, "cat-file", "-e", f"{PREVIOUS}^{{commit}}"]).returncode:
        # A shallow clone lacks the release's commit: deepen it from where it was cloned.
        subprocess.run([*git, "fetch", "-q", "--unshallow"], capture_output=True)
    raw = subprocess.run([*git, "archive", PREVIOUS], capture_output=True).stdout
    assert raw, f"v0.3.0 ({PREVIOUS[:7]}) is not in this clone's history (git fetch --unshallow)"
    src = root / "src"
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        t.extractall(src, filter="data")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    run(
        [python, "-m", "pip", "install", "-q", "-e", str(src / "client"), "-e", str(src)],
        timeout=900,
    )
    version = run([python, "-c", "import jupyterhub; print(jupyterhub.__version__)"]).stdout
    assert version.startswith("5.5"), version
    run(
        [
            python,
            "-c",
            "import sys; from gpulab.images import build_images; "
            "build_images(['base'], tags={'base': sys.argv[1]}, base_image=sys.argv[2])",
            OLD_IMAGE,
            BOOTSTRAP,
        ],
        cwd=str(src),
        timeout=1500,
    )
    yield {"python": python, "src": str(src), "gpulab": str(venv / "bin" / "gpulab")}
    try:
        docker_client.images.remove(OLD_IMAGE, force=True)
    except Exception:
        pass


def server_ready(hub, name):
    model = hub.api("GET", f"/users/{name}").json()
    return (model.get("servers") or {}).get("", {}).get("ready", False)


def test_an_upgrade_keeps_running_servers_holdings_keys_and_the_database(
    old, docker_client, tmp_path
):
    work = tmp_path
    hub = Hub(
        work / "hub",
        docker_client,
        site_overrides={
            "profiles": [
                {"name": "base", "image": OLD_IMAGE, "max_gpus": 1, "description": "v0.3.0"}
            ],
            "gpus": {"devices": [GPU], "wait_timeout": 600},
            "ssh": {"port_base": free_port_base()},
        },
        release=(old["python"], old["src"], "gpulab.app"),
    )
    try:
        hub.start()
        for name in ("alice", "bob", "carol"):
            hub.create_user(name)
        key = work / "alice_key"
        page = Browser(hub, "alice")
        assert page.post(action="add_key", key=keygen(key)).status_code == 200
        port = int(re.search(r"^ +Port (\d+)$", page.page(), re.M).group(1))
        hub.spawn("alice", {"profile": "base", "gpus": 1}, timeout=180)
        hub.spawn("bob", {"profile": "base", "gpus": 0}, timeout=180)
        alice_token = hub.user_token("alice")
        r = requests.post(
            f"{hub.url}/hub/api/gpulab/users/alice/saves",
            json={"note": "before the upgrade"},
            headers={"Authorization": f"token {alice_token}"},
            timeout=300,
        )
        assert r.status_code == 201, r.text
        # carol waits for the GPU alice holds
        r = hub.api("POST", "/users/carol/server", json={"profile": "base", "gpus": 1})
        assert r.status_code == 202, r.text
        running = {
            name: [c.id for c in hub.containers(name) if c.status == "running"]
            for name in ("alice", "bob")
        }
        assert all(running.values()), running

        # 1. gpulab backup (the release's own), 2. the hub stopped: servers keep running
        archive = work / "backups"
        run([old["gpulab"], "--site", hub.site_path, "backup", "--to", str(archive)], env=hub.env())
        (taken,) = os.listdir(archive)
        hub.stop()
        for name, ids in running.items():
            assert [c.id for c in hub.containers(name) if c.status == "running"] == ids, name

        # 3. this release; the database upgraded (JupyterHub refuses an old schema and says so)
        # (`gpulab upgrade-db`: the site's hub.db_url, with the hub's own environment's alembic)
        gpulab = os.path.join(os.path.dirname(sys.executable), "gpulab")
        path_without_venv = os.pathsep.join(
            p for p in os.environ["PATH"].split(os.pathsep) if p != os.path.dirname(sys.executable)
        )
        run(
            [gpulab, "--site", hub.site_path, "upgrade-db"],
            env={**hub.env(), "PATH": path_without_venv},
        )
        # 4. images: `gpulab images build --for-site` rebuilds the profile's image under its name;
        # here the profile is pointed at this checkout's image instead (the old one stays named)
        hub.site["profiles"][0]["image"] = BASE_IMAGE
        hub.use_release()
        hub.start(timeout=120)

        # the running servers were adopted: the same containers, ready, reached through the proxy
        for name, ids in running.items():
            assert [c.id for c in hub.containers(name) if c.status == "running"] == ids, name
            assert server_ready(hub, name), name
        r = requests.get(
            hub.user_url("alice", "api/status"),
            headers={"Authorization": f"token {alice_token}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        # the GPU holding is kept
        gpus = hub.api("GET", "/gpulab/gpus").json()["gpus"]
        assert [h["user"] for h in gpus[0]["holders"]] == ["alice"], gpus
        # the key is kept, and works in the server the old hub started
        r = SSH(str(work), key).run(SSH.direct(port), "alice", "id", "-un")
        assert r.returncode == 0 and r.stdout.strip() == "alice", r.stderr
        # the queue starts again clean: carol's wait ended with the old hub; asked again, she
        # waits, and gets the GPU when alice stops
        assert not server_ready(hub, "carol")
        r = hub.api("POST", "/users/carol/server", json={"profile": "base", "gpus": 1})
        assert r.status_code == 202, r.text
        hub.stop_server("alice")
        hub.wait_ready("carol", timeout=180)
        gpus = hub.api("GET", "/gpulab/gpus").json()["gpus"]
        assert [h["user"] for h in gpus[0]["holders"]] == ["carol"], gpus
        # saves made before are not offered to their owner (kept by name, not by id: see the
        # admin guide's upgrade notes); the image is still there for the admin
        mine = requests.get(
            f"{hub.url}/hub/api/gpulab/users/alice/saves",
            headers={"Authorization": f"token {hub.user_token('alice')}"},
            timeout=30,
        ).json()
        assert mine == []
        assert docker_client.images.list(
            filters={"label": [f"gpulab.deployment={hub.name}", "gpulab.save=1"]}
        )
        for name in ("bob", "carol"):
            hub.stop_server(name)

        # 5. the backup taken first restores on this release, into a new state directory
        fresh = dict(hub.site, hub={**hub.site["hub"], "state_dir": str(work / "restored")})
        site_file = work / "restored.yaml"
        site_file.write_text(yaml.safe_dump(fresh))
        run([gpulab, "--site", str(site_file), "restore", str(archive / taken)])
        restored = work / "restored"
        restored_db = facts.db_url(load_site(str(site_file)))
        run([gpulab, "--site", str(site_file), "upgrade-db"])
        with sqlite3.connect(restored_db[len("sqlite:///") :]) as db:
            names = {row[0] for row in db.execute("select name from users")}
        assert {"alice", "bob", "carol"} <= names
        store = facts.ssh_store_path(str(restored))
        assert len(SSHStore(store).keys("alice")) == 1
    finally:
        hub.stop()
        hub.cleanup()
