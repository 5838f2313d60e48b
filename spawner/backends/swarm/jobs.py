"""``run_job`` on a Swarm. A job without a node (home backups, restores, archives: they work on the
shared storage, which the manager mounts too) runs as a container on the manager, next to the hub,
exactly as on one host. A job placed on a node (a save: it commits a container there) runs as a
``replicated-job`` service on that node, and a job for every node (a cleanup) as a ``global-job``
(:func:`~.render.job_service_arguments`): watched to its end, its timeout or the loss of a node it
runs on (a dead node's tasks look alive to Swarm until the node is back), its output read from the
service's log, then removed."""

import asyncio
import dataclasses
import time

import docker

from ...core.job import EVERY_NODE, NO_NETWORK, JobError, JobResult
from .. import container
from . import cluster, registry
from .render import job_service_arguments

DONE = ("complete", "failed", "rejected", "shutdown", "orphaned")
NODE_CHECK_EVERY = 5.0  # seconds between looks at the nodes of a job's unfinished tasks
LOST_STATES = ("down", "disconnected")  # a node in "unknown" (a new leader's view) may be fine
LOG_WAIT = 30.0  # seconds to read a job's log when one of its nodes is gone


async def run_job(api, job, *, node_ids=None, on_line=None, poll=0.5, auth=None, pins=None):
    """Run ``job`` with the manager's APIClient ``api``. ``node_ids`` maps node names to ids
    (``job.node`` may be either); ``auth``: the registry's credentials, with which ``api`` logs in
    so that the service carries them to the node that pulls the image; ``pins``: the deployment's
    last pinned digests (:func:`.registry.pinned`)."""
    if not job.node:
        return await container.run_job(api, job, on_line=on_line)
    if job.network == NO_NETWORK:  # refused before anything is asked of the Swarm
        raise JobError(
            f"job {job.name}: a Swarm job on a node always has the node's bridge network; ask for it (network='bridge')",
            400,
        )
    node_id = None if job.node == EVERY_NODE else (node_ids or {}).get(job.node, job.node)
    job = dataclasses.replace(
        job, image=await asyncio.to_thread(registry.pinned, api, job.image, auth, None, pins)
    )
    try:
        secret_ids = await asyncio.to_thread(_secret_ids, api, job.secrets)
        kwargs = job_service_arguments(job, node_id, secret_ids)
    except ValueError as e:
        raise JobError(str(e), 400)
    service = await asyncio.to_thread(api.create_service, **kwargs)
    sid = service["ID"]
    try:
        tasks, lost = await _wait(
            api,
            sid,
            job.timeout,
            poll,
            expected=1 if node_id else await asyncio.to_thread(_ready_nodes, api),
            one_node=bool(node_id),
        )
        if lost and node_id:
            # its log is on the dead node: asking for it could wait as long as the node is gone
            return JobResult(status=f"the job lost its node: {lost}", output="", lost=lost)
        try:  # a job on every node: what the live nodes wrote (a dead one's part may be missing)
            output = await asyncio.wait_for(
                asyncio.to_thread(_output, api, sid), LOG_WAIT if lost else None
            )
        except asyncio.TimeoutError:
            output = ""
        if on_line is not None:
            for line in output.splitlines():
                on_line(line)
        if tasks is None:
            return JobResult(status=None, output=output, timed_out=True)
        status = _status(tasks)
        if lost:
            return JobResult(
                status=status or f"the job lost a node: {lost}", output=output, lost=lost
            )
        return JobResult(status=status, output=output)
    finally:
        await asyncio.to_thread(_remove, api, sid)


def _status(tasks):
    """0 when every task completed; else the first failure in Swarm's own words (or exit code)."""
    for task in tasks:
        status = task["Status"]
        code = (status.get("ContainerStatus") or {}).get("ExitCode")
        if status["State"] != "complete" or code:
            if code:
                return code
            return f"task {status['State']}: {status.get('Err') or status.get('Message', '')}"
    return 0


def _secret_ids(api, names):
    if not names:
        return {}
    found = {s["Spec"]["Name"]: s["ID"] for s in api.secrets(filters={"name": list(names)})}
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"the Swarm has no secret {missing[0]!r}")
    return found


def _ready_nodes(api):
    return sum(
        1
        for n in api.nodes()
        if (n.get("Status") or {}).get("State") == "ready"
        and (n.get("Spec") or {}).get("Availability") == "active"
    )


async def _wait(api, sid, timeout, poll, expected, one_node=True):
    """(tasks, "") once every task is done; (None, "") at the timeout. When a node an unfinished
    task runs on is down or gone: a job on one node ends at once, (tasks, why); a job on every
    node ends once the live nodes' tasks are done, (their tasks, why)."""
    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while time.monotonic() < deadline:
        tasks = await asyncio.to_thread(api.tasks, filters={"service": sid})
        if len(tasks) >= expected and all(t["Status"]["State"] in DONE for t in tasks):
            return tasks, ""
        if time.monotonic() - checked >= NODE_CHECK_EVERY:
            checked = time.monotonic()
            running_on = {
                t["NodeID"] for t in tasks if t.get("NodeID") and t["Status"]["State"] not in DONE
            }
            if running_on:
                nodes = await asyncio.to_thread(api.nodes)
                gone = {n: lost_node(nodes, {n}) for n in running_on}
                gone = {n: why for n, why in gone.items() if why}
                if gone and one_node:
                    return tasks, next(iter(gone.values()))
                live = [t for t in tasks if t.get("NodeID") not in gone]
                if (
                    gone
                    and len(tasks) >= expected
                    and all(t["Status"]["State"] in DONE for t in live)
                ):
                    return live, "; ".join(sorted(gone.values()))
        await asyncio.sleep(poll)
    return None, ""


def lost_node(nodes, node_ids):
    """Why one of ``node_ids`` cannot finish a task ("node w2 is down", "node ... left the
    Swarm"), or "" when none is down or gone. Pure: ``nodes`` as the manager lists them."""
    by_id = {n["ID"]: n for n in nodes}
    for node_id in sorted(node_ids):
        node = by_id.get(node_id)
        if node is None:
            return f"node {node_id[:12]} left the Swarm"
        state = (node.get("Status") or {}).get("State")
        if state in LOST_STATES:
            return f"node {cluster.node_name(node)} is {state}"
    return ""


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
