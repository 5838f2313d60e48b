"""Settings an admin may set by hand: validated like the site file, checked as a whole, one precedence rule."""

import pytest
from traitlets import TraitError
from traitlets.config import Config

from gpulab.backends.docker.spawner import GPUDockerSpawner
from gpulab.core.options import SpawnRequest
from gpulab.core.site.model import validate_site
from gpulab.hub.crosscheck import ConfigError
from gpulab.hub.wiring import configure

SITE = {
    "auth": {"admin_users": ["admin"]},
    "profiles": [
        {
            "name": "base",
            "image": "localhost/gpulab/base:latest",
            "mem_limit": "16G",
            "cpu_limit": 4,
            "shm_size": "2G",
        }
    ],
    "hub": {"state_dir": "/nonexistent/never-created"},
}


def spawner(**config):
    c = Config()
    for key, value in config.items():
        cls, name = key.split("__")
        c[cls][name] = value
    return GPUDockerSpawner(config=c)


def test_a_hand_set_profile_gets_the_site_files_defaults():
    s = spawner(GPUDockerSpawner__profiles=[{"name": "x", "image": "y"}])
    (p,) = s.profiles
    assert (p["gpus"], p["max_gpus"], p["display_name"], p["shm_size"]) == (0, 0, "x", 1024**3)


@pytest.mark.parametrize(
    "key, value, text",
    [
        (
            "GPUDockerSpawner__profiles",
            [{"name": "x", "image": "y", "gpus": "two"}],
            "GPUDockerSpawner.profiles[0].gpus: must be a whole number",
        ),
        (
            "GPUDockerSpawner__profiles",
            [{"name": "x"}],
            "GPUDockerSpawner.profiles[0].image: is required",
        ),
        (
            "GPUDockerSpawner__gpu_settings",
            {"mode": "greedy"},
            'GPUDockerSpawner.gpu_settings.mode: must be "exclusive" or "shared"',
        ),
        (
            "GPUDockerSpawner__datasets",
            [{"name": "d", "source": "/x", "target": "/etc/x"}],
            "GPUDockerSpawner.datasets[0].target",
        ),
        ("GPUDockerSpawner__scratch_target", "/usr/local", "GPUDockerSpawner.scratch_target"),
        (
            "GPUDockerSpawner__home_source",
            "/data/{user}",
            "GPUDockerSpawner.home_source: unknown placeholder {user}",
        ),
        ("GPUDockerSpawner__deployment", "My Lab", "GPUDockerSpawner.deployment"),
    ],
)
def test_bad_hand_set_values_name_the_trait(key, value, text):
    with pytest.raises(TraitError) as info:
        spawner(**{key: value})
    assert text in str(info.value)


def test_gpu_defaults_come_from_the_schema():
    s = spawner(GPUDockerSpawner__gpu_settings={"wait": False})
    assert (
        s.gpu_settings["wait"] is False
        and s.gpu_settings["wait_timeout"] == 600
        and s.gpu_settings["devices"] == "auto"
    )
    assert GPUDockerSpawner().gpu_settings["mode"] == "exclusive"


@pytest.mark.parametrize(
    "config, key",
    [
        (
            {
                "GPUDockerSpawner__profiles": [{"name": "x", "image": "y"}],
                "DockerSpawner__image": "z",
            },
            "GPUDockerSpawner.image",
        ),
        (
            {
                "GPUDockerSpawner__profiles": [{"name": "x", "image": "y"}],
                "DockerSpawner__allowed_images": ["z"],
            },
            "GPUDockerSpawner.allowed_images",
        ),
        (
            {"Spawner__environment": {"NVIDIA_VISIBLE_DEVICES": "all"}},
            "GPUDockerSpawner.environment.NVIDIA_VISIBLE_DEVICES",
        ),
        (
            {"DockerSpawner__extra_host_config": {"device_requests": []}},
            "GPUDockerSpawner.extra_host_config.device_requests",
        ),
        (
            {"DockerSpawner__extra_host_config": {"privileged": True}},
            "GPUDockerSpawner.extra_host_config.privileged",
        ),
        (
            {"DockerSpawner__extra_create_kwargs": {"labels": {"gpulab.gpus": ""}}},
            "GPUDockerSpawner.extra_create_kwargs.labels.gpulab.gpus",
        ),
        (
            {"DockerSpawner__extra_create_kwargs": {"image": "x"}},
            "GPUDockerSpawner.extra_create_kwargs.image",
        ),
        ({"DockerSpawner__volumes": {"/data/x": "/home/shared"}}, "GPUDockerSpawner.volumes"),
    ],
)
def test_settings_that_take_over_what_gpulab_owns_are_refused(config, key):
    with pytest.raises(ConfigError) as info:
        spawner(**config).check_settings()
    assert info.value.key == key


def test_without_profiles_dockerspawner_settings_are_fine():
    s = spawner(
        DockerSpawner__image="my/image:1",
        DockerSpawner__allowed_images=["my/image:1", "my/image:2"],
    )
    s.check_settings()
    assert s.limits(SpawnRequest(profile={}, gpus=0)).image == "my/image:1"


def test_readme_example_configured_mem_limit_wins_over_the_profile():
    site = validate_site(SITE)
    c = Config()
    configure(c, site)
    c.GPUDockerSpawner.mem_limit = "8G"  # the admin guide's example, after configure_or_exit(c)
    s = GPUDockerSpawner(config=c)
    s.check_settings()
    limits = s.limits(SpawnRequest(profile=s.profiles[0], gpus=0))
    assert (limits.mem_limit, limits.cpu_limit, limits.shm_size, limits.image) == (
        8 * 1024**3,
        4.0,
        2 * 1024**3,
        "localhost/gpulab/base:latest",
    )
    # and without it, the profile's value
    c2 = Config()
    configure(c2, site)
    assert (
        GPUDockerSpawner(config=c2)
        .limits(SpawnRequest(profile=site["profiles"][0], gpus=0))
        .mem_limit
        == 16 * 1024**3
    )


def test_loading_the_config_creates_nothing(tmp_path):
    site = validate_site({**SITE, "hub": {"state_dir": str(tmp_path / "state")}})
    configure(Config(), site)
    assert not (tmp_path / "state").exists()
