"""A user's host directories (a host-path home or scratch, the SSH host keys on a Swarm's shared
storage), made before their container starts, owned by them, never taken over."""

import os


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
        raise ForeignDirectory(
            f"{path} holds files of uid {owner}, not of this user (uid {uid}): an admin must archive or re-own it"
        )
