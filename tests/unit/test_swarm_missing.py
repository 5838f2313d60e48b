"""A GPU server without the lab's shared storage: its GPUs are passed over until a check finds
the storage there again (gpulab.backends.swarm.missing, and the inventory that uses it)."""

import asyncio

from gpulab.backends.swarm import render
from gpulab.backends.swarm.inventory import SwarmInventory
from gpulab.backends.swarm.missing import MissingStorage, check_job, explain, missing_path
from gpulab.core.job import JobResult
from gpulab.core.spec import Hardening

REJECTED = {
    "Status": {
        "State": "rejected",
        "Err": 'invalid mount config for type "bind": bind source path does not exist: /srv/gpulab/home/bob',
    }
}


def node(name, gpus):
    return {
        "ID": f"id-{name}",
        "Description": {
            "Hostname": name,
            "Resources": {
                "GenericResources": [
                    {"NamedResourceSpec": {"Kind": "gpu", "Value": g}} for g in gpus
                ]
            },
        },
        "Spec": {
            "Role": "worker",
            "Availability": "active",
            "Labels": {"gpulab.gpu-isolation": "swarm-resource"},
        },
        "Status": {"State": "ready"},
    }


def test_a_task_rejected_for_a_missing_bind_names_the_path():
    assert missing_path(REJECTED) == "/srv/gpulab/home/bob"
    assert missing_path({"Status": {"State": "rejected", "Err": "no suitable node"}}) == ""
    assert missing_path({}) == ""
    assert "shared storage" in explain("w2", "/srv/gpulab/home/bob")
    assert explain("w2", "/data/imagenet", passed_over=False) == (
        "w2 does not have /data/imagenet, which every GPU server must have"
    )


def test_a_node_passed_over_is_checked_again_at_intervals_and_forgotten_when_found():
    m = MissingStorage(recheck_every=30)
    m.lacks("w2", now=100)
    m.lacks("w2", now=101)
    assert m.lacking() == {"w2"} and "shared storage" in m.why("w2")
    assert "/" not in m.why("w2"), "no user's path in what others are told"
    assert m.due(now=120) == []
    assert m.due(now=131) == ["w2"]
    assert m.due(now=200) == [], "one check at a time"
    m.checked("w2", False, now=200)
    assert m.lacking() == {"w2"} and m.due(now=215) == []
    assert m.due(now=231) == ["w2"]
    m.checked("w2", True)
    assert m.lacking() == set() and m.why("w2") == ""
    m.lacks("w3", now=0)
    m.forget_all_but({"w1", "w2"})
    assert m.lacking() == set(), "a node that left the Swarm is not checked"


def test_the_check_is_a_job_on_that_node_that_only_mounts_the_hubs_boot_folder():
    job = check_job(
        deployment="lab",
        node="w2",
        shared_path="/srv/gpulab/lab-boot/abc",
        image="reg:5000/gpulab/base@sha256:" + "a" * 64,
        hardening=Hardening(4096, "10m", 3),
    )
    kw = render.job_service_arguments(job, "id-w2")
    spec = kw["task_template"]["ContainerSpec"]
    assert spec["User"] == "65534:65534" and spec["Command"] == ["true"]
    (mount,) = spec["Mounts"]
    assert mount["Source"] == "/srv/gpulab/lab-boot/abc" and mount["ReadOnly"] is True
    assert kw["task_template"]["Placement"]["Constraints"] == ["node.id==id-w2"]


async def test_the_inventory_passes_over_a_node_until_its_check_passes():
    checks = []

    async def recheck(node):
        checks.append(node)
        return JobResult(status=0 if len(checks) > 1 else "task rejected", output="")

    class Manager:
        def nodes(self):
            return [node("w1", ["GPU-a", "GPU-b"]), node("w2", ["GPU-c"])]

    inv = SwarmInventory("lab", Manager, recheck=recheck)
    inv.missing.recheck_every = 0.05
    assert {g.uuid for g in await inv.inventory()} == {"GPU-a", "GPU-b", "GPU-c"}
    inv.pass_over("w2")
    assert {g.uuid for g in await inv.inventory()} == {"GPU-a", "GPU-b"}
    assert "w2" in inv.servers, "still a server: asking for it by name is refused with the reason"
    for _ in range(100):  # checked on its own, without anyone reading the inventory
        if not inv.missing.lacking():
            break
        await asyncio.sleep(0.05)
    assert checks == ["w2", "w2"] and inv.missing.lacking() == set()
    assert {g.uuid for g in await inv.inventory()} == {"GPU-a", "GPU-b", "GPU-c"}
