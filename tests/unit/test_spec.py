"""The spec builder without Docker or a hub (as kubespawner tests make_pod)."""

import dataclasses

import pytest

from gpulab.core import contract
from gpulab.core import spec as specs
from gpulab.core.site import default
from gpulab.core.site.model import validate_site
from gpulab.hub.traits import GPULabSettings


def storage(**kw):
    """The spec's storage settings as the site file's defaults give them, changed by ``kw``."""
    return specs.Storage(
        **{
            "home": default("storage.home"),
            "datasets": (),
            "scratch": "",
            "scratch_target": default("storage.scratch_target"),
            **kw,
        }
    )


def ssh(**kw):
    values = {
        "enabled": False,
        "activity_interval": default("ssh.activity_interval"),
        "host_address": default("ssh.host_address"),
        "host_port": 0,
        "host_key_volume": GPULabSettings.class_traits()["ssh_host_key_volume"].default_value,
        "tcp_forwarding": default("ssh.tcp_forwarding"),
        "x11_forwarding": default("ssh.x11_forwarding"),
    }
    return specs.SSHSettings(**{**values, **kw})


def tools(**kw):
    values = {
        k: default(f"hooks.{k}")
        for k in ("tf_memory_growth", "jax_preallocate", "tensorboard_logdir")
    }
    return specs.Tools(**{**values, **kw})


HARDENING = specs.Hardening(
    **{k: default(f"containers.{k}") for k in ("pids_limit", "log_max_size", "log_max_files")}
)

ALICE = specs.Identity(
    username="alice.b@lab",
    user_id=7,
    server_name="",
    login="alice_b_lab",
    uid=20007,
    gid=100,
    escaped_username="alice-2eb-40lab",
)
PROFILE = {
    "name": "torch",
    "image": "localhost/gpulab/pytorch:latest",
    "mem_limit": 16 << 30,
    "cpu_limit": 4.0,
    "shm_size": 2 << 30,
}
BASE_ENV = {"JUPYTERHUB_API_TOKEN": "t0ken", "JUPYTERHUB_SERVICE_PREFIX": "/user/alice.b@lab/"}


def build(**kw):
    args = dict(
        deployment="lab",
        name="lab-alice-2eb-40lab",
        identity=ALICE,
        profile_name="torch",
        limits=specs.resolve_limits(PROFILE, {}),
        base_env=BASE_ENV,
        command=["gpulab-start", "--port=8888"],
        storage=storage(),
        ssh=ssh(),
        tools=tools(),
        hardening=HARDENING,
        sudo=False,
        password_login=False,
        service_prefix="/user/alice.b@lab/",
    )
    args.update(kw)
    return specs.build_spec(**args)


def test_the_spec_is_frozen_and_deterministic():
    a, b = (
        build(gpus=specs.GPUGrant.devices(("GPU-1",))),
        build(gpus=specs.GPUGrant.devices(("GPU-1",))),
    )
    assert a == b
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.image = "other"
    with pytest.raises(TypeError):
        a.env["NVIDIA_VISIBLE_DEVICES"] = "all"


def test_identity_gpus_and_labels():
    s = build(gpus=specs.GPUGrant.devices(("GPU-1", "GPU-2")))
    assert (
        s.env["NB_USER"] == "alice_b_lab"
        and s.env["NB_UID"] == "20007"
        and s.env["NB_HOME"] == s.env["HOME"] == "/home/alice_b_lab"
    )
    assert s.env["NVIDIA_VISIBLE_DEVICES"] == "GPU-1,GPU-2" and s.gpus.uuids == ("GPU-1", "GPU-2")
    assert dict(s.labels) == {
        "gpulab.deployment": "lab",
        "gpulab.user": "alice.b@lab",
        "gpulab.server": "",
        "gpulab.profile": "torch",
        "gpulab.uid": "20007",
        "gpulab.gpus": "GPU-1,GPU-2",
    }
    assert s.working_dir == "/home/alice_b_lab" and s.image == "localhost/gpulab/pytorch:latest"
    # every image starts the same way: gpulab's start script, by its path (never PATH), as root
    # under Docker's init; it is given the server's arguments
    assert (s.entrypoint, s.init, s.user) == (("/usr/local/bin/gpulab-start",), True, "0")
    assert s.command == ("--port=8888",)


def test_without_profiles_the_container_is_the_images_own_as_dockerspawner_makes_it():
    s = build(plain=True, command=["jupyterhub-singleuser", "--port=8888"], sudo=True)
    assert (s.entrypoint, s.init, s.user, s.working_dir) == ((), False, "", "")
    assert s.command == ("jupyterhub-singleuser", "--port=8888")
    assert s.mounts == () and s.ports == ()
    assert "HOME" not in s.env and "GPULAB_SSH" not in s.env and s.env["GPULAB_SUDO"] == "0"
    # gpulab's GPU variables and hold stay
    assert s.env["NVIDIA_VISIBLE_DEVICES"] == "void" and s.no_new_privileges
    assert s.capabilities == specs.CAPABILITIES and s.sysctls == specs.SYSCTLS


def test_no_gpu_is_void_even_if_the_admin_environment_says_otherwise():
    s = build(base_env={**BASE_ENV, "NVIDIA_VISIBLE_DEVICES": "all", "NB_USER": "root"})
    assert (
        s.env["NVIDIA_VISIBLE_DEVICES"] == "void"
        and s.env["NB_USER"] == "alice_b_lab"
        and s.gpus.uuids == ()
    )


def test_swarm_asks_for_a_count_names_no_device_and_fails_closed():
    s = build(gpus=specs.GPUGrant.counted(2))
    # Swarm names the GPUs in DOCKER_RESOURCE_GPU for a runtime set up to read it; a node whose
    # runtime is not falls back to NVIDIA_VISIBLE_DEVICES, which must then give nothing
    assert s.gpus.count == 2 and s.env["NVIDIA_VISIBLE_DEVICES"] == "void"


def test_tool_defaults_and_the_admin_environment_wins_over_them():
    s = build()
    assert (
        s.env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
        and s.env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    )
    assert s.env["PIP_USER"] == "1" and s.env["GPULAB_TENSORBOARD_LOGDIR"] == "~/runs"
    assert s.env["TENSORBOARD_PROXY_URL"] == "/user/alice.b@lab/proxy/%PORT%/"
    assert (
        build(base_env={**BASE_ENV, "TF_FORCE_GPU_ALLOW_GROWTH": "false"}).env[
            "TF_FORCE_GPU_ALLOW_GROWTH"
        ]
        == "false"
    )
    off = build(tools=tools(tf_memory_growth=False, jax_preallocate=True))
    assert (
        "TF_FORCE_GPU_ALLOW_GROWTH" not in off.env
        and "XLA_PYTHON_CLIENT_PREALLOCATE" not in off.env
    )
    assert (
        specs.tool_env(tools(), "/lab/user/a%40b")["TENSORBOARD_PROXY_URL"]
        == "/lab/user/a%40b/proxy/%PORT%/"
    )


def test_mounts_home_datasets_scratch_and_ssh_keys():
    datasets = validate_site(
        {
            "auth": {"admin_users": ["a"]},
            "profiles": [{"name": "b", "image": "i"}],
            "storage": {
                "datasets": [
                    {"name": "r", "source": "/data/r", "target": "/datasets/r"},
                    {"name": "w", "source": "vol", "target": "/datasets/w", "mode": "rw"},
                ]
            },
        }
    )["storage"]["datasets"]
    s = build(
        storage=storage(
            home="/data/home/{username}",
            datasets=tuple(datasets),
            scratch="/scratch/{uid}",
            scratch_target="/scratch",
        ),
        ssh=ssh(enabled=True, host_port=22007),
    )
    by_target = {m.target: m for m in s.mounts}
    assert by_target["/home/alice_b_lab"] == specs.MountSpec(
        "/home/alice_b_lab", "/data/home/alice-2eb-40lab", "bind", owner="user"
    )
    assert by_target["/datasets/r"].read_only and by_target["/datasets/r"].kind == "bind"
    assert not by_target["/datasets/w"].read_only and by_target["/datasets/w"].kind == "volume"
    assert by_target["/scratch"].source == "/scratch/20007"
    keys = by_target[contract.SSH_HOST_KEY_DIR]
    assert (
        keys.source == "lab-sshhost-alice-2eb-40lab"
        and keys.kind == "volume"
        and ("gpulab.ssh-host-keys", "alice.b@lab") in keys.labels
    )
    assert specs.host_dirs(s) == [
        ("/data/home/alice-2eb-40lab", "user"),
        ("/scratch/20007", "user"),
    ]
    on_shared = build(
        storage=storage(home="/srv/home/{username}"),
        ssh=ssh(enabled=True, host_key_volume="/srv/ssh-host/{username}"),
    )
    assert specs.host_dirs(on_shared) == [
        ("/srv/home/alice-2eb-40lab", "user"),
        ("/srv/ssh-host/alice-2eb-40lab", "root"),
    ]
    assert s.ports == (specs.PortSpec(22, "127.0.0.1", 22007),)
    assert s.env["GPULAB_SSH"] == "1" and s.env["GPULAB_SSH_PASSWORD_LOGIN"] == "0"


def test_default_home_is_a_labelled_volume_and_no_ssh_means_no_port():
    s = build()
    home, *tmpfs = s.mounts
    assert [(m.target, m.kind, m.mode) for m in tmpfs] == [
        ("/run/gpulab", "tmpfs", 0o755),
        ("/var/log", "tmpfs", 0o755),
        ("/etc/sudoers.d", "tmpfs", 0o755),  # no SSH: no sshd settings
    ]
    assert home.kind == "volume" and home.source == "lab-home-alice-2eb-40lab"
    assert dict(home.labels) == {"gpulab.deployment": "lab", "gpulab.user": "alice.b@lab"}
    assert s.ports == () and "GPULAB_SSH" not in s.env


def test_precedence_configured_traits_win_over_the_profile():
    assert specs.resolve_limits(PROFILE, {}) == specs.Limits(
        "localhost/gpulab/pytorch:latest", 16 << 30, 4.0, 2 << 30
    )
    over = specs.resolve_limits(PROFILE, {"mem_limit": 8 << 30, "cpu_limit": None})
    assert (over.mem_limit, over.cpu_limit, over.image) == (
        8 << 30,
        None,
        "localhost/gpulab/pytorch:latest",
    )


def test_what_runs_as_root_at_start_comes_from_the_hub_read_only():
    s = build(storage=storage(boot="/srv/state/boot/abc"))
    by_target = {m.target: m for m in s.mounts}
    start, hooks = by_target["/usr/local/bin/gpulab-start"], by_target["/etc/gpulab/hooks"]
    assert (start.source, start.kind, start.read_only) == (
        "/srv/state/boot/abc/gpulab-start",
        "bind",
        True,
    )
    assert (hooks.source, hooks.kind, hooks.read_only) == (
        "/srv/state/boot/abc/hooks",
        "bind",
        True,
    )
    assert dict(s.sysctls) == {"net.ipv4.ip_unprivileged_port_start": "1024"}
