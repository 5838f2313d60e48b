"""The lab's registry as a Swarm uses it: authenticated (the hub's engine logs in, so every
service it creates carries the credentials to the nodes that pull; jobs read them from a Swarm
secret), and images pinned by digest when a service is made."""

import hashlib
import json
import logging

import docker

log = logging.getLogger(__name__)


def login(api, auth):
    """Log ``api`` (a docker-py APIClient) in to the registry once; docker-py then sends the
    credentials with every pull, push and service it asks the engine for. ``auth``: None, or
    {"registry", "username", "password"}."""
    if auth:
        api.login(auth["username"], auth["password"], registry=auth["registry"])


class RegistryError(Exception):
    """The lab's registry could not be asked (down, unreachable, refusing): the message names it."""


def asked(api, image, auth=None):
    """``image`` as ``repo:tag@sha256:...``, the digest the registry holds now; RegistryError,
    naming the registry and its answer, when it cannot be asked."""
    if "@" in image:
        return image
    try:
        login(api, auth)
        digest = api.inspect_distribution(image)["Descriptor"]["digest"]
    except (docker.errors.APIError, KeyError) as e:
        why = getattr(e, "explanation", None) or str(e)
        raise RegistryError(
            f"the lab's registry {image.split('/', 1)[0]} could not be asked for {image}: {why}"
        ) from e
    return f"{image}@{digest}"


def pinned(api, image, auth=None, errors=None, last=None):
    """``image`` pinned by its digest (:func:`asked`). When the registry cannot be asked: the
    digest it last gave for the tag (the nodes that ran it hold it by that digest, and Swarm
    starts a task from the node's copy when the pull fails; a tag alone matches no copy), else
    the tag (a node that lacks it says why). ``errors``: a list the registry's failure is added to;
    ``last``: {image: its last pinned form}, the deployment's own memory of what the nodes pulled."""
    last = {} if last is None else last
    try:
        last[image] = found = asked(api, image, auth)
        return found
    except RegistryError as e:
        if errors is not None:
            errors.append(str(e))
        known = last.get(image, image)
        log.warning("gpulab: could not pin %s to a digest (%s): the nodes run %s", image, e, known)
        return known


def secret_name(deployment, auth):
    """The Swarm secret holding the registry's credentials: named after its content, so a new
    password is a new secret (secrets cannot change) and running jobs keep the one they had."""
    data = json.dumps(
        {"registry": auth["registry"], "username": auth["username"], "password": auth["password"]},
        sort_keys=True,
    )
    return f"{deployment}-registry-{hashlib.sha256(data.encode()).hexdigest()[:12]}", data.encode()


def ensure_secret(api, deployment, auth, labels):
    """Create the credentials' secret if missing; returns its name ('' without credentials)."""
    if not auth:
        return ""
    name, data = secret_name(deployment, auth)
    if not [x for x in api.secrets(filters={"name": [name]}) if x["Spec"]["Name"] == name]:
        try:
            api.create_secret(name, data, labels=labels)
        except docker.errors.APIError as e:
            if e.status_code != 409:  # made meanwhile by another start
                raise
    return name
