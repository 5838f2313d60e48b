"""What follows from a validated site file: where the hub keeps its state, its URLs, and the names
of what it runs. One place for each, so the hub, the admin commands and the backends agree.
Pure (paths are computed, never created)."""

import os
from urllib.parse import urlparse

# files in the hub's state directory
COOKIE_SECRET = "jupyterhub_cookie_secret"
SSH_STORE = "gpulab-ssh.sqlite"
SAVES_STORE = "gpulab-saves.sqlite"
USAGE_BOOK = "gpulab-usage.sqlite"
JOBS_STORE = "gpulab-jobs.sqlite"  # users' GPU jobs (gpulab.hub.gpujobs)


def state_dir(site):
    return os.path.abspath(site["hub"]["state_dir"])


def ssh_store_path(state):
    return os.path.join(state, SSH_STORE)


def saves_store_path(state):
    return os.path.join(state, SAVES_STORE)


def jobs_path(state):
    return os.path.join(state, JOBS_STORE)


def usage_path(state):
    return os.path.join(state, USAGE_BOOK)


def db_url(site):
    """The hub database URL, a relative SQLite path resolved in the state directory."""
    url = site["hub"]["db_url"]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:///" + os.path.join(state_dir(site), url[len("sqlite:///") :])
    return url


def public_url(site):
    """Where users open the hub."""
    return site["hub"]["subdomain_host"] or site["hub"]["bind_url"]


def public_host_port(bind_url):
    u = urlparse(bind_url)
    return u.hostname, u.port or (443 if u.scheme == "https" else 80)


def ssh_public_host(site):
    """The host name users put in ~/.ssh/config for the direct port."""
    ssh = site["ssh"]
    if ssh["public_host"]:
        return ssh["public_host"]
    if ssh["host_address"] in ("0.0.0.0", "::"):
        return urlparse(public_url(site)).hostname
    return ssh["host_address"]


def default_home_backups_dir(name):
    """Users' home backups, by default: outside the hub's state directory (a backup of the hub's
    state must not carry every user's files, nor fill the disk the hub's database is on)."""
    return f"/var/backups/gpulab/{name}/homes"


def home_backups_dir(site):
    """Where users' home backups go: ``storage.backups``, else :func:`default_home_backups_dir`."""
    return site["storage"]["backups"] or default_home_backups_dir(site["hub"]["name"])


def archive_dir(site):
    """Where a deleted user's home is archived: ``storage.archive``, else ``<state_dir>/archive``."""
    return site["storage"]["archive"] or os.path.join(state_dir(site), "archive")


def state_backups_dir(site):
    """Where ``gpulab backup`` writes the hub's state: ``hub.backup_dir``, else ``<state_dir>/backups``."""
    return site["hub"]["backup_dir"] or os.path.join(state_dir(site), "backups")


def hub_container_name(site):
    """The hub's container on a Swarm manager (its name is also its address on the overlays)."""
    return f"{site['hub']['name']}-hub"


def unit_name(site):
    name = site["hub"]["name"]
    return "gpulab.service" if name == "gpulab" else f"gpulab-{name}.service"


def registry_name(tag, registry):
    """The name of a local image in the lab's registry: localhost/gpulab/base:latest -> REGISTRY/gpulab/base:latest."""
    path = tag.split("/", 1)[1] if tag.split("/", 1)[0] == "localhost" else tag
    return f"{registry}/{path}"


HUB_IMAGE = "localhost/gpulab/hub:latest"
BASE_IMAGE = "localhost/gpulab/base:latest"


def hub_image(site):
    """The hub's image on a Swarm: ``cluster.hub_image``, else gpulab's own hub image in the lab's registry."""
    cluster = site["cluster"]
    return cluster["hub_image"] or registry_name(HUB_IMAGE, cluster["registry"])
