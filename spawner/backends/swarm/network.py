"""A Swarm's networks: the hub's attachable overlay, and one overlay per user that only that
user's servers and the hub join (users cannot reach each other's servers)."""

import socket

import docker

from ...core import contract
from ..engine import HostError


def ensure_overlay(client, name, deployment, *, encrypted=True):
    """The hub's attachable overlay network on a Swarm manager (created if missing)."""
    found = [n for n in client.networks.list(names=[name]) if n.name == name]
    if found:
        if found[0].attrs.get("Driver") != "overlay":
            raise HostError(
                f"Docker network {name} exists but is not an overlay network (cluster.network); choose another name"
            )
        return found[0]
    options = {"encrypted": "true"} if encrypted else None
    try:
        return client.networks.create(
            name,
            driver="overlay",
            attachable=True,
            options=options,
            labels={contract.L_DEPLOYMENT: deployment},
        )
    except docker.errors.APIError as e:
        raise HostError(
            f"could not create the overlay network {name} ({e.explanation}); is this Docker engine a Swarm manager?"
        )


def join_user_networks(client, deployment, container):
    """Connect ``container`` (the hub's) to every per-user overlay of the deployment."""
    joined = []
    for net in client.networks.list(
        filters={"label": contract.deployment_filter(deployment), "driver": "overlay"}
    ):
        if contract.L_USER not in (net.attrs.get("Labels") or {}):
            continue
        try:
            net.connect(container)
            joined.append(net.name)
        except docker.errors.APIError as e:
            if e.status_code not in (403, 409) or "already" not in str(e.explanation or e):
                raise HostError(
                    f"the hub could not join the network {net.name}: {e.explanation or e}"
                )
    return joined


def user_network_name(deployment, escaped_user):
    return f"{deployment}-u-{escaped_user}"[:64]


def ensure_user_network(api, name, *, deployment, username, encrypted):
    """The user's overlay network (created if missing, also by a concurrent spawn); its
    inspection. ``api`` is a docker-py APIClient."""
    try:
        return api.inspect_network(name)
    except docker.errors.NotFound:
        pass
    options = {"encrypted": "true"} if encrypted else None
    labels = {contract.L_DEPLOYMENT: deployment, contract.L_USER: username}
    try:
        return api.create_network(
            name, driver="overlay", attachable=True, options=options, labels=labels
        )
    except docker.errors.APIError as e:
        if e.status_code != 409:
            raise
        return api.inspect_network(name)  # created by a concurrent spawn


def join_network(api, network_id, hub_container):
    """The hub's container joins a user's overlay so the hub reaches the server (already
    joined: fine). Attaching a container to an overlay it has not been on takes a third of a
    second on the test Swarm: the spawner does it while Swarm schedules the service."""
    try:
        api.connect_container_to_network(hub_container or socket.gethostname(), network_id)
    except docker.errors.APIError as e:
        if e.status_code not in (403, 409) or "already" not in str(
            e.explanation or e
        ):  # already attached: fine
            raise


def prepare_host(client, *, deployment, network, encrypted):
    """On the manager, before the hub looks for its servers: the hub's overlay, and the users'
    overlays joined again (a new hub container, ``gpulab up --replace``)."""
    ensure_overlay(client, network, deployment, encrypted=encrypted)
    join_user_networks(client, deployment, socket.gethostname())
    return "0.0.0.0"
