"""What goes into a user's container: identity, labels, environment and mounts.

Pure functions of (site settings, user, validated request); the spawner passes the
results to Docker.  Unit-tested without Docker.
"""

import os
import re

from docker.types import DeviceRequest, Mount

LABEL_PREFIX = "gpulab."
UNIX_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def unix_name(username):
    """A valid login name inside the container for a hub username.

    Only used inside the user's own container, so two hub users mapping to the same
    login name is harmless; Docker object names use the injective escape instead.
    """
    name = re.sub(r"[^a-z0-9_-]", "_", username.lower())
    if not name[:1].isalpha():
        name = "u" + name
    name = name[:32]
    assert UNIX_NAME.fullmatch(name), name
    return name


def user_uid(uid_base, user_id):
    """A stable uid per hub user: the hub's user id is unique and never reused."""
    return uid_base + int(user_id)


def render(template, **ns):
    return template.format(**ns)


def labels(*, deployment, username, servername, profile, uid):
    return {
        f"{LABEL_PREFIX}deployment": deployment,
        f"{LABEL_PREFIX}user": username,
        f"{LABEL_PREFIX}server": servername or "",
        f"{LABEL_PREFIX}profile": profile,
        f"{LABEL_PREFIX}uid": str(uid),
    }


def environment(*, login, uid, gid, home, sudo, gpus_visible):
    """Environment for gpulab-start in the image. ``gpus_visible`` is ``void`` when no GPU."""
    return {
        "NB_USER": login,
        "NB_UID": str(uid),
        "NB_GID": str(gid),
        "NB_HOME": home,
        "HOME": home,
        "GPULAB_SUDO": "1" if sudo else "0",
        "NVIDIA_VISIBLE_DEVICES": gpus_visible,
    }


def is_host_path(source):
    return source.startswith("/")


def home_mount(source, target, *, volume_labels):
    if is_host_path(source):
        return Mount(target=target, source=source, type="bind")
    return Mount(target=target, source=source, type="volume", labels=volume_labels)


def dataset_mounts(datasets):
    mounts = []
    for ds in datasets:
        kind = "bind" if is_host_path(ds["source"]) else "volume"
        mounts.append(Mount(target=ds["target"], source=ds["source"], type=kind, read_only=ds["mode"] == "ro"))
    return mounts


def host_dirs_to_prepare(home_source, scratch_source):
    """Host paths that must exist (owned by the user) before the container starts."""
    return [p for p in (home_source, scratch_source) if p and is_host_path(p)]


def prepare_host_dir(path, uid, gid):
    """Create a per-user host directory owned by the user (idempotent)."""
    path = os.path.normpath(path)
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chown(path, uid, gid)


def gpu_device_requests(uuids):
    """A request for exactly these GPUs; no GPU means no device request at all."""
    if not uuids:
        return []
    return [DeviceRequest(driver="nvidia", device_ids=list(uuids), capabilities=[["gpu"]])]
