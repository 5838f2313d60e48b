"""One GPU manager per deployment in the hub process: inventory, allocator, quotas.

What runs is the source of truth (:mod:`.sources`): the first time the manager is used after the
hub starts, it rebuilds its table from it (the containers' ``gpulab.gpus`` labels, or the GPUs
Swarm assigned to the tasks) before any new allocation can happen.
"""

import asyncio
import time

from ..siteconfig import check_gpus
from .allocator import Allocator
from .sources import HostSource

_managers = {}


class GPUManager:
    def __init__(self, settings, source):
        """``source`` tells the GPUs and who holds them (:mod:`.sources`: this host, or a Swarm)."""
        self.settings = check_gpus(settings or {})  # the defaults live in the site-file schema
        self.source = source
        self.inventory = []
        self.allocator = Allocator(self.inventory)
        self.synced = False
        self._lock = asyncio.Lock()
        self._last_inventory = None

    async def ensure_synced(self):
        """Know the GPUs and who holds them before anything is judged or handed out: once after
        the hub starts, and the inventory again every ``source.refresh_every`` seconds."""
        if self.synced and not self._inventory_due():
            return
        async with self._lock:
            if not self.synced or self._inventory_due():
                self.set_inventory(await self.source.inventory())
            if not self.synced:
                self.allocator.load(await self.source.holdings())
                self.synced = True

    def _inventory_due(self):
        every = self.source.refresh_every
        return self._last_inventory is None or (every is not None and time.monotonic() - self._last_inventory >= every)

    def set_inventory(self, gpus):
        """The GPUs that can be handed out now (a Swarm's nodes come and go)."""
        self.inventory = list(gpus)
        self.allocator.set_inventory(self.inventory)
        self._last_inventory = time.monotonic()

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


def get_manager(deployment, settings, source=None):
    """The deployment's manager, created on first use (with ``source``, default: this host)."""
    if deployment not in _managers:
        settings = check_gpus(settings or {})
        _managers[deployment] = GPUManager(settings, source or HostSource(deployment, settings))
    return _managers[deployment]


def existing_manager(deployment):
    return _managers.get(deployment)
