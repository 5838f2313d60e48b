"""One hub for a lab of GPU servers, for real: a Docker Swarm of three machines on this one.

The manager (drained: it runs the hub) and two GPU servers, ``w1`` with two GPUs and ``w2`` with
one, advertised as Swarm generic resources; a TLS registry (test CA) the nodes pull from; one
directory mounted at the same path on every node (the lab's NFS export). The hub runs as
``gpulab up`` runs it in swarm mode: a container on the manager, from the hub image in the registry.
"""

import os
import re
import subprocess
import sys
import threading
import time

import pytest
import requests

from harness.images import MPI, build_mpi
from harness.swarm import REGISTRY_PASSWORD_ENV, REGISTRY_USER, SwarmLab

GPULAB = os.path.join(os.path.dirname(sys.executable), "gpulab")


#: a lab's own image with Debian's Open MPI and mpi4py, for multi-node jobs
MPI_PROFILE = {"name": "mpi", "image": MPI, "gpus": 1, "max_gpus": 2, "mem_limit": "1G"}


@pytest.fixture(scope="module")
def lab(docker_client, tmp_path_factory):
    build_mpi()
    # the hub checks every server every 5 s (default 30 s): a dead node is noticed quickly
    with SwarmLab(
        docker_client,
        f"glsw{os.getpid() % 100000}",
        str(tmp_path_factory.mktemp("shared")),
        extra_config="c.Spawner.poll_interval = 5\n",
        extra_images=[MPI],
        extra_profiles=[MPI_PROFILE],
    ) as swarm:
        try:
            yield {
                "cluster": swarm.cluster,
                "hub": swarm.hub,
                "registry": swarm.registry,
                "ca": swarm.ca_cert,
                "pushed": swarm.pushed,
            }
        finally:
            print(f"\n[gpulab] swarm hub log tail:\n{swarm.hub.log_tail(40)}")


def exec_in(container, command, **kw):
    """``exec_run``, asked again (up to 3 times) when the node's runc could not set the exec up
    ("OCI runtime exec failed: ... read init-p: connection reset by peer"): a node of the test
    Swarm under load, just after the container started, not the container's own answer."""
    for attempt in range(3):
        r = container.exec_run(command, **kw)
        if not (r.exit_code != 0 and r.output.startswith(b"OCI runtime exec failed")):
            return r
        time.sleep(1 + attempt)
    return r


def env_of(container, name):
    """A variable as the user's shells see it (a login shell: the same as the server's)."""
    r = exec_in(container, ["bash", "-lc", f"printenv {name}"])
    return r.output.decode().strip() if r.exit_code == 0 else None


def test_spawns_land_where_gpus_are_free_and_see_only_their_own(lab):
    hub = lab["hub"]
    for name in ("alice", "bob"):
        hub.create_user(name)
    status, events = hub.spawn_following_progress(
        "alice", {"profile": "gpu", "gpus": 1}, timeout=300
    )
    assert status in (201, 202) and events[-1].get("ready"), events
    messages = [e.get("message", "") for e in events]
    assert any("on glsw" in m and "w2" in m for m in messages), (
        messages
    )  # the progress names the node
    node_a, c_a = hub.container_of("alice")
    assert node_a == "w2", "one GPU from the node that has one: w1 keeps its pair free"
    assert env_of(c_a, "DOCKER_RESOURCE_GPU") == "GPU-w2-0" == env_of(c_a, "NVIDIA_VISIBLE_DEVICES")
    hub.spawn("bob", {"profile": "gpu", "gpus": 2}, timeout=300)
    node_b, c_b = hub.container_of("bob")
    assert node_b == "w1" and sorted(env_of(c_b, "DOCKER_RESOURCE_GPU").split(",")) == [
        "GPU-w1-0",
        "GPU-w1-1",
    ]
    r = requests.get(
        hub.user_url("bob", "api/status"),
        headers={"Authorization": f"token {hub.token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    gpus = hub.api("GET", "/gpulab/gpus").json()
    held = {g["uuid"]: [h["user"] for h in g["holders"]] for g in gpus["gpus"]}
    assert held == {"GPU-w1-0": ["bob"], "GPU-w1-1": ["bob"], "GPU-w2-0": ["alice"]}, gpus
    prefix = lab["cluster"].prefix
    assert {g["uuid"]: g["node"] for g in gpus["gpus"]} == {
        "GPU-w1-0": f"{prefix}-w1",
        "GPU-w1-1": f"{prefix}-w1",
        "GPU-w2-0": f"{prefix}-w2",
    }


def gpulab_check(lab):
    env = dict(os.environ, DOCKER_HOST=f"unix://{lab['cluster'].socket('mgr')}")
    return subprocess.run(
        [GPULAB, "--site", os.path.join(lab["hub"].conf_dir, "gpulab.yaml"), "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_gpulab_check_verifies_every_node(lab):
    prefix = lab["cluster"].prefix
    r = gpulab_check(lab)
    for name in ("mgr", "w1", "w2"):
        assert re.search(rf"ok +node {prefix}-{name}: ready, engine 26\.", r.stdout), r.stdout
    assert "Swarm nodes all good" in r.stdout and r.returncode == 0, r.stdout + r.stderr


def test_a_request_larger_than_any_node_is_a_400(lab):
    hub = lab["hub"]
    hub.create_user("erin")
    r = hub.api("POST", "/users/erin/server", json={"profile": "big", "gpus": 3})
    assert r.status_code == 400 and "no GPU server has more than 2 GPU(s)" in r.json()["message"], (
        r.text
    )
    r = hub.api("POST", "/users/erin/server", json={"profile": "gpu", "gpus": 1, "node": "nowhere"})
    assert r.status_code == 400 and "not a GPU server of this lab" in r.json()["message"], r.text
    assert hub.services("erin") == [] and not hub.api("GET", "/users/erin").json()["servers"]


def test_when_every_gpu_is_held_the_next_waits_in_line(lab):
    """alice (w2) and bob (w1, two GPUs) hold all three: carol waits, then gets alice's GPU."""
    hub = lab["hub"]
    hub.create_user("carol")
    result = {}
    follower = threading.Thread(
        target=lambda: result.update(
            zip(
                ("status", "events"),
                hub.spawn_following_progress("carol", {"profile": "gpu"}, timeout=300),
                strict=True,
            )
        )
    )
    follower.start()
    deadline = time.monotonic() + 30
    while not hub.api("GET", "/gpulab/gpus").json()["queue"]:
        assert time.monotonic() < deadline, "carol never queued"
        time.sleep(0.5)
    assert hub.services("carol") == [], "nothing is created while waiting"
    hub.stop_server("alice")
    follower.join(300)
    waiting = [e["message"] for e in result["events"] if "in the queue" in e.get("message", "")]
    assert waiting and "position 1 in the queue" in waiting[0], result["events"]
    assert result["events"][-1].get("ready"), result["events"]
    node, c = hub.container_of("carol")
    assert node == "w2" and env_of(c, "DOCKER_RESOURCE_GPU") == "GPU-w2-0"


def test_a_server_without_gpus_sees_none(lab):
    hub = lab["hub"]
    hub.create_user("dave")
    hub.spawn("dave", {"profile": "cpu"}, timeout=300)
    node, c = hub.container_of("dave")
    assert node in ("w1", "w2"), "user servers stay off the manager (cluster.constraints)"
    assert (
        env_of(c, "NVIDIA_VISIBLE_DEVICES") == "void" and env_of(c, "DOCKER_RESOURCE_GPU") is None
    )
    hub.stop_server("dave")


def test_users_cannot_reach_each_other_across_the_lab(lab):
    hub = lab["hub"]
    _, c = hub.container_of("carol")
    code = c.exec_run(
        [
            "python3",
            "-c",
            "import socket; socket.create_connection((__import__('sys').argv[1], 8888), timeout=3)",
            f"{hub.name}-bob",
        ]
    ).exit_code
    assert code != 0, "carol's server reached bob's (they are on different overlay networks)"
    assert (
        c.exec_run(
            [
                "python3",
                "-c",
                f"import socket; socket.create_connection(('{hub.name}-hub', 8081), timeout=3)",
            ]
        ).exit_code
        == 0
    )


def test_tensorboard_and_ssh_through_the_hub_reach_a_worker(lab, tmp_path):
    from harness.ssh import SSH, keygen
    from harness.tensorboard import RUN, WRITE_EVENTS

    hub = lab["hub"]
    node, c = hub.container_of("bob")
    uid = c.labels.get("gpulab.uid") or c.attrs["Config"]["Labels"]["gpulab.uid"]
    assert (
        c.exec_run(
            ["python", "-c", WRITE_EVENTS], user=uid, environment={"HOME": "/home/bob"}
        ).exit_code
        == 0
    )
    token = hub.user_token("bob")
    deadline = time.monotonic() + 90
    while True:
        r = requests.get(
            hub.user_url("bob", "tensorboard/data/runs"),
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        if r.status_code == 200 and RUN in r.text:
            break
        assert time.monotonic() < deadline, (r.status_code, r.text[:300])
        time.sleep(2)
    key = tmp_path / "k"
    r = requests.post(
        hub.url + "/hub/api/gpulab/ssh/keys",
        json={"key": keygen(key)},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    token_file = tmp_path / "token"
    token_file.write_text(token)
    r = SSH(str(tmp_path), key).run(
        SSH.via_hub(hub.url, "bob", token_file, 1),
        "bob",
        "hostname && cat /proc/1/cgroup | head -1 && echo $NVIDIA_VISIBLE_DEVICES",
    )
    assert r.returncode == 0 and (
        "GPU-w1-0,GPU-w1-1" in r.stdout or "GPU-w1-1,GPU-w1-0" in r.stdout
    ), (r.stdout, r.stderr)


def test_home_follows_the_user_to_another_node(lab):
    hub = lab["hub"]
    node, c = hub.container_of("carol")
    uid = c.attrs["Config"]["Labels"]["gpulab.uid"]
    assert (
        c.exec_run(["bash", "-c", f"echo written-on-{node} > ~/where.txt"], user=uid).exit_code == 0
    )
    hub.stop_server("carol")
    other = f"{lab['cluster'].prefix}-w1" if node == "w2" else f"{lab['cluster'].prefix}-w2"
    hub.spawn("carol", {"profile": "cpu", "node": other}, timeout=300)
    node2, c2 = hub.container_of("carol")
    assert node2 != node, "the user chose the other GPU server"
    r = c2.exec_run(["cat", "/home/carol/where.txt"], user=uid)
    assert r.output.decode().strip() == f"written-on-{node}"
    hub.stop_server("carol")


def test_a_save_made_on_one_node_starts_on_the_other(lab):
    """Saved environments on a Swarm: committed where the server runs, pushed to the registry."""
    hub, prefix = lab["hub"], lab["cluster"].prefix
    hub.create_user("sven")
    auth = {"Authorization": f"token {hub.user_token('sven')}"}
    hub.spawn("sven", {"profile": "cpu", "node": f"{prefix}-w1"}, timeout=300)
    node, c = hub.container_of("sven")
    assert node == "w1"
    tool = "printf '#!/bin/sh\\necho saved on w1\\n' > /usr/local/bin/svtool && chmod 755 /usr/local/bin/svtool"
    assert c.exec_run(["sh", "-c", tool], user="0").exit_code == 0  # a change outside the home
    r = post_save(hub, "sven", auth, "on w1")
    assert r.status_code == 201, r.text
    save = r.json()
    assert (
        save["image"].startswith(f"{lab['registry'].address}/gpulab/saves/")
        and save["profile"] == "cpu"
        and save["bytes"] > 0
    )
    mgr = lab["cluster"].engine("mgr").api
    assert not [s for s in mgr.services() if s["Spec"].get("Labels", {}).get("gpulab.job")], (
        "the save job is gone"
    )
    assert [
        x["tag"]
        for x in requests.get(
            f"{hub.url}/hub/api/gpulab/users/sven/saves", headers=auth, timeout=30
        ).json()
    ] == [save["tag"]]
    hub.stop_server("sven")
    hub.spawn("sven", {"profile": "cpu", "save": save["tag"], "node": f"{prefix}-w2"}, timeout=300)
    node, c = hub.container_of("sven")
    assert (
        node == "w2" and c.exec_run(["svtool"]).output == b"saved on w1\n"
    )  # pulled from the registry
    hub.stop_server("sven")
    assert (
        requests.delete(
            f"{hub.url}/hub/api/gpulab/users/sven/saves/{save['tag']}", headers=auth, timeout=600
        ).status_code
        == 204
    )
    # deleted: the registry's tag is gone, and so is every node's copy of the image
    name, tag = save["image"].split("/", 1)[1].rsplit(":", 1)
    r = requests.head(
        f"https://{lab['registry'].address}/v2/{name}/manifests/{tag}",
        auth=(REGISTRY_USER, os.environ[REGISTRY_PASSWORD_ENV]),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        verify=lab["ca"],
        timeout=30,
    )
    assert r.status_code == 404, r.status_code
    for node in ("w1", "w2"):
        assert not [
            i for i in lab["cluster"].engine(node).images.list() if save["image"] in i.tags
        ], node
    assert (
        requests.get(f"{hub.url}/hub/api/gpulab/users/sven/saves", headers=auth, timeout=30).json()
        == []
    )


def test_a_hub_restart_keeps_every_holding(lab):
    hub = lab["hub"]
    before = {
        g["uuid"]: [h["user"] for h in g["holders"]]
        for g in hub.api("GET", "/gpulab/gpus").json()["gpus"]
    }
    assert any(before.values()), before
    hub.restart()
    after = {
        g["uuid"]: [h["user"] for h in g["holders"]]
        for g in hub.api("GET", "/gpulab/gpus").json()["gpus"]
    }
    assert after == before
    assert hub.wait_ready("bob")


# --- a hostile student on a Swarm -----------------------------------------------------------


def test_the_registry_asks_for_a_login_and_user_containers_cannot_reach_it(lab):
    hub, registry = lab["hub"], lab["registry"].address
    base = f"https://{registry}/v2"
    # without credentials: no catalog, no pull, no push
    assert requests.get(f"{base}/_catalog", verify=lab["ca"], timeout=30).status_code == 401
    r = requests.get(f"{base}/gpulab/hub/manifests/latest", verify=lab["ca"], timeout=30)
    assert r.status_code == 401
    r = requests.post(f"{base}/gpulab/hub/blobs/uploads/", verify=lab["ca"], timeout=30)
    assert r.status_code == 401, "an anonymous push is refused"
    # from a user's container on a GPU server: the registry, the lab's NFS and the manager's
    # Swarm port do not answer (whoever answers says so: a banner the test's listener sends)
    hub.create_user("eve")
    hub.spawn("eve", {"profile": "cpu"}, timeout=300)
    node, c = hub.container_of("eve")
    gateway = lab[
        "cluster"
    ].gateway  # this machine, on the lab's network: where the registry and "NFS" are
    with banner_listener(gateway) as port:
        assert reached_from_here(gateway, port) == "gpulab-test-banner", (
            "the listener answers this machine"
        )
        for host, p in (
            (gateway, port),
            (gateway, int(registry.rsplit(":", 1)[1])),
            (lab["cluster"].ip("mgr"), 2377),
        ):
            r = c.exec_run(["python3", "-c", PROBE, host, str(p)], user=c.labels["gpulab.uid"])
            assert r.output.decode().strip() == "unreachable", (host, p, r.output)
    # no port below 1024 (NFS "secure" trusts those), and setuid programs cannot gain root
    r = c.exec_run(
        ["python3", "-c", "import socket; socket.socket().bind(('0.0.0.0', 700))"],
        user=c.labels["gpulab.uid"],
    )
    assert r.exit_code != 0 and b"Permission denied" in r.output, r.output
    status = c.exec_run(
        ["grep", "NoNewPrivs", "/proc/self/status"], user=c.labels["gpulab.uid"]
    ).output.decode()
    assert status.split() == ["NoNewPrivs:", "1"], status
    hub.stop_server("eve")


def test_images_are_pushed_and_run_by_digest_not_by_a_mutable_tag(lab):
    hub, registry = lab["hub"], lab["registry"].address
    # `gpulab images push` tells the admin what the registry stored
    pushed = dict(p.split("@", 1) for p in lab["pushed"])
    assert set(pushed) == {f"{registry}/gpulab/base:latest", f"{registry}/gpulab/hub:latest"}
    assert all(d.startswith("sha256:") and len(d) == 71 for d in pushed.values()), pushed
    # and a server's service runs that exact content, whatever the tag points at later
    hub.create_user("pia")
    hub.spawn("pia", {"profile": "cpu"}, timeout=300)
    (service,) = hub.services("pia")
    image = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    name, digest = image.split("@")
    assert name.startswith(f"{registry}/gpulab/base"), image
    assert digest == pushed[f"{registry}/gpulab/base:latest"], (image, pushed)
    hub.stop_server("pia")


def test_a_gpu_task_falls_back_to_no_gpu_where_the_runtime_is_not_set_up(lab):
    hub = lab["hub"]
    hub.create_user("gus")
    hub.spawn("gus", {"profile": "gpu", "gpus": 1}, timeout=300)
    (service,) = hub.services("gus")
    env = dict(e.split("=", 1) for e in service["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"])
    # a node whose NVIDIA runtime reads DOCKER_RESOURCE_GPU gives the task its GPUs; one that does
    # not falls back to this, which gives none (not the image's "all")
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    node, c = hub.container_of("gus")
    assert env_of(c, "NVIDIA_VISIBLE_DEVICES") == env_of(c, "DOCKER_RESOURCE_GPU") != ""
    hub.stop_server("gus")


MPI_CHECK = r"""
import os, socket
from mpi4py import MPI
comm = MPI.COMM_WORLD
rank = comm.Get_rank()
total = comm.allreduce(rank + 1, op=MPI.SUM)
hosts = comm.gather(socket.gethostname(), root=0)
# a rendezvous at MASTER_ADDR:MASTER_PORT with WORLD_SIZE members, as torch.distributed's store
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
world = int(os.environ["WORLD_SIZE"])
if rank == 0:
    server = socket.create_server(("", port))
    comm.barrier()
    seen = {0}
    while len(seen) < world:
        conn, _ = server.accept()
        seen.add(int(conn.recv(16)))
        conn.close()
    print(f"allreduce={total} hosts={','.join(sorted(hosts))} rendezvous={len(seen)}/{world}")
else:
    comm.barrier()
    with socket.create_connection((addr, port), timeout=30) as s:
        s.sendall(str(rank).encode())
"""


def job_url(user, *rest):
    return "/".join([f"/gpulab/users/{user}/jobs", *map(str, rest)])


def wait_job(hub, token, job_id, states, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = hub.api("GET", job_url("alice", job_id), token=token).json()
        if job["state"] in states:
            return job
        time.sleep(1)
    log = hub.api("GET", job_url("alice", job_id, "log"), token=token).json()
    raise AssertionError(
        f"job {job_id} is {job['state']}, not {states}; its output:\n"
        + "\n".join(log["lines"][-60:])
        + f"\nthe hub:\n{hub.log_tail(30)}"
    )


def holders(hub):
    return {
        g["uuid"]: [f"{h['user']}/{h['server']}" for h in g["holders"]]
        for g in hub.api("GET", "/gpulab/gpus").json()["gpus"]
    }


def test_a_two_node_job_runs_mpirun_across_both_workers_and_its_gang_waits_whole(lab):
    """alice's 2-node job (1 GPU on each worker, the lab's Open MPI image) waits, holding nothing,
    while w2's only GPU is taken, starts whole when it frees, and runs mpirun with its hostfile
    across both workers: an allreduce and a rendezvous at MASTER_ADDR:MASTER_PORT."""
    hub, cluster = lab["hub"], lab["cluster"]
    for name in ("alice", "bob", "carol"):
        hub.create_user(name)
    bob_was_running = bool(hub.api("GET", "/users/bob").json()["servers"])
    if bob_was_running:
        hub.stop_server("bob", timeout=120)
    w1, w2 = cluster.node_name("w1"), cluster.node_name("w2")
    hub.spawn("carol", {"profile": "gpu", "gpus": 1, "node": w2}, timeout=300)
    token = hub.user_token("alice")
    script = (
        'cat /etc/gpulab/hostfile; echo "rank 0: NODE_RANK=$NODE_RANK WORLD_SIZE=$WORLD_SIZE '
        'NPROC_PER_NODE=$NPROC_PER_NODE MASTER_ADDR=$MASTER_ADDR GPUS=$NVIDIA_VISIBLE_DEVICES"; '
        'mpirun -x MASTER_ADDR -x MASTER_PORT -x WORLD_SIZE python3 -c "$0"'
    )
    r = hub.api(
        "POST",
        job_url("alice"),
        token=token,
        json={
            "command": ["bash", "-c", script, MPI_CHECK],
            "nodes": 2,
            "gpus": 1,
            "profile": "mpi",
            "time": "20m",
        },
    )
    assert r.status_code == 201, r.text
    job = r.json()
    waiting = wait_job(hub, token, job["id"], ("waiting",))
    time.sleep(3)
    assert hub.api("GET", job_url("alice", job["id"]), token=token).json()["state"] == "waiting"
    assert not any("job/" in h for hs in holders(hub).values() for h in hs), holders(hub)
    assert waiting["position"] == 1
    hub.stop_server("carol", timeout=120)
    running = wait_job(hub, token, job["id"], ("running", "succeeded", "failed"))
    assert running["state"] != "failed", running
    done = wait_job(hub, token, job["id"], ("succeeded", "failed"), timeout=240)
    log = hub.api("GET", job_url("alice", job["id"], "log"), token=token).json()
    text = "\n".join(log["lines"])
    assert done["state"] == "succeeded", (done, text[-3000:], hub.log_tail(40))
    prefix = f"{hub.name}-job-{job['id']}"
    assert f"{prefix}-0 slots=1\n{prefix}-1 slots=1" in text, text
    assert f"rank 0: NODE_RANK=0 WORLD_SIZE=2 NPROC_PER_NODE=1 MASTER_ADDR={prefix}-0" in text
    assert f"allreduce=3 hosts={prefix}-0,{prefix}-1 rendezvous=2/2" in text, text
    assert "gpulab-job: MPI traffic on " in text and "on any interface" not in text, text
    assert sorted(done["gpu_uuids"]) == ["GPU-w1-0", "GPU-w2-0"] or (
        len(done["gpu_uuids"]) == 2 and "GPU-w2-0" in done["gpu_uuids"]
    ), done
    assert not any(hs for hs in holders(hub).values()), holders(hub)
    mgr = cluster.engine("mgr")
    left = mgr.api.services(filters={"label": f"gpulab.job-id={job['id']}"})
    left += mgr.api.networks(filters={"label": f"gpulab.job-id={job['id']}"})
    left += mgr.api.secrets(filters={"label": f"gpulab.job-id={job['id']}"})
    assert not left, left
    # bad shapes are a 400 naming the field
    for body, field in (({"nodes": 3}, "nodes"), ({"nodes": 2, "gpus": 2}, "nodes")):
        r = hub.api("POST", job_url("alice"), token=token, json={"command": ["true"], **body})
        assert r.status_code == 400 and f"Invalid job {field}:" in r.json()["message"], r.text
    if bob_was_running:  # as the tests below expect: bob on w1, one of its GPUs free
        hub.spawn("bob", {"profile": "gpu", "gpus": 1, "node": w1}, timeout=300)


# --- faults: the registry down, a GPU server rebooting ----------------------------------------


def post_save(hub, user, auth, note, timeout=600):
    """The user saves their running server (the hub answers when the save is made or refused)."""
    return requests.post(
        f"{hub.url}/hub/api/gpulab/users/{user}/saves",
        json={"note": note},
        headers=auth,
        timeout=timeout,
    )


def saves_of(hub, user, auth):
    r = requests.get(f"{hub.url}/hub/api/gpulab/users/{user}/saves", headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    return [x["tag"] for x in r.json()]


def job_services(cluster):
    return [
        s["Spec"]["Name"]
        for s in cluster.engine("mgr").api.services()
        if s["Spec"].get("Labels", {}).get("gpulab.job")
    ]


def save_tags_on(cluster, node, registry):
    """Every saved-environment tag the node's engine holds."""
    return sorted(
        tag
        for image in cluster.engine(node).images.list()
        for tag in image.tags
        if tag.startswith(f"{registry}/gpulab/saves/")
    )


def follow_spawn(hub, user, options, timeout=300):
    """The spawn in the background; returns (thread, result dict with status and events)."""
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(
            zip(
                ("status", "events"),
                hub.spawn_following_progress(user, options, timeout=timeout),
                strict=True,
            )
        ),
        daemon=True,
    )
    thread.start()
    return thread, result


def test_the_registry_down_fails_a_save_and_a_pull_cleanly_and_both_work_when_it_is_back(lab):
    """The lab's registry goes down: a save fails naming it and leaves nothing behind; a start
    that has to pull fails with the reason and gives its GPU back; the hub serves on. Once the
    registry is back, both work."""
    hub, cluster, registry = lab["hub"], lab["cluster"], lab["registry"]
    w1, w2 = cluster.node_name("w1"), cluster.node_name("w2")
    hub.create_user("rita")
    auth = {"Authorization": f"token {hub.user_token('rita')}"}
    hub.spawn("rita", {"profile": "gpu", "gpus": 1, "node": w1}, timeout=300)
    node, c = hub.container_of("rita")
    assert node == "w1"
    assert c.exec_run(["sh", "-c", "echo up > /usr/local/bin/rtool"], user="0").exit_code == 0
    r = post_save(hub, "rita", auth, "up")
    assert r.status_code == 201, r.text
    kept = r.json()
    tags_w1 = save_tags_on(cluster, "w1", registry.address)
    registry.down()
    try:
        # a save with the registry down
        t0 = time.monotonic()
        r = post_save(hub, "rita", auth, "down")
        save_failed_in = time.monotonic() - t0
        assert r.status_code in (502, 503), (r.status_code, r.text)
        message = r.json()["message"]
        assert "registry" in message and registry.address in message, message
        assert save_failed_in < 120, save_failed_in
        assert saves_of(hub, "rita", auth) == [kept["tag"]], "the failed save is not listed"
        assert job_services(cluster) == [], "the save job is gone"
        assert save_tags_on(cluster, "w1", registry.address) == tags_w1, "no half-made save"
        assert hub.api("GET", "/").status_code == 200
        assert hub.api("GET", "/users/rita").json()["servers"][""]["ready"], "rita's server runs on"
        hub.stop_server("rita", timeout=120)
        # a start from an image the node already holds does not need the registry
        t0 = time.monotonic()
        hub.spawn("rita", {"profile": "gpu", "gpus": 1, "node": w1}, timeout=180)
        cached_in = time.monotonic() - t0
        hub.stop_server("rita", timeout=120)
        # a start that has to pull (w2 never had the save) with the registry down
        assert kept["image"] not in save_tags_on(cluster, "w2", registry.address)
        t0 = time.monotonic()
        thread, result = follow_spawn(
            hub, "rita", {"profile": "gpu", "gpus": 1, "save": kept["tag"], "node": w2}
        )
        thread.join(180)
        spawn_failed_in = time.monotonic() - t0
        assert not thread.is_alive(), "the start that could not pull never ended"
        last = result["events"][-1]
        assert last.get("failed") and not last.get("ready"), result["events"]
        assert "registry" in last["message"] and registry.address in last["message"], last
        assert spawn_failed_in < 120, spawn_failed_in
        assert not hub.api("GET", "/users/rita").json()["servers"]
        assert hub.services("rita") == []
        assert not any(hs for hs in holders(hub).values() if any("rita" in h for h in hs)), holders(
            hub
        )
    finally:
        registry.up()
    print(
        f"\n[gpulab] registry down: save failed in {save_failed_in:.1f} s, a cached start took"
        f" {cached_in:.1f} s, a start that had to pull failed in {spawn_failed_in:.1f} s"
    )
    # the registry is back: the start pulls, and a save works again
    hub.spawn("rita", {"profile": "gpu", "gpus": 1, "save": kept["tag"], "node": w2}, timeout=300)
    node, c = hub.container_of("rita")
    assert node == "w2" and c.exec_run(["cat", "/usr/local/bin/rtool"]).output == b"up\n"
    r = post_save(hub, "rita", auth, "back")
    assert r.status_code == 201, r.text
    again = r.json()
    assert sorted(saves_of(hub, "rita", auth)) == sorted([kept["tag"], again["tag"]])
    hub.stop_server("rita", timeout=120)
    for tag in (kept["tag"], again["tag"]):
        r = requests.delete(
            f"{hub.url}/hub/api/gpulab/users/rita/saves/{tag}", headers=auth, timeout=600
        )
        assert r.status_code == 204, r.text
    assert job_services(cluster) == []


def test_a_full_docker_disk_on_a_gpu_server_fails_a_save_clearly_and_leaves_nothing(lab):
    """A GPU server whose disk for Docker's data is full (here w3, joined for this test with its
    own small file system): a save there is refused with a 507 naming the node and the full disk,
    nothing half-made is left (no image, tag, job or listed save), the server runs on unpaused,
    the hub serves on, and the save works once there is room."""
    hub, cluster, registry = lab["hub"], lab["cluster"], lab["registry"]
    cluster.add_worker("w3", disk_bytes=4 * 1024**3)
    try:
        w3 = cluster.node_name("w3")
        hub.create_user("tara")
        auth = {"Authorization": f"token {hub.user_token('tara')}"}
        deadline = time.monotonic() + 60  # a server may name w3 once the hub has seen it
        while True:
            r = hub.api("POST", "/users/tara/server", json={"profile": "cpu", "node": w3})
            if r.status_code != 400 or "not a GPU server" not in r.text:
                break
            assert time.monotonic() < deadline, r.text
            time.sleep(2)
        assert r.status_code in (201, 202), r.text
        hub.wait_ready("tara", timeout=300)  # w3 pulls the image first
        node, c = hub.container_of("tara")
        assert node == "w3"
        url = f"{hub.url}/hub/api/gpulab/users/tara/saves"
        r = post_save(hub, "tara", auth, "room")
        assert r.status_code == 201, r.text  # also brings the save job's image to w3
        first = r.json()["tag"]
        code, out = c.exec_run(
            ["sh", "-c", "head -c 60000000 /dev/urandom > /opt/weights.bin"], user="0"
        )
        assert code == 0, out
        tags = save_tags_on(cluster, "w3", registry.address)
        images = len(cluster.engine("w3").images.list(all=True))
        on_node(
            cluster,
            "w3",
            "sh",
            "-c",
            "fallocate -l $(( $(df -B1 --output=avail /var/lib/docker | tail -n 1) - 30000000 ))"
            " /var/lib/docker/filler",
        )
        try:
            t0 = time.monotonic()
            r = post_save(hub, "tara", auth, "full")
            took = time.monotonic() - t0
            assert r.status_code == 507, (r.status_code, r.text)
            message = r.json()["message"]
            assert w3 in message and "full" in message and "nothing was saved" in message, message
            assert saves_of(hub, "tara", auth) == [first]
            assert job_services(cluster) == []
            assert save_tags_on(cluster, "w3", registry.address) == tags
            assert len(cluster.engine("w3").images.list(all=True)) == images, "no layer left"
            c.reload()
            assert c.status == "running", c.status  # unpaused after the failed commit
            assert hub.api("GET", "/").status_code == 200
        finally:
            on_node(cluster, "w3", "rm", "-f", "/var/lib/docker/filler")
        r = post_save(hub, "tara", auth, "again")
        assert r.status_code == 201, r.text
        hub.stop_server("tara", timeout=120)
        for tag in saves_of(hub, "tara", auth):
            r = requests.delete(f"{url}/{tag}", headers=auth, timeout=600)
            assert r.status_code == 204, r.text
    finally:
        cluster.remove_worker("w3")
    print(f"\n[gpulab] a save on a node with a full Docker disk refused in {took:.1f} s")


def test_a_gpu_server_dying_during_a_save(lab):
    """sara's server runs on w2 and she saves it; w2 loses power while the save job commits and
    pushes there. The save ends within seconds saying which node went down (not at the save's
    timeout), nothing is listed or left in the Swarm, her server is reported stopped and its GPU
    is free; w2 serves again once it is back."""
    hub, cluster, registry = lab["hub"], lab["cluster"], lab["registry"]
    w2 = cluster.node_name("w2")
    mgr = cluster.engine("mgr").api
    hub.create_user("sara")
    auth = {"Authorization": f"token {hub.user_token('sara')}"}
    hub.spawn("sara", {"profile": "gpu", "gpus": 1, "node": w2}, timeout=300)
    node, c = hub.container_of("sara")
    assert node == "w2"
    code, out = c.exec_run(
        ["sh", "-c", "head -c 100000000 /dev/urandom > /opt/weights.bin"], user="0"
    )
    assert code == 0, out
    result = {}

    def save():
        t0 = time.monotonic()
        r = post_save(hub, "sara", auth, "x", timeout=900)
        result.update(response=r, took=time.monotonic() - t0)

    thread = threading.Thread(target=save, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while True:  # the save job's task runs on w2
        running = [
            t
            for s in mgr.services(filters={"label": "gpulab.job"})
            for t in mgr.tasks(filters={"service": s["ID"]})
            if t["Status"]["State"] == "running"
        ]
        if running:
            break
        assert time.monotonic() < deadline and thread.is_alive(), result
        time.sleep(0.2)
    registry.pause()  # its push hangs: the node dies while the save is surely under way
    try:
        time.sleep(2)  # into the commit, or the stalled push
        cluster.kill("w2")
    finally:
        registry.resume()
    killed = time.monotonic()
    try:
        thread.join(120)
        ended_in = time.monotonic() - killed
        assert not thread.is_alive(), "the save on the dead node never ended"
        r = result["response"]
        assert r.status_code == 503, (r.status_code, r.text)
        message = r.json()["message"]
        assert w2 in message and "did not finish" in message, message
        # Swarm marks a node down after its heartbeats stop (~15 s); the save's own timeout is an hour
        assert ended_in < 60, ended_in
        assert saves_of(hub, "sara", auth) == []
        assert job_services(cluster) == [], "the save job is gone"
        assert hub.api("GET", "/").status_code == 200
        deadline = time.monotonic() + 60  # the server's poll (every 5 s here) sees its node gone
        while hub.api("GET", "/users/sara").json()["servers"]:
            assert time.monotonic() < deadline, "the hub never noticed that sara's node died"
            time.sleep(1)
        held = holders(hub)
        assert not any(h.startswith("sara/") for hs in held.values() for h in hs), held
        deadline = time.monotonic() + 30  # the stop that follows removes the service
        while hub.services("sara"):
            assert time.monotonic() < deadline, hub.services("sara")
            time.sleep(1)
    finally:
        cluster.start_again("w2")
    left = save_tags_on(cluster, "w2", registry.address)
    # offered again once the hub's inventory has seen w2 ready
    assert offered_again(hub, "GPU-w2-0", 60), hub.api("GET", "/gpulab/gpus").json()
    print(
        f"\n[gpulab] w2 killed during a save: the save failed in {ended_in:.1f} s"
        f" ({result['took']:.1f} s in all); save tags on w2 after its restart: {left}"
    )


def offered_again(hub, uuid, timeout):
    deadline = time.monotonic() + timeout
    while uuid not in {g["uuid"] for g in hub.api("GET", "/gpulab/gpus").json()["gpus"]}:
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def on_node(cluster, name, *command):
    """Run a command in a node (its engine's mount namespace: as the engine sees the files)."""
    code, out = cluster.nodes[name].exec_run(list(command))
    assert code == 0, (command, out)
    return out.decode()


def test_a_gpu_server_without_the_shared_storage_is_passed_over_until_it_has_it(lab):
    """w2's mount of the lab's shared storage is gone (an empty folder in its place, as when NFS
    failed at boot): a start there fails at once naming w2 and the missing path, and makes nothing
    on w2's own disk; w2's GPU is no longer offered, a server without GPUs is placed elsewhere and
    asking for w2 by name is refused with the reason. Once the storage is back, the hub's own check
    offers w2 again."""
    hub, cluster = lab["hub"], lab["cluster"]
    w1, w2, shared = cluster.node_name("w1"), cluster.node_name("w2"), cluster.shared_dir
    hub.create_user("nina")
    on_node(cluster, "w2", "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", shared)
    unmounted = False
    try:
        t0 = time.monotonic()
        thread, result = follow_spawn(hub, "nina", {"profile": "gpu", "gpus": 1, "node": w2})
        thread.join(120)
        failed_in = time.monotonic() - t0
        assert not thread.is_alive(), "the start never ended"
        last = result["events"][-1]
        assert last.get("failed") and not last.get("ready"), result["events"]
        assert w2 in last["message"] and f"{shared}/" in last["message"], last
        assert "shared storage" in last["message"], last
        assert on_node(cluster, "w2", "ls", "-A", shared) == "", "nothing made on w2's own disk"
        assert hub.services("nina") == [] and not hub.api("GET", "/users/nina").json()["servers"]
        held = holders(hub)
        assert not any(h.startswith("nina/") for hs in held.values() for h in hs), held
        deadline = time.monotonic() + 30  # the next read of the nodes passes w2 over
        while "GPU-w2-0" in {g["uuid"] for g in hub.api("GET", "/gpulab/gpus").json()["gpus"]}:
            assert time.monotonic() < deadline, hub.api("GET", "/gpulab/gpus").json()
            time.sleep(1)
        r = hub.api("POST", "/users/nina/server", json={"profile": "gpu", "gpus": 1, "node": w2})
        assert r.status_code == 503 and "shared storage" in r.json()["message"], r.text
        check = gpulab_check(lab)  # the admin's check names the node and what it lacks
        assert check.returncode == 1, check.stdout + check.stderr
        assert re.search(rf"node {w2}: .*not the lab's shared storage", check.stdout), check.stdout
        assert re.search(rf"ok +node {w1}: ready", check.stdout), check.stdout
        hub.spawn("nina", {"profile": "cpu"}, timeout=180)
        node, _ = hub.container_of("nina")
        assert node == "w1", f"a server without GPUs was placed on {node}, not {w1}"
        hub.stop_server("nina", timeout=120)
        on_node(cluster, "w2", "umount", shared)
        unmounted = True
        back = time.monotonic()
        assert offered_again(hub, "GPU-w2-0", 120), hub.log_tail(30)  # checked every 30 s
        offered_in = time.monotonic() - back
    finally:
        if not unmounted:  # the tests after this one use w2
            on_node(cluster, "w2", "umount", shared)
            offered_again(hub, "GPU-w2-0", 120)
    hub.spawn("nina", {"profile": "gpu", "gpus": 1, "node": w2}, timeout=180)
    assert hub.container_of("nina")[0] == "w2"
    hub.stop_server("nina", timeout=120)
    assert job_services(cluster) == []
    print(
        f"\n[gpulab] w2 without the shared storage: the start failed in {failed_in:.1f} s;"
        f" w2 offered again {offered_in:.1f} s after the storage was back"
    )


def test_a_gpu_server_rebooting_during_a_spawn(lab):
    """w2 loses power while a server is starting on it and comes back later: the start ends with
    a reason (not after hub.start_timeout), no GPU stays held for a task that is gone, and once
    w2 is ready again the hub places servers on it."""
    hub, cluster = lab["hub"], lab["cluster"]
    w2 = cluster.node_name("w2")
    mgr = cluster.engine("mgr").api
    hub.create_user("rob")
    thread, result = follow_spawn(hub, "rob", {"profile": "gpu", "gpus": 1, "node": w2})
    deadline = time.monotonic() + 60
    while True:  # the task is on w2: the node dies under it
        services = hub.services("rob")
        tasks = mgr.tasks(filters={"service": services[0]["ID"]}) if services else []
        if any(t.get("NodeID") for t in tasks):
            break
        assert time.monotonic() < deadline and thread.is_alive(), result
        time.sleep(0.1)
    state_at_kill = tasks[0]["Status"]["State"]
    cluster.kill("w2")
    killed = time.monotonic()
    try:
        thread.join(150)
        ended_in = time.monotonic() - killed
        assert not thread.is_alive(), "the start on the dead node never ended"
        last = result["events"][-1]
        assert last.get("failed") and not last.get("ready"), result["events"]
        assert w2 in last["message"], last
        assert ended_in < 90, ended_in  # hub.start_timeout is 240 s
        assert not hub.api("GET", "/users/rob").json()["servers"]
        held = holders(hub)
        assert not any(h.startswith("rob/") for hs in held.values() for h in hs), held
        assert hub.services("rob") == []
    finally:
        t0 = time.monotonic()
        cluster.start_again("w2")
        back_in = time.monotonic() - t0
    print(
        f"\n[gpulab] w2 killed with the task {state_at_kill}: the start failed in {ended_in:.1f} s;"
        f" w2 ready again {back_in:.1f} s after its restart"
    )
    held = holders(hub)
    assert not any(h.startswith("rob/") for hs in held.values() for h in hs), held
    # w2 is back: the hub places servers on it again (once its inventory has seen it ready)
    assert offered_again(hub, "GPU-w2-0", 60), hub.api("GET", "/gpulab/gpus").json()
    t0 = time.monotonic()
    hub.spawn("rob", {"profile": "gpu", "gpus": 1, "node": w2}, timeout=180)
    node, c = hub.container_of("rob")
    assert node == "w2" and env_of(c, "DOCKER_RESOURCE_GPU") == "GPU-w2-0"
    print(f"[gpulab] a server on w2 again in {time.monotonic() - t0:.1f} s")
    hub.stop_server("rob", timeout=120)
    assert not any(holders(hub).get("GPU-w2-0", [])), holders(hub)


def test_a_dead_node_gives_its_gpus_back_and_the_user_moves(lab):
    """bob's server and a 2-node job run on w1; w1 loses power. The hub reports bob's server
    stopped within a poll interval, the job ends saying which node it lost, every GPU is free
    again, and bob starts again on w2 with his home intact."""
    hub, cluster = lab["hub"], lab["cluster"]
    node, c = hub.container_of("bob")
    assert node == "w1"
    uid = c.attrs["Config"]["Labels"]["gpulab.uid"]
    assert (
        c.exec_run(["bash", "-c", "echo survives > ~/after-the-crash.txt"], user=uid).exit_code == 0
    )
    token = hub.user_token("alice")
    r = hub.api(
        "POST",
        job_url("alice"),
        token=token,
        json={"command": ["sleep", "900"], "nodes": 2, "gpus": 1, "profile": "mpi"},
    )
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    wait_job(hub, token, job_id, ("running",))
    cluster.kill("w1")
    deadline = time.monotonic() + 90
    while hub.api("GET", "/users/bob").json()["servers"]:
        assert time.monotonic() < deadline, "the hub never noticed that bob's node died"
        time.sleep(2)
    ended = wait_job(hub, token, job_id, ("failed",), timeout=120)
    assert "lost its node" in ended["reason"] and cluster.node_name("w1") in ended["reason"]
    held = holders(hub)
    assert not any(hs for hs in held.values()), held
    hub.spawn("bob", {"profile": "gpu", "gpus": 1}, timeout=300)
    node2, c2 = hub.container_of("bob")
    assert node2 == "w2" and env_of(c2, "DOCKER_RESOURCE_GPU") == "GPU-w2-0"
    assert (
        exec_in(c2, ["cat", "/home/bob/after-the-crash.txt"]).output.decode().strip() == "survives"
    )


PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(4)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print(s.recv(64).decode() or "connected")
except OSError:
    print("unreachable")
"""


class banner_listener:
    """A TCP listener on this machine that greets whoever connects with a banner (who answers)."""

    def __init__(self, host):
        import socket

        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.sendall(b"gpulab-test-banner")
            conn.close()

    def __enter__(self):
        self.thread.start()
        return self.port

    def __exit__(self, *exc):
        self.sock.close()


def reached_from_here(host, port):
    import socket

    with socket.create_connection((host, port), timeout=4) as s:
        return s.recv(64).decode()
