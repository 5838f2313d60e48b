"""Where the GPU table's truth comes from, on one host or on a Swarm (Docker calls in a thread).

* :class:`HostSource`: the GPUs of this host (NVML or the site file's list); holdings from the
  deployment's containers' ``gpulab.gpus`` labels.
* :class:`SwarmSource`: the GPUs the Swarm's nodes advertise (re-read every few seconds: nodes
  join, drain and die); holdings from the GPUs Swarm assigned to the deployment's tasks.

Both are what the hub rebuilds its table from after a restart, before anything is handed out.
"""

import asyncio

import docker

from .. import contract
from .allocator import holdings_from_containers
from .inventory import discover


def default_api():
    """A docker-py APIClient from the environment (DOCKER_HOST, ...), for callers without one."""
    return docker.APIClient(version="auto", timeout=30)


def running_filters(deployment):
    """Docker filters for the deployment's containers that hold (or are about to hold) GPUs."""
    return {"label": [contract.deployment_filter(deployment)], "status": ["created", "running", "restarting"]}


class HostSource:
    refresh_every = None  # a host's GPUs do not change while the hub runs

    def __init__(self, deployment, settings, api=None, nvml_loader=None):
        """``api``: the APIClient to use (the spawner passes its own); default: from the environment."""
        self.deployment = deployment
        self.settings = settings
        self.api = api
        self.nvml_loader = nvml_loader

    async def inventory(self):
        kw = {"nvml_loader": self.nvml_loader} if self.nvml_loader else {}
        return discover(self.settings, **kw)

    async def holdings(self):
        def containers():
            return (self.api or default_api()).containers(filters=running_filters(self.deployment))

        return holdings_from_containers(await asyncio.to_thread(containers))


class SwarmSource:
    refresh_every = 5.0  # seconds between reads of the nodes

    def __init__(self, deployment, api=None):
        self.deployment = deployment
        self.api = api
        self.node_ids = {}  # node name -> node id, from the last read
        self.node_labels = {}  # node name -> labels, from the last read
        self.node_cpus = {}  # node name -> CPUs, from the last read (sizes the start gates)

    def _read(self, what):
        from ..swarm import cluster

        api = self.api or default_api()
        if what == "nodes":
            return api.nodes()
        services = api.services(filters={"label": contract.deployment_filter(self.deployment)})
        tasks = [t for s in services for t in api.tasks(filters={"service": s["ID"]})]
        return cluster.holdings_from_tasks(services, tasks)

    async def inventory(self):
        from ..swarm import cluster

        nodes = await asyncio.to_thread(self._read, "nodes")
        gpus, self.node_ids = cluster.gpus_from_nodes(nodes)
        self.node_labels = cluster.node_labels(nodes)
        self.node_cpus = cluster.node_cpus(nodes)
        return gpus

    async def holdings(self):
        return await asyncio.to_thread(self._read, "holdings")
