"""The GPU table's truth on one host (an :class:`~gpulab.core.gpus.manager.InventorySource`):
the GPUs of this host (NVML, or the site file's list); holdings from the deployment's containers'
``gpulab.gpus`` labels. What the hub rebuilds its table from after a restart, before anything is
handed out. Docker calls run in a thread."""

import asyncio

from ...core import contract
from ...core.gpus.allocator import holdings_from_containers
from ...core.gpus.inventory import discover, load_pynvml
from ...core.gpus.manager import InventorySource


def running_filters(deployment):
    """Docker filters for the deployment's containers that hold (or are about to hold) GPUs."""
    return {
        "label": [contract.deployment_filter(deployment)],
        "status": ["created", "running", "restarting"],
    }


class HostInventory(InventorySource):
    refresh_every = None  # a host's GPUs do not change while the hub runs

    def __init__(self, deployment, settings, api_factory, nvml_loader=load_pynvml):
        """``settings``: the validated ``gpus`` section; ``api_factory()``: a docker-py APIClient."""
        self.deployment = deployment
        self.settings = settings
        self.api_factory = api_factory
        self.nvml_loader = nvml_loader

    async def inventory(self):
        return discover(self.settings, nvml_loader=self.nvml_loader)

    async def holdings(self):
        def containers():
            return self.api_factory().containers(filters=running_filters(self.deployment))

        return holdings_from_containers(await asyncio.to_thread(containers))
