"""The deployment's Docker network and the hub address user containers reach.

The hub's internal API listens on the network's gateway address: an address of a
bridge interface on this host, reachable from the user containers, not published on
any outside interface. Containers on the bridge cannot reach each other
(``enable_icc=false``); the host (hub, proxy) reaches every one of them.
"""

import ipaddress

import docker

from ...core import contract
from .. import firewall
from ..engine import HostError


def gateway_of(subnet):
    return str(next(ipaddress.ip_network(subnet).hosts()))


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
    ipam = docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet=subnet, gateway=gateway)]
    )
    try:
        client.networks.create(
            name,
            driver="bridge",
            ipam=ipam,
            options=BRIDGE_OPTIONS,
            labels={contract.L_DEPLOYMENT: deployment},
        )
    except docker.errors.APIError as e:
        raise HostError(
            f"could not create Docker network {name} on {subnet} ({e.explanation}); set hub.subnet in the site file to a free private subnet"
        )
    return gateway


def prepare_host(client, *, deployment, network, subnet, api_port, restrict_egress, blocked):
    """The bridge the user containers join and, with ``restrict_egress``, the rules that keep them
    off the host and the LAN (:mod:`.firewall`). Idempotent; returns the hub API's address."""
    gateway = ensure_network(client, network, subnet, deployment)
    if restrict_egress:
        try:
            bridge = firewall.bridge_of(client.networks.get(network))
            firewall.apply(deployment, bridge, gateway, api_port, blocked=blocked)
        except firewall.FirewallError as e:
            raise HostError(
                f"could not restrict where containers connect (hub.restrict_egress): {e}"
            )
    return gateway
