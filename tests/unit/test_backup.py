"""gpulab backup / restore with a real JupyterHub database, SSH key store and usage book."""

import os
import subprocess
import sys
import tarfile

import pytest
import yaml

from gpulab.admin.statebackup import StateBackupError, backup, read_manifest, restore, state_files
from gpulab.core.site.model import load_site

GPULAB = [sys.executable, "-m", "gpulab.admin.cli"]


def make_site(tmp_path, name):
    state = tmp_path / name
    site_file = tmp_path / f"{name}.yaml"
    site_file.write_text(
        yaml.safe_dump(
            {
                "hub": {"name": "lab", "state_dir": str(state)},
                "auth": {"admin_users": ["admin"]},
                "profiles": [{"name": "base", "image": "localhost/gpulab/base:latest"}],
            }
        )
    )
    return load_site(str(site_file)), str(site_file)


def populate(site, tmp_path):
    """A hub that has run: users and a group in its database, SSH keys, a cookie secret, usage."""
    from jupyterhub import orm

    from gpulab.core.site.facts import db_url, usage_path
    from gpulab.core.site.facts import ssh_store_path as store_path
    from gpulab.core.ssh import keys
    from gpulab.hub.sshstore import SSHStore
    from gpulab.hub.usagebook import UsageStore

    state = site["hub"]["state_dir"]
    os.makedirs(state, mode=0o700)
    with orm.new_session_factory(db_url(site))() as db:
        group = orm.Group(name="phd")
        for name in ("alice", "bob"):
            user = orm.User(name=name)
            db.add(user)
            group.users.append(user)
        db.add(group)
        db.commit()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True
    )
    key = keys.parse_public_key((tmp_path / "k.pub").read_text())
    SSHStore(store_path(state)).add_key("alice", key)
    with open(os.path.join(state, "jupyterhub_cookie_secret"), "w") as f:
        f.write("ab" * 32)
    UsageStore(usage_path(state)).record(0, 3600, {"alice": (1, 0.5)})
    return key


def users_and_keys(site):
    from jupyterhub import orm

    from gpulab.core.site.facts import db_url
    from gpulab.core.site.facts import ssh_store_path as store_path
    from gpulab.hub.sshstore import SSHStore

    with orm.new_session_factory(db_url(site))() as db:
        users = sorted((u.name, sorted(g.name for g in u.groups)) for u in db.query(orm.User))
    return users, [
        k.fingerprint for k in SSHStore(store_path(site["hub"]["state_dir"])).keys("alice")
    ]


def test_backup_then_restore_into_a_fresh_state_dir(tmp_path):
    site, site_file = make_site(tmp_path, "old")
    key = populate(site, tmp_path)
    archive = backup(site, site_file, str(tmp_path / "backups"), now=1_700_000_000)
    assert archive.endswith("gpulab-state-lab-20231114-221320.tar.gz")
    assert oct(os.stat(archive).st_mode & 0o777) == "0o600"
    manifest = read_manifest(archive)
    assert set(manifest["files"]) == {
        "jupyterhub.sqlite",
        "jupyterhub_cookie_secret",
        "gpulab-ssh.sqlite",
        "gpulab-usage.sqlite",
        "gpulab.yaml",
    }

    new, _ = make_site(tmp_path, "new")
    written = restore(archive, new)
    assert (
        users_and_keys(new)
        == ([("alice", ["phd"]), ("bob", ["phd"])], [key.fingerprint])
        == users_and_keys(site)
    )
    with open(os.path.join(new["hub"]["state_dir"], "jupyterhub_cookie_secret")) as f:
        assert f.read() == "ab" * 32
    assert all(oct(os.stat(p).st_mode & 0o777) == "0o600" for p in written)
    assert os.path.exists(os.path.join(new["hub"]["state_dir"], "gpulab.yaml.restored"))

    # never over existing state
    with pytest.raises(StateBackupError, match="already has hub state"):
        restore(archive, new)
    with pytest.raises(StateBackupError, match="already has hub state"):
        restore(archive, site)


def test_backup_refuses_what_it_cannot_do(tmp_path):
    site, site_file = make_site(tmp_path, "never")
    with pytest.raises(StateBackupError, match="has this hub ever started"):
        backup(site, site_file, str(tmp_path / "b"))
    assert state_files(site) == []
    pg = {**site, "hub": {**site["hub"], "db_url": "postgresql://hub@db/hub"}}
    with pytest.raises(StateBackupError, match="pg_dump"):
        backup(pg, site_file, str(tmp_path / "b"))
    bogus = tmp_path / "bogus.tar.gz"
    with tarfile.open(bogus, "w:gz") as tar:
        tar.add(site_file, arcname="gpulab.yaml")
    with pytest.raises(StateBackupError, match="not a gpulab backup"):
        read_manifest(str(bogus))


def test_cli_backup_and_restore(tmp_path):
    site, site_file = make_site(tmp_path, "old")
    populate(site, tmp_path)
    out = subprocess.run(
        [*GPULAB, "--site", site_file, "backup", "--to", str(tmp_path / "b")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "wrote" in out.stdout, out.stderr
    (archive,) = (tmp_path / "b").iterdir()
    _, new_file = make_site(tmp_path, "new")
    out = subprocess.run(
        [*GPULAB, "--site", new_file, "restore", str(archive)], capture_output=True, text=True
    )
    assert out.returncode == 0 and "restored into" in out.stdout, out.stderr
    out = subprocess.run(
        [*GPULAB, "--site", new_file, "restore", str(archive)], capture_output=True, text=True
    )
    assert out.returncode == 2 and "already has hub state" in out.stderr


def test_cli_upgrade_db_finds_alembic_off_path(tmp_path):
    """An admin runs `.venv/bin/gpulab upgrade-db` without activating the environment: the
    database of hub.db_url, taken one schema back, comes to JupyterHub's current one."""
    from jupyterhub import orm
    from jupyterhub.dbutil import _temp_alembic_ini
    from sqlalchemy import create_engine

    from gpulab.core.site.facts import db_url

    site, site_file = make_site(tmp_path, "old")
    populate(site, tmp_path)
    url = db_url(site)
    bindir = os.path.dirname(sys.executable)
    with _temp_alembic_ini(url) as ini:
        subprocess.run([os.path.join(bindir, "alembic"), "-c", ini, "downgrade", "-1"], check=True)
    with pytest.raises(orm.DatabaseSchemaMismatch):
        orm.check_db_revision(create_engine(url))
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [*GPULAB, "--site", site_file, "upgrade-db"], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "is at the schema of JupyterHub" in out.stdout
    orm.check_db_revision(create_engine(url))
    assert users_and_keys(site)[0] == [("alice", ["phd"]), ("bob", ["phd"])]
    # JupyterHub's own copy from before the upgrade, next to the database
    db_file = os.path.basename(url[len("sqlite:///") :])
    assert any(p.startswith(db_file + ".") for p in os.listdir(site["hub"]["state_dir"]))

    _, never = make_site(tmp_path, "never")
    out = subprocess.run([*GPULAB, "--site", never, "upgrade-db"], capture_output=True, text=True)
    assert out.returncode == 2 and "no database at" in out.stderr
