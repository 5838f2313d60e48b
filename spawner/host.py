"""What the hub needs on its host before JupyterHub starts: the state directory, the Docker
network its API listens on (with its firewall rules, :mod:`.firewall`), the SSH key store.

Loading the configuration creates none of these (config only sets); :func:`prepare` does, from
``gpulab up`` / ``gpulab prepare`` / the hub's own startup (:mod:`.app`). Idempotent.
"""

import os
import socket

from . import firewall, network
from .ssh.hubsetup import store_path


def prepare(site, client=None):
    """Create what is missing; return the address the hub API binds to."""
    hub = site["hub"]
    state = os.path.abspath(hub["state_dir"])
    os.makedirs(state, mode=0o700, exist_ok=True)
    client = client or network.docker_client()
    if site["cluster"]["mode"] == "swarm":
        cluster = site["cluster"]
        network.ensure_overlay(client, cluster["network"], hub["name"], encrypted=cluster["encrypted"])
        # a new hub container (gpulab up --replace) joins the users' networks again, before the
        # hub looks for their servers
        network.join_user_networks(client, hub["name"], socket.gethostname())
        _ssh_store(site, state)
        return "0.0.0.0"
    gateway = network.ensure_network(client, hub["network"], hub["subnet"], hub["name"])
    if hub["restrict_egress"]:
        try:
            bridge = firewall.bridge_of(client.networks.get(hub["network"]))
            firewall.apply(hub["name"], bridge, gateway, hub["api_port"])
        except firewall.FirewallError as e:
            raise network.HostError(f"could not restrict where containers connect (hub.restrict_egress): {e}")
    _ssh_store(site, state)
    return gateway


def _ssh_store(site, state):
    if site["ssh"]["enabled"]:
        from .ssh.store import SSHStore

        SSHStore(store_path(state)).create()
