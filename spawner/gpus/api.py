"""Admin view of GPU allocation, served by the hub at /hub/api/gpulab/gpus.

Registered through ``c.JupyterHub.extra_handlers``; the caller needs the
``admin:servers`` scope (hub admins and admin services have it).
"""

import asyncio
import json

import docker
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope

from .manager import get_manager, running_filters


def running_containers(deployment):
    client = docker.APIClient(version="auto")
    try:
        return client.containers(filters=running_filters(deployment))
    finally:
        client.close()


class GPUsAPIHandler(APIHandler):
    def initialize(self, deployment, settings):
        self.deployment = deployment
        self.gpu_settings = settings

    @needs_scope("admin:servers")
    async def get(self):
        manager = get_manager(self.deployment, self.gpu_settings)

        async def list_running():
            return await asyncio.to_thread(running_containers, self.deployment)

        await manager.ensure_synced(list_running)
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"deployment": self.deployment, **manager.snapshot(for_admin=True)}))


def handlers(deployment, settings):
    return [(r"/api/gpulab/gpus", GPUsAPIHandler, {"deployment": deployment, "settings": settings})]
