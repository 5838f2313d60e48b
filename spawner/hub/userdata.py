"""What a user owns outside the hub's database, and what happens to it when the user is deleted.

A deleted account's name can be taken again by someone else; nothing of the old account may
reach them. When the hub deletes a user (admin page or ``DELETE /hub/api/users/<name>``), gpulab:

* archives their home (and scratch) into the archive directory (``storage.archive``, default
  ``<state_dir>/archive``): a named volume as ``<user>-<time>-<volume>.tar.gz``, by a job through
  the deployment's ``run_job`` (no network, read-only, held like every container gpulab runs); a
  host-path home moved there as a directory;
* moves their home backups there too;
* removes their volumes (home, SSH host keys; a Swarm's host-key folder on the shared storage),
  any stopped containers of theirs, and their saved environments (images; on a Swarm the
  registry's tags and every node's copy);
* forgets their SSH keys and container password.

Saves and backups are keyed by the hub's user id, which is never reused: the next account with
that name starts with an empty home, no keys, no saves and no backups.
"""

import asyncio
import os
import re
import shutil
import time

from ..core import contract
from ..core import spec as specs
from ..core.job import build_job
from .homebackups import user_dir as backups_dir

ARCHIVE_TIMEOUT = 6 * 3600
ARCHIVE_CAPABILITIES = ("DAC_READ_SEARCH",)  # tar as root reads every file of the home


def _safe(text):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80]


async def _archive_volume(lab, volume, username, stamp):
    os.makedirs(lab.archive_dir, mode=0o700, exist_ok=True)
    name = f"{_safe(username)}-{stamp}-{_safe(volume.name)}.tar.gz"
    job = build_job(
        deployment=lab.name,
        name=f"{lab.name}-archive-{_safe(volume.name)}-{stamp}"[:63].rstrip("-"),
        kind="archive",
        username=username,
        image=lab.job_image(),
        command=["tar", "-C", "/data", "-czf", f"/archive/{name}", "."],
        mounts=[
            specs.MountSpec(target="/data", source=volume.name, kind="volume", read_only=True),
            specs.MountSpec(target="/archive", source=lab.archive_dir, kind="bind"),
        ],
        capabilities=ARCHIVE_CAPABILITIES,
        hardening=lab.hardening,
        timeout=ARCHIVE_TIMEOUT,
    )
    result = await lab.run_job(job)
    if not result.ok:
        raise RuntimeError(
            f"archiving volume {volume.name} failed ({'timed out' if result.timed_out else result.status}): {result.output[-300:]}"
        )
    return os.path.join(lab.archive_dir, name)


def _move_host_dir(path, dest_dir, stamp, username, what):
    if not os.path.isdir(path):
        return None
    os.makedirs(dest_dir, mode=0o700, exist_ok=True)
    target = os.path.join(dest_dir, f"{_safe(username)}-{stamp}-{what}")
    shutil.move(path, target)
    return target


async def remove_user_data(lab, username, *, user_id, escaped_name, uid, store=None, log=None):
    """Archive and remove everything ``username`` owned; returns a list of what was done."""
    client = lab.docker()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    done = []
    filters = {"label": [contract.deployment_filter(lab.name), f"{contract.L_USER}={username}"]}
    for c in await asyncio.to_thread(client.containers.list, all=True, filters=filters):
        await asyncio.to_thread(c.remove, force=True, v=False)
        done.append(f"removed container {c.name}")
    for volume in await asyncio.to_thread(client.volumes.list, filters=filters):
        labels = volume.attrs.get("Labels") or {}
        if contract.L_SSH_HOST_KEYS not in labels:
            done.append(
                f"archived volume {volume.name} to {await _archive_volume(lab, volume, username, stamp)}"
            )
        await asyncio.to_thread(volume.remove, force=True)
        done.append(f"removed volume {volume.name}")
    for row in await lab.saves.remove_user(user_id):
        done.append(f"removed saved environment {row['image']}")
    moved = await asyncio.to_thread(
        _move_host_dir,
        backups_dir(lab, user_id, escaped_name),
        lab.archive_dir,
        stamp,
        username,
        "home-backups",
    )
    lab.home_backups.jobs.pop(user_id, None)
    if moved:
        done.append(f"moved home backups to {moved}")
    identity = specs.Identity(
        username=username,
        user_id=0,
        server_name="",
        login="",
        uid=uid,
        gid=lab.user_gid,
        escaped_username=escaped_name,
    )
    for what, template in (("home", lab.home_source), ("scratch", lab.scratch_source)):
        if template and template.startswith("/"):
            path = specs.render(template, identity, lab.name)
            moved = await asyncio.to_thread(
                _move_host_dir, path, lab.archive_dir, stamp, username, what
            )
            if moved:
                done.append(f"moved {path} to {moved}")
    if lab.ssh_enabled and lab.ssh_host_key_volume.startswith("/"):
        keys = specs.render(lab.ssh_host_key_volume, identity, lab.name)
        if os.path.isdir(keys):
            await asyncio.to_thread(shutil.rmtree, keys)
            done.append(f"removed SSH host keys {keys}")
    if store is not None:
        for key in store.keys(username):
            store.remove_key(username, key.fingerprint)
        store.clear_password(username)
        done.append("forgot SSH keys and container password")
    if log:
        for line in done:
            log.info("gpulab: deleted user %s: %s", username, line)
    return done
