"""The GPU page (``/hub/gpus``) and the reclaim APIs, served by the hub itself.

* ``/hub/gpus``: every GPU with node, model, memory, holder, since, utilisation now and over the
  last hour, idle time; the user's own warnings with a "keep" button, their GPU-hours of the last
  7 days. Admins also see every user's usage, a stop button per held GPU and GPUs used outside
  gpulab; users see holders only when ``gpus.show_holders`` is on.
* ``/hub/api/gpulab/users/<name>/notices`` (GET): what the user's own servers were warned about
  (scope ``custom:gpulab:notices``: the user's tokens and their servers' tokens have it for that
  user only). The container shows these in JupyterLab and in terminals and SSH sessions
  (``gpulab_hooks.notices``).
* ``/hub/api/gpulab/users/<name>/keep`` (POST): "keep", only for a server that was warned, and only
  from the user: scope ``custom:gpulab:keep``, which the user's own tokens carry and their servers'
  tokens do not (a script in the container cannot keep its GPUs forever). JupyterLab's "Keep my
  GPUs" opens the GPU page, where the user keeps it.
* ``/hub/api/gpulab/readings`` (POST): a node's collector reports its GPUs (scope
  ``custom:gpulab:readings``, which admins hold and may put in a token for ``gpulab collect``).
* ``/hub/api/gpulab/gpus`` (GET): the GPU table as JSON, holders shown (scope ``admin:servers``:
  hub admins and admin services).
"""

import json
import time

import jinja2
import markupsafe
from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from ...core.gpus.readings import GPUReading
from ...core.gpus.usage import by_group
from .. import charts
from ..charts import sparkline_columns
from .base import lab_of, scoped_user

SCOPE_NOTICES = "custom:gpulab:notices"
SCOPE_KEEP = "custom:gpulab:keep"
SCOPE_READINGS = "custom:gpulab:readings"
SCOPES = {
    SCOPE_NOTICES: {"description": "Read the GPU reclaim warnings of your servers."},
    SCOPE_KEEP: {"description": "Keep a server that was warned its GPUs will be reclaimed."},
    SCOPE_READINGS: {"description": "Report GPU readings of a node (gpulab collect)."},
}
MAX_READINGS_BYTES = 1024 * 1024
MAX_KEEP_BYTES = 16 * 1024  # {"server": "<a server name>"}
MAX_GPUS_PER_NODE = 256


def _service(handler):
    service = lab_of(handler).gpu_service
    if service is None:
        raise web.HTTPError(503, "the GPU monitor is not running")
    return service


def gpu_rows(service, for_admin, now=None, charts=True):
    """The GPU table: the allocator's snapshot plus the monitor's readings; ``charts``: each GPU's
    last hour ("hour", as columns: seconds ago, %s, bytes) and its sparkline ("chart") too (the
    page's; ``gpulab-status.json`` shows neither)."""
    now = time.time() if now is None else now
    snap = service.manager.snapshot(for_admin=for_admin)
    rows = []
    for g in snap["gpus"]:
        view = service.monitor.gpu_view(g["uuid"], now, hour=charts and "columns")
        outside = (
            bool(view["processes"]) and not g["holders"]
        )  # processes, but no gpulab server holds it
        row = {
            **g,
            **view,
            "outside": outside,
            "idle_for": now - view["idle_since"] if view["idle_since"] else None,
        }
        if charts:
            row["chart"] = sparkline_columns(*view["hour"], g["memory_total"])
        rows.append(row)
    return rows, snap["queue"]


ROWS_TEMPLATE = "gpu_rows.html"


@jinja2.pass_environment
def render_rows(env, rows, admin, xsrf, now):
    """The GPU table's rows (``gpu_rows.html``), which ``gpus.html`` calls: rendered synchronously,
    in an overlay of the calling environment (its loader, filters, autoescape; its template paths,
    so a hub's own ``gpu_rows.html`` still wins), compiled once. Through the hub's async environment
    every chunk of every row is awaited: 256 rows took ~40 ms, synchronously 5-8."""
    sync = env
    if env.is_async:
        sync = getattr(env, "_gpulab_sync", None)
        if sync is None or sync.loader is not env.loader:
            sync = env.overlay(cache_size=50)  # a cache of its own: the parent's holds async code
            sync.is_async = False  # (overlay(enable_async=False) is applied only from Jinja 3.1.5)
            env._gpulab_sync = sync
    html = sync.get_template(ROWS_TEMPLATE).render(
        rows=rows, admin=admin, xsrf=xsrf, now=now, hm=_hm, pct=_pct
    )
    return markupsafe.Markup(html)


def _hm(seconds):
    """A duration as the GPU table shows it (a function: as a Jinja macro, a call
    per cell, the rows took ~2 ms more)."""
    if seconds is None:
        return "–"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    return f"{int(seconds // 3600)} h {int((seconds % 3600) // 60)} min"


def _pct(value):
    """A percentage as the GPU table shows it."""
    return "–" if value is None else "%.0f%%" % value


def users_groups(db):
    """{user name: [group names]} of JupyterHub's users in groups, in one query (not one per user)."""
    out = {}
    for user, group in db.query(orm.User.name, orm.Group.name).join(orm.User.groups):
        out.setdefault(user, []).append(group)
    return out


def page_data(service, db, username, admin, now):
    """What ``gpus.html`` shows (but the messages and the hub's mode): the GPU table, the user's
    warnings and reclaims, GPU-hours of the last 7 days (an admin's: everyone's, and per group)."""
    rows, queue = gpu_rows(service, admin, now)
    mine = [{"server": s, **n} for s, n in service.notices_for(username).items()]
    usage = service.usage.rows(days=7, now=now, users=None if admin else {username})
    mine_by_day = {}
    for r in usage:
        if r["user"] == username:
            held, used = mine_by_day.get(r["day"], (0.0, 0.0))
            mine_by_day[r["day"]] = (held + r["held_hours"], used + r["used_hours"])
    week = charts.day_bars([(d, h, u) for d, (h, u) in sorted(mine_by_day.items())])
    group_usage = []
    if admin:
        groups = users_groups(db)
        group_usage = by_group(usage, lambda name: groups.get(name, []))
    return {
        "rows": rows,
        "queue": queue,
        "mine": mine,
        "reclaims": service.recent_reclaims(username, now - 86400),
        "usage": usage,
        "group_usage": group_usage,
        "policy": service.policy,
        "week_chart": week,
        "now": now,
        "admin": admin,
        "render_rows": render_rows,  # the table's rows, which gpus.html renders through it
    }


class GPUPageHandler(BaseHandler):
    async def page(self, messages=(), status=200):
        service = _service(self)
        user = self.current_user
        data = page_data(service, self.db, user.name, user.admin, time.time())
        self.set_status(status)
        html = await self.render_template(
            "gpus.html",
            messages=list(messages),
            monitor_mode=service.mode,
            single_host=lab_of(self).backend.mode == "single",
            **data,
        )
        self.finish(html)

    @web.authenticated
    async def get(self):
        await self.page()

    @web.authenticated
    async def post(self):
        service = _service(self)
        user = self.current_user
        action = self.get_body_argument("action", "")
        server = self.get_body_argument("server", "")[:255]
        if action == "keep":
            if not service.monitor.keep((user.name, server)):
                return await self.page(
                    [("error", "That server was not warned for idle GPUs: nothing to keep.")], 409
                )
            return await self.page([("ok", "Kept: the idle clock of your server starts again.")])
        if action == "stop":
            if not user.admin:
                raise web.HTTPError(403, "only admins can stop other users' servers")
            owner = self.get_body_argument("user", "")[:255]
            if (owner, server) not in service.manager.allocator.holdings:
                return await self.page(
                    [("error", f"{owner}{'/' + server if server else ''} holds no GPUs.")], 400
                )
            self.log.warning(
                "gpulab: admin %s stops %s/%s from the GPU page", user.name, owner, server
            )
            await service.stop_server((owner, server), f"stopped by admin {user.name}")
            return await self.page(
                [("ok", f"Stopped {owner}{'/' + server if server else ''}; its GPUs are free.")]
            )
        return await self.page([("error", f"unknown action {action[:40]!r}")], 400)


class NoticesAPIHandler(APIHandler):
    async def get(self, user_name):
        username = scoped_user(self, SCOPE_NOTICES, user_name).name
        service = _service(self)
        self.write(
            json.dumps(
                {
                    "servers": service.notices_for(username),
                    "reclaimed": service.recent_reclaims(username, time.time() - 86400),
                    # starts a hub restart ended (waiting for a GPU, or not running yet)
                    "lost_starts": lab_of(self).lost_starts_of(username),
                    # servers that stopped without being asked (their container exited or went)
                    "ended": lab_of(self).ended_of(username),
                }
            )
        )


class KeepAPIHandler(APIHandler):
    async def post(self, user_name):
        username = scoped_user(self, SCOPE_KEEP, user_name).name
        if len(self.request.body) > MAX_KEEP_BYTES:  # refused before it is parsed
            raise web.HTTPError(400, f"keep: the body is larger than {MAX_KEEP_BYTES // 1024} KiB")
        body = self.get_json_body() or {}
        server = body.get("server", "") if isinstance(body, dict) else None
        if not isinstance(server, str) or len(server) > 255:
            raise web.HTTPError(400, "server: must be a server name")
        if not _service(self).monitor.keep((username, server)):
            raise web.HTTPError(409, "that server was not warned for idle GPUs: nothing to keep")
        self.write(json.dumps({"kept": True}))


class ReadingsAPIHandler(APIHandler):
    async def post(self):
        if not self.has_scope(SCOPE_READINGS):
            raise web.HTTPError(403, f"this token lacks the scope {SCOPE_READINGS}")
        if len(self.request.body) > MAX_READINGS_BYTES:
            raise web.HTTPError(400, f"readings: at most {MAX_READINGS_BYTES // 1024} KiB")
        body = self.get_json_body()
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("node", ""), str)
            or not isinstance(body.get("gpus"), list)
        ):
            raise web.HTTPError(400, 'readings: must be {"node": "...", "gpus": [...]}')
        if len(body["gpus"]) > MAX_GPUS_PER_NODE:
            raise web.HTTPError(400, f"gpus: at most {MAX_GPUS_PER_NODE} per node")
        try:
            readings = [GPUReading.from_dict(g) for g in body["gpus"]]
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise web.HTTPError(
                400,
                f"gpus: each must have uuid, utilization, memory_used, memory_total ({e!s:.80})",
            )
        if any(not 0 <= r.utilization <= 100 for r in readings):
            raise web.HTTPError(400, "gpus[].utilization: must be a percentage (0-100)")
        node = body.get("node", "")[:255]
        service = _service(self)
        # a node reports only its own GPUs (a readings token must not mark another node's GPUs
        # idle to have them reclaimed), and each node has a token of its own
        own = {g.uuid for g in service.manager.inventory if g.node in (node, "")}
        foreign = [r.uuid for r in readings if r.uuid not in own]
        if foreign:
            raise web.HTTPError(
                403, f"gpus: {foreign[0][:80]!r} is not a GPU of node {node[:80]!r}"
            )
        token = orm.APIToken.find(self.db, self.get_auth_token() or "")
        if token is not None:
            bound = service.usage.token_node(token.id, node)
            if bound != node:
                raise web.HTTPError(
                    403,
                    f"this token reports for node {bound!r}: each node needs a token of its own",
                )
        service.pushed.push(node, readings)
        self.write(json.dumps({"accepted": len(readings)}))


class GPUsAPIHandler(APIHandler):
    @needs_scope("admin:servers")
    async def get(self):
        lab = lab_of(self)
        await lab.gpus.ensure_synced()
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"deployment": lab.name, **lab.gpus.snapshot(for_admin=True)}))


def handlers():
    return [
        (r"/gpus", GPUPageHandler),
        (r"/api/gpulab/gpus", GPUsAPIHandler),
        (r"/api/gpulab/users/([^/]+)/notices", NoticesAPIHandler),
        (r"/api/gpulab/users/([^/]+)/keep", KeepAPIHandler),
        (r"/api/gpulab/readings", ReadingsAPIHandler),
    ]
