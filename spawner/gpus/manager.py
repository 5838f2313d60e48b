"""One GPU manager per deployment in the hub process: inventory, allocator, quotas.

The running containers are the source of truth: the first time the manager is used
after the hub starts, it rebuilds its table from the ``gpulab.gpus`` labels of the
deployment's running containers, before any new allocation can happen.
"""

import asyncio

from .. import contract
from ..siteconfig import check_gpus
from .allocator import Allocator, holdings_from_containers
from .inventory import discover

_managers = {}


def running_filters(deployment):
    """Docker filters for the deployment's containers that hold (or are about to hold) GPUs."""
    return {"label": [contract.deployment_filter(deployment)], "status": ["created", "running", "restarting"]}


class GPUManager:
    def __init__(self, settings, nvml_loader=None):
        self.settings = check_gpus(settings or {})  # the defaults live in the site-file schema
        kw = {"nvml_loader": nvml_loader} if nvml_loader else {}
        self.inventory = discover(self.settings, **kw)
        self.allocator = Allocator(self.inventory)
        self.synced = False
        self._lock = asyncio.Lock()

    async def ensure_synced(self, list_running):
        """Load the table once from ``await list_running()`` (container dicts)."""
        if self.synced:
            return
        async with self._lock:
            if not self.synced:
                self.allocator.load(holdings_from_containers(await list_running()))
                self.synced = True

    def quota_for(self, username, groups):
        """The user's GPU quota: the user's own entry, else the largest of their groups', else the default."""
        quota = self.settings["quota"]
        if username in quota["users"]:
            return quota["users"][username]
        from_groups = [quota["groups"][g] for g in groups if g in quota["groups"]]
        if from_groups:
            return max(from_groups)
        return quota["default"]

    def snapshot(self, for_admin=False):
        return self.allocator.snapshot(show_holders=for_admin or self.settings["show_holders"])


def get_manager(deployment, settings, nvml_loader=None):
    """The deployment's manager, created on first use."""
    if deployment not in _managers:
        _managers[deployment] = GPUManager(settings, nvml_loader)
    return _managers[deployment]


def existing_manager(deployment):
    return _managers.get(deployment)
