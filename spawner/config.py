"""gpulab's own spawner settings: declared together, validated as they are set.

Every value an admin may set by hand is checked with the same functions as the site file
(:mod:`.siteconfig`), so a typo names the trait and what was wrong, e.g.
``GPUDockerSpawner.profiles[0].gpus: must be a whole number``. ``GPUDockerSpawner`` inherits
these traits; ``c.GPUDockerSpawner.<name>`` sets them.
"""

import re

from traitlets import Bool, Dict, Int, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from .schema import SiteConfigError
from .siteconfig import NAME, check_datasets, check_gpus, check_mount_target, check_profiles, check_template, gpu_defaults


def _checked(check, proposal, key):
    try:
        return check(proposal.value, key)
    except SiteConfigError as e:
        raise TraitError(str(e))


class GPULabSettings(LoggingConfigurable):
    deployment = Unicode(
        "gpulab",
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
        "{prefix}-home-{username}",
        help="""
        The persistent home: a Docker volume name template, or an absolute host-path template
        (created 0700, owned by the user). Example: ``"/data/home/{username}"``.
        Default: ``"{prefix}-home-{username}"`` (a named volume per user).
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
        "/scratch",
        help="""
        Where scratch is mounted in the container. Example: ``"/scratch"`` (the default).
        """,
    ).tag(config=True)
    allow_sudo = Bool(
        False,
        help="""
        Passwordless sudo inside the user's own container. Example: ``True``. Default: off.
        An admin may change it on the SSH page; that setting wins.
        """,
    ).tag(config=True)
    uid_base = Int(
        20000,
        help="""
        A user's uid in the container is ``uid_base`` + the hub's user id. Example: ``20000``
        (the default): user 7 gets uid 20007, stable and unique.
        """,
    ).tag(config=True)
    user_gid = Int(
        100,
        help="""
        Primary gid of container users. Example: ``100`` (the default, group "users").
        """,
    ).tag(config=True)
    gpu_settings = Dict(
        help="""
        GPU inventory, sharing, queue and quotas, validated like the site file's ``gpus`` section.
        Example: ``{"devices": "auto", "mode": "exclusive", "wait": True, "quota": {"default": 1}}``.
        Default: NVML inventory, exclusive GPUs, waiting in a queue for up to 600 s, no quota.
        """,
    ).tag(config=True)
    tf_memory_growth = Bool(
        True,
        help="""
        TensorFlow GPU memory growth (``TF_FORCE_GPU_ALLOW_GROWTH=true`` plus the IPython hook).
        Example: ``False`` leaves TensorFlow's own default (the whole card). Default: on.
        """,
    ).tag(config=True)
    jax_preallocate = Bool(
        False,
        help="""
        Let JAX preallocate most of a GPU's memory. Example: ``True`` for JAX's own default.
        Default: off (``XLA_PYTHON_CLIENT_PREALLOCATE=false``).
        """,
    ).tag(config=True)
    tensorboard_logdir = Unicode(
        "~/runs",
        help="""
        TensorBoard's log directory at ``/user/<name>/tensorboard/``. Example: ``"~/experiments"``.
        Default: ``"~/runs"``; a user may override it in ``~/.config/gpulab/env``.
        """,
    ).tag(config=True)
    pids_limit = Int(
        4096,
        help="""
        Processes (and threads) a user container may run; a fork bomb stops here instead of taking
        the host. Example: ``4096`` (the default; the site file's ``containers.pids_limit``).
        """,
    ).tag(config=True)
    log_max_size = Int(
        20 * 1024**2,
        help="""
        Bytes per container log file before Docker rotates it. Example: ``20 * 1024**2`` (the default).
        """,
    ).tag(config=True)
    log_max_files = Int(
        3,
        help="""
        Rotated container log files kept. Example: ``3`` (the default).
        """,
    ).tag(config=True)
    docker_threads = Int(
        8,
        help="""
        Threads for blocking Docker calls, shared by all spawners of the hub. Example: ``8`` (the
        default). Stock DockerSpawner uses one.
        """,
    ).tag(config=True)
    concurrent_starts = Int(
        0,
        help="""
        Servers that may be starting at once on one Docker host (from creating the container until
        its server answers); later starts wait their turn, first come first served, and see their
        place in the spawn progress. Example: ``4``. Default ``0``: the host's CPU count + 1.
        """,
    ).tag(config=True)
    ssh_enabled = Bool(
        False,
        help="""
        Run sshd in every container, with keys from the hub's SSH page. Example: ``True`` (the site
        file's ``ssh.enabled``, on by default there). Default here: off.
        """,
    ).tag(config=True)
    ssh_host_address = Unicode(
        "127.0.0.1",
        help="""
        Host address the per-user SSH ports are published on. Example: ``"0.0.0.0"`` for the lab
        network. Default: ``"127.0.0.1"``.
        """,
    ).tag(config=True)
    ssh_port_base = Int(
        22000,
        help="""
        A user's SSH port on the host is ``ssh_port_base`` + hub user id. Example: ``22000``
        (user 7: port 22007). ``0`` publishes no port (SSH only through the hub). Default: 22000.
        """,
    ).tag(config=True)
    ssh_password_login = Bool(
        False,
        help="""
        Allow password logins over SSH. Example: ``True``. Default: off, keys only. The SSH page's
        admin setting wins.
        """,
    ).tag(config=True)
    ssh_activity_interval = Int(
        60,
        help="""
        Seconds between activity reports while SSH sessions are open. Example: ``60`` (the default).
        """,
    ).tag(config=True)
    ssh_tcp_forwarding = Bool(
        True,
        help="""
        Allow SSH port forwarding into and out of the container (``ssh -L``/``-R``, VS Code
        Remote-SSH, TensorBoard on a laptop port). Example: ``False``. Default: on.
        """,
    ).tag(config=True)
    ssh_x11_forwarding = Bool(
        True,
        help="""
        Allow X11 forwarding (``ssh -X``: a GUI window on the user's screen). Example: ``False``. Default: on.
        """,
    ).tag(config=True)
    ssh_host_key_volume = Unicode(
        "{prefix}-sshhost-{username}",
        help="""
        Per-user Docker volume (or host-path template) keeping the container's SSH host keys.
        Example: ``"/data/ssh-host/{username}"``. Default: ``"{prefix}-sshhost-{username}"``.
        """,
    ).tag(config=True)
    saves_settings = Dict(
        help="""
        Where users' saved environments are (set by the site file's configuration): the
        deployment, swarm or not, the Swarm's list, registry and hub image. Default: this host's
        Docker images. Not meant to be set by hand.
        """,
    ).tag(config=True)
    ssh_store_path = Unicode(
        "",
        help="""
        SQLite file of SSH keys and the admin's SSH settings. Example:
        ``"/srv/gpulab/state/gpulab-ssh.sqlite"``. Default: none (the SSH page's settings are not read).
        """,
    ).tag(config=True)

    @validate("profiles")
    def _valid_profiles(self, proposal):
        return _checked(check_profiles, proposal, f"{type(self).__name__}.profiles") if proposal.value else []

    @validate("datasets")
    def _valid_datasets(self, proposal):
        return _checked(check_datasets, proposal, f"{type(self).__name__}.datasets")

    @validate("gpu_settings")
    def _valid_gpu_settings(self, proposal):
        return _checked(check_gpus, proposal, f"{type(self).__name__}.gpu_settings")

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
            raise TraitError(f"{type(self).__name__}.deployment: must be lowercase letters, digits, '-' or '_', got {proposal.value!r}")
        return proposal.value
