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
from traitlets import Bool, Dict, Int, List, Unicode, default

from . import container
from .form import render_form
from .options import OptionError, options_from_form, validate_options
from .progress import ProgressLog, pull_summary


class GPUDockerSpawner(DockerSpawner):
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
    docker_threads = Int(
        8,
        help="Size of the thread pool shared by all spawners for blocking Docker calls, e.g. 8. Stock DockerSpawner uses 1.",
    ).tag(config=True)

    _pool = None
    _progress_log = None
    _start_future = None
    _request = None

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

    # --- the form and the options ---

    @default("options_form")
    def _default_options_form(self):
        if not self.profiles:
            return ""
        return render_form(self.profiles, self.default_profile or self.profiles[0]["name"])

    @default("options_from_form")
    def _default_options_from_form(self):
        return lambda spawner, formdata: options_from_form(formdata)

    def validate_request(self):
        """Check user_options; raise HTTP 400 naming the field. Creates nothing."""
        if not self.profiles:
            raise web.HTTPError(500, "gpulab: no profiles are configured")
        try:
            return validate_options(self.user_options, self.profiles, self.default_profile or self.profiles[0]["name"])
        except OptionError as e:
            raise web.HTTPError(400, f"Invalid spawn option {e}")

    # --- what goes into the container ---

    def get_env(self):
        env = super().get_env()
        gpus = self._request.gpus if self._request else 0
        env.update(
            container.environment(
                login=self.login,
                uid=self.uid,
                gid=self.user_gid,
                home=self.home_dir,
                sudo=self.allow_sudo,
                gpus_visible="all" if gpus else "void",
            )
        )
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
        }
        kwargs.setdefault("working_dir", self.home_dir)
        host = kwargs["host_config"]
        host["Mounts"] = list(host.get("Mounts") or []) + self.gpulab_mounts()
        host.setdefault("ShmSize", profile["shm_size"])
        requests = container.gpu_device_requests(self._request.gpus)
        if requests:
            host["DeviceRequests"] = requests
        return kwargs

    def docker(self, method, *args, **kwargs):
        if method == "create_container":
            kwargs = self.gpulab_create_kwargs(kwargs)
        return super().docker(method, *args, **kwargs)

    # --- start, with progress ---

    async def start(self):
        self._request = self.validate_request()
        self._progress_log = ProgressLog()
        self._start_future = asyncio.ensure_future(self._start())
        return await self._start_future

    async def _start(self):
        log = self._progress_log
        profile = self._request.profile
        self.image = profile["image"]
        if profile.get("mem_limit"):
            self.mem_limit = profile["mem_limit"]
        if profile.get("cpu_limit"):
            self.cpu_limit = profile["cpu_limit"]
        log.emit(5, f"Profile {profile['display_name']}: {self.image}, {self._request.gpus} GPU(s)")
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
            await self.docker("inspect_image", image)
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

    async def stop(self, now=False):
        if not self.object_id:
            # nothing was created (e.g. the spawn was rejected): nothing to stop
            self.clear_state()
            return
        await super().stop(now=now)
