"""The hub of a Swarm: a container on a manager node, on the overlay networks.

To restart it, run ``gpulab up --replace`` (a new container on the same state): Docker cannot
restart a stopped container into an attachable overlay network by itself.

``gpulab up`` runs it there (:func:`run_hub`). It reaches the Swarm through the manager's Docker
socket, user servers over the overlays (it joins each user's network), and the lab through one
published port (the site file's ``hub.bind_url``). Its state directory and the shared storage are
mounted at the same paths as on the manager, so the site file's paths mean the same inside.
"""

import os
import shutil
import time
from urllib.parse import urlparse

import docker

from ...core import contract
from ...core.site.facts import hub_container_name, hub_image, public_host_port
from ..engine import HostError
from .network import ensure_overlay
from .registry import login

CONFIG_DIR = "/etc/gpulab"


def stage_config(site, site_file, config_file, directory):
    """Copy the site file and the JupyterHub config the container reads into ``directory``."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    shutil.copy(site_file, os.path.join(directory, "gpulab.yaml"))
    shutil.copy(config_file, os.path.join(directory, os.path.basename(config_file)))
    return directory


def container_arguments(
    site, *, image, config_dir, config_file="jupyterhub_config.py", environ=os.environ
):
    """docker-py ``containers.run`` keyword arguments for the hub container (pure)."""
    hub, cluster = site["hub"], site["cluster"]
    host, port = public_host_port(hub["bind_url"])
    socket_path = urlparse(cluster["manager_url"]).path or "/var/run/docker.sock"
    volumes = {
        config_dir: {"bind": CONFIG_DIR, "mode": "ro"},
        socket_path: {"bind": "/var/run/docker.sock", "mode": "rw"},
        os.path.abspath(hub["state_dir"]): {
            "bind": os.path.abspath(hub["state_dir"]),
            "mode": "rw",
        },
        cluster["shared_root"]: {"bind": cluster["shared_root"], "mode": "rw"},
    }
    env = {contract.SITE_FILE_ENV: f"{CONFIG_DIR}/gpulab.yaml"}
    auth = site["auth"]
    if auth["type"] != "native":
        secret = auth[auth["type"]]["client_secret_env"]
        env[secret] = environ.get(secret, "")
    if cluster["registry_auth"]:  # the hub logs in to the registry; no user container ever sees it
        secret = cluster["registry_auth"]["password_env"]
        env[secret] = environ.get(secret, "")
    return {
        "image": image,
        "command": [
            "python3",
            "-m",
            "gpulab.hub.app",
            "-f",
            f"{CONFIG_DIR}/{os.path.basename(config_file)}",
        ],
        "name": hub_container_name(site),
        "hostname": hub_container_name(site),
        "detach": True,
        "environment": env,
        "volumes": volumes,
        "network": cluster["network"],
        "ports": {f"{port}/tcp": (host, port)},
        # no Docker restart policy: a stopped container cannot rejoin an attachable overlay on its
        # own (Docker: "network ... not found"); `gpulab up` (its systemd unit) makes a new one
        "labels": {contract.L_DEPLOYMENT: hub["name"], contract.L_ROLE: "hub"},
    }


def run_hub(
    client,
    site,
    *,
    config_dir,
    config_file="jupyterhub_config.py",
    image=None,
    replace=False,
    environ=os.environ,
):
    """Start the hub container on this manager (its overlay network is created if missing)."""
    cluster = site["cluster"]
    ensure_overlay(client, cluster["network"], site["hub"]["name"], encrypted=cluster["encrypted"])
    auth = cluster["registry_auth"]
    if auth:  # the manager pulls the hub's image from the lab's registry, which asks for a login
        login(
            client.api,
            {
                "registry": cluster["registry"],
                "username": auth["username"],
                "password": environ.get(auth["password_env"], ""),
            },
        )
    name = hub_container_name(site)
    try:
        old = client.containers.get(name)
    except docker.errors.NotFound:
        old = None
    if old is not None:
        if old.status == "running" and not replace:
            raise HostError(
                f"the hub container {name} is already running (stop it first: docker rm -f {name})"
            )
        old.remove(force=True)
    kwargs = container_arguments(
        site,
        image=image or hub_image(site),
        config_dir=config_dir,
        config_file=config_file,
        environ=environ,
    )
    for attempt in range(6):
        try:
            return client.containers.run(**kwargs)
        except docker.errors.APIError as e:
            # right after the previous hub left the overlay, Swarm may still be tearing down this
            # node's attachment ("attaching to network failed ... context deadline exceeded"), or
            # has just removed the node-local copy of the network ("network <id> not found")
            text = str(e.explanation or e)
            transient = "attaching to network failed" in text or (
                "network" in text and "not found" in text
            )
            if not transient or attempt == 5:
                raise
            try:
                client.containers.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
            time.sleep(2 + 2 * attempt)
