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

from .gpus.usage import FILE as USAGE_FILE
from .hubconfig import db_url
from .ssh.hubsetup import STORE_FILE

COOKIE_SECRET = "jupyterhub_cookie_secret"
MANIFEST = "gpulab-backup.json"


class BackupError(Exception):
    pass


def _sqlite_path(url):
    return url[len("sqlite:///") :] if url.startswith("sqlite:///") else None


def state_files(site):
    """[(name in the archive, path on disk, kind)] of the hub state that exists now."""
    state = os.path.abspath(site["hub"]["state_dir"])
    out = []
    db = _sqlite_path(db_url(site))
    if db and os.path.exists(db):
        out.append(("jupyterhub.sqlite", db, "sqlite"))
    for name, kind in ((COOKIE_SECRET, "file"), (STORE_FILE, "sqlite"), (USAGE_FILE, "sqlite")):
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
            raise BackupError(
                f"hub.db_url is {db_url(site).split(':', 1)[0]}: back the database up with its own tools (pg_dump), then run this again for the rest"
            )
        raise BackupError(f"no hub database at {_sqlite_path(db_url(site))}: has this hub ever started?")
    os.makedirs(to_dir, mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    target = os.path.join(to_dir, f"gpulab-state-{site['hub']['name']}-{stamp}.tar.gz")
    if os.path.exists(target):
        raise BackupError(f"{target} exists")
    manifest = {"gpulab_backup": 1, "hub": site["hub"]["name"], "time": now, "files": [name for name, _, _ in files] + ["gpulab.yaml"]}
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
            raise BackupError(f"{archive} is not a gpulab backup (no {MANIFEST})")
        return json.load(tar.extractfile(member))


def restore(archive, site):
    """Unpack ``archive`` into the site's state directory, which must hold no hub state yet.
    Returns the paths written."""
    manifest = read_manifest(archive)
    state = os.path.abspath(site["hub"]["state_dir"])
    present = [path for _, path, _ in state_files(site)]
    if present:
        raise BackupError(f"{state} already has hub state ({', '.join(os.path.basename(p) for p in present)}): restore into a new state_dir")
    db = _sqlite_path(db_url(site))
    if db is None:
        raise BackupError("hub.db_url is not SQLite: restore the database with its own tools; this restores SQLite hubs")
    os.makedirs(state, mode=0o700, exist_ok=True)
    where = {"jupyterhub.sqlite": db, COOKIE_SECRET: os.path.join(state, COOKIE_SECRET), STORE_FILE: os.path.join(state, STORE_FILE)}
    where[USAGE_FILE] = os.path.join(state, USAGE_FILE)
    where["gpulab.yaml"] = os.path.join(state, "gpulab.yaml.restored")
    written = []
    with tarfile.open(archive, "r:gz") as tar:
        for name in manifest["files"]:
            if name not in where:
                raise BackupError(f"unexpected member {name!r} in {archive}")
            member = tar.getmember(name)
            if not member.isfile():
                raise BackupError(f"{name} in {archive} is not a plain file")
            dst = where[name]
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(tar.extractfile(member).read())
            written.append(dst)
    return written
