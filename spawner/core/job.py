"""A job: a short-lived container gpulab runs for a user or for itself (a home backup or restore,
the archive of a deleted user's home, a save on a Swarm node), as one frozen value.

Every container gpulab runs goes through one door: the backend's ``run_job(JobSpec)`` renders
this value (a container on one host, a Swarm ``replicated-job`` on a chosen node), runs it to its
end or its timeout, and removes it. A job is held like a user's server: every capability dropped
but those its kind needs, no new privileges, the lab's pids and log limits (:class:`~.spec.Hardening`),
memory and CPU limits, gpulab's labels, and no network unless it asks for one. Pure: unit tests
compare what the two backends render from the same job.
"""

import re
from dataclasses import dataclass
from types import MappingProxyType

from . import contract
from .spec import NO_GPUS, GPUGrant, Hardening, MountSpec

#: What a job may use when it says nothing: one CPU and 1 GiB are enough for tar and gzip, and keep
#: a backup from taking a GPU server's CPUs and memory away from its users.
JOB_MEM_LIMIT = 1024**3
JOB_CPU_LIMIT = 1.0

#: Networks a job may ask for: none (the default), the node's own bridge (to reach a registry), or a
#: named network of the deployment (a Swarm's overlay, where user servers live: a probe of their view).
NO_NETWORK = "none"
NODE_BRIDGE = "bridge"
NETWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class JobError(Exception):
    """A job could not run, failed or ran out of time; the message says which and why."""

    def __init__(self, message, status=500):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class JobSpec:
    """One job. ``node`` is where it must run ('' for where the hub's engine is); ``timeout``
    the seconds after which it is stopped and reported as failed."""

    name: str
    kind: str  # "backup", "restore", "archive", "save": the value of the gpulab.job label
    image: str
    command: tuple
    env: MappingProxyType
    labels: MappingProxyType
    mounts: tuple
    user: str  # "0" or "<uid>:<gid>"
    capabilities: tuple  # all others are dropped
    hardening: Hardening
    mem_limit: int
    cpu_limit: float
    timeout: float
    network: str = NO_NETWORK
    node: str = ""  # where it must run: '' (the hub's engine), a node, or EVERY_NODE
    working_dir: str = "/"
    secrets: tuple = ()  # a Swarm's secrets the job reads at /run/secrets/<name> (e.g. the registry's credentials)
    # a user's GPU job (gpulab.core.gpujobs) is made from a server's spec and keeps what it has:
    gpus: GPUGrant = NO_GPUS  # exactly these GPUs (none: no device request)
    entrypoint: tuple = ()  # (): none (gpulab's helpers run their command as it is)
    init: bool = False  # Docker's init as process 1 (signals reach the command)
    shm_size: int = 0
    sysctls: tuple = ()
    stop_grace: float = 0  # seconds between SIGTERM and SIGKILL when stopped (0: killed at once)


#: ``JobSpec.node`` for a job that runs once on every node of a Swarm (a cleanup)
EVERY_NODE = "*"


@dataclass(frozen=True)
class JobResult:
    """How a job ended: its exit status (None when it was stopped) and the last lines it wrote;
    ``lost``: why it could not finish when a machine it ran on went away ("node w2 is down")."""

    status: object
    output: str
    timed_out: bool = False
    lost: str = ""

    @property
    def ok(self):
        return self.status == 0 and not self.timed_out


def job_from_spec(spec, *, kind, timeout, stop_grace, extra_labels=None):
    """A user's GPU job as a job: the container a server's pipeline built (:class:`~.spec.ContainerSpec`:
    the user's image, uid, home, datasets, limits, hardening and exactly the granted GPUs), run to
    its end instead of served. Pure."""
    if timeout <= 0:
        raise ValueError(f"job {spec.name}: timeout must be positive, got {timeout}")
    return JobSpec(
        name=spec.name,
        kind=kind,
        image=spec.image,
        command=tuple(spec.command),
        env=spec.env,
        labels=MappingProxyType({**spec.labels, contract.L_JOB: kind, **dict(extra_labels or {})}),
        mounts=spec.mounts,
        user=spec.user or "0",
        capabilities=spec.capabilities,
        hardening=spec.hardening,
        mem_limit=spec.mem_limit,
        cpu_limit=spec.cpu_limit,
        timeout=float(timeout),
        network=spec.network or NODE_BRIDGE,
        working_dir=spec.working_dir or "/",
        gpus=spec.gpus,
        entrypoint=spec.entrypoint,
        init=spec.init,
        shm_size=spec.shm_size or 0,
        sysctls=spec.sysctls,
        stop_grace=stop_grace,
    )


def job_labels(deployment, kind, username=""):
    out = {contract.L_DEPLOYMENT: deployment, contract.L_JOB: kind}
    if username:
        out[contract.L_USER] = username
    return out


def build_job(
    *,
    deployment,
    name,
    kind,
    image,
    command,
    hardening,
    timeout,
    username="",
    mounts=(),
    env=None,
    user="0",
    capabilities=(),
    network=NO_NETWORK,
    node="",
    mem_limit=JOB_MEM_LIMIT,
    cpu_limit=JOB_CPU_LIMIT,
    secrets=(),
):
    """A job, with gpulab's labels on it. Pure. ``mounts`` are :class:`~.spec.MountSpec`."""
    for m in mounts:
        if not isinstance(m, MountSpec):
            raise TypeError(f"job {name}: mounts must be MountSpec, got {type(m).__name__}")
    # a named network of the deployment's (never the host's own: that would be no isolation)
    if network == "host" or (
        network not in (NO_NETWORK, NODE_BRIDGE) and not NETWORK_NAME.fullmatch(network)
    ):
        raise ValueError(
            f"job {name}: network must be {NO_NETWORK!r}, {NODE_BRIDGE!r} or a network's name "
            f"(not the host's), got {network!r}"
        )
    if timeout <= 0:
        raise ValueError(f"job {name}: timeout must be positive, got {timeout}")
    return JobSpec(
        name=name,
        kind=kind,
        image=image,
        command=tuple(command),
        env=MappingProxyType(dict(env or {})),
        labels=MappingProxyType(job_labels(deployment, kind, username)),
        mounts=tuple(mounts),
        user=str(user),
        capabilities=tuple(capabilities),
        hardening=hardening,
        mem_limit=mem_limit,
        cpu_limit=cpu_limit,
        timeout=float(timeout),
        network=network,
        node=node,
        secrets=tuple(secrets),
    )
