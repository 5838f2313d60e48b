"""What a user owns outside the hub's database, and what happens to it when the user is deleted.

A deleted account's name can be taken again by someone else; nothing of the old account may
reach them. When the hub deletes a user (admin page or ``DELETE /hub/api/users/<name>``), gpulab:

* archives their home (and scratch) into the archive directory (``storage.archive``, default
  ``<state_dir>/archive``): a named volume as ``<user>-<time>-<volume>.tar.gz``, a host-path home
  moved there as a directory;
* removes their volumes (home, SSH host keys) and any stopped containers of theirs;
* forgets their SSH keys and container password.

The next account with that name starts with an empty home and no keys.
"""

import os
import re
import shutil
import time

import docker

from . import contract

HELPER_IMAGE = "localhost/gpulab/base:latest"  # any image with tar; the base image is always built


def archive_dir(site):
    return site["storage"]["archive"] or os.path.join(os.path.abspath(site["hub"]["state_dir"]), "archive")


def _safe(text):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80]


def _archive_volume(client, volume, dest_dir, stamp, username):
    os.makedirs(dest_dir, mode=0o700, exist_ok=True)
    name = f"{_safe(username)}-{stamp}-{_safe(volume.name)}.tar.gz"
    client.containers.run(
        HELPER_IMAGE,
        ["tar", "-C", "/data", "-czf", f"/archive/{name}", "."],
        entrypoint=[],
        remove=True,
        network_mode="none",
        user="0",
        volumes={volume.name: {"bind": "/data", "mode": "ro"}, dest_dir: {"bind": "/archive", "mode": "rw"}},
        labels={contract.L_DEPLOYMENT: volume.attrs["Labels"].get(contract.L_DEPLOYMENT, "")},
    )
    return os.path.join(dest_dir, name)


def _move_host_dir(path, dest_dir, stamp, username, what):
    if not os.path.isdir(path):
        return None
    os.makedirs(dest_dir, mode=0o700, exist_ok=True)
    target = os.path.join(dest_dir, f"{_safe(username)}-{stamp}-{what}")
    shutil.move(path, target)
    return target


def render_host_template(template, username_escaped, prefix, uid):
    return template.format(username=username_escaped, prefix=prefix, uid=uid, servername="")


def remove_user_data(site, username, *, escaped_name, uid, client=None, store=None, log=None):
    """Archive and remove everything ``username`` owned; returns a list of what was done."""
    client = client or docker.from_env(version="auto")
    deployment = site["hub"]["name"]
    dest = archive_dir(site)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    done = []
    filters = {"label": [contract.deployment_filter(deployment), f"{contract.L_USER}={username}"]}
    for c in client.containers.list(all=True, filters=filters):
        c.remove(force=True, v=False)
        done.append(f"removed container {c.name}")
    for volume in client.volumes.list(filters=filters):
        labels = volume.attrs.get("Labels") or {}
        if contract.L_SSH_HOST_KEYS not in labels:
            done.append(f"archived volume {volume.name} to {_archive_volume(client, volume, dest, stamp, username)}")
        volume.remove(force=True)
        done.append(f"removed volume {volume.name}")
    storage = site["storage"]
    for what, template in (("home", storage["home"]), ("scratch", storage["scratch"])):
        if template and template.startswith("/"):
            path = render_host_template(template, escaped_name, deployment, uid)
            moved = _move_host_dir(path, dest, stamp, username, what)
            if moved:
                done.append(f"moved {path} to {moved}")
    if store is not None:
        for key in store.keys(username):
            store.remove_key(username, key.fingerprint)
        store.clear_password(username)
        done.append("forgot SSH keys and container password")
    if log:
        for line in done:
            log.info("gpulab: deleted user %s: %s", username, line)
    return done
