"""GPUDockerSpawner: gpulab on one Docker host, a drop-in ``dockerspawner.DockerSpawner``.

The pipeline is the hub's (:class:`gpulab.hub.spawner.GPULabSpawner`); what is this backend's:
the spec becomes a container in one place (:func:`.render.create_arguments`), the image is
pulled per ``pull_policy`` (a ``localhost/...`` image is never pulled: built here, or missing),
a stopped container is reused when its GPUs are still the same, and the container's log is
followed while its server starts, so an early exit is reported with its last lines.
"""

import asyncio
import time

import docker

from ...core.progress import pull_summary
from ...core.startgate import width_for
from ...hub import readiness
from ...hub.refusal import refused
from ...hub.spawner import GPULabSpawner
from . import DOCKER, render


class GPUDockerSpawner(GPULabSpawner):
    backend = DOCKER

    async def image_unavailable(self, image):
        """Why a local-only image (``localhost/...``) cannot start now, or None.

        Such names never resolve to a registry (so a missing image is never looked up in a
        public namespace); one that was not built here cannot be started.
        """
        if not is_local_only(image):
            return None
        try:
            info = await self.docker("inspect_image", image)
        except docker.errors.NotFound:
            return f"its image {image} has not been built on this host (an admin runs `gpulab images build`)"
        self._remember_image(image, info)
        return None

    async def ensure_image(self, image):
        try:
            await self.pull_image(image)
        except docker.errors.NotFound:
            raise refused(
                400,
                f"Image {image} is not on this host and pull_policy is {self.pull_policy}: an admin must build or pull it",
            )
        except docker.errors.APIError as e:
            raise refused(503, f"Image {image} could not be pulled: {e.explanation or e}")

    async def start_width(self):
        """Places in this host's start gate (:func:`~gpulab.core.startgate.width_for`); the CPU count
        is read from Docker once per hub process."""
        if self.concurrent_starts <= 0 and self.lab.host_cpus is None:
            self.lab.host_cpus = (await self.docker("info")).get("NCPU") or 1
        return width_for(self.lab.host_cpus or 1, self.concurrent_starts)

    def follow_log(self):
        return readiness.LogTail(self.client, self.object_id)

    async def _create_or_reuse(self, spec):
        obj = await self.get_object()
        if obj and (self.remove or render.parse_gpu_label(obj) != spec.gpus.uuids):
            self.log.info(
                "Removing %s %s before the start (remove=%s, GPUs changed)",
                self.object_type,
                self.object_name,
                self.remove,
            )
            await self.remove_object()
            obj = None
        if obj is None:
            obj = await self.create_object()
            self.object_id = obj[self.object_id_key]
            self.log.info(
                "Created %s %s (id: %s) from image %s",
                self.object_type,
                self.object_name,
                self.object_id[:7],
                spec.image,
            )
            return
        self.log.info(
            "Found existing %s %s (id: %s)", self.object_type, self.object_name, self.object_id[:7]
        )
        for line in obj["Config"]["Env"]:  # the running server keeps its own API token
            if line.startswith("JUPYTERHUB_API_TOKEN="):
                self.api_token = line.split("=", 1)[1]
                break

    async def create_object(self):
        spec = await self.current_spec()
        self._emit(50, "Creating container")
        extra_create = await self._evaluated(self.extra_create_kwargs)
        extra_host = await self._evaluated(self.extra_host_config)
        create, host = render.create_arguments(
            spec,
            port=self.port,
            use_internal_ip=self.use_internal_ip,
            host_ip=self.host_ip,
            volume_mount_points=self.volume_mount_points,
            volume_binds=self.volume_binds,
            admin_mounts=self.mount_binds,
            links=self.links,
            extra_create=extra_create,
            extra_host=extra_host,
        )
        create["host_config"] = self.client.create_host_config(**host)
        return await self.docker("create_container", **create)

    async def pull_image(self, image):
        """DockerSpawner's ``pull_policy`` (always, ifnotpresent, never, skip), with progress events.

        A local-only image (``localhost/...``) is never pulled: it is used if present.
        """
        policy = self.pull_policy.lower()
        if policy == "skip":
            return
        if is_local_only(image):
            policy = "never"
        if policy != "always":
            try:
                info = await self.docker("inspect_image", image)
            except docker.errors.NotFound:
                if policy == "never":
                    raise
            else:
                self._remember_image(image, info)
                self._emit(15, f"Image {image} is present")
                return
        repo, tag = split_image(image)
        self._emit(10, f"Pulling image {image}")
        await asyncio.wrap_future(self.executor.submit(self._pull_streaming, repo, tag))
        self._remember_image(image, await self.docker("inspect_image", image))
        self._emit(40, f"Pulled image {image}")

    async def image_labels(self, image):
        try:
            info = (self._image_info or {}).get(image) or await self.docker("inspect_image", image)
        except docker.errors.NotFound:
            return None
        return (info.get("Config") or {}).get("Labels")

    async def image_key(self, image):
        """The image's id: a rebuilt image under the same name is probed anew."""
        info = (self._image_info or {}).get(image)
        if info is None:
            try:
                info = await self.docker("inspect_image", image)
            except docker.errors.NotFound:
                return image
        return info["Id"]

    def _remember_image(self, image, info):
        if self._image_info is not None:
            self._image_info[image] = info

    def _pull_streaming(self, repo, tag):
        layers = {}
        last = 0.0
        for event in self.client.pull(repo, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise docker.errors.APIError(f"pull of {repo}:{tag} failed: {event['error']}")
            detail = event.get("progressDetail") or {}
            if event.get("id") and detail.get("total"):
                layers[event["id"]] = (detail.get("current", 0), detail["total"])
            now = time.monotonic()
            if layers and self._progress is not None and now - last > 1:
                last = now
                done, count, current, total = pull_summary(layers)
                pct = 10 + int(30 * current / total) if total else 10
                self._progress.emit_threadsafe(
                    pct,
                    f"Pulling {repo}:{tag}: {done}/{count} layers, {current / 1e6:.0f}/{total / 1e6:.0f} MB",
                )

    async def poll(self):
        status = await super().poll()
        if status is not None and self.gpu_uuids:
            self.release_gpus()  # the container died: its GPUs are free again
        if (
            status is not None
            and self.server is not None
            and not (self._stop_pending or self._spawn_pending)
        ):
            self.tell_ended(status)
        return status

    def tell_ended(self, status):
        """A server the hub had running stopped without being asked: its user is told why."""
        if getattr(self, "_not_running_at_startup", False):
            return  # a hub restart's own check: told as a lost start, or not at all
        why = (
            "its container is gone (the Docker engine restarted, or it was removed)"
            if status == 0
            else f"its container ended ({status})"
        )
        where = f"Your server {self.name!r}" if self.name else "Your server"
        self.log.warning("gpulab: %s stopped on its own: %s", self._log_name, why)
        self.lab.server_ended(
            self.user.name,
            self.name or "",
            f"{where} stopped on its own: {why}. Your files are kept: start it again.",
        )

    async def get_url(self):
        """Where the server answers, read from its container. JupyterHub asks after a restart for
        each server it finds running: one whose start had not returned when the hub stopped has no
        address in the database yet, and would be waited for where it is not (for
        ``http_timeout``), then stopped, although it runs."""
        if not self.object_id or self.server is None:
            return await super().get_url()
        try:
            ip, port = await self.get_ip_and_port()
        except (docker.errors.NotFound, KeyError):
            return await super().get_url()
        return f"{self.server.proto}://{ip}:{port}{self.server.base_url}"

    async def stop(self, now=False):
        if self.object_id:
            # if stopping fails the container may still run with its GPUs: they stay held (the
            # error goes to the hub; the next poll or stop releases them once it is gone)
            await super().stop(now=now)
        else:
            self.clear_state()  # nothing was created (rejected, or cancelled while queued)
        self.release_gpus()


def is_local_only(image):
    """``localhost/...`` (no port): an image built on this host, never pulled from anywhere."""
    return image.split("/", 1)[0] == "localhost" and "/" in image


def split_image(image):
    """``repo[:port]/name[:tag]`` -> (repo, tag), as DockerSpawner splits it."""
    if ":" in image.split("/")[-1]:
        return image.rsplit(":", 1)
    return image, "latest"
