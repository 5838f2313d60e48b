"""Saved environments in the hub: the page ``/hub/environments`` (which also shows the user's home
backups, :mod:`.homes`) and the API ``/hub/api/gpulab/users/<name>/saves[/<tag>]`` (used by
``gpulab-client env``).

A user saves their running server, lists and deletes their saves, and starts one from the spawn
form (or the API's ``save`` option). The user's own tokens carry the scope
``custom:gpulab:saves`` for them; admins (``admin:servers``) see and delete everyone's.
"""

import json
import time

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from tornado import web

from ...core.saves import SaveError
from ..homebackups import HomeBackupError, list_archives
from .base import lab_of, scoped_user

SCOPE_SAVES = "custom:gpulab:saves"
SCOPES = {
    SCOPE_SAVES: {
        "description": "Save your environment as an image and back up your home; list, restore and delete them."
    }
}
MAX_BODY = 16 * 1024


async def save_server(handler, user, server, note):
    """Save ``user``'s running server ``server``; returns the save's row (SaveError says why not).
    One save per user at a time: a second one is refused while the first runs."""
    lab = lab_of(handler)
    if not lab.saves_enabled:
        raise SaveError("saving environments is off on this hub (saves.enabled in the site file)")
    spawner = user.spawners.get(server)
    if spawner is None or not spawner.active or spawner.pending:
        raise SaveError("your server is not running: start it, then save", 409)
    if user.id in lab.saves_in_flight:
        raise SaveError("a save of your environment is already running: wait for it to finish", 409)
    profile = spawner.profile_name  # the profile the server runs (also when none was named)
    lab.saves_in_flight.add(user.id)
    try:
        row = await lab.saves.create_save(
            username=user.name,
            user_id=user.id,
            escaped_user=spawner.escaped_name,
            service_name=spawner.object_name,
            profile=profile,
            base_image=spawner.profile_image(profile),
            note=note,
            max_count=lab.saves_max_per_user,
            max_bytes=lab.saves_max_size,
        )
    finally:
        lab.saves_in_flight.discard(user.id)
    handler.log.info(
        "gpulab: %s saved their environment as %s (%d bytes)", user.name, row["image"], row["bytes"]
    )
    return row


async def delete_save(handler, user, tag):
    row = await lab_of(handler).saves.delete_save(user.id, tag)
    handler.log.info(
        "gpulab: saved environment %s of %s deleted by %s",
        tag,
        user.name,
        handler.current_user.name,
    )
    return row


class SavesAPIHandler(APIHandler):
    def owner_or_admin(self, user_name):
        return scoped_user(self, SCOPE_SAVES, user_name, admins=True)

    async def get(self, user_name):
        user = self.owner_or_admin(user_name)
        self.write(json.dumps(await lab_of(self).saves.list_saves(user.id)))

    async def post(self, user_name):
        user = self.owner_or_admin(user_name)
        if len(self.request.body) > MAX_BODY:
            raise web.HTTPError(400, "request too large")
        body = self.get_json_body() or {}
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("server", ""), str)
            or not isinstance(body.get("note", ""), str)
        ):
            raise web.HTTPError(400, 'body: must be {"server": "", "note": "..."}')
        try:
            row = await save_server(self, user, body.get("server", ""), body.get("note", ""))
        except SaveError as e:
            raise web.HTTPError(e.status, str(e))
        self.set_status(201)
        self.write(json.dumps(row))


class SaveAPIHandler(SavesAPIHandler):
    async def get(self, user_name, tag):
        raise web.HTTPError(405)

    async def post(self, user_name, tag):
        raise web.HTTPError(405)

    async def delete(self, user_name, tag):
        user = self.owner_or_admin(user_name)
        try:
            await delete_save(self, user, tag)
        except SaveError as e:
            raise web.HTTPError(e.status, str(e))
        self.set_status(204)


class EnvironmentsPageHandler(BaseHandler):
    async def page(self, messages=(), status=200):
        lab = lab_of(self)
        user = self.current_user
        mine = await lab.saves.list_saves(user.id)
        everyone = await lab.saves.list_saves(None) if user.admin else []
        running = [name for name, sp in user.spawners.items() if sp.active and not sp.pending]
        self.set_status(status)
        self.finish(
            await self.render_template(
                "environments.html",
                messages=list(messages),
                mine=mine,
                everyone=everyone,
                running=running,
                limits={"max_per_user": lab.saves_max_per_user, "max_size": lab.saves_max_size},
                available=lab.saves_enabled,
                used=sum(r["bytes"] for r in mine),
                archives=list_archives(lab, user.id, user.spawner.escaped_name),
                job=lab.home_backups.job(user.id),
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
        jobs = lab_of(self).home_backups
        try:
            if action == "save":
                row = await save_server(
                    self,
                    user,
                    self.get_body_argument("server", "")[:255],
                    self.get_body_argument("note", ""),
                )
                return await self.page(
                    [
                        (
                            "ok",
                            f"Saved as {row['tag']} ({row['bytes'] / 1024**2:.0f} MiB). Start it from the spawn form.",
                        )
                    ]
                )
            if action == "delete":
                owner = self.get_body_argument("user", user.name)[:255]
                if owner != user.name and not user.admin:
                    raise web.HTTPError(403, "only admins can delete other users' saves")
                found = self.find_user(owner)
                if found is None:
                    raise SaveError(f"no user {owner!r}", 404)
                row = await delete_save(self, found, self.get_body_argument("tag", "")[:64])
                return await self.page([("ok", f"Deleted {owner}'s save {row['tag']}.")])
            if action == "backup":
                jobs.start_backup(user.spawner)
                return await self.page([("ok", "Backing up your home…")])
            if action == "delete_backup":
                archive = self.get_body_argument("archive", "")[:100]
                jobs.delete(user.spawner, archive)
                return await self.page([("ok", f"Deleted the home backup {archive}.")])
            if action == "restore":
                job = jobs.start_restore(user.spawner, self.get_body_argument("archive", "")[:100])
                return await self.page([("ok", f"Restoring into ~/{job['target']}…")])
        except (SaveError, HomeBackupError) as e:
            return await self.page([("error", f"Not done: {e}.")], e.status)
        return await self.page([("error", f"unknown action {action[:40]!r}")], 400)


def handlers():
    return [
        (r"/environments", EnvironmentsPageHandler),
        (r"/api/gpulab/users/([^/]+)/saves", SavesAPIHandler),
        (r"/api/gpulab/users/([^/]+)/saves/([^/]+)", SaveAPIHandler),
    ]
