"""The two hubs the benchmark compares, on the same image and the same kind of network.

``GpulabHub`` is the test harness's hub (the committed jupyterhub_config.py and a site
file); ``StockHub`` runs plain ``dockerspawner.DockerSpawner`` with the equivalent settings.
"""

import os

from gpulab.backends.docker.network import ensure_network
from gpulab.core import contract
from harness.hub import BASE_IMAGE, Hub, free_port

STOCK_CONFIG = """
c = get_config()  # noqa
c.JupyterHub.bind_url = {url!r}
c.JupyterHub.hub_bind_url = "http://{gateway}:{api_port}"
c.JupyterHub.hub_connect_url = "http://{gateway}:{api_port}"
c.JupyterHub.db_url = "sqlite:///{workdir}/stock.sqlite"
c.JupyterHub.cookie_secret_file = "{workdir}/cookie_secret"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = "{workdir}/proxy.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.DockerSpawner.image = {image!r}
c.DockerSpawner.prefix = {name!r}
c.DockerSpawner.network_name = {name!r}
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True
c.DockerSpawner.start_timeout = 300
c.DockerSpawner.http_timeout = 300
# the image's entry script needs a login name, as gpulab's spawner provides
c.DockerSpawner.environment = {environment!r}
c.DockerSpawner.extra_create_kwargs = {{"labels": {{{l_deployment!r}: {name!r}, {l_user!r}: "{{raw_username}}"}}}}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "bench", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "bench", "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "list:users", "read:users"], "services": ["bench"]}}]
"""


class GpulabHub(Hub):
    def __init__(self, workdir, client):
        super().__init__(workdir, client, hub_name="gpulabb-" + os.urandom(3).hex())
        self.site["hub"]["start_timeout"] = 300
        self.site["profiles"] = [
            {"name": "bench", "image": BASE_IMAGE, "description": "benchmark", "max_gpus": 0}
        ]


class StockHub(Hub):
    app_module = "jupyterhub"

    def __init__(self, workdir, client, image=BASE_IMAGE):
        super().__init__(workdir, client, hub_name="stockb-" + os.urandom(3).hex())
        self.image = image

    def write_files(self):
        subnet = self.site["hub"]["subnet"]
        gateway = ensure_network(self.client, self.name, subnet, self.name)
        with open(self.config_path, "w") as f:
            f.write(
                STOCK_CONFIG.format(
                    url=self.url,
                    gateway=gateway,
                    api_port=free_port(),
                    workdir=self.workdir,
                    proxy_api_port=free_port(),
                    image=self.image,
                    name=self.name,
                    token=self.token,
                    l_deployment=contract.L_DEPLOYMENT,
                    l_user=contract.L_USER,
                    environment={
                        contract.NB_USER: "jovyan",
                        contract.NB_UID: "1000",
                        contract.NB_GID: "100",
                        contract.VISIBLE_DEVICES: contract.NO_GPU,
                    },
                )
            )
