"""One Deployment per hub, built once from the resolved spawner settings, handed out one way."""

from types import SimpleNamespace

import pytest
from traitlets.config import Config

from gpulab.backends import select
from gpulab.backends.docker import DOCKER
from gpulab.backends.docker.spawner import GPUDockerSpawner
from gpulab.backends.swarm import SWARM
from gpulab.backends.swarm.spawner import GPUSwarmSpawner
from gpulab.core.site.model import validate_site
from gpulab.hub.crosscheck import ConfigError
from gpulab.hub.deployment import SETTINGS_KEY, Deployment
from gpulab.hub.wiring import configure

SITE = {
    "auth": {"admin_users": ["admin"]},
    "profiles": [{"name": "base", "image": "localhost/gpulab/base:latest"}],
}
GPUS = {"devices": [{"index": 0, "uuid": "GPU-d-0", "model": "T", "memory": "1G"}]}


def spawner(settings, name="alice", config=None):
    user = SimpleNamespace(name=name, id=1, groups=[], url=f"/user/{name}/", settings=settings)
    c = config or Config()
    c.GPUDockerSpawner.gpu_settings = GPUS
    return GPUDockerSpawner(config=c, user=user, _deprecated_db_session=None)


def test_spawners_of_one_hub_share_one_deployment_found_in_the_hubs_settings():
    settings = {}  # JupyterHub's tornado settings, which every User carries
    a, b = spawner(settings, "alice"), spawner(settings, "bob")
    assert a.lab is b.lab is settings[SETTINGS_KEY]
    assert (
        a.gpu_manager is b.gpu_manager and a.executor is b.executor and a.lab.gates is b.lab.gates
    )
    other_hub = spawner({}, "carol")
    assert other_hub.lab is not a.lab, "another hub (another settings dict) has its own"


def test_a_deployment_the_hub_built_is_the_one_its_spawners_use():
    lab = Deployment.from_spawner(spawner({}))
    settings = {SETTINGS_KEY: lab}
    assert spawner(settings).lab is lab


def test_it_is_built_from_the_resolved_settings_not_the_site_file():
    c = Config()
    site = configure(
        c,
        validate_site(
            {**SITE, "containers": {"pids_limit": 2048}, "hub": {"state_dir": "/tmp/gpulab-lab-x"}}
        ),
    )
    c.GPUDockerSpawner.pids_limit = (
        512  # what an admin sets after the site file wins, for spawners and jobs alike
    )
    s = spawner({}, config=c)
    lab = s.lab
    assert site["containers"]["pids_limit"] == 2048 and s.pids_limit == 512
    assert lab.hardening.pids_limit == 512 == s.hardening().pids_limit
    assert (
        lab.state_dir == "/tmp/gpulab-lab-x"
        and lab.home_backups_dir == "/var/backups/gpulab/gpulab/homes"
    )
    assert lab.archive_dir == "/tmp/gpulab-lab-x/archive" and lab.backend is DOCKER


def test_the_backend_is_picked_once_from_the_site_file():
    single = validate_site(SITE)
    assert select(single) is DOCKER and DOCKER.load_spawner_class() is GPUDockerSpawner
    swarm = validate_site(
        {
            **SITE,
            "cluster": {"mode": "swarm", "registry": "reg:5000", "shared_root": "/srv/gpulab"},
            "hub": {"state_dir": "/srv/state"},
        }
        | {"storage": {"home": "/srv/gpulab/home/{username}"}, "ssh": {"port_base": 0}}
    )
    assert select(swarm) is SWARM and SWARM.load_spawner_class() is GPUSwarmSpawner
    c = Config()
    configure(c, swarm)
    assert (
        c.JupyterHub.spawner_class == SWARM.spawner_class
        and c.GPUSwarmSpawner.registry == "reg:5000"
    )
    assert c.GPUSwarmSpawner.ssh_host_key_volume == "/srv/gpulab/ssh-host/{username}"


@pytest.mark.parametrize(
    "setting, value",
    [
        ("extra_host_config", {"shm_size": 1}),
        ("volumes", {"/data": "/data"}),
        ("post_start_cmd", "true"),
    ],
)
def test_a_swarm_refuses_container_settings_it_cannot_honour(setting, value):
    c = Config()
    c.GPUSwarmSpawner[setting] = value
    with pytest.raises(ConfigError, match=rf"^GPUSwarmSpawner\.{setting}: is a container setting"):
        GPUSwarmSpawner(config=c).check_settings()
