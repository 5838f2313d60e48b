"""``run_job`` on a Swarm. A job without a node (home backups, restores, archives: they work on the
shared storage, which the manager mounts too) runs as a container on the manager, next to the hub,
exactly as on one host. A job placed on a node (a save: it commits a container there) runs as a
``replicated-job`` service on that node (:func:`~.render.job_service_arguments`), watched to its end
or its timeout, its output read from the service's log, then removed."""

import asyncio
import time

import docker

from ...core.job import JobError, JobResult
from .. import container
from .render import job_service_arguments

DONE = ("complete", "failed", "rejected", "shutdown", "orphaned")


async def run_job(api, job, *, node_ids=None, on_line=None, poll=0.5):
    """Run ``job`` with the manager's APIClient ``api``. ``node_ids`` maps node names to ids
    (``job.node`` may be either)."""
    if not job.node:
        return await container.run_job(api, job, on_line=on_line)
    node_id = (node_ids or {}).get(job.node, job.node)
    try:
        kwargs = job_service_arguments(job, node_id)
    except ValueError as e:
        raise JobError(str(e), 400)
    service = await asyncio.to_thread(api.create_service, **kwargs)
    sid = service["ID"]
    try:
        task = await _wait(api, sid, job.timeout, poll)
        output = await asyncio.to_thread(_output, api, sid)
        if on_line is not None:
            for line in output.splitlines():
                on_line(line)
        if task is None:
            return JobResult(status=None, output=output, timed_out=True)
        status = task["Status"]
        exit_code = (status.get("ContainerStatus") or {}).get("ExitCode")
        if status["State"] != "complete" and not exit_code:
            # rejected or orphaned before its container ran: Swarm's own words say why
            return JobResult(
                status=f"task {status['State']}: {status.get('Err') or status.get('Message', '')}",
                output=output,
            )
        return JobResult(status=exit_code if exit_code is not None else 0, output=output)
    finally:
        await asyncio.to_thread(_remove, api, sid)


async def _wait(api, sid, timeout, poll):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = await asyncio.to_thread(api.tasks, filters={"service": sid})
        if tasks and tasks[0]["Status"]["State"] in DONE:
            return tasks[0]
        await asyncio.sleep(poll)
    return None


def _output(api, sid):
    lines = []
    for raw in api.service_logs(sid, stdout=True, stderr=True):
        lines.extend(raw.decode(errors="replace").splitlines())
    return "\n".join(lines[-container.TAIL_LINES :])


def _remove(api, sid):
    try:
        api.remove_service(sid)
    except docker.errors.NotFound:
        pass
