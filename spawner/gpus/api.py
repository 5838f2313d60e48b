"""Admin view of GPU allocation, served by the hub at /hub/api/gpulab/gpus.

Registered through ``c.JupyterHub.extra_handlers``; the caller needs the
``admin:servers`` scope (hub admins and admin services have it).
"""

import json

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope

from .manager import get_manager
from .sources import HostSource, SwarmSource


class GPUsAPIHandler(APIHandler):
    def initialize(self, deployment, settings, swarm=False):
        self.deployment = deployment
        self.gpu_settings = settings
        self.swarm = swarm

    @needs_scope("admin:servers")
    async def get(self):
        source = SwarmSource(self.deployment) if self.swarm else HostSource(self.deployment, self.gpu_settings)
        manager = get_manager(self.deployment, self.gpu_settings, source)
        await manager.ensure_synced()
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"deployment": self.deployment, **manager.snapshot(for_admin=True)}))


def handlers(deployment, settings, swarm=False):
    return [(r"/api/gpulab/gpus", GPUsAPIHandler, {"deployment": deployment, "settings": settings, "swarm": swarm})]
