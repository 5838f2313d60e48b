"""The deployment's Docker network and the hub address user containers reach.

The hub's internal API listens on the network's gateway address: an address of a
bridge interface on this host, reachable from the user containers, not published on
any outside interface. Containers on the bridge cannot reach each other
(``enable_icc=false``); the host (hub, proxy) reaches every one of them.
"""

import ipaddress

import docker

from . import contract


class HostError(RuntimeError):
    """The host is not ready (Docker unreachable, network clash, ...)."""


def gateway_of(subnet):
    return str(next(ipaddress.ip_network(subnet).hosts()))


def docker_client():
    try:
        client = docker.from_env(version="auto", timeout=30)
        client.ping()
        return client
    except (docker.errors.DockerException, OSError) as e:
        raise HostError(f"the Docker engine is not reachable ({e}); start it (e.g. `dockerd`) or run `make up`")


#: Docker bridge options: no container-to-container traffic on the user network.
BRIDGE_OPTIONS = {"com.docker.network.bridge.enable_icc": "false"}


def ensure_network(client, name, subnet, deployment):
    """Create the bridge network if missing; return its gateway address."""
    found = client.networks.list(names=[name])
    found = [n for n in found if n.name == name]
    if found:
        configs = (found[0].attrs.get("IPAM") or {}).get("Config") or []
        subnets = [cfg.get("Subnet") for cfg in configs if cfg.get("Subnet")]
        if subnet not in subnets:
            raise HostError(
                f"Docker network {name} exists with subnet {', '.join(subnets) or 'none'}, not {subnet} (hub.subnet); "
                f"set hub.subnet to match, or remove the network (`docker network rm {name}`) when no server uses it"
            )
        options = found[0].attrs.get("Options") or {}
        wrong = {k: v for k, v in BRIDGE_OPTIONS.items() if options.get(k) != v}
        if wrong:
            raise HostError(
                f"Docker network {name} lets containers reach each other ({', '.join(f'{k} is not {v}' for k, v in wrong.items())}); "
                f"stop the user servers and remove it (`docker network rm {name}`): gpulab recreates it isolated"
            )
        return gateway_of(subnet)
    gateway = gateway_of(subnet)
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet, gateway=gateway)])
    try:
        client.networks.create(name, driver="bridge", ipam=ipam, options=BRIDGE_OPTIONS, labels={contract.L_DEPLOYMENT: deployment})
    except docker.errors.APIError as e:
        raise HostError(
            f"could not create Docker network {name} on {subnet} ({e.explanation}); set hub.subnet in the site file to a free private subnet"
        )
    return gateway


def ensure_overlay(client, name, deployment, *, encrypted=True):
    """The hub's attachable overlay network on a Swarm manager (created if missing)."""
    found = [n for n in client.networks.list(names=[name]) if n.name == name]
    if found:
        if found[0].attrs.get("Driver") != "overlay":
            raise HostError(f"Docker network {name} exists but is not an overlay network (cluster.network); choose another name")
        return found[0]
    options = {"encrypted": "true"} if encrypted else None
    try:
        return client.networks.create(name, driver="overlay", attachable=True, options=options, labels={contract.L_DEPLOYMENT: deployment})
    except docker.errors.APIError as e:
        raise HostError(f"could not create the overlay network {name} ({e.explanation}); is this Docker engine a Swarm manager?")


def join_user_networks(client, deployment, container):
    """Connect ``container`` (the hub's) to every per-user overlay of the deployment."""
    joined = []
    for net in client.networks.list(filters={"label": contract.deployment_filter(deployment), "driver": "overlay"}):
        if contract.L_USER not in (net.attrs.get("Labels") or {}):
            continue
        try:
            net.connect(container)
            joined.append(net.name)
        except docker.errors.APIError as e:
            if e.status_code not in (403, 409) or "already" not in str(e.explanation or e):
                raise HostError(f"the hub could not join the network {net.name}: {e.explanation or e}")
    return joined
