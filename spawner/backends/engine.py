"""The Docker engine the hub talks to (this host's, or a Swarm manager's), for both backends."""

import docker


class HostError(RuntimeError):
    """The host is not ready (Docker unreachable, a network clash, firewall rules refused, ...)."""


def docker_client(timeout=30):
    """A docker-py client from the environment (DOCKER_HOST, ...), or HostError saying how to get one."""
    try:
        client = docker.from_env(version="auto", timeout=timeout)
        client.ping()
        return client
    except (docker.errors.DockerException, OSError) as e:
        raise HostError(
            f"the Docker engine is not reachable ({e}); start it (e.g. `dockerd`) or run `make up`"
        )


def api_client(timeout=30):
    """A low-level docker-py APIClient from the environment, for callers that need no ping."""
    return docker.APIClient(version="auto", timeout=timeout)
