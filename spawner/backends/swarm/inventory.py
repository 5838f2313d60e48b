"""The GPU table's truth on a Swarm (an :class:`~gpulab.core.gpus.manager.InventorySource`): the
GPUs the nodes advertise (re-read every few seconds: nodes join, drain and die), holdings from the
GPUs Swarm assigned to the deployment's tasks. The last read of the nodes also gives their ids,
labels and CPUs (placement, the start gates), so no spawn asks Docker for them. GPUs of a node that
lacks the lab's shared storage (:mod:`.missing`) are not offered until a check finds it there."""

import asyncio
import logging

from ...core import contract
from ...core.gpus.manager import InventorySource
from . import cluster
from .missing import MissingStorage

log = logging.getLogger("gpulab")


class SwarmInventory(InventorySource):
    refresh_every = 5.0  # seconds between reads of the nodes

    def __init__(self, deployment, api_factory, recheck=None):
        """``recheck(node)``: a coroutine giving a JobResult, ok when the node has the shared storage."""
        self.deployment = deployment
        self.api_factory = api_factory
        self.recheck = recheck
        self.missing = MissingStorage()
        self._checker = None  # the task checking passed-over nodes, while there are any
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
        self.missing.forget_all_but(self.node_ids)
        lacking = self.missing.lacking()
        return [g for g in gpus if g.node not in lacking]

    def pass_over(self, node):
        """``node`` lacks the shared storage: offer none of it until a check finds it there."""
        self.missing.lacks(node)
        if self.recheck is not None and (self._checker is None or self._checker.done()):
            self._checker = asyncio.ensure_future(self._check_while_lacking())

    async def _check_while_lacking(self):
        while self.missing.lacking():
            await asyncio.sleep(min(5.0, self.missing.recheck_every))
            for node in self.missing.due():
                await self._recheck(node)

    async def _recheck(self, node):
        present, why = False, ""
        try:
            result = await self.recheck(node)
            present, why = result.ok, result.status
        except Exception as e:
            why = str(e)
        finally:
            self.missing.checked(node, present)
        if present:
            log.info("gpulab: %s has the shared storage again: its GPUs are offered again", node)
        else:
            log.info("gpulab: %s still lacks the shared storage (%s)", node, why)

    async def holdings(self):
        return await asyncio.to_thread(self._holdings)
