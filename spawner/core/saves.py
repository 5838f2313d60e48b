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
    f"{d}/{p}" for d in ("/usr/bin", "/usr/sbin", "/bin", "/sbin") for p in ROOT_PROGRAMS
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


def root_run_changes(changes):
    """The paths of ``docker diff`` (``[{"Path": ..., "Kind": 0|1|2}]``) that touch what runs as root."""
    out = []
    for change in changes or ():
        path = change.get("Path", "")
        for prefix in ROOT_PATHS:
            if path == prefix or path.startswith(prefix if prefix.endswith(".") else prefix + "/"):
                out.append(path)
                break
    return out


def check_changes(changes):
    """Refuse, before anything is written, a save that changed what runs as root at start."""
    touched = root_run_changes(changes)
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
    }


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


def commit(client, container, *, repository, tag, labels, max_new_bytes, base_history):
    """Commit a running container (docker-py objects, injected) without the hub's environment.
    Refuses, before anything is written, a container that changed what runs as root
    (:func:`check_changes`) and one whose image would be over ``max_new_bytes`` above its
    profile's image (``base_history``: that image's ``docker history``). Returns (image, bytes above
    the profile's image)."""
    check_changes(client.api.diff(container.id))
    (listed,) = client.api.containers(all=True, size=True, filters={"id": container.id})
    source = client.images.get(
        container.attrs["Image"]
    )  # the image it was started from (a profile's or a save)
    own = int(listed.get("SizeRw") or 0) + bytes_above(source.history(), base_history)
    check_size(own, max_new_bytes)
    conf = commit_config(
        source.attrs.get("Config") or {}, container.attrs["Config"].get("Env"), labels, own
    )
    return container.commit(repository=repository, tag=tag, conf=conf, pause=True), own
