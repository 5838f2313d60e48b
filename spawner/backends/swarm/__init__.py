"""A Docker Swarm of GPU servers (``cluster.mode: swarm``): the hub runs in a container on a
manager, user servers are services placed on the node gpulab's allocator chose, each user's on an
overlay network of their own; images come from the lab's registry, homes from shared storage."""

import os
from urllib.parse import urlparse

from ...core import contract
from ...core.site.facts import (
    BASE_IMAGE,
    hub_container_name,
    hub_image,
    public_host_port,
    registry_name,
    saves_store_path,
)
from .. import Backend
from ..engine import HostError


class SwarmBackend(Backend):
    name = "swarm"
    mode = "swarm"
    spawner_class = "gpulab.backends.swarm.spawner.GPUSwarmSpawner"
    package = "gpulab.backends.swarm"
    hub_on_host = False

    def spawner_traits(self, site):
        cluster = site["cluster"]
        return {
            "network_name": cluster["network"],
            "registry": cluster["registry"],
            "placement_constraints": cluster["constraints"],
            "user_networks": cluster["user_networks"],
            "network_encrypted": cluster["encrypted"],
            "hub_container": hub_container_name(site),
            "hub_image": hub_image(site),
            "registry_username": (cluster["registry_auth"] or {}).get("username", ""),
            "registry_password_env": (cluster["registry_auth"] or {}).get("password_env", ""),
            "pull_policy": "skip",
            "boot_dir": os.path.join(
                cluster["shared_root"], f"{site['hub']['name']}-boot"
            ),  # every node mounts it
            "ssh_host_key_volume": os.path.join(cluster["shared_root"], "ssh-host", "{username}"),
        }

    def hub_traits(self, site):
        """The hub in a container on a manager node, on the overlay networks, one port published."""
        hub = site["hub"]
        u = urlparse(hub["bind_url"])
        return {
            "JupyterHub": {
                "bind_url": f"{u.scheme}://0.0.0.0:{public_host_port(hub['bind_url'])[1]}{u.path or '/'}",  # published by the container
                "hub_bind_url": f"http://0.0.0.0:{hub['api_port']}",
                "hub_connect_url": f"http://{hub_container_name(site)}:{hub['api_port']}",
            },
            # the proxy runs and dies with the hub's container: its pid file is the container's own,
            # not the state directory's (a new container would take an old pid for a running proxy)
            "ConfigurableHTTPProxy": {"pid_file": "/run/gpulab-proxy.pid"},
        }

    def inventory_source(self, lab):
        missing = self.part("missing")

        def recheck(node):
            job = missing.check_job(
                deployment=lab.name,
                node=node,
                shared_path=lab.boot
                or lab.boot_dir,  # on the shared storage, mounted by every server
                image=lab.job_image(),
                hardening=lab.hardening,
            )
            return lab.run_job(job)

        return self.part("inventory").SwarmInventory(lab.name, lab.api, recheck=recheck)

    def saves(self, lab):
        return self.part("saves").SwarmSaves(
            saves_store_path(lab.state_dir),
            deployment=lab.name,
            registry=lab.registry,
            hub_image=lab.hub_image,
            hardening=lab.hardening,
            api_factory=lab.api,
            registry_access=lambda: (lab.registry_secret, lab.registry_auth),
            pins=lab.pinned_images,
        )

    def job_image(self, lab):
        return registry_name(BASE_IMAGE, lab.registry) if lab.registry else BASE_IMAGE

    # --- users' GPU jobs (gpulab.hub.gpujobs): one task per GPU server (.gang) ---

    gpu_jobs = True
    gang_jobs = True  # a job's tasks are placed on the nodes the allocator chose

    async def job_network(self, lab, job_id, username):
        """The job's own overlay: (its name, its subnet)."""
        import asyncio

        from ...core import gpujobs

        gang = self.part("gang")
        name = gpujobs.network_name(lab.name, job_id)
        subnet = await asyncio.to_thread(
            gang.create_network,
            lab.api(),
            name,
            gang.job_labels(lab.name, job_id, username),
            lab.network_encrypted,
        )
        return name, subnet

    async def run_gang(self, lab, job_id, username, specs, nodes, key, **kw):
        gang = self.part("gang")
        node_ids = lab.gpus.inventory_source.node_ids
        return await gang.run_gang(
            lab.api(),
            specs,
            [node_ids.get(n, n) for n in nodes],
            deployment=lab.name,
            job_id=job_id,
            username=username,
            key=key,
            auth=lab.registry_auth,
            pins=lab.pinned_images,
            **kw,
        )

    async def stop_job(self, lab, job_id, ref, stop_grace):
        await self.part("gang").stop(lab.api(), lab.name, job_id)

    async def resume_job(self, lab, job_id):
        """A job's tasks are not followed across a hub restart on a Swarm: whatever it left is
        removed (None: nothing to follow)."""
        import asyncio

        await asyncio.to_thread(self.part("gang").remove_all, lab.api(), lab.name, job_id)
        return None

    async def remove_job(self, lab, job_id):
        import asyncio

        await asyncio.to_thread(self.part("gang").remove_all, lab.api(), lab.name, job_id)

    async def run_job(self, lab, job, on_line=None, **kw):
        jobs = self.part("jobs")
        return await jobs.run_job(
            lab.api(),
            job,
            node_ids=getattr(lab.gpus.inventory_source, "node_ids", {}),
            on_line=on_line,
            auth=lab.registry_auth,
            pins=lab.pinned_images,
        )

    def prepare_host(self, lab, api_port):
        """The hub's overlay, and the registry's credentials: the manager's engine logged in (so
        every service carries them to the node that pulls) and a Swarm secret for the jobs."""
        address = self.part("network").prepare_host(
            lab.docker(),
            deployment=lab.name,
            network=lab.network_name,
            encrypted=lab.network_encrypted,
        )
        if lab.registry_auth:
            registry = self.part("registry")
            registry.login(lab.api(), lab.registry_auth)
            lab.registry_secret = registry.ensure_secret(
                lab.api(), lab.name, lab.registry_auth, {contract.L_DEPLOYMENT: lab.name}
            )
        return address

    def launch_hub(self, site, *, site_file, config_file, replace=False):
        """On a Swarm manager: the hub runs in a container there (:mod:`.hub`)."""
        from ..engine import docker_client

        hub = self.part("hub")
        client = docker_client()
        config_dir = hub.stage_config(
            site,
            site_file,
            config_file,
            os.path.join(os.path.abspath(site["hub"]["state_dir"]), "config"),
        )
        container = hub.run_hub(
            client, site, config_dir=config_dir, config_file=config_file, replace=replace
        )
        print(
            f"gpulab up: the hub runs in container {container.name} ({hub_image(site)}); logs: docker logs -f {container.name}"
        )
        return 0

    def node_problems(self, client, site):
        """Each node's own state (engine, GPUs, labels) and what a probe on every node finds."""
        import asyncio

        from ...core.spec import Hardening

        nodes, jobs, probe, registry = (
            self.part("nodes"),
            self.part("jobs"),
            self.part("probe"),
            self.part("registry"),
        )
        found = {}
        for node in client.api.nodes():
            name, problems = nodes.check_node(node)
            engine = ((node.get("Description") or {}).get("Engine") or {}).get("EngineVersion")
            found[name] = (problems, f"ready, engine {engine}", bool(nodes.node_gpu_uuids(node)))
        cluster, containers = site["cluster"], site["containers"]
        auth = registry_auth_of(site)
        registry.login(client.api, auth)
        targets = [cluster["registry"], f"{client.info()['Swarm']['NodeAddr']}:2377"]
        marker = f".gpulab-check-{os.urandom(6).hex()}"  # seen on every node through its mount
        marker_path = os.path.join(cluster["shared_root"], marker)
        try:
            with open(marker_path, "w") as f:
                f.write("written by gpulab check\n")
            os.chmod(marker_path, 0o644)
        except OSError as e:
            raise HostError(
                f"cannot write to the shared root {cluster['shared_root']} on this manager ({e}): mount the lab's shared storage here"
            )
        try:
            job = probe.probe_job(
                deployment=site["hub"]["name"],
                shared_root=cluster["shared_root"],
                marker=marker,
                image=registry.pinned(client.api, registry_name(BASE_IMAGE, cluster["registry"])),
                network=cluster["network"],
                targets=targets,
                hardening=Hardening(
                    containers["pids_limit"],
                    containers["log_max_size"],
                    containers["log_max_files"],
                ),
            )
            result = asyncio.run(jobs.run_job(client.api, job))
        finally:
            os.unlink(marker_path)
        answers = probe.findings(result.output)
        out = []
        for name, (problems, fine, has_gpus) in sorted(found.items()):
            if has_gpus:  # where user servers run
                if name in answers:
                    problems = problems + probe.problems(answers[name])
                elif "bind source path does not exist" in str(result.status):
                    problems = problems + [probe.without_shared_storage(cluster["shared_root"])]
                else:
                    problems = problems + [
                        f"the probe did not run there ({result.status}: {result.output[-200:]})"
                    ]
            out.append((name, problems, fine))
        return out


def registry_auth_of(site):
    """The registry's credentials from the site file and this process's environment, or None."""
    auth = site["cluster"]["registry_auth"]
    if not auth:
        return None
    return {
        "registry": site["cluster"]["registry"],
        "username": auth["username"],
        "password": os.environ.get(auth["password_env"], ""),
    }


SWARM = SwarmBackend()
