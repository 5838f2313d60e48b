"""``docker run`` for a test that reads what a short container prints.

docker-py's ``containers.run(..., remove=True)`` removes the container before it has read the
log stream it opened, so a longer output can come back cut short (a JSON file read with ``cat``
failed to parse now and then under load). Here the container is waited for, its whole output read,
and only then removed."""

import docker


def output(client, image, command, *, stderr=False, timeout=120, **kwargs):
    """What ``command`` printed (stdout; with ``stderr`` both), as bytes; ContainerError when it
    exits non-zero."""
    container = client.containers.run(image, command, detach=True, **kwargs)
    try:
        status = container.wait(timeout=timeout)["StatusCode"]
        out = b"".join(container.logs(stdout=True, stderr=stderr, stream=True, follow=True))
        if status != 0:
            raise docker.errors.ContainerError(
                container, status, command, image, container.logs(stdout=False, stderr=True)
            )
        return out
    finally:
        container.remove(force=True)
