"""Apply a :class:`~gpulab.core.spec.ContainerSpec` to Docker Swarm: the same spec becomes a service.

:func:`service_arguments` is pure: it returns the keyword arguments of docker-py's
``APIClient.create_service`` for one user server:

* one task, restart condition ``none`` (a stopped server stays stopped; the hub decides);
* ``N`` GPUs asked of Swarm as the generic resource ``gpu``; Swarm picks the GPUs on the node and
  hands the task their UUIDs in ``DOCKER_RESOURCE_GPU``;
* placed on the node gpulab's allocator chose (``node.id == ...``), plus any node-label constraints;
* ``/dev/shm`` as a tmpfs mount of the profile's size (services cannot set ``shm_size``);
* the user's overlay network, endpoint mode ``dnsrr`` (no virtual IP: the hub reaches the task by name);
* no port published on any node.

:func:`job_service_arguments` does the same for a :class:`~gpulab.core.job.JobSpec` placed on a
node (a ``replicated-job``). Both are held by :func:`held`, as the single host's renderer holds
its containers: every capability dropped but the kind's, no new privileges, pids and log limits.
"""

from docker.types import (
    ContainerSpec,
    DriverConfig,
    EndpointSpec,
    Mount,
    Placement,
    Resources,
    RestartPolicy,
    SecretReference,
    ServiceMode,
    TaskTemplate,
)

from ...core import contract
from ...core.job import NO_NETWORK, NODE_BRIDGE
from ..container import docker_mount


def service_mount(m):
    """As a container's (the one renderer of mounts), with a volume made by the node's local driver."""
    return docker_mount(m, driver_config=DriverConfig("local"))


def log_driver(hardening):
    return {
        "Name": "json-file",
        "Options": {
            "max-size": str(hardening.log_max_size),
            "max-file": str(hardening.log_max_files),
        },
    }


def held(task, no_new_privileges, hardening):
    """Hold a task like every container gpulab runs, on the fields docker-py does not model (set on
    its dicts): Pids (engine API 1.41+); NoNewPrivileges (API 1.46+, Docker 27; older engines
    ignore it, and ``gpulab check`` says so). Capabilities and logs are set where the task is built."""
    if no_new_privileges:
        task["ContainerSpec"].setdefault("Privileges", {})["NoNewPrivileges"] = True
    if hardening.pids_limit:
        task["Resources"].setdefault("Limits", {})["Pids"] = hardening.pids_limit
    return task


def service_arguments(
    spec,
    *,
    node_id=None,
    constraints=(),
    extra_container=None,
    extra_resources=None,
    extra_placement=None,
):
    """``create_service`` kwargs for ``spec`` (``spec.gpu_count`` GPUs, on ``node_id`` if given)."""
    mounts = [service_mount(m) for m in spec.mounts]
    if spec.shm_size:
        mounts.append(
            Mount(target="/dev/shm", source=None, type="tmpfs", tmpfs_size=int(spec.shm_size))
        )
    container = {
        "image": spec.image,
        "command": list(spec.entrypoint) or None,  # None: the image's ENTRYPOINT
        "args": list(spec.command),
        "init": spec.init or None,
        "user": spec.user or None,
        "env": dict(spec.env),
        "labels": dict(spec.labels),
        "mounts": mounts,
        "workdir": spec.working_dir or None,
        "hostname": spec.name,
        "cap_drop": ["ALL"],
        "cap_add": list(spec.capabilities),
        "sysctls": dict(spec.sysctls),
    }
    container.update(extra_container or {})
    resources = {
        "mem_limit": spec.mem_limit,
        "cpu_limit": int(spec.cpu_limit * 1e9) if spec.cpu_limit else None,
        "generic_resources": {contract.GPU_RESOURCE: spec.gpus.count} if spec.gpus.count else None,
    }
    resources.update(extra_resources or {})
    placement = {"constraints": ([f"node.id=={node_id}"] if node_id else []) + list(constraints)}
    placement.update(extra_placement or {})
    task = TaskTemplate(
        container_spec=ContainerSpec(**container),
        resources=Resources(**resources),
        restart_policy=RestartPolicy(condition="none"),
        placement=Placement(**placement),
        networks=[spec.network] if spec.network else [],
        log_driver=log_driver(spec.hardening),
    )
    held(task, spec.no_new_privileges, spec.hardening)
    return {
        "task_template": task,
        "name": spec.name,
        "labels": dict(spec.labels),
        "endpoint_spec": EndpointSpec(mode="dnsrr"),
    }


def job_service_arguments(job, node_id, secret_ids=None):
    """``create_service`` kwargs for a job on the node ``node_id`` (one task, ``replicated-job``),
    or on every node (``node_id`` None for :data:`~gpulab.core.job.EVERY_NODE`: ``global-job``), run
    once to its end, never restarted. Swarm has no "none" network for tasks (moby/moby#42204): a job
    on a node runs on that node's bridge (or, named, on one of the deployment's overlays: a probe
    of what a user's server there reaches), so only jobs that need the network are placed.
    ``secret_ids`` maps the job's secret names to their ids."""
    if job.network == NO_NETWORK:
        raise ValueError(
            f"job {job.name}: a Swarm job on a node always has the node's bridge network; ask for it (network='bridge')"
        )
    missing = [s for s in job.secrets if s not in (secret_ids or {})]
    if missing:
        raise ValueError(f"job {job.name}: no Swarm secret {missing[0]!r}")
    container = ContainerSpec(
        image=job.image,
        command=list(job.command),
        env=dict(job.env),
        labels=dict(job.labels),
        mounts=[service_mount(m) for m in job.mounts],
        user=job.user,
        workdir=job.working_dir,
        cap_drop=["ALL"],
        cap_add=list(job.capabilities),
        # at /run/secrets/<name>, readable by the job's user only
        secrets=[
            SecretReference(secret_ids[name], name, uid=job.user.split(":")[0], mode=0o400)
            for name in job.secrets
        ]
        or None,
    )
    task = TaskTemplate(
        container_spec=container,
        networks=[] if job.network == NODE_BRIDGE else [job.network],
        resources=Resources(mem_limit=job.mem_limit, cpu_limit=int(job.cpu_limit * 1e9)),
        restart_policy=RestartPolicy(condition="none"),
        placement=Placement(constraints=[f"node.id=={node_id}"] if node_id else []),
        log_driver=log_driver(job.hardening),
    )
    held(task, True, job.hardening)
    return {
        "task_template": task,
        "name": job.name,
        "labels": dict(job.labels),
        "mode": ServiceMode("replicated-job" if node_id else "global-job"),
    }
