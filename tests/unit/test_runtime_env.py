from traitlets.config import Config

from spawner.hubconfig import _spawner
from spawner.runtime_env import tool_environment
from spawner.siteconfig import validate_site

DEFAULTS = dict(tf_memory_growth=True, jax_preallocate=False, tensorboard_logdir="~/runs", service_prefix="/user/alice/")


def test_defaults_turn_growth_on_and_preallocation_off():
    env = tool_environment(**DEFAULTS)
    assert env == {
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        "GPULAB_TENSORBOARD_LOGDIR": "~/runs",
        "TENSORBOARD_PROXY_URL": "/user/alice/proxy/%PORT%/",
        "PIP_USER": "1",
    }


def test_switches_off_leave_the_frameworks_defaults():
    env = tool_environment(**{**DEFAULTS, "tf_memory_growth": False, "jax_preallocate": True})
    assert "TF_FORCE_GPU_ALLOW_GROWTH" not in env
    assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in env


def test_proxy_url_follows_the_prefix_with_or_without_slash():
    assert tool_environment(**{**DEFAULTS, "service_prefix": "/lab/user/a%40b"})["TENSORBOARD_PROXY_URL"] == "/lab/user/a%40b/proxy/%PORT%/"


def test_site_file_reaches_the_spawner_traits():
    site = validate_site({
        "auth": {"admin_users": ["admin"]},
        "profiles": [{"name": "base", "image": "gpulab/base:latest"}],
        "hooks": {"tf_memory_growth": False, "jax_preallocate": True, "tensorboard_logdir": "/scratch/tb"},
    })
    c = Config()
    _spawner(c, site, "172.30.240.1")
    from spawner.spawner import GPUDockerSpawner

    s = GPUDockerSpawner(config=c)
    assert (s.tf_memory_growth, s.jax_preallocate, s.tensorboard_logdir) == (False, True, "/scratch/tb")
