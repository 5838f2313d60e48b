"""A user's GPU job on a Swarm: one task per GPU server, all granted together by the allocator
(:meth:`~gpulab.core.gpus.allocator.Allocator.acquire_gang`), each a ``replicated-job`` service on
its node, made from a server's spec (:func:`.render.service_arguments`: the user's image, uid,
home, limits and GPUs as the ``gpu`` generic resource) on the job's own overlay network, with the
job's SSH key as a Swarm secret. Rank 0 runs the command; its output is followed; the job ends
when rank 0's task ends, at its time limit, when it is stopped, or when another task or its node
dies (then with that reason). Everything it made (services, network, secret) goes at its end."""

import asyncio
import time

import docker
from docker.types import SecretReference, ServiceMode

from ...core import contract
from ...core.job import JobResult
from .. import container
from . import registry
from .cluster import DONE_STATES, node_name, task_gpus
from .render import service_arguments


def job_labels(deployment, job_id, username):
    return {
        contract.L_DEPLOYMENT: deployment,
        contract.L_JOB: "user",
        contract.L_JOB_ID: str(job_id),
        contract.L_USER: username,
    }


def create_network(api, name, labels, encrypted):
    """The job's own overlay (only its tasks join it); returns its subnet."""
    options = {"encrypted": "true"} if encrypted else None
    net = api.create_network(
        name, driver="overlay", attachable=False, options=options, labels=labels
    )
    info = api.inspect_network(net["Id"])
    configs = (info.get("IPAM") or {}).get("Config") or []
    return configs[0].get("Subnet", "") if configs else ""


def remove_all(api, deployment, job_id):
    """Everything a job made (after its end, or found after a hub restart)."""
    flt = {"label": [contract.deployment_filter(deployment), f"{contract.L_JOB_ID}={job_id}"]}
    for s in api.services(filters=flt):
        try:
            api.remove_service(s["ID"])
        except docker.errors.NotFound:
            pass
    for s in api.secrets(filters=flt):
        _retry_remove(api.remove_secret, s["ID"])
    for n in api.networks(filters=flt):
        _retry_remove(api.remove_network, n["Id"])


def _retry_remove(remove, ident, tries=30):
    """A network or secret is refused while a task still uses it: asked again for a while."""
    for _ in range(tries):
        try:
            remove(ident)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            time.sleep(1)


def services_of(api, deployment, job_id):
    flt = {"label": [contract.deployment_filter(deployment), f"{contract.L_JOB_ID}={job_id}"]}
    return api.services(filters=flt)


def task_args(spec, node_id, secret, stop_grace):
    """``create_service`` kwargs of one task: a server's, run once to its end."""
    kwargs = service_arguments(
        spec,
        node_id=node_id,
        extra_container={
            "secrets": [
                SecretReference(secret["ID"], secret["Name"], uid="0", gid="0", mode=0o400)
            ],
            "stop_grace_period": int(stop_grace * 1e9),
        },
    )
    kwargs["mode"] = ServiceMode("replicated-job")
    return kwargs


async def run_gang(
    api,
    specs,
    node_ids,
    *,
    deployment,
    job_id,
    username,
    key,
    timeout,
    stop_grace,
    auth=None,
    pins=None,
    on_line=None,
    on_start=None,
    poll=1.0,
):
    """Run a multi-node job's tasks (``specs`` and ``node_ids``, their nodes, in rank order) to the end
    of rank 0; returns a :class:`~gpulab.core.job.JobResult`. Cancelled, the tasks are stopped
    (SIGTERM, ``stop_grace`` seconds) and removed. Until every task runs the tasks are asked
    about often (0.1 s, growing to ``poll``): a poll of a whole second made a job's start take one
    or two seconds by chance; then every ``poll`` seconds."""
    labels = job_labels(deployment, job_id, username)
    sids, follower = [], None
    try:
        secret = await asyncio.to_thread(
            api.create_secret, f"{deployment}-job-{job_id}-key", key, labels=labels
        )
        secret = {"ID": secret["ID"], "Name": f"{deployment}-job-{job_id}-key"}
        for spec, node_id in zip(specs, node_ids, strict=True):
            image = await asyncio.to_thread(registry.pinned, api, spec.image, auth, None, pins)
            spec = _with(spec, image=image, labels={**spec.labels, **labels})
            kwargs = task_args(spec, node_id, secret, stop_grace)
            sids.append((await asyncio.to_thread(api.create_service, **kwargs))["ID"])
        deadline, wait = None, min(0.1, poll)
        while True:
            tasks = [await asyncio.to_thread(_task, api, sid) for sid in sids]
            if deadline is None and all(t and t["Status"]["State"] == "running" for t in tasks):
                deadline = time.monotonic() + timeout
                follower = container.OutputFollower(
                    api.service_logs(sids[0], follow=True, stdout=True, stderr=True), on_line
                )
                if on_start is not None:  # with the GPUs Swarm handed each task
                    on_start(",".join(sids), [task_gpus(t) for t in tasks])
            ended = await asyncio.to_thread(_ended, api, tasks)
            if ended is not None:
                rank, task, why = ended
                if rank == 0 and why is None:
                    code = (task["Status"].get("ContainerStatus") or {}).get("ExitCode")
                    return JobResult(status=code, output=_text(follower))
                return JobResult(status=f"task {rank} {why}", output=_text(follower))
            if deadline is not None and time.monotonic() > deadline:
                return JobResult(status=None, output=_text(follower), timed_out=True)
            await asyncio.sleep(poll if deadline is not None else wait)
            wait = min(wait * 1.5, poll)
    finally:
        if follower is not None:
            follower.close(timeout=0)
        await asyncio.to_thread(remove_all, api, deployment, job_id)


def _with(spec, **changes):
    import dataclasses
    from types import MappingProxyType

    if "labels" in changes:
        changes["labels"] = MappingProxyType(dict(changes["labels"]))
    return dataclasses.replace(spec, **changes)


#: a service whose task the orchestrator has not made yet (just created): not ended, not running
NOT_YET = {"Status": {"State": "new"}}


def _task(api, sid):
    """The service's latest task; :data:`NOT_YET` while it has none; None when the service is gone."""
    try:
        tasks = api.tasks(filters={"service": sid})
    except docker.errors.NotFound:
        return None
    return max(tasks, key=lambda t: t.get("CreatedAt", "")) if tasks else NOT_YET


def _ended(api, tasks):
    """(rank, task, why) of the first task that ended (why None: rank 0 ended by itself), or None."""
    for rank, task in enumerate(tasks):
        if task is None:
            return rank, None, "is gone (stopped)"
        status = task["Status"]
        if status["State"] in DONE_STATES:
            if (
                rank == 0
                and status["State"] in ("complete", "failed")
                and status.get("ContainerStatus")
            ):
                return 0, task, None
            detail = status.get("Err") or status.get("Message") or ""
            return rank, task, f"ended ({status['State']}{': ' + detail if detail else ''})"
        node_id = task.get("NodeID")
        if node_id and status["State"] == "running":
            try:
                node = api.inspect_node(node_id)
            except docker.errors.NotFound:
                return rank, task, f"lost its node {node_id[:12]} (it left the Swarm)"
            state = node["Status"]["State"]
            if state != "ready":
                return rank, task, f"lost its node {node_name(node)} ({state})"
    return None


def _text(follower):
    if follower is None:
        return ""
    follower.close(timeout=2)
    return follower.text()


async def stop(api, deployment, job_id):
    """Stop a job's tasks (Swarm gives each its stop grace period), leaving the rest to run_gang."""
    for s in await asyncio.to_thread(services_of, api, deployment, job_id):
        try:
            await asyncio.to_thread(api.remove_service, s["ID"])
        except docker.errors.NotFound:
            pass
