"""Jobs (backups, archives, save jobs) as pure values, rendered by both backends with the same
hardening as a user's server (as the spec is tested, without Docker)."""

import docker
import pytest

from gpulab.backends import container
from gpulab.backends.docker import render as docker_render
from gpulab.backends.swarm import render as swarm_render
from gpulab.core import spec as specs
from gpulab.core.job import JobError, build_job

from .test_spec import HARDENING, build

HOME = specs.MountSpec(target="/data", source="lab-home-alice", kind="volume", read_only=True)
OUT = specs.MountSpec(target="/archive", source="/srv/archive", kind="bind")


def job(**kw):
    args = dict(
        deployment="lab",
        name="lab-archive-alice-1",
        kind="archive",
        username="alice",
        image="localhost/gpulab/base:latest",
        command=["tar", "-C", "/data", "-czf", "/archive/a.tar.gz", "."],
        mounts=[HOME, OUT],
        capabilities=("DAC_READ_SEARCH",),
        hardening=HARDENING,
        timeout=60,
    )
    args.update(kw)
    return build_job(**args)


def host_config(host):
    return docker.APIClient(version="1.41").create_host_config(**host)


def test_a_job_is_frozen_labelled_and_refuses_what_it_cannot_be():
    j = job()
    assert dict(j.labels) == {
        "gpulab.deployment": "lab",
        "gpulab.job": "archive",
        "gpulab.user": "alice",
    }
    assert j.network == "none" and j.user == "0" and j.command[0] == "tar"
    with pytest.raises(TypeError):
        j.labels["gpulab.job"] = "x"
    with pytest.raises(ValueError, match="network must be"):
        job(network="host")
    with pytest.raises(ValueError, match="timeout must be positive"):
        job(timeout=0)
    with pytest.raises(TypeError, match="mounts must be MountSpec"):
        job(mounts=[{"target": "/x"}])


def test_one_host_renders_a_job_held_like_a_server():
    create, host = container.job_arguments(job())
    hc = host_config(host)
    assert (
        create["entrypoint"] == [] and create["user"] == "0" and create["network_disabled"] is True
    )
    assert create["labels"]["gpulab.job"] == "archive" and create["name"] == "lab-archive-alice-1"
    assert hc["NetworkMode"] == "none" and not hc.get("AutoRemove")
    assert (
        hc["CapDrop"] == ["ALL"]
        and hc["CapAdd"] == ["DAC_READ_SEARCH"]
        and hc["SecurityOpt"] == ["no-new-privileges:true"]
    )
    assert hc["PidsLimit"] == HARDENING.pids_limit and hc["LogConfig"]["Config"] == {
        "max-size": str(HARDENING.log_max_size),
        "max-file": "3",
    }
    assert hc["Memory"] == 1024**3 and hc["CpuQuota"] == 100_000
    assert [(m["Target"], m["Type"], m["ReadOnly"]) for m in hc["Mounts"]] == [
        ("/data", "volume", True),
        ("/archive", "bind", False),
    ]
    # the same hardening as a user's server rendered from the same settings
    _, server = docker_render.create_arguments(build(), port=8888)
    shc = host_config(server)
    for key in ("CapDrop", "SecurityOpt", "PidsLimit", "LogConfig"):
        assert hc[key] == shc[key], key


def test_a_swarm_renders_a_job_on_its_node_held_like_a_server():
    j = job(
        kind="save",
        network="bridge",
        node="w1",
        mounts=[specs.MountSpec("/var/run/docker.sock", "/var/run/docker.sock", "bind")],
    )
    kw = swarm_render.job_service_arguments(j, "node-id-1")
    task = kw["task_template"]
    cs = task["ContainerSpec"]
    assert kw["mode"]["ReplicatedJob"] is not None and task["RestartPolicy"]["Condition"] == "none"
    assert task["Placement"]["Constraints"] == ["node.id==node-id-1"]
    assert (
        cs["CapabilityDrop"] == ["ALL"]
        and cs["CapabilityAdd"] == ["DAC_READ_SEARCH"]
        and cs["Privileges"]["NoNewPrivileges"] is True
    )
    assert (
        task["Resources"]["Limits"]["Pids"] == HARDENING.pids_limit
        and task["Resources"]["Limits"]["MemoryBytes"] == 1024**3
    )
    assert task["LogDriver"]["Options"] == {
        "max-size": str(HARDENING.log_max_size),
        "max-file": "3",
    }
    assert (
        cs["Labels"]["gpulab.job"] == "save"
        and kw["labels"]["gpulab.user"] == "alice"
        and cs["User"] == "0"
    )
    server = swarm_render.service_arguments(build(gpus=specs.GPUGrant.counted(1)))["task_template"]
    # a server task starts as a container does: gpulab's start script as root under Docker's init
    started = server["ContainerSpec"]
    assert started["Command"] == ["/usr/local/bin/gpulab-start"] and started["Args"] == [
        "--port=8888"
    ]
    assert started["Init"] is True and started["User"] == "0"
    assert (
        server["ContainerSpec"]["CapabilityDrop"] == cs["CapabilityDrop"]
        and server["LogDriver"] == task["LogDriver"]
    )
    assert (
        server["ContainerSpec"]["Privileges"] == cs["Privileges"]
        and server["Resources"]["Limits"]["Pids"] == task["Resources"]["Limits"]["Pids"]
    )


def test_a_swarm_job_for_every_node_is_a_global_job_and_may_use_an_overlay():
    from gpulab.core.job import EVERY_NODE

    kw = swarm_render.job_service_arguments(job(node=EVERY_NODE, network="lab-overlay"), None)
    task = kw["task_template"]
    assert kw["mode"]["GlobalJob"] == {} and task["Placement"].get("Constraints") in (None, [])
    assert [n["Target"] for n in task["Networks"]] == ["lab-overlay"]
    with pytest.raises(ValueError, match="not the host's"):
        job(network="host")


def test_a_swarm_job_reads_its_secrets_as_its_own_user_only():
    j = job(node="w1", network="bridge", secrets=("lab-registry-abc",))
    kw = swarm_render.job_service_arguments(j, "n1", {"lab-registry-abc": "sid"})
    (ref,) = kw["task_template"]["ContainerSpec"]["Secrets"]
    assert ref["SecretID"] == "sid" and ref["File"]["Name"] == "lab-registry-abc"
    assert ref["File"]["Mode"] == 0o400 and ref["File"]["UID"] == j.user.split(":")[0]
    with pytest.raises(ValueError, match="no Swarm secret"):
        swarm_render.job_service_arguments(j, "n1", {})


def test_a_swarm_job_on_a_node_must_ask_for_the_nodes_network():
    # Swarm offers tasks no "none" network (moby/moby#42204): refused, not silently networked
    with pytest.raises(ValueError, match="node's bridge"):
        swarm_render.job_service_arguments(job(node="w1"), "node-id-1")


async def test_a_swarm_job_that_cannot_be_placed_is_a_clear_error():
    from gpulab.backends.swarm import jobs

    with pytest.raises(JobError, match="node's bridge"):
        await jobs.run_job(object(), job(node="w1"))


def test_the_gpu_grant_is_one_value():
    assert specs.GPUGrant().size == 0 and not specs.GPUGrant()
    assert specs.GPUGrant.devices(["a", "b"]).size == 2 and specs.GPUGrant.counted(3).size == 3
    with pytest.raises(ValueError, match="not both"):
        specs.GPUGrant(uuids=("a",), count=1)


def test_a_swarm_server_is_reached_at_its_tasks_own_address():
    from gpulab.backends.swarm.spawner import task_address

    task = {
        "NetworksAttachments": [
            {"Network": {"Spec": {"Name": "ingress"}}, "Addresses": ["10.0.0.9/24"]},
            {"Network": {"Spec": {"Name": "lab-u-bob"}}, "Addresses": ["10.0.3.7/24"]},
        ]
    }
    assert task_address(task, "lab-u-bob") == "10.0.3.7"
    assert task_address(task, "other") == "" and task_address(None, "lab-u-bob") == ""


def test_a_swarm_job_on_a_node_that_died_ends_saying_so():
    from gpulab.backends.swarm.jobs import lost_node

    nodes = [
        {"ID": "a", "Description": {"Hostname": "w1"}, "Status": {"State": "ready"}},
        {"ID": "b", "Description": {"Hostname": "w2"}, "Status": {"State": "down"}},
    ]
    assert lost_node(nodes, {"a"}) == ""
    assert lost_node(nodes, {"a", "b"}) == "node w2 is down"
    assert lost_node(nodes, {"c0ffee0123456789"}) == "node c0ffee012345 left the Swarm"


async def test_a_swarm_job_stops_waiting_for_a_task_whose_node_is_down(monkeypatch):
    """A dead node's task stays 'running' in the manager's view: the wait ends on the node's
    state, not at the job's timeout."""
    from gpulab.backends.swarm import jobs

    monkeypatch.setattr(jobs, "NODE_CHECK_EVERY", 0.0)

    class Manager:  # the two calls _wait makes, answered as a manager answers them
        def tasks(self, filters):
            return [{"NodeID": "b", "Status": {"State": "running"}}]

        def nodes(self):
            return [{"ID": "b", "Description": {"Hostname": "w2"}, "Status": {"State": "down"}}]

    tasks, lost = await jobs._wait(Manager(), "sid", timeout=30, poll=0.01, expected=1)
    assert lost == "node w2 is down" and tasks[0]["NodeID"] == "b"


async def test_a_swarm_job_on_every_node_ends_with_the_live_nodes_answers_when_one_dies(
    monkeypatch,
):
    from gpulab.backends.swarm import jobs

    monkeypatch.setattr(jobs, "NODE_CHECK_EVERY", 0.0)
    done = {"NodeID": "a", "Status": {"State": "complete", "ContainerStatus": {"ExitCode": 0}}}

    class Manager:
        def tasks(self, filters):
            return [done, {"NodeID": "b", "Status": {"State": "running"}}]

        def nodes(self):
            return [
                {"ID": "a", "Description": {"Hostname": "w1"}, "Status": {"State": "ready"}},
                {"ID": "b", "Description": {"Hostname": "w2"}, "Status": {"State": "down"}},
            ]

    tasks, lost = await jobs._wait(
        Manager(), "sid", timeout=30, poll=0.01, expected=2, one_node=False
    )
    assert tasks == [done] and lost == "node w2 is down"
    unknown = [{"ID": "b", "Description": {"Hostname": "w2"}, "Status": {"State": "unknown"}}]
    assert jobs.lost_node(unknown, {"b"}) == "", "a new leader's 'unknown' is not a dead node"
