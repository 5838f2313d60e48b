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


def save_labels(deployment, username, profile, note, now):
    return {
        contract.L_DEPLOYMENT: deployment,
        contract.L_USER: username,
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


def commit(client, container, *, repository, tag, labels, max_new_bytes):
    """Commit a running container (docker-py objects, injected) without the hub's environment;
    refuses, before anything is written, when its writable layer is over ``max_new_bytes``.
    Returns (image, own bytes)."""
    (listed,) = client.api.containers(all=True, size=True, filters={"id": container.id})
    own = int(listed.get("SizeRw") or 0)  # the save's own size: known before committing
    check_size(own, max_new_bytes)
    source = client.images.get(
        container.attrs["Image"]
    )  # the image it was started from (a profile's or a save)
    conf = commit_config(
        source.attrs.get("Config") or {}, container.attrs["Config"].get("Env"), labels, own
    )
    return container.commit(repository=repository, tag=tag, conf=conf, pause=True), own
