"""The GPU table's truth on a Swarm (an :class:`~gpulab.core.gpus.manager.InventorySource`): the
GPUs the nodes advertise (re-read every few seconds: nodes join, drain and die), holdings from the
GPUs Swarm assigned to the deployment's tasks. The last read of the nodes also gives their ids,
labels and CPUs (placement, the start gates), so no spawn asks Docker for them."""

import asyncio

from ...core import contract
from ...core.gpus.manager import InventorySource
from . import cluster


class SwarmInventory(InventorySource):
    refresh_every = 5.0  # seconds between reads of the nodes

    def __init__(self, deployment, api_factory):
        self.deployment = deployment
        self.api_factory = api_factory
        self.node_ids = {}  # node name -> node id, from the last read
        self.node_labels = {}  # node name -> labels, from the last read
        self.node_cpus = {}  # node name -> CPUs, from the last read (sizes the start gates)
        self.servers = set()  # workers ready and active: what a spawn's `node` option may name

    def _nodes(self):
        return self.api_factory().nodes()

    def _holdings(self):
        api = self.api_factory()
        services = api.services(filters={"label": contract.deployment_filter(self.deployment)})
        tasks = [t for s in services for t in api.tasks(filters={"service": s["ID"]})]
        return cluster.holdings_from_tasks(services, tasks)

    async def inventory(self):
        nodes = await asyncio.to_thread(self._nodes)
        gpus, self.node_ids = cluster.gpus_from_nodes(nodes)
        self.node_labels = cluster.node_labels(nodes)
        self.node_cpus = cluster.node_cpus(nodes)
        self.servers = cluster.servers(nodes)
        return gpus

    async def holdings(self):
        return await asyncio.to_thread(self._holdings)
