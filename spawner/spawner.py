"""GPUDockerSpawner: DockerSpawner plus profiles, GPUs, persistent homes, datasets, SSH and progress.

A start is one pipeline (see :mod:`.spec`):

    validate the request -> acquire GPUs -> pull the image -> build one frozen spec
    -> apply it in one place (:mod:`.dockerapply`) -> DockerSpawner creates and starts

Nothing is intercepted by method name and no trait is changed during a start (except
``image`` when no profiles are configured, exactly as DockerSpawner records the user's choice).
gpulab's own settings are declared in :mod:`.config`. With no ``profiles``, the spawner behaves as DockerSpawner (``image``, ``allowed_images``, the
``image`` option and form); with profiles, those settings stop the hub at startup.
"""

import asyncio
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

import docker
from dockerspawner import DockerSpawner
from tornado import web
from traitlets import Any, default, observe, validate

from . import contract, dockerapply, readiness, settings
from . import spec as specs
from .config import GPULabSettings
from .container import ForeignDirectory, prepare_host_dir, unix_name, user_uid
from .form import render_form
from .gpus.allocator import GPUsBusy, QuotaExceeded, describe
from .gpus.manager import get_manager
from .gpus.metrics import Metrics
from .gpus.sources import HostSource
from .options import OptionError, SpawnRequest, options_from_form, validate_options
from .progress import ProgressLog, pull_summary
from .ssh.spawn import host_port
from .ssh.store import SSHStore
from .startgate import GATES, width_for

PROFILE_FIELDS = ("image", "mem_limit", "cpu_limit")  # DockerSpawner traits a profile also sets


class GPUDockerSpawner(GPULabSettings, DockerSpawner):
    user_options = Any(help="What the user asked for (a JSON object, else HTTP 400). Set by the hub, not config.")

    # --- validation of what an admin may set by hand (the same checks as the site file) ---

    @validate("user_options")
    def _user_options_object(self, proposal):
        # JupyterHub 5 hands any JSON body to this trait: answer a list or a string with 400, not 500
        if proposal.value is None:
            return {}
        if not isinstance(proposal.value, dict):
            raise web.HTTPError(400, f"Invalid spawn options: the body must be a JSON object, got {type(proposal.value).__name__}")
        return proposal.value

    def check_settings(self):
        """Cross-setting checks, run once when the hub starts (``gpulab.app``) and by ``gpulab check``."""
        settings.check(
            type(self).__name__,
            profiles=self.profiles,
            image_configured=self._configured("image"),
            allowed_images=self.allowed_images,
            environment=self.environment,
            extra_create_kwargs=self.extra_create_kwargs,
            extra_host_config=self.extra_host_config,
            volume_targets=[v["bind"] if isinstance(v, dict) else v for v in {**self.volumes, **self.read_only_volumes}.values()],
            mount_targets=[m.get("target", "") if isinstance(m, dict) else getattr(m, "target", "") for m in self.mounts],
        )

    def _configured(self, name):
        """True when the admin set trait ``name`` in configuration (for this class or a parent)."""
        for cls in type(self).mro():
            section = dict.get(self.config, cls.__name__)
            if section is not None and name in section:
                return True
        return False

    @observe(*list(DockerSpawner._deprecated_aliases))
    def _deprecated_trait(self, change):
        """DockerSpawner's renamed settings: warn, naming the section the admin wrote, and forward."""
        new, version = self._deprecated_aliases[change.name]
        if getattr(self, new) != change.new:
            section = next(
                (cls.__name__ for cls in type(self).mro() if change.name in (dict.get(self.config, cls.__name__) or {})), type(self).__name__
            )
            self.log.warning(f"{section}.{change.name} is deprecated in DockerSpawner {version}, use {section}.{new} instead")
            setattr(self, new, change.new)

    @observe("image")
    def _image_changed(self, change):
        # DockerSpawner re-renders the object name when the image changes; a spawner without a
        # user (the settings check at startup) has no name to render
        if self.user is not None:
            self.object_name = self._object_name_default()

    # --- Docker calls: a bounded pool instead of DockerSpawner's single thread ---

    _pool = None

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

    # --- identity ---

    @default("prefix")
    def _default_prefix(self):
        return self.deployment

    def identity(self):
        user_id = self.user.id if getattr(self.user, "id", None) is not None else 0
        login = unix_name(self.user.name)
        return specs.Identity(
            username=self.user.name,
            user_id=user_id,
            server_name=self.name or "",
            login=login,
            uid=user_uid(self.uid_base, user_id),
            gid=self.user_gid,
            escaped_username=self.escaped_name,
            escaped_server_name=self.escape(self.name or ""),
        )

    # --- GPUs ---

    gpu_uuids = ()  # what this server holds; kept in the spawner state

    def gpu_source(self):
        """Where the GPUs and their holders are read (this host's; a Swarm's in swarm mode)."""
        return HostSource(self.deployment, self.gpu_settings, api=self.client)

    @property
    def gpu_manager(self):
        return get_manager(self.deployment, self.gpu_settings, self.gpu_source())

    @property
    def holder(self):
        return (self.user.name, self.name or "")

    async def gpus_synced(self):
        await self.gpu_manager.ensure_synced()
        return self.gpu_manager

    def release_gpus(self):
        allocator = self.gpu_manager.allocator
        allocator.cancel_waiting(self.holder)
        if allocator.release(self.holder):
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
            return super()._default_options_form()  # DockerSpawner's image form

        async def form(spawner):
            manager = await spawner.gpus_synced()
            unavailable = {}
            for p in spawner.profiles:
                reason = await spawner.image_unavailable(p["image"])
                if reason:
                    unavailable[p["name"]] = reason
            nodes = spawner.option_limits().get("nodes")
            saves = list(spawner._saves.values()) if await spawner.user_saves() else None
            return render_form(
                spawner.profiles,
                spawner.default_profile or spawner.profiles[0]["name"],
                manager.snapshot(),
                unavailable,
                nodes=nodes,
                saves=saves,
            )

        return form

    @default("disable_user_config")
    def _default_disable_user_config(self):
        # users must not be able to change their own single-user server (config or extensions
        # under their home): it serves pages on a shared origin (JupyterHub's security model)
        return True

    def options_from_query(self, query_data):
        """A plain link (``GET /hub/spawn?gpus=2``) never starts a server: options come from the form."""
        raise web.HTTPError(
            400, "Start servers from the spawn form; a link cannot choose spawn options (" + ", ".join(sorted(query_data))[:100] + ")"
        )

    @default("options_from_form")
    def _default_options_from_form(self):
        # JupyterHub calls it as options_from_form(formdata, spawner=self) when it takes `spawner`
        return lambda formdata, spawner=None: options_from_form(formdata)

    async def validate_request(self):
        """Check ``user_options``; raise HTTP 400 naming the field. Creates nothing."""
        options = self.user_options or {}
        if not self.profiles:
            # DockerSpawner's behaviour: an optional `image` checked against allowed_images
            unknown = sorted(str(k)[:100] for k in options if k != "image")
            if unknown:
                raise web.HTTPError(400, f"Invalid spawn option {unknown[0]}: unknown option (allowed: image; GPUs need profiles)")
            if options.get("image"):
                self.image = await self.check_allowed(options["image"])
            profile = {"name": "", "display_name": self.image, "image": self.image, "gpus": 0, "max_gpus": 0}
            return SpawnRequest(profile=profile, gpus=0)
        manager = self.gpu_manager
        saves = await self.user_saves() if options.get("save") else None
        try:
            request = validate_options(
                options,
                self.profiles,
                self.default_profile or self.profiles[0]["name"],
                inventory=manager.inventory,
                saves=saves,
                **self.option_limits(),
            )
        except OptionError as e:
            raise web.HTTPError(400, f"Invalid spawn option {e}")
        where = self.gpu_filter(request)
        if where is not None and request.gpus > manager.allocator.largest_request(where):
            largest = manager.allocator.largest_request(where)
            raise web.HTTPError(
                400, f"Invalid spawn option gpus: {request.gpus} requested but no GPU server that the profile allows has more than {largest}"
            )
        reason = await self.image_unavailable(self.limits(request).image)
        if reason:
            raise web.HTTPError(400, f"Profile {request.profile['name']!r} is unavailable: {reason}")
        return request

    async def user_saves(self):
        """{tag: profile} of this user's saved environments (:mod:`.saves`)."""
        from . import saves

        store = saves.backend(self.saves_settings) if self.saves_settings else saves.LocalSaves(self.deployment)
        rows = await asyncio.wrap_future(self.executor.submit(store.list_saves, self.user.name))
        self._saves = {r["tag"]: r for r in rows}
        return {tag: r["profile"] for tag, r in self._saves.items()}

    def option_limits(self):
        """Extra limits for the option check (a Swarm's nodes; nothing on one host)."""
        return {}

    def gpu_filter(self, request):
        """Which GPUs may serve the request (None: any); a Swarm narrows it by placement constraints."""
        return None

    def swarm_gpus(self, request):
        return 0  # on one host the spec names the GPUs themselves

    def spec_network(self):
        return self.network_name

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

    def limits(self, request):
        """The image and limits of this start (precedence rule 2 and 3 of :mod:`.spec`)."""
        if not self.profiles:
            return specs.Limits(image=self.image, mem_limit=self.mem_limit, cpu_limit=self.cpu_limit)
        configured = {name: getattr(self, name) for name in PROFILE_FIELDS if self._configured(name)}
        limits = specs.resolve_limits(request.profile, configured)
        if getattr(request, "save", ""):
            limits = dataclasses.replace(limits, image=self._saves[request.save]["image"])  # the user's own saved image
        return limits

    # --- the spec ---

    def ssh_settings(self, identity):
        port = 0
        if self.ssh_enabled and self.ssh_port_base:
            try:
                port = host_port(self.ssh_port_base, identity.user_id)
            except ValueError as e:
                raise web.HTTPError(500, str(e))
        return specs.SSHSettings(
            enabled=self.ssh_enabled,
            activity_interval=self.ssh_activity_interval,
            host_address=self.ssh_host_address,
            host_port=port,
            host_key_volume=self.ssh_host_key_volume,
            tcp_forwarding=self.ssh_tcp_forwarding,
            x11_forwarding=self.ssh_x11_forwarding,
        )

    def policy(self):
        """(password_login, sudo): the SSH page's admin settings win over the configured ones.

        sudo is granted only when users have their own origins (per-user subdomains): a user who
        is root in their container can change their server, which must then not share the hub's.
        """
        if self.ssh_store_path:
            password_login, sudo = SSHStore(self.ssh_store_path).policy(self.ssh_password_login, self.allow_sudo)
        else:
            password_login, sudo = self.ssh_password_login, self.allow_sudo
        if sudo and not (getattr(self.user, "settings", None) or {}).get("subdomain_host"):
            self.log.warning("sudo is on but users share the hub's origin (no subdomain_host): %s starts without sudo", self._log_name)
            sudo = False
        return password_login, sudo

    async def build_spec(self, request, gpu_uuids, command):
        identity = self.identity()
        password_login, sudo = self.policy()
        base_env = self.get_env()
        return specs.build_spec(
            deployment=self.deployment,
            name=self.object_name,
            identity=identity,
            profile_name=request.profile["name"],
            limits=self.limits(request),
            base_env=base_env,
            command=command,
            storage=specs.Storage(
                home=self.home_source, datasets=tuple(self.datasets), scratch=self.scratch_source, scratch_target=self.scratch_target
            ),
            ssh=self.ssh_settings(identity),
            tools=specs.Tools(self.tf_memory_growth, self.jax_preallocate, self.tensorboard_logdir),
            sudo=sudo,
            password_login=password_login,
            gpu_uuids=() if self.swarm_gpus(request) else gpu_uuids,  # on a Swarm, Swarm names the GPUs
            swarm_gpus=self.swarm_gpus(request),
            network=self.spec_network(),
            hardening=specs.Hardening(self.pids_limit, self.log_max_size, self.log_max_files),
            prefix=self.prefix,
            service_prefix=base_env.get("JUPYTERHUB_SERVICE_PREFIX") or self.user.url,
        )

    async def current_spec(self):
        """The spec of this start, or one built now from the current state (for hooks called
        outside ``start()``, as DockerSpawner allows)."""
        if self._spec is not None:
            return self._spec
        request = await self.validate_request()
        image = self.limits(request).image
        return await self.build_spec(request, self.gpu_uuids, await self._command_for(image))

    # --- start, with progress ---

    _progress = None
    _start_future = None
    _spec = None
    _request = None
    node_name = ""  # the node the server runs on ("" on one host)
    _image_info = None  # {image: inspect_image result} of this start

    def _emit(self, progress, message):
        if self._progress is not None:
            self._progress.emit(progress, message)

    async def start(self):
        self._spec = None
        self._image_info = {}
        self._progress = ProgressLog()  # before any await: the hub may ask for progress at once
        self._start_future = asyncio.ensure_future(self._validated_start())
        return await self._start_future

    async def _validated_start(self):
        await self.gpus_synced()  # after a hub restart, know who holds what first
        request = self._request = await self.validate_request()  # HTTP 400 before anything exists
        began = time.monotonic()
        result = await self._start(request)
        Metrics.shared().spawned(request.profile["name"], time.monotonic() - began)
        return result

    async def _start(self, request):
        limits = self.limits(request)
        self._emit(5, f"Profile {request.profile['display_name']}: {limits.image}, {request.gpus} GPU(s)")
        uuids = await self._acquire_gpus(request)
        try:
            try:
                await self.pull_image(limits.image)
            except docker.errors.NotFound:
                raise web.HTTPError(
                    400, f"Image {limits.image} is not on this host and pull_policy is {self.pull_policy}: an admin must build or pull it"
                )
            except docker.errors.APIError as e:
                raise web.HTTPError(503, f"Image {limits.image} could not be pulled: {e.explanation or e}")
            spec = self._spec = await self.build_spec(request, uuids, await self._command_for(limits.image))
            for path, owner in specs.host_dirs(spec):
                uid, gid = (spec.identity.uid, spec.identity.gid) if owner == "user" else (0, 0)
                try:
                    await asyncio.wrap_future(self.executor.submit(prepare_host_dir, path, uid, gid))
                except ForeignDirectory as e:
                    raise web.HTTPError(409, f"Your storage cannot be used: {e}")
            gate = GATES.get(self.node_name, await self.start_width())
            async with gate.place(on_wait=self._waiting_to_start):
                await self._create_or_reuse(spec)
                self._emit(70, "Starting container")
                await self.start_object()
                if self.post_start_cmd:
                    await self.post_start_exec()
                ip, port = await self.get_ip_and_port()
                self._emit(90, f"Container {self.object_name} is running; waiting for the Jupyter server to answer")
                await self._wait_answering(ip, port)
            return ip, port
        except BaseException:
            self.release_gpus()
            raise

    # --- admission and readiness (see startgate and readiness) ---

    _host_cpus = None

    async def start_width(self):
        """Places in this host's start gate (:func:`startgate.width_for`); the CPU count is read
        from Docker once per hub process."""
        if self.concurrent_starts <= 0 and GPUDockerSpawner._host_cpus is None:
            GPUDockerSpawner._host_cpus = (await self.docker("info")).get("NCPU") or 1
        return width_for(GPUDockerSpawner._host_cpus or 1, self.concurrent_starts)

    def _waiting_to_start(self, position, starting):
        where = f" on {self.node_name}" if self.node_name else ""
        self._emit(45, f"Waiting to start: place {position} in the queue ({starting} server(s) starting now{where})")

    async def _wait_answering(self, ip, port):
        if self.internal_ssl:
            return  # the hub checks with its own certificates
        if not self.profiles:
            return  # DockerSpawner mode: start() returns once the container runs, as DockerSpawner's does
        base_url = self.server.base_url if self.server else "/"
        # followed from now: the container may be gone (auto-removed) when we ask why (a Swarm
        # service's task logs are not followed; its poll says why a task ended)
        log = readiness.LogTail(self.client, self.object_id if self.object_type == "container" else None)
        try:
            await readiness.wait_answering(f"http://{ip}:{port}{base_url}api", self.http_timeout, alive=self._why_not_running)
        except readiness.ServerExited as e:
            raise web.HTTPError(500, f"The server stopped before it answered ({e}){await log.text()}")
        except TimeoutError:
            raise web.HTTPError(500, f"The server did not answer within {self.http_timeout} s (hub.start_timeout){await log.text()}")
        finally:
            log.close()

    async def _why_not_running(self):
        status = await self.poll()
        if status is None:
            return None
        # DockerSpawner's poll says 0 for a container that is gone (auto-removed once it exited)
        return "exit status unknown: the container exited and was removed" if status == 0 else f"exit status {status}"

    async def _create_or_reuse(self, spec):
        obj = await self.get_object()
        if obj and (self.remove or contract.parse_gpu_list(obj["Config"]["Labels"].get(contract.L_GPUS)) != spec.gpu_uuids):
            self.log.info("Removing %s %s before the start (remove=%s, GPUs changed)", self.object_type, self.object_name, self.remove)
            await self.remove_object()
            obj = None
        if obj is None:
            obj = await self.create_object()
            self.object_id = obj[self.object_id_key]
            self.log.info("Created %s %s (id: %s) from image %s", self.object_type, self.object_name, self.object_id[:7], spec.image)
            return
        self.log.info("Found existing %s %s (id: %s)", self.object_type, self.object_name, self.object_id[:7])
        for line in obj["Config"]["Env"]:  # the running server keeps its own API token
            if line.startswith("JUPYTERHUB_API_TOKEN="):
                self.api_token = line.split("=", 1)[1]
                break

    async def _acquire_gpus(self, request):
        if not request.gpus:
            self.gpu_uuids = ()
            return ()
        manager = await self.gpus_synced()
        gpu = manager.settings

        def waiting(position, holders):
            who = describe(holders) if gpu["show_holders"] else f"{len(holders)} other server(s)"
            self._emit(8, f"Waiting for {request.gpus} GPU(s): position {position} in the queue; held by {who}")

        quota = manager.quota_for(self.user.name, [g.name for g in self.user.groups])
        asked = time.monotonic()
        try:
            uuids = await manager.allocator.acquire(
                self.holder,
                request.gpus,
                request.gpu_ids,
                where=self.gpu_filter(request),
                quota=quota,
                wait=gpu["wait"],
                timeout=gpu["wait_timeout"],
                on_wait=waiting,
            )
        except QuotaExceeded as e:
            raise web.HTTPError(400, f"Invalid spawn option gpus: {e}")
        except GPUsBusy as e:
            raise web.HTTPError(409, f"GPUs busy: {e}")
        Metrics.shared().waited(time.monotonic() - asked)  # 0 when GPUs were free
        self.gpu_uuids = tuple(uuids)
        self.node_name = manager.allocator.node_of(self.holder)
        shown = {g.uuid: g for g in manager.inventory}
        on = f" on {self.node_name}" if self.node_name else ""
        self._emit(9, f"Allocated {len(uuids)} GPU(s){on}: " + ", ".join(f"{shown[u].index} ({shown[u].model})" if u in shown else u for u in uuids))
        return self.gpu_uuids

    # --- DockerSpawner's hooks, fed from the spec (callable outside start() too) ---

    async def _command_for(self, image):
        if self.cmd:
            return list(self.cmd) + self.get_args()
        info = (self._image_info or {}).get(image) or await self.docker("inspect_image", image)
        return list(info["Config"]["Cmd"] or []) + self.get_args()

    async def get_command(self):
        return list((await self.current_spec()).command)

    async def create_object(self):
        spec = await self.current_spec()
        self._emit(50, "Creating container")
        extra_create = await self._evaluated(self.extra_create_kwargs)
        extra_host = await self._evaluated(self.extra_host_config)
        create, host = dockerapply.create_arguments(
            spec,
            port=self.port,
            remove=self.remove,
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

    async def _evaluated(self, value):
        value = self._eval_if_callable(value)
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        return self._render_templates(value or {})

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
                self._progress.emit_threadsafe(pct, f"Pulling {repo}:{tag}: {done}/{count} layers, {current / 1e6:.0f}/{total / 1e6:.0f} MB")

    async def progress(self):
        if self._progress is None:
            return
        async for event in self._progress.follow(self._start_future):
            yield event

    async def poll(self):
        status = await super().poll()
        if status is not None and self.gpu_uuids:
            self.release_gpus()  # the container died: its GPUs are free again
        return status

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
