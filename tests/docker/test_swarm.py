"""One hub for a lab of GPU servers, for real: a Docker Swarm of three machines on this one.

The manager (drained: it runs the hub) and two GPU servers, ``w1`` with two GPUs and ``w2`` with
one, advertised as Swarm generic resources; a TLS registry (test CA) the nodes pull from; one
directory mounted at the same path on every node (the lab's NFS export). The hub runs as
``gpulab up`` runs it in swarm mode: a container on the manager, from the hub image in the registry.
"""

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
import requests

from harness.hub import free_port
from harness.registry import Registry
from harness.swarm import SwarmCluster, SwarmHub, build_node_image
from harness.tlsca import TestCA

GPULAB = os.path.join(os.path.dirname(sys.executable), "gpulab")


@pytest.fixture(scope="module")
def lab(docker_client, tmp_path_factory):
    build_node_image(docker_client)
    prefix = f"glsw{os.getpid() % 100000}"
    shared = str(tmp_path_factory.mktemp("shared"))
    cluster = SwarmCluster(docker_client, prefix, {"w1": 2, "w2": 1}, shared)
    ca = TestCA()
    registry = certs = None
    hub = None
    try:
        gateway = cluster.create_network()
        port = free_port()
        registry = Registry(host=gateway, port=port, tls=ca.issue("registry", ips=[gateway])).start()
        certs = f"/etc/docker/certs.d/{registry.address}"  # this machine's engine trusts the test CA for it
        os.makedirs(certs, exist_ok=True)
        shutil.copy(ca.cert, os.path.join(certs, "ca.crt"))
        push = subprocess.run([GPULAB, "images", "push", "--registry", registry.address, "base", "hub"], capture_output=True, text=True, timeout=600)
        assert push.returncode == 0, push.stdout + push.stderr
        cluster.start(registry.address, ca.cert)
        hub = SwarmHub(cluster, registry.address, name=f"{prefix}h").start()
        yield {"cluster": cluster, "hub": hub, "registry": registry}
    finally:
        if hub is not None:
            print(f"\n[gpulab] swarm hub log tail:\n{hub.log_tail(40)}")
            hub.cleanup()
        cluster.remove()
        if registry is not None:
            registry.stop()
        if certs:
            shutil.rmtree(certs, ignore_errors=True)


def env_of(container, name):
    """A variable as the user's shells see it (a login shell: the same as the server's)."""
    r = container.exec_run(["bash", "-lc", f"printenv {name}"])
    return r.output.decode().strip() if r.exit_code == 0 else None


def test_spawns_land_where_gpus_are_free_and_see_only_their_own(lab):
    hub = lab["hub"]
    for name in ("alice", "bob"):
        hub.create_user(name)
    status, events = hub.spawn_following_progress("alice", {"profile": "gpu", "gpus": 1}, timeout=300)
    assert status in (201, 202) and events[-1].get("ready"), events
    messages = [e.get("message", "") for e in events]
    assert any("on glsw" in m and "w2" in m for m in messages), messages  # the progress names the node
    node_a, c_a = hub.container_of("alice")
    assert node_a == "w2", "one GPU from the node that has one: w1 keeps its pair free"
    assert env_of(c_a, "DOCKER_RESOURCE_GPU") == "GPU-w2-0" == env_of(c_a, "NVIDIA_VISIBLE_DEVICES")
    hub.spawn("bob", {"profile": "gpu", "gpus": 2}, timeout=300)
    node_b, c_b = hub.container_of("bob")
    assert node_b == "w1" and sorted(env_of(c_b, "DOCKER_RESOURCE_GPU").split(",")) == ["GPU-w1-0", "GPU-w1-1"]
    r = requests.get(hub.user_url("bob", "api/status"), headers={"Authorization": f"token {hub.token}"}, timeout=30)
    assert r.status_code == 200, r.text
    gpus = hub.api("GET", "/gpulab/gpus").json()
    held = {g["uuid"]: [h["user"] for h in g["holders"]] for g in gpus["gpus"]}
    assert held == {"GPU-w1-0": ["bob"], "GPU-w1-1": ["bob"], "GPU-w2-0": ["alice"]}, gpus
    assert {g["uuid"]: g["node"] for g in gpus["gpus"]} == {"GPU-w1-0": f"{lab['cluster'].prefix}-w1", "GPU-w1-1": f"{lab['cluster'].prefix}-w1", "GPU-w2-0": f"{lab['cluster'].prefix}-w2"}
