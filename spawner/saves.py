"""Saved environments: a user's running container, committed to a per-user image they can start
again later (``docker commit``, the Docker way of a snapshot).

A save is an image ``localhost/gpulab/saves/<deployment>-<user>:<UTC time>`` labelled with its
owner, the profile it came from, a note and its own size. It keeps what the user changed outside
their home (packages installed with sudo, files in /opt); the home is a volume and is never in it.
The hub's environment (API token, user ids) is not kept: the image gets the environment, command
and entrypoint of the image the container was started from (the hub's variables are emptied).

Limits per user (count, total size of the saves' own layers) come from the site file's
``saves`` section; a save that would go over is removed again and refused with the numbers.
Docker calls are synchronous: callers run them in a thread.
"""

import time

import docker

REPOSITORY = "localhost/gpulab/saves"
L_SAVE = "gpulab.save"
L_PROFILE = "gpulab.save.profile"
L_NOTE = "gpulab.save.note"
L_CREATED = "gpulab.save.created"
L_BYTES = "gpulab.save.bytes"
MAX_NOTE = 200


def docker_client():
    """The hub's Docker engine (DOCKER_HOST and friends, as the spawner's)."""
    return docker.from_env(version="auto", timeout=120)


class SaveError(Exception):
    """Refused (over a limit, nothing to save, not yours): the message says why."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def repository(deployment, escaped_user):
    return f"{REPOSITORY}/{deployment}-{escaped_user}".lower()


def _gib(n):
    return f"{n / 1024**3:.2f} GiB"


def _row(image):
    labels = image.labels or {}
    tags = [t for t in image.tags if t.startswith(REPOSITORY + "/")]
    ref = tags[0] if tags else image.id
    return {
        "tag": ref.rsplit(":", 1)[-1],
        "image": ref,
        "user": labels.get("gpulab.user", ""),
        "profile": labels.get(L_PROFILE, ""),
        "note": labels.get(L_NOTE, ""),
        "created": float(labels.get(L_CREATED) or 0),
        "bytes": int(labels.get(L_BYTES) or 0),
    }


def list_saves(client, deployment, username=None):
    """Saves of the deployment (of one user), newest first."""
    filters = [f"gpulab.deployment={deployment}", f"{L_SAVE}=1"]
    if username is not None:
        filters.append(f"gpulab.user={username}")
    rows = [_row(i) for i in client.images.list(filters={"label": filters})]
    return sorted(rows, key=lambda r: r["created"], reverse=True)


def find_save(client, deployment, username, tag):
    for row in list_saves(client, deployment, username):
        if row["tag"] == tag:
            return row
    return None


def create_save(client, *, deployment, username, escaped_user, container_name, profile, note="", max_count=3, max_bytes=20 * 1024**3, now=None):
    """Commit the user's running container; returns the new save's row."""
    note = (note or "").strip()
    if len(note) > MAX_NOTE or any(ord(c) < 32 for c in note):
        raise SaveError(f"note: at most {MAX_NOTE} printable characters")
    existing = list_saves(client, deployment, username)
    if len(existing) >= max_count:
        raise SaveError(f"you have {len(existing)} saved environment(s), the limit is {max_count}: delete one first")
    try:
        container = client.containers.get(container_name)
    except docker.errors.NotFound:
        raise SaveError("your server is not running: start it, then save (a stopped server's changes outside the home are gone)", 409)
    container.reload()
    if container.status != "running" or container.labels.get("gpulab.user") != username:
        raise SaveError("your server is not running: start it, then save", 409)
    # the save's own size is the container's writable layer: known before committing, so a save
    # over the limit is refused before anything is made
    (listed,) = client.api.containers(all=True, size=True, filters={"id": container.id})
    own = int(listed.get("SizeRw") or 0)
    total = own + sum(r["bytes"] for r in existing)
    if total > max_bytes:
        raise SaveError(
            f"this save would be {_gib(own)}: your saves would take {_gib(total)}, over the limit of {_gib(max_bytes)}; "
            "delete a save or clean up (apt-get clean, pip cache purge) and try again"
        )
    source = client.images.get(container.attrs["Image"])  # the image it was started from (a profile's or a save)
    config = source.attrs.get("Config") or {}
    now = time.time() if now is None else now
    tag = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    labels = {
        **(config.get("Labels") or {}),
        "gpulab.deployment": deployment,
        "gpulab.user": username,
        L_SAVE: "1",
        L_PROFILE: profile,
        L_NOTE: note,
        L_CREATED: f"{now:.0f}",
        L_BYTES: str(own),
    }
    # Docker adds the container's variables that the given Env does not name: name each of the
    # hub's (its API token among them) with an empty value, so none of them is kept
    env = list(config.get("Env") or [])
    named = {e.split("=", 1)[0] for e in env}
    env += [f"{k}=" for k in dict.fromkeys(e.split("=", 1)[0] for e in container.attrs["Config"].get("Env") or []) if k not in named]
    conf = {"Env": env, "Cmd": config.get("Cmd"), "Entrypoint": config.get("Entrypoint"), "Labels": labels}
    image = container.commit(repository=repository(deployment, escaped_user), tag=tag, conf=conf, pause=True)
    return _row(client.images.get(image.id))


def delete_save(client, deployment, username, tag):
    row = find_save(client, deployment, username, tag)
    if row is None:
        raise SaveError(f"no saved environment {tag!r}", 404)
    users = [c.name for c in client.containers.list(all=True, filters={"ancestor": row["image"]})]
    if users:
        raise SaveError(f"{tag} is in use by a server ({', '.join(users)}): stop it first", 409)
    client.images.remove(row["image"])
    return row
