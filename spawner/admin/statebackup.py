"""The hub's state in one dated archive, and back: ``gpulab backup`` / ``gpulab restore``.

What a hub needs to come back as it was: the JupyterHub database (users, groups, tokens, servers),
the cookie secret (so logins survive), the SSH key store (keys, password hashes, SSH policy), the
GPU usage book, and the site file. SQLite files are copied with SQLite's own backup API, so a
backup taken while the hub runs is consistent. A PostgreSQL database is not in the archive
(``pg_dump`` it; the command says so).

Users' homes are not hub state: they live in Docker volumes or on the lab's storage, backed up
with it.

A restore never overwrites: it unpacks into a state directory that has no hub state yet, and puts
the archived site file next to it as ``gpulab.yaml.restored`` for the admin to compare.
"""

import io
import json
import os
import sqlite3
import tarfile
import tempfile
import time

from ..core.site.facts import COOKIE_SECRET, JOBS_STORE, SSH_STORE, USAGE_BOOK, db_url, state_dir

MANIFEST = "gpulab-backup.json"


class StateBackupError(Exception):
    """A backup or restore of the hub's state was refused; the message says why."""


def _sqlite_path(url):
    return url[len("sqlite:///") :] if url.startswith("sqlite:///") else None


def state_files(site):
    """[(name in the archive, path on disk, kind)] of the hub state that exists now."""
    state = state_dir(site)
    out = []
    db = _sqlite_path(db_url(site))
    if db and os.path.exists(db):
        out.append(("jupyterhub.sqlite", db, "sqlite"))
    for name, kind in (
        (COOKIE_SECRET, "file"),
        (SSH_STORE, "sqlite"),
        (USAGE_BOOK, "sqlite"),
        (JOBS_STORE, "sqlite"),
    ):
        path = os.path.join(state, name)
        if os.path.exists(path):
            out.append((name, path, kind))
    return out


def _sqlite_copy(src, dst):
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def backup(site, site_file, to_dir, now=None):
    """Write ``gpulab-state-<name>-<YYYYmmdd-HHMMSS>.tar.gz`` (mode 0600) into ``to_dir``; returns its path."""
    now = time.time() if now is None else now
    files = state_files(site)
    if not any(kind == "sqlite" and name == "jupyterhub.sqlite" for name, _, kind in files):
        if _sqlite_path(db_url(site)) is None:
            raise StateBackupError(
                f"hub.db_url is {db_url(site).split(':', 1)[0]}: back the database up with its own tools (pg_dump), then run this again for the rest"
            )
        raise StateBackupError(
            f"no hub database at {_sqlite_path(db_url(site))}: has this hub ever started?"
        )
    os.makedirs(to_dir, mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    target = os.path.join(to_dir, f"gpulab-state-{site['hub']['name']}-{stamp}.tar.gz")
    if os.path.exists(target):
        raise StateBackupError(f"{target} exists")
    manifest = {
        "gpulab_backup": 1,
        "hub": site["hub"]["name"],
        "time": now,
        "files": [name for name, _, _ in files] + ["gpulab.yaml"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        fd = os.open(target + ".part", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                data = json.dumps(manifest, indent=2).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime, info.mode = len(data), int(now), 0o600
                tar.addfile(info, io.BytesIO(data))
                for name, path, kind in files:
                    if kind == "sqlite":
                        copy = os.path.join(tmp, name)
                        _sqlite_copy(path, copy)
                        path = copy
                    tar.add(path, arcname=name, recursive=False)
                tar.add(site_file, arcname="gpulab.yaml", recursive=False)
            os.rename(target + ".part", target)
        except BaseException:
            if os.path.exists(target + ".part"):
                os.unlink(target + ".part")
            raise
    return target


def read_manifest(archive):
    with tarfile.open(archive, "r:gz") as tar:
        try:
            member = tar.getmember(MANIFEST)
        except KeyError:
            raise StateBackupError(f"{archive} is not a gpulab backup (no {MANIFEST})")
        return json.load(tar.extractfile(member))


def restore(archive, site):
    """Unpack ``archive`` into the site's state directory, which must hold no hub state yet.
    Returns the paths written."""
    manifest = read_manifest(archive)
    state = state_dir(site)
    present = [path for _, path, _ in state_files(site)]
    if present:
        raise StateBackupError(
            f"{state} already has hub state ({', '.join(os.path.basename(p) for p in present)}): restore into a new state_dir"
        )
    db = _sqlite_path(db_url(site))
    if db is None:
        raise StateBackupError(
            "hub.db_url is not SQLite: restore the database with its own tools; this restores SQLite hubs"
        )
    os.makedirs(state, mode=0o700, exist_ok=True)
    where = {
        "jupyterhub.sqlite": db,
        COOKIE_SECRET: os.path.join(state, COOKIE_SECRET),
        SSH_STORE: os.path.join(state, SSH_STORE),
    }
    where[USAGE_BOOK] = os.path.join(state, USAGE_BOOK)
    where[JOBS_STORE] = os.path.join(state, JOBS_STORE)
    where["gpulab.yaml"] = os.path.join(state, "gpulab.yaml.restored")
    written = []
    with tarfile.open(archive, "r:gz") as tar:
        for name in manifest["files"]:
            if name not in where:
                raise StateBackupError(f"unexpected member {name!r} in {archive}")
            member = tar.getmember(name)
            if not member.isfile():
                raise StateBackupError(f"{name} in {archive} is not a plain file")
            dst = where[name]
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(tar.extractfile(member).read())
            written.append(dst)
    return written
