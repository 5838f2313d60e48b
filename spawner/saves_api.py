"""Saved environments and home backups in the hub: the page ``/hub/environments`` and the API
``/hub/api/gpulab/users/<name>/saves[/<tag>]`` (used by ``gpulab-client env``) and
``/hub/api/gpulab/users/<name>/home-backups[/<archive>/restore]`` (``gpulab-client home``).

A user saves their running server, lists and deletes their saves, and starts one from the spawn
form (or the API's ``save`` option). The user's own tokens carry the scope
``custom:gpulab:saves`` for them; admins (``admin:servers``) see and delete everyone's.
"""

import asyncio
import json
import time

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from tornado import web

from . import saves
from .hubpages import scoped_user

SCOPE_SAVES = "custom:gpulab:saves"
SCOPES = {SCOPE_SAVES: {"description": "Save your environment as an image and back up your home; list, restore and delete them."}}
_home_backups = {}


def home_backups(site):
    """The hub's home-backup jobs (one registry per deployment)."""
    from .homebackup import HomeBackups

    name = site["hub"]["name"]
    if name not in _home_backups:
        _home_backups[name] = HomeBackups(site)
    return _home_backups[name]


MAX_BODY = 16 * 1024


class _SavesMixin:
    def initialize(self, settings):
        self.saves_settings = settings  # deployment, enabled, max_per_user, max_size, swarm

    def check_enabled(self):
        s = self.saves_settings
        if not s["enabled"]:
            raise saves.SaveError("saving environments is off on this hub (saves.enabled in the site file)")

    async def in_thread(self, method, *args, **kw):
        return await asyncio.to_thread(getattr(saves.backend(self.saves_settings), method), *args, **kw)

    async def list_for(self, username):
        return await self.in_thread("list_saves", username)

    async def save_server(self, user, server, note):
        self.check_enabled()
        spawner = user.spawners.get(server)
        if spawner is None or not spawner.active or spawner.pending:
            raise saves.SaveError("your server is not running: start it, then save", 409)
        s = self.saves_settings
        row = await self.in_thread(
            "create_save",
            username=user.name,
            escaped_user=spawner.escaped_name,
            service_name=spawner.object_name,
            profile=(spawner.user_options or {}).get("profile") or "",
            note=note,
            max_count=s["max_per_user"],
            max_bytes=s["max_size"],
        )
        self.log.info("gpulab: %s saved their environment as %s (%d bytes)", user.name, row["image"], row["bytes"])
        return row

    async def delete_save(self, username, tag):
        row = await self.in_thread("delete_save", username, tag)
        self.log.info("gpulab: saved environment %s of %s deleted by %s", tag, username, self.current_user.name)
        return row


class SavesAPIHandler(_SavesMixin, APIHandler):
    def owner_or_admin(self, user_name):
        return scoped_user(self, SCOPE_SAVES, user_name, admins=True)

    def fail(self, e):
        raise web.HTTPError(e.status, str(e))

    async def get(self, user_name):
        user = self.owner_or_admin(user_name)
        self.write(json.dumps(await self.list_for(user.name)))

    async def post(self, user_name):
        user = self.owner_or_admin(user_name)
        if len(self.request.body) > MAX_BODY:
            raise web.HTTPError(400, "request too large")
        body = self.get_json_body() or {}
        if not isinstance(body, dict) or not isinstance(body.get("server", ""), str) or not isinstance(body.get("note", ""), str):
            raise web.HTTPError(400, 'body: must be {"server": "", "note": "..."}')
        try:
            row = await self.save_server(user, body.get("server", ""), body.get("note", ""))
        except saves.SaveError as e:
            self.fail(e)
        self.set_status(201)
        self.write(json.dumps(row))


class SaveAPIHandler(SavesAPIHandler):
    async def delete(self, user_name, tag):
        user = self.owner_or_admin(user_name)
        try:
            await self.delete_save(user.name, tag)
        except saves.SaveError as e:
            self.fail(e)
        self.set_status(204)


class HomeBackupsAPIHandler(SavesAPIHandler):
    async def get(self, user_name):
        from .homebackup import list_archives

        user = self.owner_or_admin(user_name)
        jobs = home_backups(self.saves_settings["site"])
        self.write(json.dumps({"archives": list_archives(jobs.site, user.spawner.escaped_name), "job": jobs.job(user.name)}))

    async def post(self, user_name):
        from .homebackup import BackupError

        user = self.owner_or_admin(user_name)
        try:
            job = home_backups(self.saves_settings["site"]).start_backup(user.spawner)
        except BackupError as e:
            self.fail(e)
        self.log.info("gpulab: backup of %s's home started by %s", user.name, self.current_user.name)
        self.set_status(202)
        self.write(json.dumps(job))


class HomeRestoreAPIHandler(HomeBackupsAPIHandler):
    async def get(self, user_name, archive):
        raise web.HTTPError(405)

    async def post(self, user_name, archive):
        from .homebackup import BackupError

        user = self.owner_or_admin(user_name)
        try:
            job = home_backups(self.saves_settings["site"]).start_restore(user.spawner, archive)
        except BackupError as e:
            self.fail(e)
        self.log.info("gpulab: restore of %s into %s's home started by %s", archive, user.name, self.current_user.name)
        self.set_status(202)
        self.write(json.dumps(job))


class EnvironmentsPageHandler(_SavesMixin, BaseHandler):
    async def page(self, messages=(), status=200):
        user = self.current_user
        mine = await self.list_for(user.name)
        everyone = await self.list_for(None) if user.admin else []
        running = [name for name, sp in user.spawners.items() if sp.active and not sp.pending]
        s = self.saves_settings
        from .homebackup import list_archives

        jobs = home_backups(s["site"])
        archives = list_archives(jobs.site, user.spawner.escaped_name)
        self.set_status(status)
        self.finish(
            await self.render_template(
                "environments.html",
                messages=list(messages),
                mine=mine,
                everyone=everyone,
                running=running,
                limits=s,
                available=s["enabled"],
                used=sum(r["bytes"] for r in mine),
                archives=archives,
                job=jobs.job(user.name),
                now=time.time(),
                admin=user.admin,
            )
        )

    @web.authenticated
    async def get(self):
        await self.page()

    @web.authenticated
    async def post(self):
        user = self.current_user
        if len(self.request.body) > MAX_BODY:
            return await self.page([("error", "The form is too large.")], 400)
        action = self.get_body_argument("action", "")
        try:
            if action == "save":
                row = await self.save_server(user, self.get_body_argument("server", "")[:255], self.get_body_argument("note", ""))
                return await self.page([("ok", f"Saved as {row['tag']} ({row['bytes'] / 1024**2:.0f} MiB). Start it from the spawn form.")])
            if action == "delete":
                owner = self.get_body_argument("user", user.name)[:255]
                if owner != user.name and not user.admin:
                    raise web.HTTPError(403, "only admins can delete other users' saves")
                row = await self.delete_save(owner, self.get_body_argument("tag", "")[:64])
                return await self.page([("ok", f"Deleted {owner}'s save {row['tag']}.")])
            if action in ("backup", "restore"):
                from .homebackup import BackupError

                jobs = home_backups(self.saves_settings["site"])
                try:
                    if action == "backup":
                        jobs.start_backup(user.spawner)
                        return await self.page([("ok", "Backing up your home…")])
                    job = jobs.start_restore(user.spawner, self.get_body_argument("archive", "")[:100])
                    return await self.page([("ok", f"Restoring into ~/{job['target']}…")])
                except BackupError as e:
                    return await self.page([("error", f"Not done: {e}.")], e.status)
        except saves.SaveError as e:
            return await self.page([("error", f"Not done: {e}.")], e.status)
        return await self.page([("error", f"unknown action {action[:40]!r}")], 400)


def handlers(settings):
    kw = {"settings": settings}
    return [
        (r"/environments", EnvironmentsPageHandler, kw),
        (r"/api/gpulab/users/([^/]+)/saves", SavesAPIHandler, kw),
        (r"/api/gpulab/users/([^/]+)/saves/([^/]+)", SaveAPIHandler, kw),
        (r"/api/gpulab/users/([^/]+)/home-backups", HomeBackupsAPIHandler, kw),
        (r"/api/gpulab/users/([^/]+)/home-backups/([^/]+)/restore", HomeRestoreAPIHandler, kw),
    ]
