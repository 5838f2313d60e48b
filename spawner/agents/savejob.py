"""Saved environments, on a GPU node: a job of the hub image with that node's Docker socket,
started by the Swarm backend's saves (:class:`gpulab.backends.swarm.saves.SwarmSaves`, through
``run_job``). It prints one JSON line for the hub.

* ``save``: commit the user's container there without the hub's environment (refused, before
  anything is written, when it changed what runs as root or is over the user's limit; see
  :func:`gpulab.core.saves.commit`) and push it to the lab's registry;
* ``delete``: remove a save's tag from the registry and its image from this node (it runs on every
  node).

The registry's credentials come as a Swarm secret (``/run/secrets/<name>``), never in the
environment; the registry's CA is the node's own (``/etc/docker/certs.d``).

    GPULAB_SAVE_JOB='{"action": "save", "container": ..., "repository": ..., "tag": ..., ...}'
"""

import base64
import json
import os
import ssl
import sys
import urllib.error
import urllib.request

import docker

from ..core import contract
from ..core import saves as rules
from ..core.saves import SaveError

MANIFESTS = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


def credentials(order):
    """{"username": ..., "password": ...} from the job's Swarm secret, or None."""
    if not order.get("secret"):
        return None
    with open(f"/run/secrets/{order['secret']}") as f:
        data = json.load(f)
    return {"username": data["username"], "password": data["password"]}


def pull(client, image, auth):
    repo, _, tag = (
        image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    )
    for event in client.api.pull(repo, tag=tag, stream=True, decode=True, auth_config=auth):
        if "error" in event:
            raise RuntimeError(f"pull of {image} failed: {event['error']}")
    return client.images.get(image)


class RegistryFailed(Exception):
    """The lab's registry did not take the save (down, refusing): the message names it."""


def forget(client, order):
    """The commit's local tag, after its push failed (its layers go with it)."""
    try:
        client.images.remove(f"{order['repository']}:{order['tag']}", force=True)
    except docker.errors.DockerException:
        pass


def save(client, order, auth):
    container = client.containers.get(order["container"])
    try:
        base = client.images.get(order["base_image"])
    except docker.errors.ImageNotFound:  # a node that ran only saves of that profile
        base = pull(client, order["base_image"], auth)
    _, own, sudo = rules.commit(
        client,
        container,
        repository=order["repository"],
        tag=order["tag"],
        labels=order["labels"],
        max_new_bytes=order["max_new_bytes"],
        base_history=base.history(),
    )
    try:
        for line in client.api.push(
            order["repository"], tag=order["tag"], stream=True, decode=True, auth_config=auth
        ):
            if "error" in line:
                raise RegistryFailed(
                    f"the push to the lab's registry {order['registry']} failed: {line['error']}"
                )
    except docker.errors.DockerException as e:
        forget(client, order)
        raise RegistryFailed(
            f"the push to the lab's registry {order['registry']} failed: {e}"
        ) from e
    except RegistryFailed:
        forget(client, order)  # nothing half-made: the commit's tag goes with the failed push
        raise
    return {
        "gpulab_save": "ok",
        "image": f"{order['repository']}:{order['tag']}",
        "bytes": own,
        "sudo": sudo,
    }


def registry_request(order, method, path, auth, headers=None):
    registry = order["registry"]
    ca = f"/etc/docker/certs.d/{registry}/ca.crt"
    context = ssl.create_default_context(cafile=ca if os.path.exists(ca) else None)
    request = urllib.request.Request(
        f"https://{registry}/v2/{path}", method=method, headers=dict(headers or {})
    )
    if auth:
        token = base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    return urllib.request.urlopen(request, timeout=60, context=context)


def delete(client, order, auth):
    image = order["image"]
    repository, _, tag = image.rpartition(":")
    name = repository.split("/", 1)[1]  # the repository's path in the registry
    try:
        with registry_request(
            order, "HEAD", f"{name}/manifests/{tag}", auth, {"Accept": MANIFESTS}
        ) as r:
            digest = r.headers["Docker-Content-Digest"]
        registry_request(order, "DELETE", f"{name}/manifests/{digest}", auth).close()
    except urllib.error.HTTPError as e:
        if e.code != 404:  # another node's job was first
            raise RuntimeError(f"the registry refused to delete {image}: HTTP {e.code}")
    try:
        # the hub has checked that no server runs it; a stopped task's container that Swarm has
        # not cleaned up yet only loses the name (its layers go with it)
        client.images.remove(image, force=True)
    except docker.errors.ImageNotFound:
        pass  # this node never had it
    return {"gpulab_save": "ok", "image": image}


def main():
    order = json.loads(os.environ[contract.SAVE_JOB_ENV])
    client = docker.from_env(version="auto", timeout=600)
    try:
        auth = credentials(order)
        result = (save if order.get("action", "save") == "save" else delete)(client, order, auth)
        print(json.dumps(result), flush=True)
    except SaveError as e:
        print(
            json.dumps({"gpulab_save": "refused", "message": str(e), "status": e.status}),
            flush=True,
        )
        sys.exit(1)
    except RegistryFailed as e:
        print(json.dumps({"gpulab_save": "registry", "message": str(e)[:500]}), flush=True)
        sys.exit(1)
    except Exception as e:
        print(
            json.dumps({"gpulab_save": "failed", "message": f"{type(e).__name__}: {e}"[:500]}),
            flush=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
