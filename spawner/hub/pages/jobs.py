"""Users' GPU jobs in the hub: the page ``/hub/jobs`` (submit, list, the output, cancel) and the
API ``/hub/api/gpulab/users/<name>/jobs[/<id>[/log]]`` behind it and ``gpulab-client job``.

A user's own tokens carry the scope ``custom:gpulab:jobs`` for them, and so does their server's
token (``gpulab-client job submit`` in a terminal or notebook of the server); admins
(``admin:servers``) see and cancel everyone's. Another user's job is a 404, whatever its number.
"""

import json
import shlex

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from tornado import web

from ...core import gpujobs
from ...core.gpus.allocator import QuotaExceeded
from ...core.job import JobError
from ..gpujobs import JobNotFound
from .base import lab_of, scoped_user

SCOPE_JOBS = "custom:gpulab:jobs"
SCOPES = {
    SCOPE_JOBS: {
        "description": "Submit GPU jobs, read their output and cancel them.",
    }
}
MAX_BODY = 128 * 1024
MAX_WAIT = 30  # seconds a log request may wait for a new line


def jobs_of(handler):
    jobs = lab_of(handler).gpu_jobs
    if jobs is None:
        raise web.HTTPError(
            404, "GPU jobs are not available on this hub (jobs.enabled, or a Swarm hub)"
        )
    return jobs


async def submit(handler, user, body):
    """Submit ``body`` for ``user``: the job's view, or an HTTP error naming what was wrong."""
    jobs = jobs_of(handler)
    try:
        row = await jobs.submit(user, body)
    except gpujobs.JobInputError as e:
        raise web.HTTPError(400, f"Invalid job {e}")
    except QuotaExceeded as e:
        raise web.HTTPError(400, f"Invalid job gpus: {e}")
    except JobError as e:
        raise web.HTTPError(e.status, str(e))
    return jobs.view(row)


class JobsAPIHandler(APIHandler):
    def owner_or_admin(self, user_name):
        return scoped_user(self, SCOPE_JOBS, user_name, admins=True)

    def row(self, user, job_id):
        try:
            return jobs_of(self).row_of(user, int(job_id))
        except (JobNotFound, ValueError, OverflowError):
            raise web.HTTPError(404)

    async def get(self, user_name):
        user = self.owner_or_admin(user_name)
        jobs = jobs_of(self)
        self.write(json.dumps([jobs.view(r) for r in jobs.rows_of(user)]))

    async def post(self, user_name):
        # a job runs as its user: only their own tokens submit one (an admin's admin:servers
        # starts and stops servers; it does not run commands as someone else)
        user = scoped_user(self, SCOPE_JOBS, user_name)
        if len(self.request.body) > MAX_BODY:
            raise web.HTTPError(400, f"Invalid job body: larger than {MAX_BODY // 1024} KiB")
        try:
            body = json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError):
            raise web.HTTPError(400, "Invalid job body: not JSON")
        view = await submit(self, user, body)
        self.set_status(201)
        self.write(json.dumps(view))


class JobAPIHandler(JobsAPIHandler):
    async def get(self, user_name, job_id):
        user = self.owner_or_admin(user_name)
        self.write(json.dumps(jobs_of(self).view(self.row(user, job_id))))

    async def post(self, user_name, job_id):
        raise web.HTTPError(405)

    async def delete(self, user_name, job_id):
        user = self.owner_or_admin(user_name)
        try:
            await jobs_of(self).cancel(self.row(user, job_id), self.current_user.name)
        except JobError as e:
            raise web.HTTPError(e.status, str(e))
        self.set_status(202)
        self.write(json.dumps({"id": int(job_id), "cancelling": True}))


class JobLogAPIHandler(JobsAPIHandler):
    async def post(self, user_name, job_id):
        raise web.HTTPError(405)  # (not JobsAPIHandler's submit: a log is only read)

    async def get(self, user_name, job_id):
        """``?since=N&wait=S``: lines from number N, waiting up to S seconds for one."""
        user = self.owner_or_admin(user_name)
        row = self.row(user, job_id)
        try:
            since = max(0, int(self.get_argument("since", "0")))
            wait = min(MAX_WAIT, max(0.0, float(self.get_argument("wait", "0"))))
        except ValueError:
            raise web.HTTPError(400, "since and wait must be numbers")
        jobs = jobs_of(self)
        lines, nxt, more = await jobs.wait_lines(row, since, wait)
        row = jobs.store.get(row["id"])
        self.write(
            json.dumps(
                {
                    "lines": lines,
                    "next": nxt,
                    "more": more,
                    "state": row["state"],
                    "reason": row["reason"],
                    "exit_status": row["exit_status"],
                }
            )
        )


class JobsPageHandler(BaseHandler):
    async def page(self, messages=(), status=200, show=None):
        lab = lab_of(self)
        user = self.current_user
        jobs = lab.gpu_jobs
        mine = [jobs.view(r) for r in jobs.rows_of(user)] if jobs else []
        everyone = [jobs.view(r) for r in jobs.all_rows()] if jobs and user.admin else []
        shown = None
        if jobs and show is not None:
            try:
                row = jobs.row_of(user, show) if not user.admin else jobs.store.get(show)
            except JobNotFound:
                row = None
            if row is not None:
                lines, _, more = jobs.lines(row)
                shown = {**jobs.view(row), "lines": lines[-500:], "more": more}
        self.set_status(status)
        self.finish(
            await self.render_template(
                "jobs.html",
                messages=list(messages),
                available=jobs is not None,
                mine=mine,
                everyone=everyone,
                shown=shown,
                profiles=lab.profiles,
                limits=lab.job_settings,
                live=gpujobs.LIVE,
            )
        )

    @web.authenticated
    async def get(self):
        show = self.get_argument("show", "")
        valid = show.isascii() and show.isdigit() and len(show) < 18
        await self.page(show=int(show) if valid else None)

    @web.authenticated
    async def post(self):
        user = self.current_user
        if len(self.request.body) > MAX_BODY:
            return await self.page([("error", "The form is too large.")], 400)
        action = self.get_body_argument("action", "")
        try:
            if action == "submit":
                line = self.get_body_argument("command", "").strip()
                try:
                    command = shlex.split(line)
                except ValueError as e:
                    return await self.page([("error", f"Not submitted: command: {e}.")], 400)
                body = {
                    "command": command,
                    "gpus": int(self.get_body_argument("gpus", "1") or 1),
                    "profile": self.get_body_argument("profile", ""),
                    "time": self.get_body_argument("time", ""),
                    "name": self.get_body_argument("name", ""),
                }
                view = await submit(self, user, body)
                return await self.page(
                    [
                        (
                            "ok",
                            f"Job {view['id']} submitted; its output goes to {view['output_dir']}.",
                        )
                    ],
                    show=view["id"],
                )
            if action == "cancel":
                jobs = jobs_of(self)
                raw = self.get_body_argument("job", "0")
                if not (raw.isascii() and raw.isdigit() and len(raw) < 18):
                    raise JobNotFound(raw[:20])
                job_id = int(raw)
                row = jobs.store.get(job_id) if user.admin else jobs.row_of(user, job_id)
                if row is None:
                    raise JobNotFound(job_id)
                await jobs.cancel(row, user.name)
                return await self.page([("ok", f"Job {job_id} is being cancelled.")])
        except ValueError:
            return await self.page([("error", "Not done: gpus and job must be numbers.")], 400)
        except JobNotFound:
            return await self.page([("error", "Not done: no such job.")], 404)
        except JobError as e:
            return await self.page([("error", f"Not done: {e}.")], e.status)
        except web.HTTPError as e:
            return await self.page([("error", f"Not submitted: {e.log_message}.")], e.status_code)
        return await self.page([("error", f"unknown action {action[:40]!r}")], 400)


def handlers():
    return [
        (r"/jobs", JobsPageHandler),
        (r"/api/gpulab/users/([^/]+)/jobs", JobsAPIHandler),
        (r"/api/gpulab/users/([^/]+)/jobs/([0-9]+)", JobAPIHandler),
        (r"/api/gpulab/users/([^/]+)/jobs/([0-9]+)/log", JobLogAPIHandler),
    ]
