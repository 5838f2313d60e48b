"""The gpulab hub: JupyterHub, plus a startup step between loading the configuration and
opening the database.

    python -m gpulab.app -f jupyterhub_config.py      # what `gpulab up` runs

The startup step checks the spawner settings as a whole (including traitlets an admin set by
hand after the site file, see :mod:`.settings`) and prepares the host (:mod:`.host`); a problem
stops the hub with one line naming the setting. Configuration loading itself creates nothing.
"""

import asyncio
import os
import sys

from jupyterhub.app import JupyterHub
from jupyterhub.utils import maybe_future
from traitlets import Dict, TraitError

from . import host, network
from .schema import SiteConfigError
from .settings import ConfigError
from .ssh.hubsetup import store_path
from .ssh.store import SSHStore
from .userdata import remove_user_data


def started_by_gpulab():
    """True while the running JupyterHub application is gpulab's (configuration is being loaded)."""
    return JupyterHub.initialized() and isinstance(JupyterHub.instance(), GPULabHub)


class GPULabHub(JupyterHub):
    name = "gpulab"
    description = "gpulab: a JupyterHub for a lab's shared GPU servers"

    site = Dict(help="The validated site file, set by gpulab.hubconfig.configure (not by hand).").tag(config=True)

    def init_logging(self):
        super().init_logging()
        self.init_gpulab()

    def init_gpulab(self):
        """Check the spawner's settings, then prepare the host. Exits with one line on a problem."""
        try:
            if hasattr(self.spawner_class, "check_settings"):
                self.spawner_class(config=self.config, log=self.log).check_settings()
            if self.site:
                gateway = host.prepare(self.site)
                self.log.info(
                    "gpulab: host ready (state %s, Docker network %s, hub API on %s)",
                    self.site["hub"]["state_dir"],
                    self.site["hub"]["network"],
                    gateway,
                )
        except (ConfigError, TraitError, SiteConfigError) as e:
            self._fail(f"gpulab: invalid configuration: {e}")
        except network.HostError as e:
            self._fail(f"gpulab: host not ready: {e}")

    async def start(self):
        await super().start()
        if self.site:
            from .gpus.service import GPUService

            self.gpu_service = GPUService(self, self.site)
            self.gpu_service.start()

    async def cleanup(self):
        service = getattr(self, "gpu_service", None)
        if service is not None:
            service.close()
        await super().cleanup()

    async def init_users(self):
        await super().init_users()
        if self.site:
            self._archive_on_delete()

    def _archive_on_delete(self):
        """Deleting a user also archives and removes what they owned (:mod:`.userdata`), whatever
        the authenticator: the next account with that name starts with nothing of theirs."""
        authenticator = self.authenticator
        original = authenticator.delete_user

        async def delete_user(user):
            await maybe_future(original(user))
            spawner = user.spawner
            store = SSHStore(store_path(os.path.abspath(self.site["hub"]["state_dir"]))) if self.site["ssh"]["enabled"] else None
            await asyncio.to_thread(
                remove_user_data,
                self.site,
                user.name,
                escaped_name=spawner.escaped_name,
                uid=spawner.identity().uid,
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
    # `python -m gpulab.app`: run the class of the imported module, which the configuration checks for
    from gpulab.app import main as imported_main

    imported_main()
