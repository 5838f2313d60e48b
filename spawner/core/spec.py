"""One spawn, one container spec: a frozen value built by a pure function.

A start is a pipeline: validate the request (:mod:`.options`) -> acquire GPUs (the allocator)
-> :func:`build_spec` (here, no I/O) -> the backend renders it in one place (a container's
create arguments on one host, a service on a Swarm) -> the backend creates and starts it. Unit
tests build specs without Docker or a hub, the way kubespawner tests ``make_pod``. Short-lived
helper containers (backups, archives, save jobs) have their own value, :class:`~.job.JobSpec`,
with the same :class:`Hardening`.

Precedence, one rule (also in the spawner's trait help and docs/admin.md):

1. **Isolation is gpulab's.** The GPU devices and ``NVIDIA_VISIBLE_DEVICES``, the user's
   identity (``NB_*``), the ``gpulab.*`` labels and the home/SSH mounts always come from gpulab;
   configuration that tries to set them stops the hub at startup, naming the setting.
2. **What the admin set in configuration wins over the site file.** A DockerSpawner or Spawner
   trait set in ``jupyterhub_config.py`` (``mem_limit``, ``cpu_limit``, ``environment``,
   ``extra_host_config``, ...) overrides the profile's value for the same thing.
3. **The site file's profile** (image, ``mem_limit``, ``cpu_limit``, ``shm_size``) comes next.
4. **DockerSpawner's defaults** fill in the rest.

The dataclasses here have no defaults of their own: what a lab may change comes from the site
file's schema (through the spawner's traits); what it may not (the capabilities) is a constant.
"""

import dataclasses
import os
from dataclasses import dataclass, field
from types import MappingProxyType

from . import contract


def _frozen(mapping):
    return MappingProxyType(dict(sorted(mapping.items())))


@dataclass(frozen=True)
class MountSpec:
    target: str
    source: str
    kind: str  # "volume", "bind" or "tmpfs"
    read_only: bool = False
    labels: tuple = ()  # (key, value) pairs for a volume gpulab creates
    owner: str = ""  # a per-user host directory made before the start: "user" (home, scratch) or "root" (SSH host keys)
    size: int = 0  # a tmpfs's size in bytes (0: Docker's default)
    mode: int = 0o755  # a tmpfs's mode (Docker's default, 1777, would let the user write there)


@dataclass(frozen=True)
class PortSpec:
    container_port: int
    host_ip: str
    host_port: int


@dataclass(frozen=True)
class Identity:
    """Who the container is for. ``uid``/``login``/``home`` as in :mod:`.contract`."""

    username: str
    user_id: int
    server_name: str
    login: str
    uid: int
    gid: int
    escaped_username: str
    escaped_server_name: str = ""

    @property
    def home(self):
        return contract.home_dir(self.login)

    def template_namespace(self, prefix):
        return {
            "username": self.escaped_username,
            "prefix": prefix,
            "uid": self.uid,
            "servername": self.escaped_server_name,
        }


@dataclass(frozen=True)
class Storage:
    """The site's storage settings: templates are rendered per user by :func:`render`."""

    home: str  # a volume-name template or an absolute host-path template
    datasets: tuple  # validated dataset dicts (name, source, target, mode)
    scratch: str  # '' for none
    scratch_target: str
    boot: str = (
        ""  # the hub's boot directory (gpulab-start and the start hooks); '' for the image's own
    )


#: Every user container: unprivileged processes may not bind ports below 1024 (the kernel's
#: default in a network namespace is 0 since Linux 4.11 in Docker: a user could then send from
#: port 700, which NFS "secure" exports trust as root's). sshd binds 22 with NET_BIND_SERVICE.
SYSCTLS = (("net.ipv4.ip_unprivileged_port_start", "1024"),)
RUNTIME_TMPFS = 16 * 1024**2
LOG_TMPFS = 64 * 1024**2
ETC_TMPFS = 1024**2


@dataclass(frozen=True)
class SSHSettings:
    """How users reach the container over SSH (password logins are the SSH page's policy, given apart)."""

    enabled: bool
    activity_interval: int
    host_address: str
    host_port: int  # 0: no direct port
    host_key_volume: str
    tcp_forwarding: bool
    x11_forwarding: bool


@dataclass(frozen=True)
class Tools:
    tf_memory_growth: bool
    jax_preallocate: bool
    tensorboard_logdir: str


#: The capabilities a user container keeps: Docker's default set without NET_RAW (raw sockets,
#: ARP spoofing on the bridge), MKNOD (device nodes) and SETPCAP. Enough for gpulab-start (users,
#: homes), sshd (port 22, privilege separation) and, with sudo, apt.
CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "AUDIT_WRITE",
)


@dataclass(frozen=True)
class Hardening:
    """How tightly every container gpulab runs is held (isolation: gpulab's, precedence rule 1):
    the lab's limits from the site file's ``containers`` section. Servers and jobs both carry it;
    all capabilities are dropped but those a container's kind keeps."""

    pids_limit: int
    log_max_size: int
    log_max_files: int


@dataclass(frozen=True)
class Limits:
    image: str
    mem_limit: int = None
    cpu_limit: float = None
    shm_size: int = None


@dataclass(frozen=True)
class GPUGrant:
    """The GPUs a container gets, one value: exactly these devices (``uuids``, one host), or a
    number that Swarm picks on the chosen node (``count``, named to the task in
    ``DOCKER_RESOURCE_GPU``). No GPUs: ``GPUGrant()``."""

    uuids: tuple = ()
    count: int = 0

    def __post_init__(self):
        if self.uuids and self.count:
            raise ValueError("a GPU grant names its devices or counts them, not both")
        object.__setattr__(self, "uuids", tuple(self.uuids))

    @classmethod
    def devices(cls, uuids):
        return cls(uuids=tuple(uuids))

    @classmethod
    def counted(cls, count):
        return cls(count=int(count))

    @property
    def size(self):
        return len(self.uuids) or self.count

    def __bool__(self):
        return bool(self.size)


NO_GPUS = GPUGrant()


@dataclass(frozen=True)
class ContainerSpec:
    """Everything that makes one user's container; the only input of the backend's renderer."""

    name: str
    image: str
    command: tuple
    env: MappingProxyType
    labels: MappingProxyType
    mounts: tuple
    working_dir: str
    mem_limit: int
    cpu_limit: float
    shm_size: int
    gpus: GPUGrant
    ports: tuple
    network: str
    capabilities: tuple  # all others are dropped
    no_new_privileges: bool  # setuid programs cannot elevate (off only when sudo is on)
    hardening: Hardening
    identity: Identity = field(compare=False)
    sysctls: tuple = SYSCTLS
    entrypoint: tuple = ()  # (): the image's own
    init: bool = False  # Docker's init as process 1, the entrypoint its child
    user: str = ""  # "": the image's own user

    @property
    def pids_limit(self):
        return self.hardening.pids_limit

    @property
    def log_max_size(self):
        return self.hardening.log_max_size

    @property
    def log_max_files(self):
        return self.hardening.log_max_files


def render(template, identity, prefix):
    return template.format(**identity.template_namespace(prefix))


def is_host_path(source):
    return source.startswith("/")


def resolve_limits(profile, configured):
    """The image and limits of this start: the admin's configured traits win over the profile.

    ``configured`` maps trait names (``image``, ``mem_limit``, ``cpu_limit``) to the values the
    admin set in configuration; traits left at their defaults are absent.
    """
    return Limits(
        image=configured.get("image") or profile["image"],
        mem_limit=configured["mem_limit"]
        if "mem_limit" in configured
        else profile.get("mem_limit"),
        cpu_limit=configured["cpu_limit"]
        if "cpu_limit" in configured
        else profile.get("cpu_limit"),
        shm_size=profile.get("shm_size"),
    )


def identity_env(identity, *, sudo, gpus):
    env = {
        contract.NB_USER: identity.login,
        contract.NB_UID: str(identity.uid),
        contract.NB_GID: str(identity.gid),
        contract.NB_HOME: identity.home,
        contract.HOME: identity.home,
        contract.SUDO: "1" if sudo else "0",
    }
    # exactly the allocated GPUs, or none at all (even where the image says "all"). On a Swarm the
    # NVIDIA runtime takes the task's GPUs from DOCKER_RESOURCE_GPU when it is configured to
    # (swarm-resource, see gpulab node setup); a node that is not falls back to this variable and
    # so gives no GPU at all, instead of every GPU of the node
    env[contract.VISIBLE_DEVICES] = contract.gpu_list(gpus.uuids) or contract.NO_GPU
    return env


def tool_env(tools, service_prefix):
    """Defaults for the user's tools: GPU memory, TensorBoard, pip. Users may override them."""
    prefix = service_prefix if service_prefix.endswith("/") else service_prefix + "/"
    env = {
        contract.TENSORBOARD_LOGDIR: tools.tensorboard_logdir,
        contract.TENSORBOARD_PROXY_URL: f"{prefix}proxy/%PORT%/",
        contract.PIP_USER: "1",
    }
    if tools.tf_memory_growth:
        env[contract.TF_GROWTH] = "true"
    if not tools.jax_preallocate:
        env[contract.JAX_PREALLOCATE] = "false"
    return env


def ssh_env(ssh, password_login):
    if not ssh.enabled:
        return {}
    return {
        contract.SSH: "1",
        contract.SSH_PASSWORD_LOGIN: "1" if password_login else "0",
        contract.SSH_ACTIVITY_INTERVAL: str(ssh.activity_interval),
        contract.SSH_TCP_FORWARDING: "1" if ssh.tcp_forwarding else "0",
        contract.SSH_X11_FORWARDING: "1" if ssh.x11_forwarding else "0",
    }


def labels(deployment, identity, profile_name, gpu_uuids):
    return {
        contract.L_DEPLOYMENT: deployment,
        contract.L_USER: identity.username,
        contract.L_SERVER: identity.server_name,
        contract.L_PROFILE: profile_name,
        contract.L_UID: str(identity.uid),
        contract.L_GPUS: contract.gpu_list(gpu_uuids),
    }


def start_command(command):
    """What gpulab's start script (the entrypoint, by its path: found through PATH, a file a saved
    environment put earlier on it would run as root instead) is given: the server's arguments, or
    a command. A command that names the start script itself (an image's CMD, an older setting)
    loses that name."""
    command = tuple(command)
    if command and command[0] in (contract.START_SCRIPT, os.path.basename(contract.START_SCRIPT)):
        return command[1:]
    return command


def mounts(deployment, identity, storage, ssh, prefix):
    """The user's home, datasets, scratch and SSH host keys; the hub's boot files (read-only:
    gpulab-start, the hooks, sshd's PAM stack); the tmpfs for what the start writes (runtime,
    logs, the sudo rule, sshd's settings), so that no layer holds or plants them."""
    volume_labels = ((contract.L_DEPLOYMENT, deployment), (contract.L_USER, identity.username))

    def own(template, target, extra_labels=(), owner="user"):
        source = render(template, identity, prefix)
        if is_host_path(source):
            return MountSpec(target=target, source=source, kind="bind", owner=owner)
        return MountSpec(
            target=target, source=source, kind="volume", labels=volume_labels + extra_labels
        )

    out = [own(storage.home, identity.home)]
    for ds in storage.datasets:
        kind = "bind" if is_host_path(ds["source"]) else "volume"
        out.append(
            MountSpec(
                target=ds["target"], source=ds["source"], kind=kind, read_only=ds["mode"] == "ro"
            )
        )
    if storage.scratch:
        out.append(own(storage.scratch, storage.scratch_target))
    if storage.boot:
        out += [
            MountSpec(target=target, source=f"{storage.boot}/{name}", kind="bind", read_only=True)
            for name, target in (
                ("gpulab-start", contract.START_SCRIPT),
                ("hooks", contract.HOOK_DIR),
            )
        ]
    out.append(MountSpec(target=contract.RUNTIME_DIR, source="", kind="tmpfs", size=RUNTIME_TMPFS))
    out.append(MountSpec(target=contract.LOG_DIR, source="", kind="tmpfs", size=LOG_TMPFS))
    out.append(MountSpec(target=contract.SUDOERS_DIR, source="", kind="tmpfs", size=ETC_TMPFS))
    if ssh.enabled:
        out.append(
            MountSpec(target=contract.SSHD_CONFIG_DIR, source="", kind="tmpfs", size=ETC_TMPFS)
        )
        if storage.boot:
            out.append(
                MountSpec(
                    target=contract.PAM_SSHD,
                    source=f"{storage.boot}/hooks/ssh/pam-sshd",
                    kind="bind",
                    read_only=True,
                )
            )
    if ssh.enabled:
        out.append(
            own(
                ssh.host_key_volume,
                contract.SSH_HOST_KEY_DIR,
                ((contract.L_SSH_HOST_KEYS, identity.username),),
                owner="root",
            )
        )
    return tuple(out)


def host_dirs(spec):
    """(host path, owner) of the per-user bind mounts that must exist before the start: the
    user's home and scratch (owned by the user), SSH host keys (root's)."""
    return [(m.source, m.owner) for m in spec.mounts if m.kind == "bind" and m.owner]


def build_spec(
    *,
    deployment,
    name,
    identity,
    profile_name,
    limits,
    base_env,
    command,
    storage,
    ssh,
    tools,
    sudo,
    password_login,
    hardening,
    gpus=NO_GPUS,
    network="",
    prefix=None,
    service_prefix="/",
    plain=False,
):
    """The container for one start. Pure: same inputs, same spec.

    With profiles, gpulab starts every image the same way: as root, gpulab's start script (the
    hub's read-only copy) under Docker's init, which makes the user and their home, runs the hooks
    and starts the server as the user (gpulab's, or the image's own ``jupyterhub-singleuser``);
    ``command`` is then the server's arguments. ``plain`` (no profiles: GPUDockerSpawner as a
    drop-in DockerSpawner) makes the container as DockerSpawner makes it: the image's own
    entrypoint, command, user, home and working directory, no gpulab mounts or SSH, and gpulab's
    GPU variables and hold.

    ``base_env`` is the environment JupyterHub and the admin give (``Spawner.get_env()``:
    ``JUPYTERHUB_*`` and the ``environment`` trait); the admin's values win over gpulab's tool
    defaults, gpulab's identity and GPU variables win over everything (the spawner has already
    refused configuration that names them). ``gpus`` is the :class:`GPUGrant`.
    """
    prefix = prefix or deployment
    if plain:
        ssh = dataclasses.replace(ssh, enabled=False, host_port=0)
    env = {**tool_env(tools, service_prefix), **ssh_env(ssh, password_login)}
    env.update(base_env)
    env.update(identity_env(identity, sudo=sudo and not plain, gpus=gpus))
    if plain:
        env.pop(contract.HOME)  # the image's own user keeps their own home
    else:
        env[contract.SERVER_MODULE] = contract.FAST_SERVER  # images without the launcher ignore it
    env["JUPYTER_IMAGE_SPEC"] = env["JUPYTER_IMAGE"] = limits.image
    ports = ()
    if ssh.enabled and ssh.host_port:
        ports = (PortSpec(contract.SSH_PORT, ssh.host_address, ssh.host_port),)
    start = {} if plain else {"entrypoint": (contract.START_SCRIPT,), "init": True, "user": "0"}
    return ContainerSpec(
        name=name,
        image=limits.image,
        command=tuple(command) if plain else start_command(command),
        env=_frozen(env),
        labels=_frozen(labels(deployment, identity, profile_name, gpus.uuids)),
        mounts=() if plain else mounts(deployment, identity, storage, ssh, prefix),
        working_dir="" if plain else identity.home,
        mem_limit=limits.mem_limit,
        cpu_limit=limits.cpu_limit,
        shm_size=limits.shm_size,
        gpus=gpus,
        ports=ports,
        network=network,
        capabilities=CAPABILITIES,
        no_new_privileges=plain or not sudo,
        hardening=hardening,
        identity=identity,
        **start,
    )
