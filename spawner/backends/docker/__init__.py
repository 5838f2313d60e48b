"""One Docker host (``cluster.mode: single``): user servers are containers on the host's engine,
on an isolated bridge whose gateway the hub's API listens on."""

import os
import sys

from ...core import contract
from ...core.site.facts import BASE_IMAGE
from .. import Backend


class DockerBackend(Backend):
    name = "docker"
    mode = "single"
    spawner_class = "gpulab.backends.docker.spawner.GPUDockerSpawner"
    package = "gpulab.backends.docker"

    def spawner_traits(self, site):
        hub = site["hub"]
        return {
            "network_subnet": hub["subnet"],
            "restrict_egress": hub["restrict_egress"],
            "egress_blocked": hub["egress_blocked"],
            "pull_policy": "ifnotpresent",
        }

    def hub_traits(self, site):
        gateway = self.part("network").gateway_of(
            site["hub"]["subnet"]
        )  # the network itself is made at startup
        api = f"http://{gateway}:{site['hub']['api_port']}"
        return {"JupyterHub": {"hub_bind_url": api, "hub_connect_url": api}}

    def inventory_source(self, lab):
        return self.part("inventory").HostInventory(lab.name, lab.gpu_settings, lab.api)

    def saves(self, lab):
        return self.part("saves").LocalSaves(lab.name, lab.docker)

    def job_image(self, lab):
        return BASE_IMAGE  # always built on a gpulab host

    async def run_job(self, lab, job, on_line=None, **kw):
        from .. import container

        return await container.run_job(lab.api(), job, on_line=on_line, **kw)

    async def follow_job(self, lab, container_id, timeout, stop_grace, on_line=None, since=0):
        from .. import container

        return await container.follow_job(
            lab.api(),
            container_id,
            timeout,
            stop_grace,
            on_line=on_line,
            since=since,
            keep_on_cancel=True,
        )

    async def stop_job(self, lab, job_id, container_id, stop_grace):
        import asyncio

        from .. import container

        await asyncio.to_thread(container._stop, lab.api(), container_id, stop_grace)

    async def resume_job(self, lab, job_id):
        """The id of a job's container found after a hub restart (running or not), or None."""
        import asyncio

        import docker

        from ...core import gpujobs

        try:
            info = await asyncio.to_thread(
                lab.api().inspect_container, gpujobs.container_name(lab.name, job_id)
            )
        except docker.errors.NotFound:
            return None
        if (info.get("State") or {}).get("Status") == "created":  # made, never started: made again
            await asyncio.to_thread(lab.api().remove_container, info["Id"], force=True)
            return None
        return info["Id"]

    gpu_jobs = True  # users' GPU jobs run here (gpulab.hub.gpujobs)

    def prepare_host(self, lab, api_port):
        network = self.part("network")
        return network.prepare_host(
            lab.docker(),
            deployment=lab.name,
            network=lab.network_name,
            subnet=lab.network_subnet,
            api_port=api_port,
            restrict_egress=lab.restrict_egress,
            blocked=lab.egress_blocked,
        )

    def launch_hub(self, site, *, site_file, config_file, replace=False):
        """The hub runs here, as this process: JupyterHub with gpulab's startup step."""
        os.environ[contract.SITE_FILE_ENV] = os.path.abspath(site_file)
        argv = [sys.executable, "-m", "gpulab.hub.app", "-f", os.path.abspath(config_file)]
        print(f"gpulab up: starting {' '.join(argv)}", flush=True)
        os.execv(sys.executable, argv)


DOCKER = DockerBackend()
