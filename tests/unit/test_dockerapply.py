"""Applying a spec: docker-py's create arguments, as DockerSpawner builds them plus the spec."""

import docker

from gpulab.backends.docker import render as dockerapply
from gpulab.core import spec as specs

from .test_spec import build, ssh


def host_config(host):
    return docker.APIClient(version="1.41").create_host_config(**host)


def test_create_arguments_carry_the_whole_spec():
    s = build(
        gpus=specs.GPUGrant.devices(("GPU-a",)),
        ssh=ssh(enabled=True, host_port=22007),
        network="lab",
    )
    create, host = dockerapply.create_arguments(s, port=8888)
    assert (
        create["image"] == s.image
        and create["name"] == s.name
        and create["command"] == list(s.command)
    )
    assert (
        create["environment"]["NVIDIA_VISIBLE_DEVICES"] == "GPU-a"
        and create["labels"]["gpulab.gpus"] == "GPU-a"
    )
    assert (
        create["ports"] == {"8888/tcp": None, "22/tcp": None}
        and create["working_dir"] == "/home/alice_b_lab"
    )
    assert create["entrypoint"] == ["/usr/local/bin/gpulab-start"] and create["user"] == "0"
    hc = host_config(host)
    assert hc["Init"] is True  # Docker's init is process 1, gpulab's start its child
    assert (
        hc["Memory"] == 16 << 30
        and hc["CpuQuota"] == 400_000
        and hc["CpuPeriod"] == 100_000
        and hc["ShmSize"] == 2 << 30
    )
    assert hc["DeviceRequests"] == [
        {
            "Driver": "nvidia",
            "Count": 0,
            "DeviceIDs": ["GPU-a"],
            "Capabilities": [["gpu"]],
            "Options": {},
        }
    ]
    assert hc["PortBindings"] == {"22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "22007"}]}
    # the engine never removes a server on its own (the spawner does when it stops: moby#46308)
    assert hc["NetworkMode"] == "lab" and not hc.get("AutoRemove")
    assert [m["Target"] for m in hc["Mounts"]] == [
        "/home/alice_b_lab",
        "/run/gpulab",
        "/var/log",
        "/etc/sudoers.d",
        "/etc/ssh/sshd_config.d",
        "/etc/gpulab/ssh-host",
    ]
    # what the start writes into /etc is on tmpfs only the container's root may write to
    tmpfs = [m for m in hc["Mounts"] if m["Type"] == "tmpfs"]
    assert tmpfs and all(m["TmpfsOptions"]["Mode"] == 0o755 for m in tmpfs), tmpfs
    assert hc["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "1024"}


def test_without_profiles_nothing_of_the_images_own_start_is_replaced():
    create, host = dockerapply.create_arguments(
        build(plain=True, command=["jupyterhub-singleuser"]), port=8888
    )
    assert "entrypoint" not in create and "user" not in create
    assert create["working_dir"] is None and create["command"] == ["jupyterhub-singleuser"]
    assert "Init" not in host_config(host)


def test_no_gpu_no_device_request():
    _, host = dockerapply.create_arguments(build(), port=8888)
    assert "DeviceRequests" not in host_config(host)


def test_admin_extras_merge_last_as_in_dockerspawner():
    _, host = dockerapply.create_arguments(
        build(),
        port=8888,
        extra_host={"shm_size": 1 << 20, "cpu_period": 50_000},
        extra_create={"labels": {"team": "vision"}},
    )
    hc = host_config(host)
    assert hc["ShmSize"] == 1 << 20 and hc["CpuPeriod"] == 50_000 and hc["CpuQuota"] == 200_000
    create, _ = dockerapply.create_arguments(
        build(), port=8888, extra_create={"labels": {"team": "vision"}}
    )
    assert create["labels"]["team"] == "vision" and create["labels"]["gpulab.user"] == "alice.b@lab"


def test_published_notebook_port_only_without_internal_ip():
    _, host = dockerapply.create_arguments(
        build(), port=8888, use_internal_ip=False, host_ip="127.0.0.1"
    )
    assert host_config(host)["PortBindings"] == {
        "8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]
    }
