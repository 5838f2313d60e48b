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


def check_note(note):
    note = (note or "").strip()
    if len(note) > MAX_NOTE or any(ord(c) < 32 for c in note):
        raise SaveError(f"note: at most {MAX_NOTE} printable characters")
    return note


def check_count(existing, max_count):
    if len(existing) >= max_count:
        raise SaveError(f"you have {len(existing)} saved environment(s), the limit is {max_count}: delete one first")


def commit_container(client, container, *, repository, tag, labels, max_new_bytes):
    """Commit a running container without the hub's environment; refuses (before anything is
    written) when its writable layer is over ``max_new_bytes``. Returns (image, own bytes)."""
    # the save's own size is the container's writable layer: known before committing
    (listed,) = client.api.containers(all=True, size=True, filters={"id": container.id})
    own = int(listed.get("SizeRw") or 0)
    if own > max_new_bytes:
        raise SaveError(f"this save would be {_gib(own)}, over what your limit leaves ({_gib(max(0, max_new_bytes))}); {TRIM}")
    source = client.images.get(container.attrs["Image"])  # the image it was started from (a profile's or a save)
    config = source.attrs.get("Config") or {}
    # Docker adds the container's variables that the given Env does not name: name each of the
    # hub's (its API token among them) with an empty value, so none of them is kept
    env = list(config.get("Env") or [])
    named = {e.split("=", 1)[0] for e in env}
    env += [f"{k}=" for k in dict.fromkeys(e.split("=", 1)[0] for e in container.attrs["Config"].get("Env") or []) if k not in named]
    labels = {**(config.get("Labels") or {}), **labels, L_BYTES: str(own)}
    conf = {"Env": env, "Cmd": config.get("Cmd"), "Entrypoint": config.get("Entrypoint"), "Labels": labels}
    return container.commit(repository=repository, tag=tag, conf=conf, pause=True), own


TRIM = "delete a save or clean up (apt-get clean, pip cache purge) and try again"


def save_labels(deployment, username, profile, note, now):
    return {"gpulab.deployment": deployment, "gpulab.user": username, L_SAVE: "1", L_PROFILE: profile, L_NOTE: note, L_CREATED: f"{now:.0f}"}


def create_save(client, *, deployment, username, escaped_user, container_name, profile, note="", max_count=3, max_bytes=20 * 1024**3, now=None):
    """Commit the user's running container (on this host); returns the new save's row."""
    note = check_note(note)
    existing = list_saves(client, deployment, username)
    check_count(existing, max_count)
    try:
        container = client.containers.get(container_name)
    except docker.errors.NotFound:
        raise SaveError("your server is not running: start it, then save (a stopped server's changes outside the home are gone)", 409)
    container.reload()
    if container.status != "running" or container.labels.get("gpulab.user") != username:
        raise SaveError("your server is not running: start it, then save", 409)
    used = sum(r["bytes"] for r in existing)
    now = time.time() if now is None else now
    try:
        image, _ = commit_container(
            client,
            container,
            repository=repository(deployment, escaped_user),
            tag=time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)),
            labels=save_labels(deployment, username, profile, note, now),
            max_new_bytes=max_bytes - used,
        )
    except SaveError as e:
        raise SaveError(f"{e} (your saves use {_gib(used)} of {_gib(max_bytes)})")
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


class SwarmSaves:
    """Saves on a Swarm: the server's container is committed on the node that runs it, by a
    one-off job (a ``replicated-job`` service of the hub image with that node's Docker socket,
    :mod:`gpulab.swarm.savejob`), and pushed to the lab's registry, so a save starts on any node.
    The hub keeps the list (``<state_dir>/gpulab-saves.sqlite``): the images live on the nodes and
    in the registry, not where the hub runs. Deleting a save forgets it; the registry keeps its
    layers until the registry's own garbage collection."""

    def __init__(self, store_path, *, deployment, registry="", hub_image="", client_factory=docker_client, timeout=600):
        import sqlite3

        self.deployment = deployment
        self.registry = registry
        self.hub_image = hub_image
        self.client_factory = client_factory
        self.timeout = timeout
        self.db = sqlite3.connect(store_path, isolation_level=None, check_same_thread=False)
        self.db.execute(
            "create table if not exists saves (deployment text, user text, tag text, image text, profile text, note text, "
            "created real, bytes integer, primary key (deployment, user, tag))"
        )

    def list_saves(self, username=None):
        sql = "select user, tag, image, profile, note, created, bytes from saves where deployment = ?"
        args = [self.deployment]
        if username is not None:
            sql += " and user = ?"
            args.append(username)
        rows = self.db.execute(sql + " order by created desc", args)
        return [{"user": u, "tag": t, "image": i, "profile": p, "note": n, "created": c, "bytes": b} for u, t, i, p, n, c, b in rows]

    def find_save(self, username, tag):
        return next((r for r in self.list_saves(username) if r["tag"] == tag), None)

    def create_save(self, *, username, escaped_user, service_name, profile, note="", max_count=3, max_bytes=20 * 1024**3, now=None):
        import json

        note = check_note(note)
        existing = self.list_saves(username)
        check_count(existing, max_count)
        used = sum(r["bytes"] for r in existing)
        client = self.client_factory()
        tasks = [t for t in client.api.tasks(filters={"service": service_name}) if t["Status"]["State"] == "running"]
        if not tasks:
            raise SaveError("your server is not running: start it, then save", 409)
        task = tasks[0]
        now = time.time() if now is None else now
        tag = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
        repo = f"{self.registry}/gpulab/saves/{self.deployment}-{escaped_user}".lower()
        job = {
            "container": task["Status"]["ContainerStatus"]["ContainerID"],
            "repository": repo,
            "tag": tag,
            "labels": save_labels(self.deployment, username, profile, note, now),
            "max_new_bytes": max_bytes - used,
        }
        service = client.services.create(
            self.hub_image,
            command=["python3", "-m", "gpulab.swarm.savejob"],
            env={"GPULAB_SAVE_JOB": json.dumps(job)},
            mounts=[docker.types.Mount("/var/run/docker.sock", "/var/run/docker.sock", type="bind")],
            constraints=[f"node.id=={task['NodeID']}"],
            mode=docker.types.ServiceMode("replicated-job"),
            restart_policy=docker.types.RestartPolicy(condition="none"),
            labels={"gpulab.deployment": self.deployment, "gpulab.user": username, "gpulab.job": "save"},
            name=f"{self.deployment}-save-{escaped_user}-{tag}"[:63].rstrip("-"),
        )
        try:
            result = self._wait(client, service)
        finally:
            service.remove()
        if result.get("gpulab_save") != "ok":
            raise SaveError(
                f"{result.get('message', 'the save failed')} (your saves use {_gib(used)} of {_gib(max_bytes)})",
                400 if result.get("gpulab_save") == "refused" else 500,
            )
        self.db.execute(
            "insert into saves values (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.deployment, username, tag, result["image"], profile, note, now, int(result["bytes"])),
        )
        return self.find_save(username, tag)

    def _wait(self, client, service):
        import json

        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            tasks = client.api.tasks(filters={"service": service.id})
            if tasks and tasks[0]["Status"]["State"] in ("complete", "failed", "rejected", "shutdown", "orphaned"):
                break
            time.sleep(1)
        else:
            return {"gpulab_save": "failed", "message": f"the save did not finish in {self.timeout} s"}
        for raw in client.api.service_logs(service.id, stdout=True, stderr=True):
            for line in raw.decode(errors="replace").splitlines():
                start = line.find('{"gpulab_save"')
                if start >= 0:
                    return json.loads(line[start:])
        status = tasks[0]["Status"]
        return {"gpulab_save": "failed", "message": f"the save job ended {status['State']}: {status.get('Err') or status.get('Message', '')}"}

    def delete_save(self, username, tag):
        row = self.find_save(username, tag)
        if row is None:
            raise SaveError(f"no saved environment {tag!r}", 404)
        self.db.execute("delete from saves where deployment = ? and user = ? and tag = ?", (self.deployment, username, tag))
        return row


class LocalSaves:
    """Saves on one host (images labelled on this Docker engine), with the same methods as SwarmSaves."""

    def __init__(self, deployment, client_factory=docker_client):
        self.deployment = deployment
        self.client_factory = client_factory

    def list_saves(self, username=None):
        return list_saves(self.client_factory(), self.deployment, username)

    def find_save(self, username, tag):
        return find_save(self.client_factory(), self.deployment, username, tag)

    def create_save(self, *, username, escaped_user, service_name, **kw):
        return create_save(
            self.client_factory(), deployment=self.deployment, username=username, escaped_user=escaped_user, container_name=service_name, **kw
        )

    def delete_save(self, username, tag):
        return delete_save(self.client_factory(), self.deployment, username, tag)


STORE_FILE = "gpulab-saves.sqlite"
_backends = {}


def backend(settings):
    """The deployment's saves: on this host, or on the Swarm (settings from the hub's config)."""
    key = settings["deployment"]
    if key not in _backends:
        if settings["swarm"]:
            _backends[key] = SwarmSaves(settings["store"], deployment=key, registry=settings["registry"], hub_image=settings["hub_image"])
        else:
            _backends[key] = LocalSaves(key)
    return _backends[key]
