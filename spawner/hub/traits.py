"""gpulab's own spawner settings: declared together, validated as they are set.

Every value an admin may set by hand is checked with the same functions as the site file
(:mod:`gpulab.core.site`), so a typo names the trait and what was wrong, e.g.
``GPUDockerSpawner.profiles[0].gpus: must be a whole number``. Defaults come from the site file's
schema (:func:`gpulab.core.site.default`): it is the one place they are written. Both backends'
spawners inherit these traits; ``c.GPUDockerSpawner.<name>`` (one host) or
``c.GPUSwarmSpawner.<name>`` (a Swarm) sets them. The hub's
:class:`~gpulab.hub.deployment.Deployment` is built from them, so what a spawner uses and what the
hub's pages, monitor and jobs use are the same values.
"""

import re

from traitlets import Bool, Dict, Int, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from ..core.site import default as site_default
from ..core.site.model import (
    NAME,
    check_datasets,
    check_gpus,
    check_jobs,
    check_mount_target,
    check_profiles,
    check_template,
    gpu_defaults,
    job_defaults,
)
from ..core.site.schema import ConfigError


def _checked(check, proposal, key):
    try:
        return check(proposal.value, key)
    except ConfigError as e:
        raise TraitError(str(e))


class GPULabSettings(LoggingConfigurable):
    deployment = Unicode(
        site_default("hub.name"),
        help="""
        Name of this deployment. Prefixes container and volume names and labels every container
        (``gpulab.deployment``). Example: ``"gpulab"`` (the default; the site file's ``hub.name``).
        """,
    ).tag(config=True)
    profiles = List(
        Dict(),
        help="""
        The environments users may start, validated like the site file's ``profiles``. Example::

            [{"name": "pytorch", "image": "localhost/gpulab/pytorch:latest", "gpus": 1, "max_gpus": 2,
              "mem_limit": "32G", "cpu_limit": 8, "shm_size": "8G"}]

        Default: none, and then the spawner behaves as DockerSpawner (``image``/``allowed_images``).
        Precedence: ``mem_limit``/``cpu_limit`` set in configuration win over a profile's.
        """,
    ).tag(config=True)
    default_profile = Unicode(
        "",
        help="""
        Profile used when the user does not choose. Example: ``"base"``. Default: the first profile.
        """,
    ).tag(config=True)
    home_source = Unicode(
        site_default("storage.home"),
        help="""
        The persistent home: a Docker volume name template, or an absolute host-path template
        (created 0700, owned by the user). Example: ``"/data/home/{username}"``.
        Default: a named volume per user.
        """,
    ).tag(config=True)
    datasets = List(
        Dict(),
        help="""
        Shared datasets, validated like the site file's ``storage.datasets``. Example::

            [{"name": "imagenet", "source": "/data/imagenet", "target": "/datasets/imagenet", "mode": "ro"}]

        Default: none. ``mode`` defaults to ``"ro"``.
        """,
    ).tag(config=True)
    scratch_source = Unicode(
        "",
        help="""
        Optional per-user scratch host-path template. Example: ``"/scratch/{username}"``. Default: no scratch.
        """,
    ).tag(config=True)
    scratch_target = Unicode(
        site_default("storage.scratch_target"),
        help="""
        Where scratch is mounted in the container. Example: ``"/scratch"``.
        """,
    ).tag(config=True)
    allow_sudo = Bool(
        site_default("users.sudo"),
        help="""
        Passwordless sudo inside the user's own container. Example: ``True``. Default: off.
        An admin may change it on the SSH page; that setting wins.
        """,
    ).tag(config=True)
    uid_base = Int(
        site_default("users.uid_base"),
        help="""
        A user's uid in the container is ``uid_base`` + the hub's user id. Example: ``20000``:
        user 7 gets uid 20007, stable and unique.
        """,
    ).tag(config=True)
    uid_source = Unicode(
        site_default("users.uid_source"),
        help="""
        Where a user's uid comes from: ``"hub"`` (``uid_base`` + the hub's user id), ``"claim"``
        (the lab's sign-in service, at the user's last login: ``uid_claim``) or ``"map"``
        (``uid_map``). Example: ``"claim"``. Default: ``"hub"``.
        """,
    ).tag(config=True)
    uid_claim = Unicode(
        site_default("users.uid_claim"),
        help="""
        The sign-in service's claim holding the uid (users.uid_source: claim), named in messages.
        Example: ``"uidNumber"``.
        """,
    ).tag(config=True)
    uid_map = Dict(
        help="""
        {user name: {"uid": .., "gid": ..}} for users.uid_source: map (validated like the site
        file's ``users.uid_map``). Example: ``{"alice": {"uid": 5001, "gid": 5000}}``.
        """,
    ).tag(config=True)
    user_gid = Int(
        site_default("users.gid"),
        help="""
        Primary gid of container users. Example: ``100`` (group "users").
        """,
    ).tag(config=True)
    gpu_settings = Dict(
        help="""
        GPU inventory, sharing, queue and quotas, validated like the site file's ``gpus`` section.
        Example: ``{"devices": "auto", "mode": "exclusive", "wait": True, "quota": {"default": 1}}``.
        Default: NVML inventory, exclusive GPUs, waiting in a queue for up to 600 s, no quota.
        """,
    ).tag(config=True)
    job_settings = Dict(
        help="""
        GPU jobs: their limits, validated like the site file's ``jobs`` section. Example:
        ``{"max_gpus": 4, "max_hours": 48, "max_per_user": 2}``. Default: jobs on, up to 8 GPUs
        per node, 4 nodes, 72 hours (24 when not asked), 4 jobs per user.
        """,
    ).tag(config=True)
    tf_memory_growth = Bool(
        site_default("hooks.tf_memory_growth"),
        help="""
        TensorFlow GPU memory growth (``TF_FORCE_GPU_ALLOW_GROWTH=true`` plus the IPython hook).
        Example: ``False`` leaves TensorFlow's own default (the whole card).
        """,
    ).tag(config=True)
    jax_preallocate = Bool(
        site_default("hooks.jax_preallocate"),
        help="""
        Let JAX preallocate most of a GPU's memory. Example: ``True`` for JAX's own default;
        off sets ``XLA_PYTHON_CLIENT_PREALLOCATE=false``.
        """,
    ).tag(config=True)
    tensorboard_logdir = Unicode(
        site_default("hooks.tensorboard_logdir"),
        help="""
        TensorBoard's log directory at ``/user/<name>/tensorboard/``. Example: ``"~/experiments"``.
        A user may override it in ``~/.config/gpulab/env``.
        """,
    ).tag(config=True)
    pids_limit = Int(
        site_default("containers.pids_limit"),
        help="""
        Processes (and threads) a container gpulab runs may have; a fork bomb stops here instead of
        taking the host. Example: ``4096`` (the site file's ``containers.pids_limit``).
        """,
    ).tag(config=True)
    log_max_size = Int(
        site_default("containers.log_max_size"),
        help="""
        Bytes per container log file before Docker rotates it. Example: ``20 * 1024**2``.
        """,
    ).tag(config=True)
    log_max_files = Int(
        site_default("containers.log_max_files"),
        help="""
        Rotated container log files kept. Example: ``3``.
        """,
    ).tag(config=True)
    docker_threads = Int(
        site_default("hub.docker_threads"),
        help="""
        Threads for blocking Docker calls, shared by all spawners of the hub. Example: ``8``.
        Stock DockerSpawner uses one.
        """,
    ).tag(config=True)
    concurrent_starts = Int(
        site_default("hub.concurrent_starts"),
        help="""
        Servers that may be starting at once on one Docker host (from creating the container until
        its server answers); later starts wait their turn, first come first served, and see their
        place in the spawn progress. Example: ``4``; ``0``: the host's CPU count + 1.
        """,
    ).tag(config=True)
    ssh_enabled = Bool(
        False,
        help="""
        Run sshd in every container, with keys from the hub's SSH page. Example: ``True`` (the site
        file's ``ssh.enabled``, on by default there). Off for a spawner configured by hand (the
        drop-in DockerSpawner): it runs no sshd unless asked.
        """,
    ).tag(config=True)
    ssh_host_address = Unicode(
        site_default("ssh.host_address"),
        help="""
        Host address the per-user SSH ports are published on. Example: ``"0.0.0.0"`` for the lab
        network.
        """,
    ).tag(config=True)
    ssh_port_base = Int(
        site_default("ssh.port_base"),
        help="""
        A user's SSH port on the host is ``ssh_port_base`` + hub user id. Example: ``22000``
        (user 7: port 22007). ``0`` publishes no port (SSH only through the hub).
        """,
    ).tag(config=True)
    ssh_password_login = Bool(
        site_default("ssh.password_login"),
        help="""
        Allow password logins over SSH. Example: ``True``; off: keys only. The SSH page's admin
        setting wins.
        """,
    ).tag(config=True)
    ssh_activity_interval = Int(
        site_default("ssh.activity_interval"),
        help="""
        Seconds between activity reports while SSH sessions are open. Example: ``60``.
        """,
    ).tag(config=True)
    ssh_tcp_forwarding = Bool(
        site_default("ssh.tcp_forwarding"),
        help="""
        Allow SSH port forwarding into and out of the container (``ssh -L``/``-R``, VS Code
        Remote-SSH, TensorBoard on a laptop port). Example: ``False``.
        """,
    ).tag(config=True)
    ssh_x11_forwarding = Bool(
        site_default("ssh.x11_forwarding"),
        help="""
        Allow X11 forwarding (``ssh -X``: a GUI window on the user's screen). Example: ``False``.
        """,
    ).tag(config=True)
    ssh_host_key_volume = Unicode(
        "{prefix}-sshhost-{username}",
        help="""
        Per-user Docker volume (or host-path template) keeping the container's SSH host keys.
        Example: ``"/data/ssh-host/{username}"``; by default a named volume per user.
        """,
    ).tag(config=True)
    ssh_store_path = Unicode(
        "",
        help="""
        SQLite file of SSH keys and the admin's SSH settings. Example:
        ``"/srv/gpulab/state/gpulab-ssh.sqlite"``; empty: the SSH page's settings are not read.
        """,
    ).tag(config=True)
    ssh_public_host = Unicode(
        "",
        help="""
        The host name users put in ``~/.ssh/config`` for the direct SSH port. Example:
        ``"gpu1.lab.example"``; empty: ``ssh_host_address``.
        """,
    ).tag(config=True)
    public_url = Unicode(
        "",
        help="""
        Where users open the hub (shown in the SSH page's ``~/.ssh/config`` entries). Example:
        ``"https://gpu.lab.example"`` (the site file's ``hub.subdomain_host`` or ``hub.bind_url``).
        """,
    ).tag(config=True)
    boot_dir = Unicode(
        "",
        help="""
        Where the hub keeps the files every container starts with (``gpulab-start`` and the start
        hooks), mounted read-only into each server. Example: ``"/srv/gpulab/state/boot"``;
        empty: the image's own (a spawner configured by hand, without the site file).
        """,
    ).tag(config=True)
    state_dir = Unicode(
        site_default("hub.state_dir"),
        help="""
        The hub's state directory (its database, SSH keys, usage book, saves list). Example:
        ``"/srv/gpulab/state"`` (the site file's ``hub.state_dir``).
        """,
    ).tag(config=True)
    home_backups_dir = Unicode(
        "",
        help="""
        Where users' home backups are written, one folder per user. Example: ``"/mnt/nas/gpulab-homes"``
        (the site file's ``storage.backups``); empty: ``/var/backups/gpulab/<deployment>/homes``.
        """,
    ).tag(config=True)
    home_backups_per_user = Int(
        site_default("storage.backups_per_user"),
        help="""
        Home backups a user may keep; a new one past it is refused. Example: ``5``.
        """,
    ).tag(config=True)
    home_backups_max_size = Int(
        site_default("storage.backups_max_size"),
        help="""
        Bytes all of a user's home backups may take; a backup that would go over is refused (and
        removed if it grew past it). Example: ``200 * 1024**3``.
        """,
    ).tag(config=True)
    home_backups_keep_days = Int(
        site_default("storage.backups_keep_days"),
        help="""
        Days a home backup is kept before the hub deletes it (checked at each backup). Example:
        ``90``; 0: kept until the user or an admin deletes it.
        """,
    ).tag(config=True)
    archive_dir = Unicode(
        "",
        help="""
        Where a deleted user's home is archived. Example: ``"/srv/gpulab/archive"`` (the site
        file's ``storage.archive``); empty: ``<state_dir>/archive``.
        """,
    ).tag(config=True)
    saves_enabled = Bool(
        site_default("saves.enabled"),
        help="""
        Users may save their running server as an image and start it again. Example: ``False``.
        """,
    ).tag(config=True)
    saves_max_per_user = Int(
        site_default("saves.max_per_user"),
        help="""
        Saved environments per user. Example: ``3``.
        """,
    ).tag(config=True)
    saves_max_size = Int(
        site_default("saves.max_size"),
        help="""
        Bytes all of a user's saves may add to their images. Example: ``20 * 1024**3``.
        """,
    ).tag(config=True)
    network_subnet = Unicode(
        site_default("hub.subnet"),
        help="""
        The user bridge's subnet on one host; the hub's API listens on its first address.
        Example: ``"172.30.240.0/24"`` (the site file's ``hub.subnet``).
        """,
    ).tag(config=True)
    egress_blocked = List(
        Unicode(),
        site_default("hub.egress_blocked"),
        help="""
        Address ranges user containers may not reach (one host's bridge; a Swarm's nodes get them
        from ``gpulab node setup``). Example: ``["10.0.0.0/8", "203.0.113.0/24"]`` for a lab on
        public addresses; by default the private and link-local ranges.
        """,
    ).tag(config=True)
    restrict_egress = Bool(
        site_default("hub.restrict_egress"),
        help="""
        Keep user containers off the host and the lab's network (firewall rules on the user
        bridge); they reach the hub's API, DNS and the internet. Example: ``False``.
        """,
    ).tag(config=True)

    @validate("profiles")
    def _valid_profiles(self, proposal):
        return (
            _checked(check_profiles, proposal, f"{type(self).__name__}.profiles")
            if proposal.value
            else []
        )

    @validate("datasets")
    def _valid_datasets(self, proposal):
        return _checked(check_datasets, proposal, f"{type(self).__name__}.datasets")

    @validate("gpu_settings")
    def _valid_gpu_settings(self, proposal):
        return _checked(check_gpus, proposal, f"{type(self).__name__}.gpu_settings")

    @validate("job_settings")
    def _valid_job_settings(self, proposal):
        return _checked(check_jobs, proposal, f"{type(self).__name__}.job_settings")

    @default("job_settings")
    def _default_job_settings(self):
        return job_defaults()

    @default("gpu_settings")
    def _default_gpu_settings(self):
        return gpu_defaults()

    @validate("home_source", "scratch_source", "ssh_host_key_volume")
    def _valid_template(self, proposal):
        return _checked(check_template, proposal, f"{type(self).__name__}.{proposal.trait.name}")

    @validate("scratch_target")
    def _valid_scratch_target(self, proposal):
        return _checked(check_mount_target, proposal, f"{type(self).__name__}.scratch_target")

    @validate("deployment")
    def _valid_deployment(self, proposal):
        if not re.fullmatch(NAME, proposal.value):
            raise TraitError(
                f"{type(self).__name__}.deployment: must be lowercase letters, digits, '-' or '_', got {proposal.value!r}"
            )
        return proposal.value
