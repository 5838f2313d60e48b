"""One object per deployment: everything one hub runs, built once when the hub starts.

The :class:`Deployment` is made from the resolved spawner settings (the site file as wiring set
them, plus whatever the admin set by hand after it): what the spawners use and what the hub's
pages, monitor and jobs use are the same values, and the raw site file is not read again. It owns
the GPU table (:class:`~gpulab.core.gpus.manager.GPUManager` over the backend's inventory), the
start gates, the Docker thread pool and clients, saved environments, home backups, the metrics,
and, once the hub runs, the GPU service (monitor, readings, usage book). Every container it runs
that is not a user's server goes through :meth:`Deployment.run_job`.

It is handed out one way: gpulab's hub puts it in JupyterHub's tornado settings under
``"gpulab"``, where handlers (``self.settings``) and spawners (``self.user.settings``) find it.
A spawner in a plain JupyterHub (DockerSpawner's own test suite) puts one there built from its
own settings, on first use; a spawner made by hand, with no hub, keeps one of its own.
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor

from ..core.gpus.manager import GPUManager
from ..core.site import facts
from ..core.site.schema import ConfigError
from ..core.spec import Hardening
from ..core.startgate import StartGates
from .gpus.metrics import Metrics

SETTINGS_KEY = "gpulab"


def _registry_auth(s, registry):
    """{"registry", "username", "password"} from a Swarm spawner's settings and the hub's
    environment, or None (no registry, or one that needs no login)."""
    username = getattr(s, "registry_username", "")
    if not username:
        return None
    password = os.environ.get(s.registry_password_env or "", "")
    if not password:
        raise ConfigError(
            f"{type(s).__name__}.registry_password_env",
            f"the environment variable {s.registry_password_env or '(none named)'} that holds the registry's password is not set",
        )
    return {"registry": registry, "username": username, "password": password}


DOCKER_TIMEOUT = 120


class Deployment:
    def __init__(self, settings, backend):
        """``settings``: a spawner (or anything with its traits) whose values are resolved."""
        s = settings
        self.backend = backend
        self.name = s.deployment
        self.gpu_settings = s.gpu_settings
        self.profiles = list(s.profiles)
        self.state_dir = os.path.abspath(s.state_dir)
        self.network_name = s.network_name
        self.network_subnet = s.network_subnet
        self.restrict_egress = s.restrict_egress
        self.egress_blocked = list(s.egress_blocked)
        self.hardening = Hardening(
            pids_limit=s.pids_limit, log_max_size=s.log_max_size, log_max_files=s.log_max_files
        )
        self.home_source = s.home_source
        self.scratch_source = s.scratch_source
        self.uid_base = s.uid_base
        self.user_gid = s.user_gid
        self.public_url = s.public_url
        self.ssh_enabled = s.ssh_enabled
        self.ssh_store_path = s.ssh_store_path
        self.ssh_password_login = s.ssh_password_login
        self.allow_sudo = s.allow_sudo
        self.ssh_port_base = s.ssh_port_base
        self.ssh_public_host = s.ssh_public_host or s.ssh_host_address
        self.ssh_host_key_volume = s.ssh_host_key_volume
        self.saves_enabled = s.saves_enabled
        self.saves_max_per_user = s.saves_max_per_user
        self.saves_max_size = s.saves_max_size
        self.boot_dir = s.boot_dir
        self.boot = ""  # this start's boot folder (prepare_host makes it)
        self.home_backups_dir = s.home_backups_dir or facts.default_home_backups_dir(self.name)
        self.home_backups_per_user = s.home_backups_per_user
        self.home_backups_max_size = s.home_backups_max_size
        self.home_backups_keep_days = s.home_backups_keep_days
        self.archive_dir = s.archive_dir or os.path.join(self.state_dir, "archive")
        # a Swarm's own settings (absent on one host)
        self.registry = getattr(s, "registry", "")
        self.registry_auth = _registry_auth(s, self.registry)
        self.registry_secret = ""  # the Swarm secret with those credentials (prepare_host makes it)
        self.hub_image = getattr(s, "hub_image", "")
        self.pinned_images = {}  # {image: its digest as last pinned}: what the nodes pulled
        self.network_encrypted = getattr(s, "network_encrypted", False)

        self.docker_threads = s.docker_threads
        self.executor = ThreadPoolExecutor(
            max(1, s.docker_threads), thread_name_prefix="gpulab-docker"
        )
        self._docker = None
        self._api = None
        self.gates = StartGates()
        self.host_cpus = None  # this host's CPUs, read once (sizes its start gate)
        self.metrics = Metrics.shared()  # in JupyterHub's Prometheus registry: one per process
        self.gpus = GPUManager(self.gpu_settings, backend.inventory_source(self))
        self.saves = backend.saves(self)
        self.saves_in_flight = set()  # hub user ids with a save running (one at a time each)
        self.lost_starts = {}  # username -> [{server, time, message}]: starts a hub restart ended
        self.ended = {}  # username -> [{server, time, message}]: servers that stopped on their own
        from .homebackups import HomeBackups

        self.home_backups = HomeBackups(self)
        from .imageprobe import ImageProbe

        self.images = ImageProbe(self)
        self.gpu_service = None  # started with the hub (start())
        self.job_settings = dict(s.job_settings)
        self.gpu_jobs = None  # users' GPU jobs (gpulab.hub.gpujobs), started with the hub
        self.loop_watch = None  # the event loop's lag (gpulab.hub.looplag), with the hub

    @classmethod
    def from_spawner(cls, spawner):
        return cls(spawner, spawner.backend)

    @classmethod
    def of(cls, spawner):
        """The deployment a spawner belongs to (see the module's docstring for the one way)."""
        settings = getattr(spawner.user, "settings", None)
        if isinstance(settings, dict):
            lab = settings.get(SETTINGS_KEY)
            if lab is None:
                lab = settings[SETTINGS_KEY] = cls.from_spawner(spawner)
            return lab
        lab = spawner.__dict__.get("_own_deployment")
        if lab is None:
            lab = spawner.__dict__["_own_deployment"] = cls.from_spawner(spawner)
        return lab

    # --- the Docker engine (one client each, shared by the pool's threads) ---

    def docker(self):
        """docker-py's DockerClient for the hub's engine (this host's, or the Swarm manager's)."""
        if self._docker is None:
            import docker

            self._docker = docker.from_env(
                version="auto", timeout=DOCKER_TIMEOUT, max_pool_size=self.docker_threads + 4
            )
        return self._docker

    def api(self):
        """docker-py's low-level APIClient for the same engine."""
        return self.docker().api

    # --- what the hub runs ---

    async def run_job(self, job, on_line=None, **kw):
        """Run a :class:`~gpulab.core.job.JobSpec` through the backend's one door."""
        return await self.backend.run_job(self, job, on_line=on_line, **kw)

    def job_image(self):
        return self.backend.job_image(self)

    # --- starts a hub restart ended ---

    LOST_STARTS_KEPT = 86400  # seconds a lost start or a server's own end is still told to its user

    def lose_start(self, username, server, message, now=None):
        """Remember that ``username``'s start of ``server`` was still under way (waiting for GPUs,
        for its place, or for its container) when the hub stopped, and ended with it: the user's
        notices say so (``/hub/api/gpulab/users/<name>/notices``, ``lost_starts``)."""
        self._remember(self.lost_starts, username, server, message, now)

    def lost_starts_of(self, username, now=None):
        return self._recent(self.lost_starts, username, now)

    def server_ended(self, username, server, message, now=None):
        """Remember that ``username``'s running ``server`` stopped without being asked (its
        container exited or is gone: the engine restarted, the machine ran out of memory): the
        notices' ``ended``."""
        self._remember(self.ended, username, server, message, now)

    def ended_of(self, username, now=None):
        return self._recent(self.ended, username, now)

    def _remember(self, store, username, server, message, now):
        now = time.time() if now is None else now
        kept = [n for n in self._recent(store, username, now) if n["server"] != server]
        store[username] = [*kept, {"server": server, "time": now, "message": message}]

    def _recent(self, store, username, now=None):
        now = time.time() if now is None else now
        return [n for n in store.get(username, []) if now - n["time"] < self.LOST_STARTS_KEPT]

    def prepare_host(self, api_port):
        """The state directory, the boot files (:mod:`.boot`), the SSH key store and the backend's
        networks (idempotent); returns the address the hub's API binds to."""
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        if self.boot_dir:
            from . import boot

            self.boot = boot.install(self.boot_dir)
        if self.ssh_enabled and self.ssh_store_path:
            from .sshstore import SSHStore

            SSHStore(self.ssh_store_path).create()
        return self.backend.prepare_host(self, api_port)

    def start(self, app):
        """Start what runs with the hub: the GPU service (monitor, readings, usage book)."""
        from .gpus.service import GPUService
        from .looplag import LoopWatch

        self.loop_watch = LoopWatch(self.metrics, app.log)
        self.loop_watch.start()
        self.gpu_service = GPUService(app, self)
        self.gpu_service.start()
        if self.backend.gpu_jobs and self.job_settings["enabled"]:
            from .gpujobs import GPUJobs

            self.gpu_jobs = GPUJobs(app, self)
            self.gpu_jobs.start()
        return self.gpu_service

    def close(self):
        if self.loop_watch is not None:
            self.loop_watch.close()
            self.loop_watch = None
        if self.gpu_jobs is not None:
            self.gpu_jobs.close()
            self.gpu_jobs = None
        if self.gpu_service is not None:
            self.gpu_service.close()
            self.gpu_service = None
