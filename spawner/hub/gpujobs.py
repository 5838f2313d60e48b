"""Users' GPU jobs in the hub (:mod:`gpulab.core.gpujobs`): submitted through the API (the
client, the Jobs page), queued for GPUs in the allocator with the servers (fair-share or first
come), run through the backend's ``run_job`` from the same spec as a server
(:meth:`~gpulab.hub.spawner.GPULabSpawner.job_spec`), and finished: the GPUs go back to the
queue at once, the outcome and the output's last lines are kept in the job list
(``gpulab-jobs.sqlite`` in the hub's state directory), the metrics count it.

A job outlives a hub restart: its container keeps running and the next hub follows it again (its
GPUs are back in the table from the container's labels); a job that was waiting waits again.
"""

import asyncio
import json
import time

from ..core import contract, gpujobs
from ..core.gpus.allocator import QuotaExceeded
from ..core.job import JobError, job_from_spec
from ..core.site.facts import jobs_path
from ..core.spec import host_dirs
from .hostdirs import ForeignDirectory, prepare_host_dir
from .jobstore import COLUMNS, JobStore, Output

TAIL_LINES = 200  # lines kept in the list once it ended (the whole log is ~/jobs/<id>/log)


class JobNotFound(Exception):
    pass


def completed(streamed, ending):
    """The streamed lines, completed with the engine's own last lines (``ending``) where the stream
    fell behind the job's end: what ``ending`` has after the last line both share (a marker when
    they share none: a flood the stream could not keep up with)."""
    if not ending or (streamed and streamed[-1] == ending[-1]):
        return streamed
    if streamed:
        for i in range(len(ending) - 1, -1, -1):
            if ending[i] == streamed[-1]:
                return [*streamed, *ending[i + 1 :]]
        return [*streamed, "(…)", *ending]
    return list(ending)


async def prepare_dirs(spec):
    """The per-user host directories a job's container mounts (its home), as a server's start
    makes them."""
    for path, owner in host_dirs(spec):
        uid, gid = (spec.identity.uid, spec.identity.gid) if owner == "user" else (0, 0)
        try:
            await asyncio.to_thread(prepare_host_dir, path, uid, gid)
        except ForeignDirectory as e:
            raise JobError(f"your storage cannot be used: {e}", 409)


def new_key():
    """A multi-node job's own SSH key (OpenSSH's format): its tasks' identity and host key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )


class GPUJobs:
    def __init__(self, app, lab):
        self.app = app
        self.lab = lab
        self.log = app.log
        self.limits = lab.job_settings
        self.store = JobStore(jobs_path(lab.state_dir))
        self.tasks = {}  # job id -> its asyncio task
        self.outputs = {}  # job id -> Output (live jobs)
        self.containers = {}  # job id -> container id (running jobs)
        self.cancelled = set()  # job ids a user or admin cancelled
        self.positions = {}  # job id -> (place in the queue, what it waits for)
        self._resume = None
        self._stopping = None

    # --- life of the service ---

    def start(self):
        self._resume = asyncio.ensure_future(self._resume_jobs())

    def close(self):
        """The hub stops: running jobs keep running (the next hub follows them)."""
        for task in self.tasks.values():
            task.cancel()
        self.store.close()

    def _count(self):
        rows = self.store.live()
        waiting = sum(r["state"] == gpujobs.WAITING for r in rows)
        self.lab.metrics.job_counts(waiting, len(rows) - waiting)

    async def _resume_jobs(self):
        """After a hub restart: follow the jobs whose containers still run, finish those whose
        containers ended, queue the waiting ones again."""
        await self.lab.gpus.ensure_synced()  # the table knows the running jobs' GPUs first
        for row in self.store.live():
            try:
                await self._resume_one(row)
            except Exception as e:  # one job's trouble never stops the others
                self.log.exception("gpulab jobs: job %s could not be resumed", row["id"])
                self._finish(row["id"], row["user"], gpujobs.FAILED, f"lost at a hub restart: {e}")
        self._count()

    async def _resume_one(self, row):
        job_id = row["id"]
        row = self.store.get(job_id)
        if row is None or row["state"] not in gpujobs.LIVE:
            return
        user = self.app.users[row["user"]] if self._user_exists(row["user"]) else None
        if user is None or user.id != row["user_id"]:
            self._finish(job_id, row["user"], gpujobs.FAILED, "its user was deleted")
            return
        cid = await self.lab.backend.resume_job(self.lab, job_id)
        if row["state"] == gpujobs.WAITING or (row["state"] == gpujobs.STARTING and not cid):
            spawner = user.spawner
            request, spawn = await spawner.job_request(json.loads(row["request"]), self.limits)
            self._launch(job_id, user, spawner, request, spawn)
            self.log.info("gpulab jobs: job %s of %s waits again", job_id, user.name)
            return
        if not cid:
            why = (
                "stopped by a hub restart (a Swarm's jobs are not followed across restarts)"
                if self.lab.backend.gang_jobs
                else "its container is gone (hub restart)"
            )
            self._finish(job_id, user.name, gpujobs.FAILED, why)
            return
        left = row["hours"] * 3600 - (time.time() - (row["started"] or time.time()))
        self.outputs[job_id] = Output(asyncio.get_running_loop())
        self.containers[job_id] = cid
        self.tasks[job_id] = asyncio.ensure_future(self._follow(job_id, user, cid, left))
        self.log.info("gpulab jobs: following job %s of %s again", job_id, user.name)

    def _user_exists(self, name):
        try:
            self.app.users[name]
        except KeyError:
            return False
        return True

    # --- submit, cancel ---

    async def submit(self, user, body):
        """A new job of ``user`` from an API body; returns its row. Raises JobInputError (400),
        JobError (status) or QuotaExceeded; nothing is created then."""
        spawner = user.spawner
        request, spawn = await spawner.job_request(body, self.limits)
        self.store.prune(time.time() - self.limits["keep_days"] * 86400)
        live = [r for r in self.store.of_user(user.id) if r["state"] in gpujobs.LIVE]
        if len(live) >= self.limits["max_per_user"]:
            raise JobError(
                f"you have {len(live)} job(s) running or waiting, the most this hub allows "
                f"(jobs.max_per_user: {self.limits['max_per_user']})",
                409,
            )
        manager = self.lab.gpus
        quota = manager.quota_for(user.name, [g.name for g in user.groups])
        if quota is not None:
            already = manager.allocator.requested_by_user(user.name)
            asked = request.gpus * request.nodes
            if already + asked > quota:
                raise QuotaExceeded(
                    f"{asked} is over your GPU quota of {quota} ({already} already held or "
                    "requested by your servers and jobs)"
                )
        job_id = self.store.add(
            user=user.name,
            user_id=user.id,
            name=request.name,
            state=gpujobs.WAITING,
            gpus=request.gpus,
            nodes=request.nodes,
            profile=request.profile["name"],
            save=request.save,
            request=json.dumps(
                {
                    "command": [] if request.notebook else list(request.command),
                    "notebook": request.notebook,
                    "parameters": request.parameters or {},
                    "gpus": request.gpus,
                    "nodes": request.nodes,
                    "profile": request.profile["name"] if not request.save else "",
                    "save": request.save,
                    "time": request.hours,
                    "name": request.name,
                }
            ),
            hours=request.hours,
            submitted=time.time(),
        )
        self._launch(job_id, user, spawner, request, spawn)
        self.log.info(
            "gpulab jobs: %s submitted job %s (%d GPU(s), %s, %s)",
            user.name,
            job_id,
            request.gpus,
            request.profile["name"],
            gpujobs.format_hours(request.hours),
        )
        self._count()
        return self.store.get(job_id)

    def _launch(self, job_id, user, spawner, request, spawn):
        self.outputs[job_id] = Output(asyncio.get_running_loop())
        run = self._run_gang if self.lab.backend.gang_jobs else self._run
        self.tasks[job_id] = asyncio.ensure_future(run(job_id, user, spawner, request, spawn))

    async def cancel(self, row, by):
        """Cancel a waiting job (it leaves the queue) or stop a running one (SIGTERM, then
        SIGKILL after the grace time); it is recorded as cancelled."""
        job_id = row["id"]
        if self._resume is not None and not self._resume.done():
            await self._resume  # after a restart: the job is followed (or queued) first
            row = self.store.get(job_id)
        if row["state"] not in gpujobs.LIVE:
            raise JobError(f"job {job_id} already ended ({row['state']})", 409)
        self.cancelled.add(job_id)
        self.log.info("gpulab jobs: job %s of %s cancelled by %s", job_id, row["user"], by)
        cid = self.containers.get(job_id)
        if cid is not None:  # stopped in the background: the job has its grace time to end
            self._stop_soon(job_id, cid)
            return
        task = self.tasks.get(job_id)
        if task is None:
            self._finish(job_id, row["user"], gpujobs.CANCELLED, "cancelled")
        elif row["state"] == gpujobs.WAITING:
            task.cancel()  # it leaves the queue
        # starting: its container is being made; it is stopped as soon as it runs (started())

    def _stop_soon(self, job_id, ref):
        self._stopping = asyncio.ensure_future(
            self.lab.backend.stop_job(self.lab, job_id, ref, gpujobs.STOP_GRACE)
        )

    # --- one job ---

    async def _run(self, job_id, user, spawner, request, spawn):
        holder = gpujobs.holder(user.name, job_id)
        allocator = self.lab.gpus.allocator
        state, reason, status, tail = gpujobs.FAILED, "", None, ""
        output = self.outputs[job_id]
        try:
            manager = self.lab.gpus
            quota = manager.quota_for(user.name, [g.name for g in user.groups])

            def waiting(position, holders):
                self.positions[job_id] = (position, len(holders))

            uuids = await allocator.acquire(
                holder,
                request.gpus,
                where=spawner.gpu_filter(spawn),
                quota=quota,
                wait=True,
                timeout=None,  # a job waits until it gets its GPUs or is cancelled
                on_wait=waiting,
                show_holders=False,
            )
            self.positions.pop(job_id, None)
            self.store.update(job_id, state=gpujobs.STARTING, gpu_uuids=",".join(uuids))
            spec = await spawner.job_spec(job_id, spawn, uuids, request.command_for(job_id))
            await prepare_dirs(spec)
            job = job_from_spec(
                spec,
                kind=gpujobs.KIND,
                timeout=request.timeout,
                stop_grace=gpujobs.STOP_GRACE,
                extra_labels={contract.L_JOB_ID: str(job_id), contract.L_USER_ID: str(user.id)},
            )

            def started(cid):
                self.containers[job_id] = cid
                self.store.update(job_id, state=gpujobs.RUNNING, started=time.time())
                self._count()
                if job_id in self.cancelled:  # cancelled while its container was being made
                    self._stop_soon(job_id, cid)
                self.log.info(
                    "gpulab jobs: job %s of %s runs on GPU(s) %s",
                    job_id,
                    user.name,
                    ",".join(uuids),
                )

            result = await self.lab.run_job(
                job, on_line=output.add_threadsafe, on_start=started, keep_on_cancel=True
            )
            status, tail = result.status, result.output
            state, reason = gpujobs.outcome(
                status, result.timed_out, cancelled=job_id in self.cancelled
            )
        except asyncio.CancelledError:
            if job_id not in self.cancelled:
                raise  # the hub stops: a running job runs on, a waiting one waits again later
            state, reason = gpujobs.CANCELLED, "cancelled while it waited"
        except (gpujobs.JobInputError, JobError) as e:
            state, reason = gpujobs.FAILED, str(e)
        except Exception as e:
            self.log.exception("gpulab jobs: job %s of %s failed to run", job_id, user.name)
            state, reason = gpujobs.FAILED, f"{type(e).__name__}: {e}"
        self._finish(job_id, user.name, state, reason, status, tail)

    async def _run_gang(self, job_id, user, spawner, request, spawn):
        """A job on a Swarm: ``request.nodes`` tasks on as many GPU servers, granted together."""
        tasks = [gpujobs.holder(user.name, job_id, r) for r in range(request.nodes)]
        allocator = self.lab.gpus.allocator
        output = self.outputs[job_id]
        state, reason, status, tail = gpujobs.FAILED, "", None, ""
        backend = self.lab.backend
        try:
            manager = self.lab.gpus
            quota = manager.quota_for(user.name, [g.name for g in user.groups])

            def waiting(position, holders):
                self.positions[job_id] = (position, len(holders))

            granted = await allocator.acquire_gang(
                gpujobs.holder(user.name, job_id),
                tasks,
                request.gpus,
                where=spawner.gpu_filter(spawn),
                quota=quota,
                on_wait=waiting,
            )
            self.positions.pop(job_id, None)
            nodes = [allocator.node_of(t) for t in tasks]
            uuids = [u for got in granted for u in got]
            self.store.update(job_id, state=gpujobs.STARTING, gpu_uuids=",".join(uuids))
            hosts = [gpujobs.container_name(self.lab.name, job_id, r) for r in range(len(tasks))]
            network, subnet = await backend.job_network(self.lab, job_id, user.name)
            specs = []
            for rank, got in enumerate(granted):
                env = gpujobs.task_env(hosts, rank, request.gpus, subnet)
                env[contract.JOB_SECRET] = f"/run/secrets/{self.lab.name}-job-{job_id}-key"
                specs.append(
                    await spawner.job_spec(
                        job_id,
                        spawn,
                        got,
                        request.command_for(job_id),
                        rank=rank,
                        network=network,
                        env=env,
                    )
                )
            await prepare_dirs(specs[0])  # the home on the shared storage, as for a server

            def started(ref, assigned):
                self.containers[job_id] = ref
                for t, got in zip(tasks, assigned, strict=True):
                    if got:
                        allocator.replace(t, got)  # the GPUs Swarm handed out on that node
                held = [u for got in assigned for u in got] or uuids
                self.store.update(
                    job_id, state=gpujobs.RUNNING, started=time.time(), gpu_uuids=",".join(held)
                )
                if job_id in self.cancelled:  # cancelled while its tasks were being made
                    self._stop_soon(job_id, ref)
                self._count()
                self.log.info(
                    "gpulab jobs: job %s of %s runs on %s", job_id, user.name, ", ".join(nodes)
                )

            result = await backend.run_gang(
                self.lab,
                job_id,
                user.name,
                specs,
                nodes,
                new_key(),
                timeout=request.timeout,
                stop_grace=gpujobs.STOP_GRACE,
                on_line=output.add_threadsafe,
                on_start=started,
            )
            status, tail = result.status, result.output
            state, reason = gpujobs.outcome(
                status, result.timed_out, cancelled=job_id in self.cancelled
            )
        except asyncio.CancelledError:
            if job_id not in self.cancelled:
                raise  # the hub stops: the next one removes what is left (resume_job)
            state, reason = gpujobs.CANCELLED, "cancelled while it waited"
        except (gpujobs.JobInputError, JobError) as e:
            state, reason = gpujobs.FAILED, str(e)
        except Exception as e:
            self.log.exception("gpulab jobs: job %s of %s failed to run", job_id, user.name)
            state, reason = gpujobs.FAILED, f"{type(e).__name__}: {e}"
        finally:
            for t in tasks:
                allocator.release(t)
            if state != gpujobs.RUNNING:
                await backend.remove_job(self.lab, job_id)
        self._finish(job_id, user.name, state, reason, status, tail)

    async def _follow(self, job_id, user, cid, left):
        try:
            result = await self.lab.backend.follow_job(
                self.lab,
                cid,
                left,
                gpujobs.STOP_GRACE,
                on_line=self.outputs[job_id].add_threadsafe,
                since=time.time() - 60,
            )
        except asyncio.CancelledError:
            if job_id not in self.cancelled:
                raise
            self._finish(job_id, user.name, gpujobs.CANCELLED, "cancelled")
            return
        except Exception as e:  # the engine lost it: the job ends, its GPUs go back
            self.log.exception("gpulab jobs: following job %s of %s failed", job_id, user.name)
            self._finish(job_id, user.name, gpujobs.FAILED, f"lost after a hub restart: {e}")
            return
        state, reason = gpujobs.outcome(
            result.status, result.timed_out, cancelled=job_id in self.cancelled
        )
        self._finish(job_id, user.name, state, reason, result.status, result.output)

    def _finish(self, job_id, username, state, reason, status=None, tail=""):
        """Record the end, give the GPUs back to the queue at once, count it."""
        holder = gpujobs.holder(username, job_id)
        allocator = self.lab.gpus.allocator
        allocator.cancel_waiting(holder)
        allocator.release(holder)
        row = self.store.get(job_id) or {}
        ended = time.time()
        output = self.outputs.pop(job_id, None)
        if output is not None:
            output.flush()
        streamed = list(output.lines) if output else []
        first = output.first if output else 0
        streamed = completed(streamed, tail.splitlines() if tail else [])
        if len(streamed) > TAIL_LINES:  # the last lines are kept, numbered as they were streamed
            first += len(streamed) - TAIL_LINES
            streamed = streamed[-TAIL_LINES:]
        kept = "\n".join(streamed)
        self.store.update(
            job_id,
            state=state,
            reason=reason,
            ended=ended,
            exit_status=status if isinstance(status, int) else None,
            tail=kept or "",
            tail_first=first,
        )
        if output is not None:
            output.finish()
        self.tasks.pop(job_id, None)
        self.containers.pop(job_id, None)
        self.positions.pop(job_id, None)
        self.cancelled.discard(job_id)
        held = (ended - row["started"]) / 3600 * row["gpus"] if row.get("started") else 0.0
        self.lab.metrics.job_finished(state, held)
        self._count()
        self.log.info("gpulab jobs: job %s of %s %s: %s", job_id, username, state, reason)

    # --- what the API and the page show ---

    def view(self, row):
        """A job as the API shows it."""
        out = {
            k: row[k]
            for k in COLUMNS
            if k not in ("request", "tail", "tail_first", "user_id", "gpu_uuids")
        }
        out["gpu_uuids"] = row["gpu_uuids"].split(",") if row["gpu_uuids"] else []
        request = json.loads(row["request"])
        out["command"] = request.get("command")
        if request.get("notebook"):
            out["notebook"] = request["notebook"]
            out["parameters"] = request.get("parameters") or {}
            out["executed_copy"] = "~/" + gpujobs.executed_copy(request["notebook"], row["id"])
        out["time_limit"] = gpujobs.format_hours(row["hours"])
        out["output_dir"] = f"~/jobs/{row['id']}"
        if row["state"] == gpujobs.WAITING and row["id"] in self.positions:
            place, holders = self.positions[row["id"]]
            out["position"] = place
            out["waiting_for"] = (
                f"{row['gpus']} GPU(s): place {place} in the queue, "
                f"the GPUs it can use are held by {holders} server(s) or job(s)"
            )
        return out

    def lines(self, row, since=0):
        """(lines from number ``since``, the next number, whether more may come)."""
        output = self.outputs.get(row["id"])
        if output is not None:
            lines, nxt = output.since(since)
            return lines, nxt, True
        kept = row["tail"].splitlines() if row["tail"] else []
        first = row["tail_first"]
        return kept[max(since, first) - first :], first + len(kept), False

    async def wait_lines(self, row, since, wait):
        """Like :meth:`lines`, waiting up to ``wait`` seconds for a line when there is none yet."""
        lines, nxt, more = self.lines(row, since)
        output = self.outputs.get(row["id"])
        if lines or not more or output is None or wait <= 0:
            return lines, nxt, more
        try:
            await asyncio.wait_for(output.changed.wait(), wait)
        except asyncio.TimeoutError:
            pass
        return self.lines(self.store.get(row["id"]), since)

    def row_of(self, user, job_id):
        """The job ``job_id`` of ``user`` (JobNotFound for any other)."""
        row = self.store.get(job_id)
        if row is None or row["user_id"] != user.id:
            raise JobNotFound(job_id)
        return row

    async def forget_user(self, user_id, by):
        """A deleted user's jobs end: waiting ones leave the queue, running ones are stopped (their
        home is archived; nothing of theirs may run on under a name another account may get)."""
        for row in self.store.live():
            if row["user_id"] == user_id:
                try:
                    await self.cancel(row, by)
                except JobError:
                    pass

    def rows_of(self, user):
        return self.store.of_user(user.id, since=time.time() - self.limits["keep_days"] * 86400)

    def all_rows(self):
        return self.store.everyone(since=time.time() - self.limits["keep_days"] * 86400)
