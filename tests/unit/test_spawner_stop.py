"""GPUs follow the container: a stop that fails leaves them held (the container may still run)."""

from types import SimpleNamespace

import docker
import pytest
from dockerspawner import DockerSpawner
from traitlets.config import Config

from gpulab.backends.docker.spawner import GPUDockerSpawner

GPUS = {"devices": [{"index": 0, "uuid": "GPU-stop-0", "model": "T", "memory": "1G"}]}


def make_spawner():
    c = Config()
    c.GPUDockerSpawner.deployment = "stoptest"
    c.GPUDockerSpawner.gpu_settings = GPUS
    user = SimpleNamespace(name="sam", id=3, groups=[], url="/user/sam/", settings={})
    return GPUDockerSpawner(config=c, user=user, _deprecated_db_session=None)


async def test_a_failed_stop_keeps_the_gpus_a_good_one_gives_them_back(monkeypatch):
    s = make_spawner()
    manager = s.gpu_manager  # the deployment's, which the user's hub settings hold
    manager.set_inventory(
        await manager.inventory_source.inventory()
    )  # the site's static list; no Docker
    manager.synced = True
    s.gpu_uuids = tuple(await manager.allocator.acquire(s.holder, 1))
    s.object_id = "abc123"

    async def failing_stop(self, now=False):
        raise docker.errors.APIError("the daemon did not answer")

    monkeypatch.setattr(DockerSpawner, "stop", failing_stop)
    with pytest.raises(docker.errors.APIError):
        await s.stop()
    assert manager.allocator.holdings[s.holder].uuids == ["GPU-stop-0"], (
        "still held while the container may run"
    )

    async def good_stop(self, now=False):
        self.object_id = ""

    monkeypatch.setattr(DockerSpawner, "stop", good_stop)
    await s.stop()
    assert s.holder not in manager.allocator.holdings and s.gpu_uuids == ()
