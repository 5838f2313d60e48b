"""Home backups in the hub's API: ``/hub/api/gpulab/users/<name>/home-backups`` (list, and POST to
start a backup), ``.../home-backups/<archive>`` (DELETE) and ``.../home-backups/<archive>/restore``
(POST), used by ``gpulab-client home`` and shown on the environments page. The user's own tokens carry the scope ``custom:gpulab:saves``
for them; admins (``admin:servers``) may act for anyone. The jobs: :mod:`gpulab.hub.homebackups`."""

import json

from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from ..homebackups import HomeBackupError, list_archives
from .base import lab_of, scoped_user
from .environments import SCOPE_SAVES


class HomeBackupsAPIHandler(APIHandler):
    def owner_or_admin(self, user_name):
        return scoped_user(self, SCOPE_SAVES, user_name, admins=True)

    async def get(self, user_name):
        user = self.owner_or_admin(user_name)
        lab = lab_of(self)
        self.write(
            json.dumps(
                {
                    "archives": list_archives(lab, user.id, user.spawner.escaped_name),
                    "job": lab.home_backups.job(user.id),
                }
            )
        )

    async def post(self, user_name):
        user = self.owner_or_admin(user_name)
        try:
            job = lab_of(self).home_backups.start_backup(user.spawner)
        except HomeBackupError as e:
            raise web.HTTPError(e.status, str(e))
        self.log.info(
            "gpulab: backup of %s's home started by %s", user.name, self.current_user.name
        )
        self.set_status(202)
        self.write(json.dumps(job))


class HomeBackupAPIHandler(HomeBackupsAPIHandler):
    async def get(self, user_name, archive):
        raise web.HTTPError(405)

    async def post(self, user_name, archive):
        raise web.HTTPError(405)

    async def delete(self, user_name, archive):
        user = self.owner_or_admin(user_name)
        try:
            lab_of(self).home_backups.delete(user.spawner, archive)
        except HomeBackupError as e:
            raise web.HTTPError(e.status, str(e))
        self.log.info(
            "gpulab: home backup %s of %s deleted by %s", archive, user.name, self.current_user.name
        )
        self.set_status(204)


class HomeRestoreAPIHandler(HomeBackupsAPIHandler):
    async def get(self, user_name, archive):
        raise web.HTTPError(405)

    async def post(self, user_name, archive):
        user = self.owner_or_admin(user_name)
        try:
            job = lab_of(self).home_backups.start_restore(user.spawner, archive)
        except HomeBackupError as e:
            raise web.HTTPError(e.status, str(e))
        self.log.info(
            "gpulab: restore of %s into %s's home started by %s",
            archive,
            user.name,
            self.current_user.name,
        )
        self.set_status(202)
        self.write(json.dumps(job))


def handlers():
    return [
        (r"/api/gpulab/users/([^/]+)/home-backups", HomeBackupsAPIHandler),
        (r"/api/gpulab/users/([^/]+)/home-backups/([^/]+)", HomeBackupAPIHandler),
        (r"/api/gpulab/users/([^/]+)/home-backups/([^/]+)/restore", HomeRestoreAPIHandler),
    ]
