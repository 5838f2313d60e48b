"""GPUDockerSpawner: DockerSpawner plus profiles, persistent homes, datasets and progress.

Glue only: option validation lives in ``options``, container contents in
``container``, the form in ``form``, progress in ``progress``.  Every DockerSpawner
setting keeps working; gpulab's additions are merged into the create call.
"""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from dockerspawner import DockerSpawner
from tornado import web
from traitlets import Any, Bool, Dict, Int, List, Unicode, default, validate

from . import container, runtime_env
from .form import render_form
from .gpus.allocator import GPUsBusy, describe
from .gpus.manager import get_manager, running_filters
from .options import OptionError, options_from_form, validate_options
from .progress import ProgressLog, pull_summary
from .ssh.spawn import SSHSpawnerMixin


class GPUDockerSpawner(SSHSpawnerMixin, DockerSpawner):
    deployment = Unicode(
        "gpulab",
        help="Name of this deployment, e.g. 'gpulab'. Prefixes container and volume names and labels every container (gpulab.deployment).",
    ).tag(config=True)
    profiles = List(
        Dict(),
        help="Allowed environments, e.g. [{'name': 'pytorch', 'image': 'gpulab/pytorch:latest', 'gpus': 1, 'max_gpus': 2, ...}]. Users pick one; nothing else can be launched. Default: none (set from the site file).",
    ).tag(config=True)
    default_profile = Unicode("", help="Profile used when the user does not choose, e.g. 'base'. Default: the first profile.").tag(config=True)
    home_source = Unicode(
        "{prefix}-home-{username}",
        help="Persistent home: a Docker volume name template (default '{prefix}-home-{username}') or an absolute host-path template such as '/data/home/{username}'.",
    ).tag(config=True)
    datasets = List(
        Dict(),
        help="Shared datasets, e.g. [{'name': 'imagenet', 'source': '/data/imagenet', 'target': '/datasets/imagenet', 'mode': 'ro'}]. Default: none.",
    ).tag(config=True)
    scratch_source = Unicode("", help="Optional per-user scratch host-path template, e.g. '/scratch/{username}'. Default: no scratch.").tag(config=True)
    scratch_target = Unicode("/scratch", help="Where scratch is mounted in the container. Default '/scratch'.").tag(config=True)
    allow_sudo = Bool(False, help="Give users passwordless sudo inside their own container. Default: no.").tag(config=True)
    uid_base = Int(20000, help="A user's uid in the container is uid_base + the hub's user id, e.g. 20000 + 7. Stable and unique per user.").tag(config=True)
    user_gid = Int(100, help="Primary gid of container users, e.g. 100 ('users'). Default 100.").tag(config=True)
    gpu_settings = Dict(
        help="The site file's gpus section, e.g. {'devices': 'auto', 'mode': 'exclusive', 'wait': True, 'wait_timeout': 600, 'quota': {'default': 1}}. Default: NVML inventory, exclusive GPUs, waiting on.",
    ).tag(config=True)
    tf_memory_growth = Bool(
        True,
        help="Start containers with TensorFlow GPU memory growth on (TF_FORCE_GPU_ALLOW_GROWTH=true, plus the IPython hook), e.g. False to leave TensorFlow's default of taking the whole card. Default: on.",
    ).tag(config=True)
    jax_preallocate = Bool(
        False,
        help="Let JAX preallocate most of a GPU's memory, e.g. True for JAX's own default. Default: off (XLA_PYTHON_CLIENT_PREALLOCATE=false).",
    ).tag(config=True)
    tensorboard_logdir = Unicode(
        "~/runs",
        help="TensorBoard's log directory at /user/<name>/tensorboard/, e.g. '~/experiments' or '/scratch/tb'. Default '~/runs'; a user may override it.",
    ).tag(config=True)
    docker_threads = Int(
        8,
        help="Size of the thread pool shared by all spawners for blocking Docker calls, e.g. 8. Stock DockerSpawner uses 1.",
    ).tag(config=True)

    user_options = Any(help="What the user asked for (checked: a JSON object, else HTTP 400). Set by the hub, not config.")

    @validate("user_options")
    def _user_options_object(self, proposal):
        # JupyterHub 5 hands any JSON body to this trait; answer a list or a string with 400, not 500
        if proposal.value is None:
            return {}
        if not isinstance(proposal.value, dict):
            raise web.HTTPError(400, f"Invalid spawn options: the body must be a JSON object, got {type(proposal.value).__name__}")
        return proposal.value

    _pool = None
    _progress_log = None
    _start_future = None
    _request = None
    _configured_limits = None
    _image_info = None  # this start's inspect_image result
    gpu_uuids = ()  # what this server holds; persisted in the spawner state

    # --- Docker calls: a bounded pool instead of DockerSpawner's single thread ---

    @property
    def executor(self):
        cls = GPUDockerSpawner
        if cls._pool is None:
            cls._pool = ThreadPoolExecutor(max(1, self.docker_threads), thread_name_prefix="gpulab-docker")
        return cls._pool

    @default("client_kwargs")
    def _default_client_kwargs(self):
        # one HTTP connection per pool thread, so calls do not queue on the socket
        return {"max_pool_size": max(10, self.docker_threads)}

    # --- naming and identity ---

    @default("prefix")
    def _default_prefix(self):
        return self.deployment

    @property
    def login(self):
        return container.unix_name(self.user.name)

    @property
    def uid(self):
        return container.user_uid(self.uid_base, self.user.id)

    @property
    def home_dir(self):
        return f"/home/{self.login}"

    def _render_source(self, template):
        ns = {"username": self.escaped_name, "prefix": self.prefix, "uid": self.uid, "servername": self.escape(self.name or "")}
        return template.format(**ns)

    # --- GPUs ---

    @property
    def gpu_manager(self):
        return get_manager(self.deployment, self.gpu_settings)

    @property
    def holder(self):
        return (self.user.name, self.name or "")

    async def _running_containers(self):
        """Container dicts of this deployment that are (about to be) running."""
        return await self.docker("containers", filters=running_filters(self.deployment))

    async def gpus_synced(self):
        await self.gpu_manager.ensure_synced(self._running_containers)
        return self.gpu_manager

    def release_gpus(self):
        self.gpu_manager.allocator.cancel_waiting(self.holder)
        if self.gpu_manager.allocator.release(self.holder):
            self.log.info("Released GPUs %s of %s", ",".join(self.gpu_uuids), self._log_name)
        self.gpu_uuids = ()

    def load_state(self, state):
        super().load_state(state)
        self.gpu_uuids = tuple(state.get("gpu_uuids", ()))

    def get_state(self):
        state = super().get_state()
        if self.gpu_uuids:
            state["gpu_uuids"] = list(self.gpu_uuids)
        return state

    # --- the form and the options ---

    @default("options_form")
    def _default_options_form(self):
        if not self.profiles:
            return ""

        async def form(spawner):
            manager = await spawner.gpus_synced()
            return render_form(spawner.profiles, spawner.default_profile or spawner.profiles[0]["name"], manager.snapshot())

        return form

    @default("options_from_form")
    def _default_options_from_form(self):
        # JupyterHub calls it as options_from_form(formdata, spawner=self) when it takes `spawner`
        return lambda formdata, spawner=None: options_from_form(formdata)

    def validate_request(self):
        """Check user_options; raise HTTP 400 naming the field. Creates nothing."""
        if not self.profiles:
            raise web.HTTPError(500, "gpulab: no profiles are configured")
        manager = self.gpu_manager
        allocator = manager.allocator
        own = allocator.holdings.get(self.holder)
        try:
            return validate_options(
                self.user_options,
                self.profiles,
                self.default_profile or self.profiles[0]["name"],
                inventory=manager.inventory,
                quota=manager.quota_for(self.user.name, [g.name for g in self.user.groups]),
                held_elsewhere=allocator.held_by_user(self.user.name) - len(own.uuids if own else ()),
            )
        except OptionError as e:
            raise web.HTTPError(400, f"Invalid spawn option {e}")

    # --- what goes into the container ---

    def get_env(self):
        env = super().get_env()
        password_login, sudo = self.ssh_policy()  # the SSH page's admin settings win over the config
        env.update(
            container.environment(
                login=self.login,
                uid=self.uid,
                gid=self.user_gid,
                home=self.home_dir,
                sudo=sudo,
                gpus_visible=",".join(self.gpu_uuids) or "void",
            )
        )
        env.update(
            runtime_env.tool_environment(
                tf_memory_growth=self.tf_memory_growth,
                jax_preallocate=self.jax_preallocate,
                tensorboard_logdir=self.tensorboard_logdir,
                service_prefix=env.get("JUPYTERHUB_SERVICE_PREFIX") or self.user.url,
            )
        )
        env.update(self.ssh_environment(password_login))
        return env

    def gpulab_mounts(self):
        deployment_labels = {"gpulab.deployment": self.deployment, "gpulab.user": self.user.name}
        mounts = [container.home_mount(self._render_source(self.home_source), self.home_dir, volume_labels=deployment_labels)]
        mounts += container.dataset_mounts(self.datasets)
        if self.scratch_source:
            mounts.append(container.home_mount(self._render_source(self.scratch_source), self.scratch_target, volume_labels=deployment_labels))
        return mounts

    def gpulab_create_kwargs(self, kwargs):
        """Merge gpulab's labels, mounts, /dev/shm and GPU request into a create_container call."""
        profile = self._request.profile
        kwargs["labels"] = {
            **(kwargs.get("labels") or {}),
            **container.labels(deployment=self.deployment, username=self.user.name, servername=self.name, profile=profile["name"], uid=self.uid),
            "gpulab.gpus": ",".join(self.gpu_uuids),
        }
        kwargs.setdefault("working_dir", self.home_dir)
        host = kwargs["host_config"]
        host["Mounts"] = list(host.get("Mounts") or []) + self.gpulab_mounts()
        host.setdefault("ShmSize", profile["shm_size"])
        # exactly the allocated GPUs, or none at all (never a request from the admin's extra_host_config)
        host["DeviceRequests"] = container.gpu_device_requests(self.gpu_uuids) or None
        # SSH: the per-user host port and host-key volume
        return self.ssh_create_kwargs(kwargs, {"gpulab.deployment": self.deployment, "gpulab.ssh-host-keys": self.user.name})

    def docker(self, method, *args, **kwargs):
        if method == "create_container":
            kwargs = self.gpulab_create_kwargs(kwargs)
        return super().docker(method, *args, **kwargs)

    # --- start, with progress ---

    async def start(self):
        self._image_info = None
        await self.gpus_synced()  # after a hub restart, know who holds what before judging quotas
        self._request = self.validate_request()
        self._progress_log = ProgressLog()
        self._start_future = asyncio.ensure_future(self._start())
        return await self._start_future

    async def _start(self):
        log = self._progress_log
        profile = self._request.profile
        self.image = profile["image"]
        if self._configured_limits is None:  # what the admin set outside the profiles
            self._configured_limits = (self.mem_limit, self.cpu_limit)
        self.mem_limit = profile.get("mem_limit") or self._configured_limits[0]
        self.cpu_limit = profile.get("cpu_limit") or self._configured_limits[1]
        log.emit(5, f"Profile {profile['display_name']}: {self.image}, {self._request.gpus} GPU(s)")
        await self._acquire_gpus()
        try:
            return await self._start_container()
        except BaseException:
            self.release_gpus()
            raise

    async def _acquire_gpus(self):
        request, log = self._request, self._progress_log
        if not request.gpus:
            self.gpu_uuids = ()
            return
        manager = await self.gpus_synced()
        settings = manager.settings

        def waiting(position, holders):
            who = describe(holders) if settings["show_holders"] else f"{len(holders)} other server(s)"
            log.emit(8, f"Waiting for {request.gpus} GPU(s): position {position} in the queue; held by {who}")

        try:
            uuids = await manager.allocator.acquire(
                self.holder, request.gpus, request.gpu_ids, wait=settings["wait"], timeout=settings["wait_timeout"], on_wait=waiting
            )
        except GPUsBusy as e:
            raise web.HTTPError(409, f"GPUs busy: {e}")
        self.gpu_uuids = tuple(uuids)
        shown = {g.uuid: g for g in manager.inventory}
        log.emit(9, "Allocated GPU " + ", ".join(f"{shown[u].index} ({shown[u].model})" if u in shown else u for u in uuids))

    async def _start_container(self):
        log = self._progress_log
        for path in container.host_dirs_to_prepare(
            self._render_source(self.home_source) if container.is_host_path(self.home_source) else None,
            self._render_source(self.scratch_source) if self.scratch_source else None,
        ):
            await asyncio.wrap_future(self.executor.submit(container.prepare_host_dir, path, self.uid, self.user_gid))
        ip_port = await super().start()
        log.emit(90, f"Container {self.object_name} is running; waiting for the Jupyter server to answer")
        return ip_port

    async def pull_image(self, image):
        log = self._progress_log
        try:
            self._image_info = await self.docker("inspect_image", image)
            log.emit(15, f"Image {image} is present")
            return
        except Exception as e:
            if getattr(getattr(e, "response", None), "status_code", None) != 404:
                raise
        if self.pull_policy in ("never", "skip"):
            raise web.HTTPError(500, f"Image {image} is not on this host and pulling is disabled")
        log.emit(10, f"Pulling image {image}")
        repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
        await asyncio.wrap_future(self.executor.submit(self._pull_streaming, repo, tag, log))
        log.emit(40, f"Pulled image {image}")

    def _pull_streaming(self, repo, tag, log):
        layers = {}
        last = 0.0
        for event in self.client.pull(repo, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise RuntimeError(f"pull of {repo}:{tag} failed: {event['error']}")
            detail = event.get("progressDetail") or {}
            if event.get("id") and detail.get("total"):
                layers[event["id"]] = (detail.get("current", 0), detail["total"])
            now = time.monotonic()
            if layers and now - last > 1:
                last = now
                done, count, current, total = pull_summary(layers)
                pct = 10 + int(30 * current / total) if total else 10
                log.emit_threadsafe(pct, f"Pulling {repo}:{tag}: {done}/{count} layers, {current / 1e6:.0f}/{total / 1e6:.0f} MB")

    async def get_command(self):
        # the image was inspected a moment ago (pull_image): don't ask Docker again for its CMD
        if self.cmd or not self._image_info:
            return await super().get_command()
        return self._image_info["Config"]["Cmd"] + self.get_args()

    async def create_object(self):
        self._progress_log.emit(50, "Creating container")
        return await super().create_object()

    async def start_object(self):
        self._progress_log.emit(70, "Starting container")
        return await super().start_object()

    async def progress(self):
        if self._progress_log is None:
            return
        async for event in self._progress_log.follow(self._start_future):
            yield event

    async def poll(self):
        status = await super().poll()
        if status is not None and self.gpu_uuids:
            self.release_gpus()  # the container died: its GPUs are free again
        return status

    async def stop(self, now=False):
        try:
            if self.object_id:
                await super().stop(now=now)
            else:
                # nothing was created (e.g. the spawn was rejected or cancelled while queued)
                self.clear_state()
        finally:
            self.release_gpus()
