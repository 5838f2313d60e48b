"""Hub-side wiring of SSH: the access page's handlers, the nav link, the spawner's SSH traits."""

import os
from urllib.parse import urlparse

from ..hubpages import add_pages

STORE_FILE = "gpulab-ssh.sqlite"


def store_path(state_dir):
    return os.path.join(state_dir, STORE_FILE)


def public_host(ssh, hub_url):
    """The host name users put in ~/.ssh/config for the direct port."""
    if ssh["public_host"]:
        return ssh["public_host"]
    if ssh["host_address"] in ("0.0.0.0", "::"):
        return urlparse(hub_url).hostname
    return ssh["host_address"]


def configure_ssh(c, site, state_dir):
    ssh = site["ssh"]
    s = c.GPUDockerSpawner
    s.ssh_enabled = ssh["enabled"]
    if not ssh["enabled"]:
        return
    from .service import handlers
    from .store import SSHStore

    path = store_path(state_dir)
    hub_url = site["hub"]["subdomain_host"] or site["hub"]["bind_url"]
    settings = {
        "password_login": ssh["password_login"],
        "sudo": site["users"]["sudo"],
        "port_base": ssh["port_base"],
        "public_host": public_host(ssh, hub_url),
        "hub_url": hub_url.rstrip("/"),
        "subdomains": bool(site["hub"]["subdomain_host"]),
    }
    add_pages(c, handlers(SSHStore(path), settings), {"gpulab_ssh": True, "gpulab_native_auth": site["auth"]["type"] == "native"})
    s.ssh_store_path = path
    s.ssh_password_login = ssh["password_login"]
    s.ssh_host_address = ssh["host_address"]
    s.ssh_port_base = ssh["port_base"]
    s.ssh_activity_interval = ssh["activity_interval"]
    s.ssh_tcp_forwarding = ssh["tcp_forwarding"]
    s.ssh_x11_forwarding = ssh["x11_forwarding"]
