"""DockerSpawner's pull_policy, for real, against a real registry (Debian's docker-registry on 127.0.0.1).

DockerSpawner's own pull test needs Docker Hub; this one covers the same behaviour here, and the
progress events of a streaming pull.
"""

import asyncio
import io
import subprocess
import tarfile
import uuid

import docker
import pytest

from gpulab.backends.docker.spawner import GPUDockerSpawner
from gpulab.core.progress import ProgressLog
from harness.registry import Registry


@pytest.fixture(scope="module")
def registry():
    r = Registry().start()
    yield r
    r.stop()


def push_version(client, ref, content):
    """Make a one-file image with ``content`` and push it as ``ref``; returns its image id."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = content.encode()
        info = tarfile.TarInfo("version.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    subprocess.run(
        ["docker", "import", "-", ref], input=buf.getvalue(), check=True, capture_output=True
    )
    subprocess.run(["docker", "push", ref], check=True, capture_output=True, timeout=120)
    return client.images.get(ref).id


def local_id(client, ref):
    try:
        return client.images.get(ref).id
    except docker.errors.ImageNotFound:
        return None


async def test_pull_policies(registry, docker_client):
    ref = f"{registry.address}/gpulab-test/tiny-{uuid.uuid4().hex[:6]}:v1"
    first = push_version(docker_client, ref, "one")
    made = [first]  # every version this test made, removed at the end (tagged or not)
    docker_client.images.remove(ref, force=True)
    spawner = GPUDockerSpawner()
    try:
        spawner.pull_policy = "never"
        with pytest.raises(docker.errors.NotFound):
            await spawner.pull_image(ref)
        spawner.pull_policy = "skip"
        await spawner.pull_image(ref)
        assert local_id(docker_client, ref) is None, "skip pulls nothing"

        spawner.pull_policy = "ifnotpresent"
        spawner._progress = ProgressLog()
        await spawner.pull_image(ref)
        assert local_id(docker_client, ref) == first
        messages = [e["message"] for e in spawner._progress.events]
        assert messages[0] == f"Pulling image {ref}" and messages[-1] == f"Pulled image {ref}", (
            messages
        )

        second = push_version(docker_client, ref, "two")
        made.append(second)
        docker_client.images.get(first).tag(
            ref
        )  # locally the old version again, the registry has the new one
        await spawner.pull_image(ref)
        assert local_id(docker_client, ref) == first, "ifnotpresent keeps what is present"
        spawner.pull_policy = "Always"
        await spawner.pull_image(ref)
        assert local_id(docker_client, ref) == second, "always pulls even when present"
        spawner.pull_policy = "never"
        await spawner.pull_image(ref)  # present: fine
    finally:
        for image in (ref, *made):
            try:
                docker_client.images.remove(image, force=True)
            except docker.errors.ImageNotFound:
                pass
        await asyncio.sleep(0)


async def test_a_failing_pull_says_why(registry):
    spawner = GPUDockerSpawner()
    with pytest.raises(docker.errors.APIError) as info:
        await spawner.pull_image(f"{registry.address}/gpulab-test/does-not-exist:v1")
    assert "not found" in str(info.value).lower() or "unknown" in str(info.value).lower()
