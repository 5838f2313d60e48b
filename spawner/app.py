"""The gpulab hub: JupyterHub, plus a startup step between loading the configuration and
opening the database.

    python -m gpulab.app -f jupyterhub_config.py      # what `gpulab up` runs

The startup step checks the spawner settings as a whole (including traitlets an admin set by
hand after the site file, see :mod:`.settings`) and prepares the host (:mod:`.host`); a problem
stops the hub with one line naming the setting. Configuration loading itself creates nothing.
"""

import sys

from jupyterhub.app import JupyterHub
from traitlets import Dict, TraitError

from . import host, network
from .schema import SiteConfigError
from .settings import ConfigError


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

    def _fail(self, message):
        print(message, file=sys.stderr, flush=True)
        self.exit(2)


def main(argv=None):
    GPULabHub.launch_instance(argv)


if __name__ == "__main__":
    # `python -m gpulab.app`: run the class of the imported module, which the configuration checks for
    from gpulab.app import main as imported_main

    imported_main()
