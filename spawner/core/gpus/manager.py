"""A deployment's GPU table in the hub process: inventory, allocator, quotas.

What runs is the source of truth: the first time the manager is used after the hub starts, it
rebuilds its table from its :class:`InventorySource` (the backend's: the containers'
``gpulab.gpus`` labels on one host, the GPUs Swarm assigned to the tasks on a Swarm) before any
new allocation can happen. One manager per deployment, owned by the hub's
:class:`~gpulab.hub.deployment.Deployment`.
"""

import asyncio
import time

from ..site.model import check_gpus
from .allocator import Allocator


class InventorySource:
    """Where the GPUs and their holders are read (a backend provides one; Docker calls in a thread).

    ``inventory()`` -> [GPU] that can be handed out now; ``holdings()`` -> {holder: (uuids, since)}
    of what runs; ``refresh_every``: seconds between inventory reads (None: read once)."""

    refresh_every = None

    async def inventory(self):
        raise NotImplementedError

    async def holdings(self):
        raise NotImplementedError


class GPUManager:
    def __init__(self, settings, inventory_source):
        """``settings``: the validated ``gpus`` section; ``inventory_source``: an :class:`InventorySource`."""
        self.settings = check_gpus(settings or {})
        self.inventory_source = inventory_source
        self.inventory = []
        self.allocator = Allocator(self.inventory)
        self.synced = False
        self._lock = asyncio.Lock()
        self._last_inventory = None

    async def ensure_synced(self):
        """Know the GPUs and who holds them before anything is judged or handed out: once after
        the hub starts, and the inventory again every ``inventory_source.refresh_every`` seconds."""
        if self.synced and not self._inventory_due():
            return
        async with self._lock:
            if not self.synced or self._inventory_due():
                self.set_inventory(await self.inventory_source.inventory())
            if not self.synced:
                self.allocator.load(await self.inventory_source.holdings())
                self.synced = True

    def _inventory_due(self):
        every = self.inventory_source.refresh_every
        return self._last_inventory is None or (
            every is not None and time.monotonic() - self._last_inventory >= every
        )

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
