"""Saved environments, the rules both backends follow: names, labels, limits and what a save keeps.

A save is a user's running server committed to an image (``docker commit``, the Docker way of a
snapshot): ``<repository>/<deployment>-<user>:<UTC time>``, labelled with its owner, the profile it
came from, a note and its own size. It keeps what the user changed outside their home (packages
installed with sudo, files in /opt); the home is a volume or a host directory and is never in it.
The hub's environment (API token, user ids) is not kept: the image gets the environment, command
and entrypoint of the image the container was started from, and every variable the hub added is
named with an empty value (:func:`commit_config`). Pure, but for :func:`commit`, which works
through the Docker client it is given (the one host's backend, and the save job on a Swarm node).
"""

import io
import re
import tarfile
import time

from . import contract

MAX_NOTE = 200
TRIM = "delete a save or clean up (apt-get clean, pip cache purge) and try again"

#: What runs as root when a container starts (and as the user's Jupyter server), and what decides
#: how it runs: a save that changed any of it is refused, so a save made with sudo gives no root
#: once sudo is off (no_new_privileges then stops setuid programs: only what root runs counts).
#: gpulab-start and the hooks are also mounted read-only from the hub over the image's copies.
#: Not covered: shared libraries in general (an upgraded libc is not refused); see docs/admin.md.
ROOT_RUN = (
    contract.HOOK_DIR,
    contract.START_SCRIPT,
    contract.VENV,
    "/etc/gpulab",
    "/etc/pam.d",
    "/etc/security",
    "/etc/ssh",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ld.so.preload",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/nsswitch.conf",
    "/usr/lib/openssh",
    "/usr/lib/python3.",  # the standard library of the system Python the hooks run as root (-IS)
    "/usr/lib/x86_64-linux-gnu/security",  # PAM modules
    "/usr/lib/x86_64-linux-gnu/libnss_",
    "/usr/lib/x86_64-linux-gnu/libpam",
)
#: the programs gpulab-start and the start hooks run as root (and sshd's), in /usr/bin, /usr/sbin and
#: the merged /bin, /sbin
ROOT_PROGRAMS = (
    "tini", "tini-static", "bash", "sh", "dash", "env", "setpriv", "setsid", "getent", "id", "cat", "cp",
    "mv", "rm", "ls", "mkdir", "mktemp", "chmod", "chown", "chgrp", "install", "stat", "cut", "head", "sed",
    "sort", "dirname", "python3", "useradd", "usermod", "groupadd", "groupmod", "sshd", "ssh-keygen",
)  # fmt: skip
ROOT_PATHS = ROOT_RUN + tuple(
    f"{d}/{p}"
    for d in ("/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin", "/usr/local/sbin")
    for p in ROOT_PROGRAMS
)
#: and what the system Python that the hooks run as root loads first (``-IS``): its versioned
#: binary behind the ``python3`` link, and its zipped standard library
ROOT_PATTERNS = (
    re.compile(r"^/(usr/)?(local/)?s?bin/python3\.\d+$"),
    re.compile(r"^/usr/(local/)?lib/python3\d+\.zip$"),
)


class SaveError(Exception):
    """Refused (over a limit, nothing to save, not yours): the message says why; ``status`` is the HTTP status."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def repository(base, deployment, escaped_user):
    """``base`` is :data:`~gpulab.core.contract.SAVES_REPOSITORY` on one host, ``<registry>/gpulab/saves`` on a Swarm."""
    return f"{base}/{deployment}-{escaped_user}".lower()


def tag_for(now):
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))


def gib(n):
    return f"{n / 1024**3:.2f} GiB"


def check_note(note):
    note = (note or "").strip()
    if len(note) > MAX_NOTE or any(ord(c) < 32 for c in note):
        raise SaveError(f"note: at most {MAX_NOTE} printable characters")
    return note


def check_count(existing, max_count):
    if len(existing) >= max_count:
        raise SaveError(
            f"you have {len(existing)} saved environment(s), the limit is {max_count}: delete one first"
        )


def check_size(own, max_new_bytes):
    """Refuse a save whose own layer is over what the user's limit leaves, before anything is written."""
    if own > max_new_bytes:
        raise SaveError(
            f"this save would be {gib(own)}, over what your limit leaves ({gib(max(0, max_new_bytes))}); {TRIM}"
        )


def root_run_changes(changes, mounts=(), safe_dir=lambda path: False):
    """The paths of ``docker diff`` (``[{"Path": ..., "Kind": 0|1|2}]``) that touch what runs as
    root. Not counted: the container's mounts (not in a save: gpulab's read-only boot files, its
    tmpfs), and a directory changed only because something below it changed, when
    ``safe_dir(path)`` says it is still root's and writable by no one else."""
    out = []
    for change in changes or ():
        path = change.get("Path", "")
        if any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts):
            continue
        for prefix in ROOT_PATHS:
            if path == prefix or path.startswith(prefix if prefix.endswith(".") else prefix + "/"):
                if not (change.get("Kind") == 0 and safe_dir(path)):
                    out.append(path)
                break
        else:
            if any(p.match(path) for p in ROOT_PATTERNS):
                out.append(path)
    return out


def check_changes(changes, mounts=(), safe_dir=lambda path: False):
    """Refuse, before anything is written, a save that changed what runs as root at start."""
    touched = root_run_changes(changes, mounts, safe_dir)
    if touched:
        shown = ", ".join(touched[:3]) + (
            f" and {len(touched) - 3} more" if len(touched) > 3 else ""
        )
        raise SaveError(
            f"this server changed what runs as root when a container starts ({shown}); such a save could "
            "give root to whoever starts it later: undo the change (or rebuild from the profile) and save again"
        )


def bytes_above(history, base_history):
    """Bytes of an image's layers above its base image (``docker history`` lists, newest first):
    everything a save adds to its profile's image, its ancestors' layers included."""
    ours, base = list(reversed(history or [])), list(reversed(base_history or []))

    def key(h):
        return (h.get("Created"), h.get("CreatedBy"), h.get("Size"))

    common = 0
    while common < min(len(ours), len(base)) and key(ours[common]) == key(base[common]):
        common += 1
    return sum(int(h.get("Size") or 0) for h in ours[common:])


def save_labels(deployment, username, user_id, profile, note, now):
    return {
        contract.L_DEPLOYMENT: deployment,
        contract.L_USER: username,
        contract.L_USER_ID: str(user_id),
        contract.L_SAVE: "1",
        contract.L_SAVE_PROFILE: profile,
        contract.L_SAVE_NOTE: note,
        contract.L_SAVE_CREATED: f"{now:.0f}",
    }


def row_from_labels(ref, labels):
    """A save as the hub shows it, from its image reference and labels."""
    labels = labels or {}
    return {
        "tag": ref.rsplit(":", 1)[-1],
        "image": ref,
        "user": labels.get(contract.L_USER, ""),
        "user_id": int(labels.get(contract.L_USER_ID) or -1),
        "profile": labels.get(contract.L_SAVE_PROFILE, ""),
        "note": labels.get(contract.L_SAVE_NOTE, ""),
        "created": float(labels.get(contract.L_SAVE_CREATED) or 0),
        "bytes": int(labels.get(contract.L_SAVE_BYTES) or 0),
        "sudo": labels.get(contract.L_SAVE_SUDO) != "0",  # unknown: as if made with sudo
    }


def made_with_sudo(container_env, source_labels):
    """Whether a save of this container may hold what its user changed as root: the container had
    sudo, or it was started from a save that did (sudo made it; it cannot be known what changed)."""
    env = dict(e.split("=", 1) for e in container_env or () if "=" in e)
    inherited = bool((source_labels or {}).get(contract.L_SAVE)) and (
        (source_labels or {}).get(contract.L_SAVE_SUDO) != "0"
    )
    return env.get(contract.SUDO) == "1" or inherited


def commit_config(source_config, container_env, labels, own):
    """The ``conf`` of ``docker commit``: the source image's environment, command and entrypoint,
    every other variable of the container (the hub's, its API token among them) named empty (Docker
    would otherwise keep the container's values), the source's labels plus ``labels`` and the size."""
    env = list(source_config.get("Env") or [])
    named = {e.split("=", 1)[0] for e in env}
    env += [
        f"{k}="
        for k in dict.fromkeys(e.split("=", 1)[0] for e in container_env or [])
        if k not in named
    ]
    merged = {**(source_config.get("Labels") or {}), **labels, contract.L_SAVE_BYTES: str(own)}
    return {
        "Env": env,
        "Cmd": source_config.get("Cmd"),
        "Entrypoint": source_config.get("Entrypoint"),
        "Labels": merged,
    }


class _Chunks(io.RawIOBase):
    """A file over a stream of byte chunks (what ``get_archive`` returns), read as far as needed."""

    def __init__(self, chunks):
        self.chunks, self.rest = iter(chunks), b""

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self.rest:
            self.rest = next(self.chunks, None)
            if self.rest is None:
                return 0
        n = min(len(buffer), len(self.rest))
        buffer[:n], self.rest = self.rest[:n], self.rest[n:]
        return n


def root_owned_dir(client, container, path):
    """Whether ``path`` in the container is a directory of root's that no one else may write to
    (read from the first entry of Docker's archive of it, so nothing runs in the container)."""
    try:
        chunks, _ = client.api.get_archive(container.id, path, chunk_size=4096)
    except Exception:  # gone, unreadable: not known to be safe
        return False
    try:
        with tarfile.open(fileobj=io.BufferedReader(_Chunks(chunks)), mode="r|") as tar:
            first = tar.next()
    except (tarfile.TarError, OSError):
        return False
    finally:
        getattr(chunks, "close", lambda: None)()  # the rest of the archive is not read
    return bool(first and first.isdir() and first.uid == 0 and not first.mode & 0o022)


def commit(client, container, *, repository, tag, labels, max_new_bytes, base_history):
    """Commit a running container (docker-py objects, injected) without the hub's environment.
    The container is paused first, so nothing changes between the checks and the commit: refused,
    before anything is written, a container that changed what runs as root (:func:`check_changes`)
    and one whose image would be over ``max_new_bytes`` above its profile's image
    (``base_history``: that image's ``docker history``). Returns (image, bytes above the profile's
    image, made with sudo)."""
    client.api.pause(container.id)
    try:
        check_changes(
            client.api.diff(container.id),
            [m.get("Destination", "") for m in container.attrs.get("Mounts") or ()],
            lambda path: root_owned_dir(client, container, path),
        )
        (listed,) = client.api.containers(all=True, size=True, filters={"id": container.id})
        # the image it was started from (a profile's or a save)
        source = client.images.get(container.attrs["Image"])
        own = int(listed.get("SizeRw") or 0) + bytes_above(source.history(), base_history)
        check_size(own, max_new_bytes)
        env = container.attrs["Config"].get("Env")
        config = source.attrs.get("Config") or {}
        sudo = made_with_sudo(env, config.get("Labels"))
        labels = {**labels, contract.L_SAVE_SUDO: "1" if sudo else "0"}
        conf = commit_config(config, env, labels, own)
        try:
            layer = container.commit(conf=conf, pause=False)
        except Exception as e:
            raise disk_full_or(e)
    finally:
        client.api.unpause(container.id)
    try:
        return recommit_clean(client, layer, repository, tag, conf), own, sudo
    except Exception as e:
        try:  # nothing half-made: the first commit goes with the failed second
            client.images.remove(layer.id, force=True)
        except Exception:
            pass
        raise disk_full_or(e)


DISK_FULL = (
    "the disk that holds Docker's data on this GPU server is full (no space left on device): "
    "nothing was saved; the lab's admin must make room there"
)


def disk_full_or(error):
    """A :class:`SaveError` (507) for an engine that ran out of disk while committing, else ``error``."""
    if "no space left on device" in str(error).lower():
        return SaveError(DISK_FULL, 507)
    return error


def recommit_clean(client, layer, repository, tag, conf):
    """The save as its own image, made from a container that never held the hub's environment.
    Docker records the committed container's whole configuration in the image it makes
    (``container_config``, the server's token among it, in every copy pushed or saved); committing
    a fresh, never started container of that image keeps its files and records only this clean
    one. The first image stays, untagged, as the save's parent on this engine alone (it goes with
    the save)."""
    clean = client.api.create_container(image=layer.id, labels={contract.L_SAVE: "committing"})
    try:
        return client.images.get(
            client.api.commit(clean["Id"], repository=repository, tag=tag, conf=conf)["Id"]
        )
    finally:
        client.api.remove_container(clean["Id"], force=True)
