"""Who a user is inside their container, and their host directories.

Pure helpers (no Docker): the login name and uid the image's ``gpulab-start`` creates
(see :mod:`.contract`), and preparing a per-user host directory before the start.
"""

import os
import re

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


class ForeignDirectory(Exception):
    """A per-user host directory exists but belongs to someone else; it is never taken over."""


def prepare_host_dir(path, uid, gid):
    """Create a per-user host directory owned by the user (idempotent).

    An existing directory owned by another uid (say, a deleted account's under a reused name) is
    refused: raising ForeignDirectory, not adopting it.
    """
    path = os.path.normpath(path)
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chown(path, uid, gid)
        return
    owner = os.stat(path).st_uid
    if owner != uid and os.listdir(path):
        raise ForeignDirectory(f"{path} holds files of uid {owner}, not of this user (uid {uid}): an admin must archive or re-own it")
