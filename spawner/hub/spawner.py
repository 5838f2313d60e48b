"""The spawner base both backends extend: DockerSpawner plus profiles, GPUs, persistent homes,
datasets, SSH and progress. A start is one pipeline (see :mod:`gpulab.core.spec`):

    validate the request -> acquire GPUs -> the image -> build one frozen spec
    -> wait for a start place -> the backend creates and starts it -> wait until it answers

Each backend's spawner (``gpulab.backends.docker.spawner.GPUDockerSpawner`` on one host,
``gpulab.backends.swarm.spawner.GPUSwarmSpawner`` on a Swarm) renders the spec and talks to its
engine; everything else is here, once. What the hub shares between spawners (the GPU table, the
start gates, saves, the Docker thread pool, metrics) is the :class:`~.deployment.Deployment`,
reached as ``self.lab``. Nothing is intercepted by method name and no trait is changed during a
start (except ``image`` when no profiles are configured, exactly as DockerSpawner records the
user's choice). With no ``profiles``, the spawner behaves as DockerSpawner (``image``,
``allowed_images``, the ``image`` option and form); with profiles, those settings stop the hub at
startup.
"""

import asyncio
import dataclasses
import os
import time

import requests
from dockerspawner import DockerSpawner
from jupyterhub import orm
from jupyterhub.utils import maybe_future
from traitlets import Any, default, observe, validate

from ..core import contract, gpujobs
from ..core import identity as ids
from ..core import spec as specs
from ..core.gpus.allocator import GPUsBusy, QuotaExceeded, describe
from ..core.identity import unix_name
from ..core.imagefacts import NO_CUDA, without_cuda
from ..core.options import OptionError, SpawnRequest, options_from_form, validate_options
from ..core.progress import ProgressLog
from ..core.ssh.ports import host_port
from . import crosscheck, readiness
from .deployment import Deployment
from .form import render_form
from .hostdirs import ForeignDirectory, prepare_host_dir
from .refusal import refused
from .sshstore import SSHStore
from .traits import GPULabSettings

ENGINE_GONE = (
    "The container engine stopped answering during the start (it may be restarting, e.g. for an "
    "upgrade): this start did not finish and holds no GPUs. Start again in a minute."
)

PROFILE_FIELDS = ("image", "mem_limit", "cpu_limit")  # DockerSpawner traits a profile also sets


class GPULabSpawner(GPULabSettings, DockerSpawner):
    backend = None  # the backend's descriptor (gpulab.backends), set by each backend's spawner

    user_options = Any(
        help="What the user asked for (a JSON object, else HTTP 400). Set by the hub, not config."
    )

    # --- validation of what an admin may set by hand (the same checks as the site file) ---

    @validate("user_options")
    def _user_options_object(self, proposal):
        # JupyterHub 5 hands any JSON body to this trait: answer a list or a string with 400, not 500
        if proposal.value is None:
            return {}
        if not isinstance(proposal.value, dict):
            raise refused(
                400,
                f"Invalid spawn options: the body must be a JSON object, got {type(proposal.value).__name__}",
            )
        return proposal.value

    def check_settings(self):
        """Cross-setting checks, run once when the hub starts (``gpulab.hub.app``) and by ``gpulab check``."""
        crosscheck.check(
            type(self).__name__,
            profiles=self.profiles,
            image_configured=self._configured("image"),
            allowed_images=self.allowed_images,
            environment=self.environment,
            extra_create_kwargs=self.extra_create_kwargs,
            extra_host_config=self.extra_host_config,
            volume_targets=[
                v["bind"] if isinstance(v, dict) else v
                for v in {**self.volumes, **self.read_only_volumes}.values()
            ],
            mount_targets=[
                m.get("target", "") if isinstance(m, dict) else getattr(m, "target", "")
                for m in self.mounts
            ],
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
                (
                    cls.__name__
                    for cls in type(self).mro()
                    if change.name in (dict.get(self.config, cls.__name__) or {})
                ),
                type(self).__name__,
            )
            self.log.warning(
                f"{section}.{change.name} is deprecated in DockerSpawner {version}, use {section}.{new} instead"
            )
            setattr(self, new, change.new)

    @observe("image")
    def _image_changed(self, change):
        # DockerSpawner re-renders the object name when the image changes; a spawner without a
        # user (the settings check at startup) has no name to render
        if self.user is not None:
            self.object_name = self._object_name_default()

    # --- what the hub shares between spawners ---

    @property
    def lab(self):
        """The hub's :class:`~.deployment.Deployment` (the GPU table, start gates, saves, ...)."""
        return Deployment.of(self)

    @property
    def executor(self):
        """Docker calls run on the deployment's bounded pool instead of DockerSpawner's single thread."""
        return self.lab.executor

    @default("client_kwargs")
    def _default_client_kwargs(self):
        # one HTTP connection per pool thread, so calls do not queue on the socket
        return {"max_pool_size": max(10, self.docker_threads)}

    # --- identity ---

    @default("prefix")
    def _default_prefix(self):
        return self.deployment

    def login_ids(self):
        """The uid and gid the lab's sign-in service named at this user's last login (users.uid_source: claim)."""
        info = getattr(self.user, "user_info", None) or {}
        return info.get(ids.INFO_KEY) or {}

    def user_ids(self, user_id=None):
        """(uid, gid) by the site's ``users.uid_source`` (:func:`gpulab.core.identity.resolve`);
        UidError says why there is none."""
        if user_id is None:
            user_id = self.user.id if getattr(self.user, "id", None) is not None else 0
        return ids.resolve(
            self.uid_source,
            uid_base=self.uid_base,
            gid=self.user_gid,
            user_id=user_id,
            username=self.user.name,
            info=self.login_ids() if self.uid_source == "claim" else None,
            uid_map=self.uid_map,
            claim=self.uid_claim,
        )

    def check_ids(self):
        """HTTP 400 before anything is made when this user has no uid, or another user has it."""
        try:
            uid, _ = self.user_ids()
        except ids.UidError as e:
            raise refused(400, f"Cannot start: {e}") from None
        if self.uid_source == "claim":
            # the account that had the uid first keeps it (a directory that gives two people one
            # uid is the directory's mistake; the newer account waits until the admin fixes it)
            db = getattr(self.user, "db", None)
            older = db.query(orm.User).filter(orm.User.id < self.user.id) if db is not None else ()
            for other in older:
                theirs = ((getattr(other, "user_info", None) or {}).get(ids.INFO_KEY) or {}).get(
                    "uid"
                )
                if theirs == uid:
                    self.log.warning(
                        "gpulab: %s and %s both have uid %s from the sign-in service",
                        self.user.name,
                        other.name,
                        uid,
                    )
                    raise refused(
                        400,
                        f"Cannot start: uid {uid} (from the sign-in service) is also another, older "
                        "account's: you would own each other's files; the admin must fix the directory",
                    )

    def identity(self):
        user_id = self.user.id if getattr(self.user, "id", None) is not None else 0
        login = unix_name(self.user.name)
        uid, gid = self.user_ids(user_id)
        return specs.Identity(
            username=self.user.name,
            user_id=user_id,
            server_name=self.name or "",
            login=login,
            uid=uid,
            gid=gid,
            escaped_username=self.escaped_name,
            escaped_server_name=self.escape(self.name or ""),
        )

    # --- GPUs ---

    gpu_uuids = ()  # what this server holds; kept in the spawner state

    @property
    def gpu_manager(self):
        return self.lab.gpus

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

    running_profile = (
        ""  # the profile the server runs, kept in the state (also when none was named)
    )

    def load_state(self, state):
        super().load_state(state)
        # a start that returned left its container's id in the database; one that had not when
        # the hub stopped left none (see note_lost_start)
        self._start_returned = bool(getattr(self, "object_id", ""))
        self.gpu_uuids = tuple(state.get("gpu_uuids", ()))
        self.running_profile = state.get("profile", "")

    def get_state(self):
        state = super().get_state()
        if self.gpu_uuids:
            state["gpu_uuids"] = list(self.gpu_uuids)
        if self.running_profile:
            state["profile"] = self.running_profile
        return state

    def clear_state(self):
        super().clear_state()
        self.running_profile = ""

    _start_returned = False  # a state with a container's id says True (load_state)
    _not_running_at_startup = False  # the hub's startup check found it not running (poll)

    async def poll(self):
        status = await super().poll()
        if status is not None and getattr(self, "_check_pending", False):
            self._not_running_at_startup = True  # JupyterHub marks it stopped next
        return status

    async def run_post_stop_hook(self):
        if self._not_running_at_startup:
            self._not_running_at_startup = False
            await self._stopped_at_startup()
        return await maybe_future(super().run_post_stop_hook())

    async def _stopped_at_startup(self):
        """JupyterHub, starting, found this server in its database but not running, and marked it
        stopped without calling stop(): what the dead hub left is cleared here. A container made
        but never started (the hub died between the two) is removed, so it holds no GPUs in the
        table rebuilt from the containers; and a start that had never returned (waiting for GPUs
        or for its place, or still starting) is told to its user (the notices API's
        ``lost_starts``) instead of the server simply being gone."""
        if self.object_id:
            try:
                await self.remove_object()
            except Exception as e:
                self.log.warning("gpulab: %s: leftover not removed: %s", self._log_name, e)
            else:
                self.object_id = ""
        self.release_gpus()
        if not self._start_returned:
            self.note_lost_start()

    def note_lost_start(self):
        """Tell the user that this server's start ended with the hub (see _stopped_at_startup)."""
        options = self.user_options or {}
        profile = next(
            (p for p in self.profiles if p["name"] == options.get("profile")),
            next((p for p in self.profiles if p["name"] == self.default_profile), None),
        )
        gpus = options.get("gpus", (profile or {}).get("gpus", 0))
        doing = f"waiting for {gpus} GPU(s) or starting" if gpus else "starting"
        where = f"Your server {self.name!r}" if self.name else "Your server"
        message = (
            f"{where} was still {doing} when the hub restarted; it was not started: start it again"
        )
        self.log.warning("gpulab: %s: a start lost to the hub's restart", self._log_name)
        self.lab.lose_start(self.user.name, self.name or "", message)

    @property
    def profile_name(self):
        """The profile this server runs: what its start chose (a save's own profile, or the
        default when none was named); for a server started before gpulab kept it, what its
        options name."""
        if self.running_profile:
            return self.running_profile
        return (
            (self.user_options or {}).get("profile")
            or self.default_profile
            or (self.profiles[0]["name"] if self.profiles else "")
        )

    def profile_image(self, name):
        """The image a profile starts (where the engine pulls it from)."""
        profile = next((p for p in self.profiles if p["name"] == name), None)
        if profile is None:
            raise refused(400, f"{name!r} is not a profile of this hub")
        return self.limits(SpawnRequest(profile=profile, gpus=0)).image

    def gpu_grant(self, request, uuids):
        """The spec's :class:`~gpulab.core.spec.GPUGrant` for the GPUs the allocator gave (a
        backend that lets its engine pick the devices counts them instead)."""
        return specs.GPUGrant.devices(uuids)

    # --- the form and the options ---

    @default("options_form")
    def _default_options_form(self):
        if not self.profiles:
            return super()._default_options_form()  # DockerSpawner's image form

        async def form(spawner):
            manager = await spawner.gpus_synced()
            unavailable, limited = {}, {}
            for p in spawner.profiles:
                reason = await spawner.image_unavailable(p["image"])
                facts = None if reason else await spawner.image_facts(p["image"])
                if facts and facts.starts:
                    reason = facts.starts
                if reason:
                    unavailable[p["name"]] = reason
                else:
                    limited[p["name"]] = await spawner.image_limits(p["image"], facts)
            nodes = spawner.option_limits().get("nodes")
            saves = list(spawner._saves.values()) if await spawner.user_saves() else None
            return render_form(
                spawner.profiles,
                spawner.default_profile or spawner.profiles[0]["name"],
                manager.snapshot(),
                unavailable,
                nodes=nodes,
                saves=saves,
                limited=limited,
            )

        return form

    @default("disable_user_config")
    def _default_disable_user_config(self):
        # users must not be able to change their own single-user server (config or extensions
        # under their home): it serves pages on a shared origin (JupyterHub's security model)
        return True

    def options_from_query(self, query_data):
        """A plain link (``GET /hub/spawn?gpus=2``) never starts a server: options come from the form."""
        raise refused(
            400,
            "Start servers from the spawn form; a link cannot choose spawn options ("
            + ", ".join(sorted(query_data))[:100]
            + ")",
        )

    @default("apply_user_options")
    def _default_apply_user_options(self):
        # every option is read and checked in start() (validate_request: a 400 naming it before
        # anything exists); JupyterHub would otherwise log each spawn's options as "unhandled"
        return lambda spawner, user_options: None

    @default("options_from_form")
    def _default_options_from_form(self):
        # JupyterHub calls it as options_from_form(formdata, spawner=self) when it takes `spawner`
        return lambda formdata, spawner=None: options_from_form(formdata)

    async def validate_request(self):
        """Check ``user_options``; raise HTTP 400 naming the field. Creates nothing."""
        options = self.user_options or {}
        self.check_ids()
        if not self.profiles:
            # DockerSpawner's behaviour: an optional `image` checked against allowed_images; any
            # other option is ignored, as DockerSpawner ignores it (with profiles, a 400 names it)
            unknown = sorted(str(k)[:100] for k in options if k != "image")
            if unknown:
                self.log.info(
                    "gpulab: %s: spawn options %s ignored (no profiles: only `image` is read, as "
                    "DockerSpawner does)",
                    self._log_name,
                    ", ".join(unknown),
                )
            if options.get("image"):
                self.image = await self.check_allowed(options["image"])
            profile = {
                "name": "",
                "display_name": self.image,
                "image": self.image,
                "gpus": 0,
                "max_gpus": 0,
            }
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
            raise refused(400, f"Invalid spawn option {e}")
        self.check_request(request)
        where = self.gpu_filter(request)
        if where is not None and request.gpus > manager.allocator.largest_request(where):
            largest = manager.allocator.largest_request(where)
            raise refused(
                400,
                f"Invalid spawn option gpus: {request.gpus} requested but no GPU server that the profile allows has more than {largest}",
            )
        save = self._saves.get(getattr(request, "save", "")) if saves else None
        if save and save.get("sudo", True) and not self.policy()[1]:
            raise refused(
                400,
                f"Invalid spawn option save: {request.save} was saved while sudo was allowed and sudo "
                "is off now; what ran as root then could run as root again: start from the profile "
                "(your home is kept) or ask an admin",
            )
        reason = await self.image_unavailable(self.limits(request).image)
        if reason:
            raise refused(400, f"Profile {request.profile['name']!r} is unavailable: {reason}")
        return request

    async def user_saves(self):
        """{tag: profile} of this user's saved environments."""
        rows = await self.lab.saves.list_saves(self.user.id)
        self._saves = {r["tag"]: r for r in rows}
        return {tag: r["profile"] for tag, r in self._saves.items()}

    def option_limits(self):
        """Extra limits for the option check (a Swarm's nodes; nothing on one host)."""
        return {}

    def gpu_filter(self, request):
        """Which GPUs may serve the request (None: any); a Swarm narrows it by placement constraints."""
        return None

    def check_request(self, request):
        """Refuse a valid request that cannot be served now for a reason of the backend's (a Swarm:
        the named node lacks the lab's shared storage)."""

    def spec_network(self):
        return self.network_name

    async def image_unavailable(self, image):
        """Why ``image`` cannot start now, or None (a backend that can tell says so)."""
        return None

    def limits(self, request):
        """The image and limits of this start (precedence rule 2 and 3 of :mod:`gpulab.core.spec`)."""
        if not self.profiles:
            return specs.Limits(
                image=self.image, mem_limit=self.mem_limit, cpu_limit=self.cpu_limit
            )
        configured = {
            name: getattr(self, name) for name in PROFILE_FIELDS if self._configured(name)
        }
        limits = specs.resolve_limits(request.profile, configured)
        if getattr(request, "save", ""):
            limits = dataclasses.replace(
                limits, image=self._saves[request.save]["image"]
            )  # the user's own saved image
        return limits

    # --- the spec ---

    def ssh_settings(self, identity):
        port = 0
        if self.ssh_enabled and self.ssh_port_base:
            try:
                port = host_port(self.ssh_port_base, identity.user_id)
            except ValueError as e:
                raise refused(500, str(e))
        return specs.SSHSettings(
            enabled=self.ssh_enabled and not self.ssh_unavailable(self._facts),
            activity_interval=self.ssh_activity_interval,
            host_address=self.ssh_host_address,
            host_port=port,
            host_key_volume=self.ssh_host_key_volume,
            tcp_forwarding=self.ssh_tcp_forwarding,
            x11_forwarding=self.ssh_x11_forwarding,
        )

    def hardening(self):
        return specs.Hardening(
            pids_limit=self.pids_limit,
            log_max_size=self.log_max_size,
            log_max_files=self.log_max_files,
        )

    def storage(self):
        return specs.Storage(
            home=self.home_source,
            datasets=tuple(self.datasets),
            scratch=self.scratch_source,
            scratch_target=self.scratch_target,
            boot=self.lab.boot,
        )

    def policy(self):
        """(password_login, sudo): the SSH page's admin settings win over the configured ones.

        sudo is granted only when users have their own origins (per-user subdomains): a user who
        is root in their container can change their server, which must then not share the hub's.
        """
        if self.ssh_store_path:
            password_login, sudo = SSHStore(self.ssh_store_path).policy(
                self.ssh_password_login, self.allow_sudo
            )
        else:
            password_login, sudo = self.ssh_password_login, self.allow_sudo
        if sudo and not (getattr(self.user, "settings", None) or {}).get("subdomain_host"):
            self.log.warning(
                "sudo is on but users share the hub's origin (no subdomain_host): %s starts without sudo",
                self._log_name,
            )
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
            storage=self.storage(),
            ssh=self.ssh_settings(identity),
            tools=specs.Tools(self.tf_memory_growth, self.jax_preallocate, self.tensorboard_logdir),
            sudo=sudo,
            password_login=password_login,
            gpus=self.gpu_grant(request, gpu_uuids),
            network=self.spec_network(),
            hardening=self.hardening(),
            prefix=self.prefix,
            service_prefix=base_env.get("JUPYTERHUB_SERVICE_PREFIX") or self.user.url,
            plain=not self.profiles,
        )

    # --- a GPU job of this user (gpulab.core.gpujobs, run by gpulab.hub.gpujobs) ---

    async def job_request(self, body, limits):
        """The :class:`~gpulab.core.gpujobs.JobRequest` of an API body for this user, checked
        against the hub's profiles, the user's saves, the GPU servers and ``limits`` (the jobs
        section); :class:`~gpulab.core.gpujobs.JobInputError` names the field. Creates nothing."""
        if not self.profiles:
            raise gpujobs.JobInputError(
                "profile", "jobs need the hub's profiles (this hub runs without them)"
            )
        self.check_ids()
        saves = await self.user_saves() if isinstance(body, dict) and body.get("save") else None
        manager = await self.gpus_synced()
        request = gpujobs.validate_job(
            body,
            profiles=self.profiles,
            default_profile=self.default_profile or self.profiles[0]["name"],
            limits=limits,
            saves=saves,
            nodes=self.job_nodes(),
        )
        spawn = SpawnRequest(profile=request.profile, gpus=request.gpus)
        if request.save:
            spawn = dataclasses.replace(spawn, save=request.save)
            save = self._saves.get(request.save) or {}
            if save.get("sudo", True) and not self.policy()[1]:
                raise gpujobs.JobInputError(
                    "save",
                    f"{request.save} was saved while sudo was allowed and sudo is off now: run the "
                    "job from the profile, or ask an admin",
                )
        largest = manager.allocator.largest_request(self.gpu_filter(spawn))
        fit = manager.allocator.nodes_that_fit(request.gpus, self.gpu_filter(spawn))
        if request.nodes > 1 and request.gpus <= largest and fit < request.nodes:
            raise gpujobs.JobInputError(
                "nodes",
                f"{request.nodes} GPU servers with {request.gpus} GPU(s) each requested but only "
                f"{fit} of the servers this profile may use have that many",
            )
        if request.gpus > largest:
            raise gpujobs.JobInputError(
                "gpus",
                f"{request.gpus} requested but no GPU server this profile may use has more than {largest}",
            )
        reason = await self.image_unavailable(self.limits(spawn).image)
        if reason:
            raise gpujobs.JobInputError(
                "profile", f"{request.profile['name']!r} is unavailable: {reason}"
            )
        return request, spawn

    def job_nodes(self):
        """How many GPU servers one job may span here (one host: 1)."""
        return 1

    def job_env(self):
        """What a job's environment gets from the hub: the admin's ``environment`` and
        ``env_keep``, never a hub token (a job is not a server and talks to nobody)."""
        env = {k: os.environ[k] for k in self.env_keep if k in os.environ}
        for key, value in self.environment.items():
            env[key] = value(self) if callable(value) else value
        return {k: v for k, v in env.items() if not k.startswith(("JUPYTERHUB_", "JPY_"))}

    async def job_spec(self, job_id, spawn, gpu_uuids, command, *, rank=None, network="", env=None):
        """The container of this user's job ``job_id`` (of its task ``rank`` for a multi-node
        job, on the job's own ``network``, with ``env`` added): a server's pipeline (the user's
        uid, home, datasets, the profile's or save's image and limits, exactly ``gpu_uuids``)
        with the job's command, no SSH, no hub token and the job's name and holder."""
        image = self.limits(spawn).image
        await self.ensure_image(image)
        facts = await self.image_facts(image)
        if facts and facts.starts:
            raise gpujobs.JobInputError(
                "profile", f"{spawn.profile['name']!r} cannot start from {image}: {facts.starts}"
            )
        identity = dataclasses.replace(
            self.identity(),
            server_name=gpujobs.holder(self.user.name, job_id, rank)[1],
            escaped_server_name=f"job-{job_id}",
        )
        ssh = dataclasses.replace(self.ssh_settings(identity), enabled=False, host_port=0)
        env = {**self.job_env(), contract.JOB_ID: str(job_id), **(env or {})}
        return specs.build_spec(
            deployment=self.deployment,
            name=gpujobs.container_name(self.deployment, job_id, rank),
            identity=identity,
            profile_name=spawn.profile["name"],
            limits=self.limits(spawn),
            base_env=env,
            command=gpujobs.runner_command(job_id, command),
            storage=self.storage(),
            ssh=ssh,
            tools=specs.Tools(self.tf_memory_growth, self.jax_preallocate, self.tensorboard_logdir),
            sudo=False,  # a job runs its command; nothing in it needs root
            password_login=False,
            gpus=self.gpu_grant(spawn, gpu_uuids),
            network=network or self.spec_network(),
            hardening=self.hardening(),
            prefix=self.prefix,
            service_prefix=self.user.url,
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
        self.running_profile = request.profile["name"]
        began = time.monotonic()
        result = await self._start(request)
        self.lab.metrics.spawned(request.profile["name"], time.monotonic() - began)
        return result

    async def _start(self, request):
        limits = self.limits(request)
        self._emit(
            5, f"Profile {request.profile['display_name']}: {limits.image}, {request.gpus} GPU(s)"
        )
        uuids = await self._acquire_gpus(request)
        try:
            await self.ensure_image(limits.image)
            self._facts = await self.image_facts(limits.image)
            if self._facts and self._facts.starts:
                raise refused(
                    400,
                    f"Profile {request.profile['name']!r} cannot start from {limits.image}: {self._facts.starts}",
                )
            spec = self._spec = await self.build_spec(
                request, uuids, await self._command_for(limits.image)
            )
            for path, owner in specs.host_dirs(spec):
                uid, gid = (spec.identity.uid, spec.identity.gid) if owner == "user" else (0, 0)
                try:
                    await asyncio.wrap_future(
                        self.executor.submit(prepare_host_dir, path, uid, gid)
                    )
                except ForeignDirectory as e:
                    raise refused(409, f"Your storage cannot be used: {e}")
            gate = self.lab.gates.get(self.node_name, await self.start_width())
            async with gate.place(on_wait=self._waiting_to_start):
                await self._create_or_reuse(spec)
                self._emit(70, "Starting container")
                await self.start_object()
                if self.post_start_cmd:
                    await self.post_start_exec()
                ip, port = await self.get_ip_and_port()
                self._emit(
                    90,
                    f"Container {self.object_name} is running; waiting for the Jupyter server to answer",
                )
                await self._wait_answering(ip, port)
            return ip, port
        except requests.exceptions.ConnectionError as e:  # the engine went away (a restart)
            self.release_gpus()
            self.log.warning("gpulab: %s: the engine stopped answering: %s", self._log_name, e)
            raise refused(503, ENGINE_GONE) from e
        except BaseException:
            self.release_gpus()
            raise

    async def ensure_image(self, image):
        """Make the image available where the server will run (a backend may pull it)."""

    # --- what an image can do (gpulab.core.imagefacts) ---

    _facts = None  # this start's image's facts (None: not known)

    async def image_key(self, image):
        """What identifies the image's content for the probe's memory (a backend that knows the
        image's id says so)."""
        return image

    async def image_facts(self, image):
        """The image's facts, probed once per image (profiles only: without them the image's own
        start is used and nothing of gpulab's start is needed)."""
        if not self.profiles:
            return None
        return await self.lab.images.facts(image, await self.image_key(image), log=self.log)

    async def image_labels(self, image):
        """The image's labels, where the hub can see the image (None elsewhere)."""
        return None

    async def image_limits(self, image, facts):
        """{feature: why it does not work with this image} for the spawn form."""
        missing = {}
        if facts is not None:
            missing["SSH"] = self.ssh_unavailable(facts)
            missing["TensorBoard"] = facts.tensorboard
        if without_cuda(await self.image_labels(image)):
            missing["CUDA"] = NO_CUDA
        return {k: v for k, v in missing.items() if v}

    def ssh_unavailable(self, facts):
        """Why SSH does not work in an image with these facts ("" when it does, or is unknown)."""
        if not self.ssh_enabled or facts is None:
            return ""
        return facts.ssh if self.ssh_port_base else facts.ssh_via_hub

    # --- admission and readiness (see gpulab.core.startgate and .readiness) ---

    async def start_width(self):
        """Places in the start gate of the host that will run this server."""
        raise NotImplementedError

    def _waiting_to_start(self, position, starting):
        where = f" on {self.node_name}" if self.node_name else ""
        self._emit(
            45,
            f"Waiting to start: place {position} in the queue ({starting} server(s) starting now{where})",
        )

    def follow_log(self):
        """What the starting server writes, followed so it can be shown if it exits (None: nothing)."""
        return None

    async def _wait_answering(self, ip, port):
        if self.internal_ssl:
            return  # the hub checks with its own certificates
        if not self.profiles:
            return  # DockerSpawner mode: start() returns once the container runs, as DockerSpawner's does
        base_url = self.server.base_url if self.server else "/"
        log = (
            self.follow_log()
        )  # followed from now: the container may be gone (auto-removed) when we ask why
        tail = (lambda: log.text()) if log else None
        try:
            await readiness.wait_answering(
                f"http://{ip}:{port}{base_url}api", self.http_timeout, alive=self._why_not_running
            )
        except readiness.ServerExited as e:
            raise refused(
                500, f"The server stopped before it answered ({e}){await tail() if tail else ''}"
            )
        except TimeoutError:
            raise refused(
                500,
                f"The server did not answer within {self.http_timeout} s (hub.start_timeout){await tail() if tail else ''}",
            )
        finally:
            if log:
                log.close()

    async def _why_not_running(self):
        status = await self.poll()
        if status is None:
            return None
        # DockerSpawner's poll says 0 for a container that is gone (auto-removed once it exited)
        return (
            "exit status unknown: the container exited and was removed"
            if status == 0
            else f"exit status {status}"
        )

    async def _acquire_gpus(self, request):
        if not request.gpus:
            self.gpu_uuids = ()
            return ()
        manager = await self.gpus_synced()
        gpu = manager.settings

        def waiting(position, holders):
            who = describe(holders, gpu["show_holders"])
            self._emit(
                8,
                f"Waiting for {request.gpus} GPU(s): position {position} in the queue; held by {who}",
            )

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
                show_holders=gpu["show_holders"],
            )
        except QuotaExceeded as e:
            raise refused(400, f"Invalid spawn option gpus: {e}")
        except GPUsBusy as e:
            raise refused(409, f"GPUs busy: {e}")
        self.lab.metrics.waited(time.monotonic() - asked)  # 0 when GPUs were free
        self.gpu_uuids = tuple(uuids)
        self.node_name = manager.allocator.node_of(self.holder)
        shown = {g.uuid: g for g in manager.inventory}
        on = f" on {self.node_name}" if self.node_name else ""
        self._emit(
            9,
            f"Allocated {len(uuids)} GPU(s){on}: "
            + ", ".join(f"{shown[u].index} ({shown[u].model})" if u in shown else u for u in uuids),
        )
        return self.gpu_uuids

    # --- DockerSpawner's hooks, fed from the spec (callable outside start() too) ---

    async def _command_for(self, image):
        if self.profiles:
            # gpulab's start script is the entrypoint: it gets the server's arguments (or the
            # command an admin set, e.g. a server of their own)
            own = list(self.cmd) if self._configured("cmd") else []
            return own + self.get_args()
        if self.cmd:
            return list(self.cmd) + self.get_args()
        info = (self._image_info or {}).get(image) or await self.docker("inspect_image", image)
        return list(info["Config"]["Cmd"] or []) + self.get_args()

    async def get_command(self):
        return list((await self.current_spec()).command)

    async def _evaluated(self, value):
        value = self._eval_if_callable(value)
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        return self._render_templates(value or {})

    async def progress(self):
        if self._progress is None:
            return
        async for event in self._progress.follow(self._start_future):
            yield event
