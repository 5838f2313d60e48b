"""GPUSwarmSpawner: gpulab on a Docker Swarm of GPU servers. The same pipeline and the same spec
as on one host (:mod:`gpulab.hub.spawner`), rendered as a Swarm service (:mod:`.render`).

* gpulab's allocator chooses the node (the fullest that has enough free GPUs, within the profile's
  and the user's constraints); Swarm then hands the task that many GPUs on it, exclusively, as
  generic resources, and the hub records which ones the task got;
* each user's servers live on an overlay network of their own, which only the hub also joins
  (users cannot reach each other's servers); the hub reaches a server by its service name;
* a node that dies is noticed at the next poll: the server is reported stopped and its GPUs come
  back; the user's home is on shared storage, so a respawn on another node finds it.

DockerSpawner's container settings (``extra_create_kwargs``, ``extra_host_config``, ``volumes``,
``mounts``, ``links``, ``post_start_cmd``) have no meaning for a service: the settings check
refuses them, naming the setting, instead of ignoring them.
"""

import asyncio
import dataclasses
import os
import time

import docker
from traitlets import Bool, List, Unicode, default

from ...core import spec as specs
from ...core.site.facts import registry_name
from ...core.startgate import width_for
from ...hub.crosscheck import ConfigError
from ...hub.refusal import refused
from ...hub.spawner import GPULabSpawner
from . import SWARM, cluster, network, registry
from .jobs import lost_node
from .missing import explain, missing_path
from .render import service_arguments

#: DockerSpawner settings of a container that a service cannot honour (refused at startup)
CONTAINER_ONLY = (
    "extra_create_kwargs",
    "extra_host_config",
    "volumes",
    "read_only_volumes",
    "mounts",
    "links",
    "post_start_cmd",
)


#: how often a start waiting for its task asks whether the task's node is still up (seconds)
NODE_CHECK_EVERY = 2.0


class GPUSwarmSpawner(GPULabSpawner):
    backend = SWARM
    object_type = "service"
    object_id_key = "ID"

    registry = Unicode(
        "",
        help="""
        The lab's registry the nodes pull from. A profile's local image name
        (``localhost/gpulab/base:latest``) is pulled as ``<registry>/gpulab/base:latest``, which
        ``gpulab images push`` puts there. Example: ``"registry.lab.example:5000"``.
        """,
    ).tag(config=True)
    placement_constraints = List(
        Unicode(),
        help="""
        Swarm placement constraints for every user server, on top of a profile's own. Example:
        ``["node.labels.gpulab.pool==students"]``. Default: none.
        """,
    ).tag(config=True)
    user_networks = Bool(
        True,
        help="""
        One overlay network per user, joined only by that user's servers and the hub (users cannot
        reach each other). Example: ``False`` puts every server on the hub's network. Default: on.
        """,
    ).tag(config=True)
    network_encrypted = Bool(
        True,
        help="""
        Encrypt the overlay networks gpulab creates (IPsec between nodes). Default: on.
        """,
    ).tag(config=True)
    hub_container = Unicode(
        "",
        help="""
        The hub's container, which joins each user's network. Default: this process's hostname
        (the container's id inside Docker).
        """,
    ).tag(config=True)

    registry_username = Unicode(
        "",
        help="""
        The user gpulab pushes and pulls as in the lab's registry. Example: ``"gpulab"`` (the
        site file's ``cluster.registry_auth.username``); empty: the registry needs no login.
        """,
    ).tag(config=True)
    registry_password_env = Unicode(
        "",
        help="""
        The environment variable of the hub that holds the registry's password. Example:
        ``"REGISTRY_PASSWORD"`` (the site file's ``cluster.registry_auth.password_env``).
        """,
    ).tag(config=True)
    hub_image = Unicode(
        "",
        help="""
        The hub's image, which save jobs run on the GPU nodes. Example:
        ``"registry.lab.example:5000/gpulab/hub:latest"`` (the site file's ``cluster.hub_image``,
        else gpulab's hub image in the lab's registry).
        """,
    ).tag(config=True)

    @default("pull_policy")
    def _default_pull_policy(self):
        return "skip"  # the node that runs the task pulls; the hub's host has no say

    @default("cmd")
    def _default_cmd(self):
        # the image is on the nodes, not where the hub runs: its CMD cannot be inspected here;
        # every gpulab image starts with gpulab-start (see images/base)
        return ["gpulab-start"]

    def check_settings(self):
        super().check_settings()
        for name in CONTAINER_ONLY:
            if getattr(self, name):
                raise ConfigError(
                    f"{type(self).__name__}.{name}",
                    "is a container setting of DockerSpawner; Swarm services do not use it (cluster.mode: swarm): remove it",
                )

    @property
    def source(self):
        """The Swarm's nodes as the last inventory read saw them (ids, labels, CPUs)."""
        return self.gpu_manager.inventory_source

    # --- the request ---

    def option_limits(self):
        """The GPU servers (a ``node`` option may name a worker that is ready and active) and the
        most GPUs any of them has."""
        return {
            "nodes": set(getattr(self.source, "servers", ())),
            "largest": self.gpu_manager.allocator.largest_request(),
        }

    def limits(self, request):
        limits = super().limits(request)
        if limits.image.split("/", 1)[0] == "localhost" and self.registry:
            limits = dataclasses.replace(limits, image=registry_name(limits.image, self.registry))
        return limits

    def constraints(self, request):
        return [
            *self.placement_constraints,
            *request.profile.get("constraints", ()),
            *([f"node.hostname=={request.node}"] if request.node else []),
        ]

    def placement(self, request):
        """Where Swarm may place the service: the constraints, and, for a server Swarm places
        itself (no node chosen), none of the nodes passed over for lacking the shared storage
        (a chosen node's GPUs were offered only while it was not)."""
        lacking = [] if (request.node or self.node_name) else sorted(self.source.missing.lacking())
        return [*self.constraints(request), *(f"node.hostname!={n}" for n in lacking)]

    def check_request(self, request):
        why = self.source.missing.why(request.node) if request.node else ""
        if why:
            raise refused(503, f"{why}: choose another server, or none")

    def gpu_filter(self, request):
        return cluster.constraint_matcher(self.constraints(request), self.source.node_labels)

    # --- the service ---

    def user_network(self):
        if not self.user_networks:
            return self.network_name
        return network.user_network_name(self.deployment, self.escaped_name)

    async def ensure_user_network(self):
        """The user's overlay network exists, and the hub's container is joining it (a
        concurrent.futures.Future in ``self._joining``; :meth:`hub_joined` waits for it). Joining
        runs while Swarm schedules the service, so it adds nothing to the start."""
        name = self.user_network()
        self._joining = None
        if name == self.network_name:
            return name
        net = await asyncio.wrap_future(
            self.executor.submit(
                network.ensure_user_network,
                self.client,
                name,
                deployment=self.deployment,
                username=self.user.name,
                encrypted=self.network_encrypted,
            )
        )
        self._joining = self.executor.submit(
            network.join_network, self.client, net["Id"], self.hub_container
        )
        return name

    async def hub_joined(self, waiting=True):
        """The hub's container is on the user's network; a 500 naming why it could not join.
        ``waiting=False``: only a join that has already ended is looked at (a failed join ends
        the start as soon as it is known, not when the task runs)."""
        joining = getattr(self, "_joining", None)
        if joining is None or not (waiting or joining.done()):
            return
        self._joining = None
        try:
            await asyncio.wrap_future(joining)
        except docker.errors.APIError as e:
            raise refused(
                500,
                f"The server could not start: the hub could not join the network "
                f"{self.user_network()}: {e.explanation or e}",
            )

    def job_nodes(self):
        """A job may span every GPU server of the Swarm."""
        return max(1, len(getattr(self.source, "servers", ()) or ()))

    def gpu_grant(self, request, uuids):
        # asked of Swarm on the node the allocator chose; Swarm names them in DOCKER_RESOURCE_GPU
        return specs.GPUGrant.counted(request.gpus)

    def spec_network(self):
        return self.user_network()

    async def create_object(self):
        spec = await self.current_spec()
        self._emit(
            50,
            f"Creating the service {spec.name}"
            + (f" on {self.node_name}" if self.node_name else ""),
        )
        await self.ensure_user_network()
        node_id = self.source.node_ids.get(self.node_name) if self.node_name else None
        # the image pinned by its digest now, as `docker service create` does: every node runs
        # exactly what the registry held at this start, whatever is pushed under the tag later
        self._registry_errors = []
        image = await asyncio.wrap_future(
            self.executor.submit(
                registry.pinned,
                self.client,
                spec.image,
                self.lab.registry_auth,
                self._registry_errors,
                self.lab.pinned_images,
            )
        )
        spec = dataclasses.replace(spec, image=image)
        why = self.source.missing.why(self.node_name) if self.node_name else ""
        if why:  # passed over since the allocator chose it
            raise refused(503, f"The server could not start: {why}. Start again.")
        kwargs = service_arguments(spec, node_id=node_id, constraints=self.placement(self._request))
        return await self.docker("create_service", **kwargs)

    async def get_task(self):
        try:
            tasks = await self.docker("tasks", filters={"service": self.object_name})
        except docker.errors.NotFound:
            return None
        if not tasks:
            return None
        return max(tasks, key=lambda t: t.get("CreatedAt", ""))

    async def start_object(self):
        """Wait until the task runs, telling the user where it is and why it waits. Asked often at
        first (a task usually runs within a second or two; the start gate bounds how many ask)."""
        names = {v: k for k, v in self.source.node_ids.items()}
        seen, delay, node_checked = None, 0.1, time.monotonic()
        while True:
            await self.hub_joined(waiting=False)
            task = await self.get_task()
            if task is not None:
                line = cluster.describe_task(task, names)
                if line != seen:
                    seen = line
                    self._emit(75, line)
                state = task["Status"]["State"]
                if state == "running":
                    await self.hub_joined()
                    self.node_name = names.get(task.get("NodeID"), self.node_name)
                    uuids = cluster.task_gpus(task)
                    if uuids:
                        self.gpu_manager.allocator.replace(
                            self.holder, uuids
                        )  # the GPUs Swarm handed out
                        self.gpu_uuids = tuple(uuids)
                    return
                if state in cluster.DONE_STATES:
                    lacks = missing_path(task)
                    node = names.get(task.get("NodeID"), "")
                    if lacks and node:
                        # the hub sees it (on the shared root): the node's mount is what is missing
                        there = await asyncio.to_thread(os.path.exists, lacks)
                        if there:
                            self.source.pass_over(node)
                        self.log.warning("gpulab: %s", explain(node, lacks, there))
                        again = there and not getattr(self._request, "node", "")
                        raise refused(
                            503,
                            f"The server could not start: {explain(node, lacks, there)}."
                            + (" Start again to be placed on another server." if again else ""),
                        )
                    # a node that lacked the image could not pull it: say that the registry is why
                    why = "; ".join(getattr(self, "_registry_errors", ()))
                    raise refused(
                        503 if why else 500,
                        f"The server could not start: {line}" + (f" ({why})" if why else ""),
                    )
                # a node that dies under a starting task leaves the task as it was ("preparing",
                # "starting") until the node comes back, and Swarm does not move it (restart
                # condition none): without this the start would wait for hub.start_timeout
                if task.get("NodeID") and time.monotonic() - node_checked >= NODE_CHECK_EVERY:
                    node_checked = time.monotonic()
                    down = await self._node_down(task["NodeID"])
                    if down:
                        raise refused(503, f"The server could not start: {down} ({line})")
            await asyncio.sleep(delay)
            delay = min(delay * 1.25, 2)

    async def stop_object(self):
        pass  # removing the service stops its task

    async def remove_object(self):
        try:
            await self.docker("remove_service", self.object_id or self.object_name)
        except docker.errors.NotFound:
            pass

    async def _start(self, request):
        try:
            return await super()._start(request)
        except BaseException:
            # a start that failed leaves no service behind (its rejected or stranded task would
            # stay in the Swarm: JupyterHub does not stop a server whose start failed)
            try:
                await self.remove_object()
            except Exception as e:
                self.log.warning(
                    "gpulab: could not remove %s after its failed start: %s", self.object_name, e
                )
            self.object_id = ""
            raise

    async def _create_or_reuse(self, spec):
        if await self.get_object():
            await self.remove_object()  # a service is never reused: its spec is this start's
        obj = await self.create_object()
        self.object_id = obj[self.object_id_key]

    async def start_width(self):
        """Places in the start gate of the chosen node (:func:`~gpulab.core.startgate.width_for` of its CPUs, as
        the GPU source last read them: no Docker call per spawn); a server Swarm places itself (no
        GPUs, no node asked for) shares one gate sized by all nodes."""
        cpus = self.source.node_cpus
        return width_for(
            cpus.get(self.node_name, 0) if self.node_name else sum(cpus.values()),
            self.concurrent_starts,
        )

    async def get_ip_and_port(self):
        """The task's own address on the user's network: the service's name in Swarm's DNS may
        still answer with a task that died with its node (the hub and the proxy would then wait
        for a server that is gone); the name only when the task's address is not known."""
        return task_address(
            await self.get_task(), self.user_network()
        ) or self.object_name, self.port

    async def poll(self):
        """Running, or why not: the task ended, or its node is down (a dead node's tasks look
        alive to Swarm until the node comes back). A server found stopped has its service removed
        here: JupyterHub does not call stop() for a server that poll() says has stopped, and a
        service left behind would keep its container (and GPU) when a node that was only cut
        off comes back."""
        exists = await self.get_object() is not None
        if not exists:
            status = 0
        else:
            task = await self.get_task()
            if task is None:
                status = 0
            elif task["Status"]["State"] in cluster.DONE_STATES:
                status = f"task {task['Status']['State']}: {task['Status'].get('Err') or task['Status'].get('Message', '')}"
            else:
                status = await self._node_down(task.get("NodeID"))
        if status is not None:
            if exists:
                await self.remove_object()
                self.object_id = ""
            if self.gpu_uuids:
                self.release_gpus()
        return status

    async def _node_down(self, node_id):
        if not node_id:
            return None
        try:
            nodes = [await self.docker("inspect_node", node_id)]
        except docker.errors.NotFound:
            nodes = []
        return lost_node(nodes, {node_id}) or None  # the words a Swarm job uses

    async def stop(self, now=False):
        if self.object_id or await self.get_object():
            await self.remove_object()
        self.object_id = ""
        self.clear_state()
        self.release_gpus()


def task_address(task, network_name):
    """A task's address on the named network ('' when it has none there)."""
    for attachment in (task or {}).get("NetworksAttachments") or []:
        if (attachment.get("Network") or {}).get("Spec", {}).get("Name") == network_name:
            for address in attachment.get("Addresses") or []:
                return address.split("/", 1)[0]
    return ""
