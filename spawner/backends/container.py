"""A container on the engine the hub talks to (this host's, or a Swarm manager's): how every
container gpulab runs is held (:func:`held`), and ``run_job`` for a :class:`~gpulab.core.job.JobSpec`
as such a container: rendered (:func:`job_arguments`, pure), run to its end or its timeout with its
output followed as it comes, then removed (also when the caller gives up). Both backends use it:
on a Swarm, jobs that need no particular node run here on the manager, next to the hub."""

import asyncio
import collections
import threading

import docker
from docker.types import DeviceRequest, LogConfig, Mount

from ..core.job import NO_NETWORK, JobError, JobResult


def docker_mount(m, **volume_options):
    """A :class:`~gpulab.core.spec.MountSpec` as docker-py's Mount (a container's and a Swarm
    task's alike; ``volume_options`` for a volume, e.g. a Swarm's driver)."""
    if m.kind == "tmpfs":
        return Mount(
            target=m.target,
            source=None,
            type="tmpfs",
            tmpfs_size=m.size or None,
            tmpfs_mode=m.mode,
        )
    kw = {}
    if m.kind == "volume":
        kw = {"labels": dict(m.labels)} if m.labels else {}
        kw.update(volume_options)
    return Mount(target=m.target, source=m.source, type=m.kind, read_only=m.read_only, **kw)


def held(capabilities, no_new_privileges, hardening):
    """The ``create_host_config`` arguments that hold every container gpulab runs: all capabilities
    dropped but ``capabilities``, no new privileges, the lab's pids limit and log rotation."""
    return {
        "cap_drop": ["ALL"],
        "cap_add": list(capabilities),
        "security_opt": ["no-new-privileges:true"] if no_new_privileges else None,
        "pids_limit": hardening.pids_limit,
        "log_config": LogConfig(
            type="json-file",
            config={
                "max-size": str(hardening.log_max_size),
                "max-file": str(hardening.log_max_files),
            },
        ),
    }


def cpu_quota(cpu_limit, period=100_000):
    return {"cpu_period": period, "cpu_quota": int(cpu_limit * period)}


def gpu_device_requests(uuids):
    """A request for exactly these GPUs; no GPU means no device request at all."""
    if not uuids:
        return []
    return [DeviceRequest(driver="nvidia", device_ids=list(uuids), capabilities=[["gpu"]])]


def job_arguments(job):
    """``(create_kwargs, host_config_kwargs)`` for one job: a container that is removed by
    ``run_job`` once its end (and its output) are known, never by Docker on its own."""
    create = {
        "image": job.image,
        "command": list(job.command),
        # gpulab's helpers: none (the image's tini or gpulab-start is for servers); a user's job:
        # gpulab's start, as its server's
        "entrypoint": list(job.entrypoint),
        "environment": dict(job.env),
        "labels": dict(job.labels),
        "name": job.name,
        "user": job.user,
        "working_dir": job.working_dir,
        "network_disabled": job.network == NO_NETWORK,
    }
    host = {
        "auto_remove": False,
        "mounts": [docker_mount(m) for m in job.mounts],
        "network_mode": job.network,
        **held(job.capabilities, True, job.hardening),
    }
    if job.mem_limit is not None:
        host["mem_limit"] = job.mem_limit
    if job.cpu_limit is not None:
        host.update(cpu_quota(job.cpu_limit))
    if job.gpus.uuids:
        host["device_requests"] = gpu_device_requests(job.gpus.uuids)
    if job.init:
        host["init"] = True
    if job.shm_size:
        host["shm_size"] = job.shm_size
    if job.sysctls:
        host["sysctls"] = dict(job.sysctls)
    return create, host


TAIL_LINES = 40
MAX_LINE = 4096  # bytes of one line kept (a longer one is cut)


class OutputFollower:
    """A container's output, read in a thread as it is written: every line goes to ``on_line``
    (progress), the last ones are kept for the result. Never the whole log on the event loop."""

    def __init__(self, stream, on_line=None, keep=TAIL_LINES):
        self.tail = collections.deque(maxlen=keep)
        self.on_line = on_line
        self._stream = stream
        self._partial = b""
        self.thread = threading.Thread(target=self._run, daemon=True, name="gpulab-job-output")
        self.thread.start()

    def _run(self):
        try:
            for chunk in self._stream:
                data = self._partial + chunk
                *lines, self._partial = data.split(b"\n")
                if len(self._partial) > MAX_LINE:  # output without newlines: cut, never hoard
                    lines.append(self._partial[:MAX_LINE])
                    self._partial = b""
                for raw in lines:
                    self._line(raw[:MAX_LINE])
            if self._partial:
                self._line(self._partial)
        except Exception:  # the stream ends with the container; a broken one only loses progress
            pass

    def _line(self, raw):
        line = raw.decode(errors="replace").rstrip("\r")
        self.tail.append(line)
        if self.on_line is not None:
            try:
                self.on_line(line)
            except Exception:
                pass

    def text(self):
        return "\n".join(line for line in self.tail if line.strip())

    def close(self, timeout=5):
        self.thread.join(timeout)
        try:
            self._stream.close()
        except Exception:
            pass


async def run_job(api, job, *, on_line=None, on_start=None, keep_on_cancel=False):
    """Run ``job`` with the docker-py APIClient ``api``; returns a :class:`JobResult`.

    ``on_line(line)`` is called from a thread for each line the job writes; ``on_start(id)``
    once its container runs. Cancelled, the job is killed and removed, or (``keep_on_cancel``: a
    user's job when the hub stops) left running for the next hub to follow."""
    if job.secrets:
        raise JobError(f"job {job.name}: secrets are given to jobs on a Swarm's nodes only", 400)
    create, host = job_arguments(job)
    create["host_config"] = api.create_host_config(**host)
    try:
        container = await asyncio.to_thread(api.create_container, **create)
    except docker.errors.ImageNotFound:
        # a Swarm manager has the lab's images in the registry, not always on its own engine
        await asyncio.to_thread(_pull, api, job.image)
        container = await asyncio.to_thread(api.create_container, **create)
    cid = container["Id"]
    try:
        await asyncio.to_thread(api.start, cid)
    except BaseException:
        await asyncio.to_thread(_remove, api, cid)
        raise
    if on_start is not None:
        on_start(cid)
    return await follow_job(
        api, cid, job.timeout, job.stop_grace, on_line=on_line, keep_on_cancel=keep_on_cancel
    )


async def follow_job(
    api, cid, timeout, stop_grace=0, *, on_line=None, since=0, keep_on_cancel=False
):
    """Follow a job's running container ``cid`` to its end or ``timeout`` seconds (then stopped:
    SIGTERM, ``stop_grace`` seconds, SIGKILL; at once when 0), and remove it; the hub also uses it
    for a job it finds running after a restart (its output from ``since``, a Unix time)."""
    follower = None
    try:
        follower = OutputFollower(
            api.logs(cid, stream=True, follow=True, stdout=True, stderr=True, since=since or None),
            on_line,
        )
        try:
            waited = await asyncio.wait_for(asyncio.to_thread(api.wait, cid), max(timeout, 0.001))
        except asyncio.TimeoutError:
            await asyncio.to_thread(_stop, api, cid, stop_grace)
            follower.close()
            return JobResult(status=None, output=follower.text(), timed_out=True)
        follower.close(timeout=10)
        # the end as the engine kept it (a follower may lag behind a job that wrote a flood)
        last = await asyncio.to_thread(_last_lines, api, cid)
        return JobResult(status=waited.get("StatusCode"), output=last or follower.text())
    except asyncio.CancelledError:
        if keep_on_cancel:
            cid = None
        raise
    finally:
        if follower is not None:
            follower.close(timeout=0)
        if cid is not None:
            await asyncio.to_thread(_remove, api, cid)


def _last_lines(api, cid):
    try:
        raw = api.logs(cid, stdout=True, stderr=True, tail=TAIL_LINES)
    except docker.errors.APIError:
        return ""
    lines = raw.decode(errors="replace").splitlines()
    return "\n".join(line[:MAX_LINE] for line in lines if line.strip())


def _stop(api, cid, grace):
    if not grace:
        return _kill(api, cid)
    try:
        api.stop(cid, timeout=int(grace))
    except docker.errors.APIError as e:
        if e.status_code not in (404, 409):
            raise


def _pull(api, image):
    repo, _, tag = (
        image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    )
    for event in api.pull(repo, tag=tag, stream=True, decode=True):
        if "error" in event:
            raise docker.errors.APIError(f"pull of {image} failed: {event['error']}")


def _kill(api, cid):
    try:
        api.kill(cid)
    except docker.errors.APIError as e:
        if e.status_code not in (404, 409):  # gone, or not running any more
            raise


def _remove(api, cid):
    try:
        api.remove_container(cid, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        if e.status_code != 409:  # removal already in progress
            raise
