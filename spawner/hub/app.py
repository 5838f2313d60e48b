"""The gpulab hub: JupyterHub, plus a startup step between loading the configuration and
opening the database.

    python -m gpulab.hub.app -f jupyterhub_config.py      # what `gpulab up` runs

The startup step checks the spawner settings as a whole (including traitlets an admin set by
hand after the site file, see :mod:`.crosscheck`), builds the one
:class:`~.deployment.Deployment` from them, and prepares the host through it (state directory,
the backend's networks and firewall rules, the SSH key store); a problem stops the hub with one
line naming the setting. Configuration loading itself creates nothing.
"""

import sys
from urllib.parse import urlparse

from jupyterhub.app import JupyterHub
from jupyterhub.handlers.pages import SpawnHandler
from jupyterhub.utils import maybe_future
from tornado import web
from traitlets import TraitError

from ..backends.engine import HostError
from ..core.identity import UidError
from ..core.site.schema import ConfigError
from . import diskfull
from .deployment import SETTINGS_KEY, Deployment
from .roles import gpulab_roles, merge_roles
from .sshstore import SSHStore
from .userdata import remove_user_data


def started_by_gpulab():
    """True while the running JupyterHub application is gpulab's (configuration is being loaded)."""
    return JupyterHub.initialized() and isinstance(JupyterHub.instance(), GPULabHub)


def _not_utf8(arguments):
    """The name of the first argument (``{name: [bytes]}``) whose value is not UTF-8, else None."""
    for name, values in arguments.items():
        for value in values:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return name
    return None


class SpawnFormHandler(SpawnHandler):
    """JupyterHub's spawn page, answering a field that is not UTF-8 text with 400 naming it
    (JupyterHub 6 decodes the form's fields and the page's query strictly: a 500)."""

    def _check_utf8(self, arguments, where):
        name = _not_utf8(arguments)
        if name is not None:
            raise web.HTTPError(400, f"Invalid spawn {where} {name[:40]!r}: not UTF-8 text")

    @web.authenticated
    def get(self, *args, **kwargs):
        self._check_utf8(self.request.query_arguments, "argument")
        return super().get(*args, **kwargs)

    @web.authenticated
    def post(self, *args, **kwargs):
        self._check_utf8(self.request.body_arguments, "option")
        return super().post(*args, **kwargs)


class GPULabHub(JupyterHub):
    name = "gpulab"
    description = "gpulab: a JupyterHub for a lab's shared GPU servers"

    lab = None  # the Deployment, built in init_gpulab

    def init_logging(self):
        super().init_logging()
        self.init_gpulab()

    def init_gpulab(self):
        """Check the spawner's settings, build the deployment, prepare the host. Exits with one
        line on a problem."""
        if not getattr(self.spawner_class, "backend", None):
            return  # not a gpulab spawner: plain JupyterHub
        diskfull.install()  # a full disk is answered 507, naming it (not 500)
        admins = self.config.Authenticator.get("admin_users") or ()
        self.load_roles, added = merge_roles(self.load_roles, gpulab_roles(admins))
        if added:
            self.log.warning(
                "gpulab: JupyterHub.load_roles (set after the site file) left out what gpulab's pages need; added %s",
                "; ".join(added),
            )
        try:
            spawner = self.spawner_class(config=self.config, log=self.log)
            spawner.check_settings()
            self.lab = Deployment.from_spawner(spawner)
            address = self.lab.prepare_host(urlparse(self.hub_bind_url).port or 8081)
            self.log.info(
                "gpulab: host ready (%s backend, state %s, Docker network %s, hub API on %s)",
                self.lab.backend.name,
                self.lab.state_dir,
                self.lab.network_name,
                address,
            )
        except (ConfigError, TraitError) as e:
            self._fail(f"gpulab: invalid configuration: {e}")
        except HostError as e:
            self._fail(f"gpulab: host not ready: {e}")
        # handed out one way: JupyterHub's tornado settings (handlers' self.settings, users' .settings)
        self.tornado_settings = {**self.tornado_settings, SETTINGS_KEY: self.lab}

    def init_handlers(self):
        super().init_handlers()
        self.handlers = [
            (h[0], SpawnFormHandler, *h[2:]) if h[1] is SpawnHandler else h for h in self.handlers
        ]

    async def start(self):
        await super().start()
        if self.lab is not None:
            self.lab.start(self)

    async def cleanup(self):
        if self.lab is not None:
            self.lab.close()
        await super().cleanup()

    async def init_users(self):
        await super().init_users()
        if self.lab is not None:
            self._archive_on_delete()

    def _archive_on_delete(self):
        """Deleting a user also archives and removes what they owned (:mod:`.userdata`), whatever
        the authenticator: the next account with that name starts with nothing of theirs."""
        authenticator = self.authenticator
        original = authenticator.delete_user
        lab = self.lab

        async def delete_user(user):
            await maybe_future(original(user))
            if lab.gpu_jobs is not None:
                await lab.gpu_jobs.forget_user(user.id, "the user's deletion")
            spawner = user.spawner
            store = SSHStore(lab.ssh_store_path) if lab.ssh_enabled and lab.ssh_store_path else None
            try:
                uid = spawner.identity().uid
            except UidError as e:  # e.g. never logged in with a uid claim: no home by uid either
                self.log.warning("gpulab: deleting %s: %s", user.name, e)
                uid = -1
            await remove_user_data(
                lab,
                user.name,
                user_id=user.id,
                escaped_name=spawner.escaped_name,
                uid=uid,
                store=store,
                log=self.log,
            )

        authenticator.delete_user = delete_user

    def _fail(self, message):
        print(message, file=sys.stderr, flush=True)
        self.exit(2)


def main(argv=None):
    GPULabHub.launch_instance(argv)


if __name__ == "__main__":
    # `python -m gpulab.hub.app`: run the class of the imported module, which the configuration checks for
    from .app import main as imported_main

    imported_main()
