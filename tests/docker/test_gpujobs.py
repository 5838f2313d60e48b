"""Users' GPU jobs for real on one host: a job runs in the user's environment on exactly its GPU,
writes to the home, streams its output to the client, records how it ended, and its GPU goes to a
waiting server at once; time limits, cancelling (running and waiting), strangers, bad input, the
server's own token, the Jobs page, and a hub restart under a running job."""

import os
import re
import subprocess
import sys
import threading
import time

import pytest
import requests

from harness import dockerrun, gpuhost
from harness.hub import BASE_IMAGE
from harness.ssh import Browser, messages

GPULAB_CLIENT = os.path.join(os.path.dirname(sys.executable), "gpulab-client")
GPUS = gpuhost.devices()[:1]  # one GPU: a job and a server wait for each other
SITE = {
    "gpus": {"devices": GPUS, "wait_timeout": 120},
    "profiles": [
        {"name": "gpu", "image": BASE_IMAGE, "gpus": 1, "max_gpus": 1, "mem_limit": "1G"},
        {"name": "cpu", "image": BASE_IMAGE, "gpus": 0, "max_gpus": 0, "mem_limit": "1G"},
    ],
    "jobs": {"max_hours": 1, "default_hours": 0.5, "max_per_user": 3},
}


@pytest.fixture(scope="module")
def hub(make_hub):
    hub = make_hub(SITE, extra_config="\nc.Spawner.poll_interval = 2\n")
    for name in ("alice", "bob"):
        hub.create_user(name)
    return hub


def jobs_url(user, *rest):
    return "/".join([f"/gpulab/users/{user}/jobs", *map(str, rest)])


def submit(hub, token, body, status=201):
    r = hub.api("POST", jobs_url("alice"), token=token, json=body)
    assert r.status_code == status, f"{r.status_code} {r.text}\n{hub.log_tail()}"
    return r.json()


def wait_state(hub, token, job_id, states, timeout=120, user="alice"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = hub.api("GET", jobs_url(user, job_id), token=token).json()
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} is {job['state']}, not {states}\n{hub.log_tail()}")


def job_containers(hub):
    return [c for c in hub.containers() if c.labels.get("gpulab.job") == "user"]


def home_file(hub, docker_client, user, path):
    """A file of the user's home volume, read as it is stored."""
    volume = f"{hub.site['hub']['name']}-home-{user}"
    out = dockerrun.output(
        docker_client,
        BASE_IMAGE,
        ["cat", f"/home/{path}"],
        entrypoint=[],
        volumes={volume: {"bind": "/home", "mode": "ro"}},
        network_disabled=True,
    )
    return out.decode()


def gpu_free(hub):
    return all(not g["holders"] for g in hub.api("GET", "/gpulab/gpus").json()["gpus"])


def client(hub, token_file, action, *args, timeout=180):
    env = dict(os.environ, GPULAB_HUB_URL=hub.url)
    return subprocess.run(
        [GPULAB_CLIENT, "job", action, "--token-file", str(token_file), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_job_runs_as_the_user_on_its_gpu_streams_and_hands_the_gpu_on(
    hub, docker_client, tmp_path
):
    token = hub.user_token("alice")
    token_file = tmp_path / "token"
    token_file.write_text(token)
    script = (
        'echo "uid=$(id -u) gpus=$NVIDIA_VISIBLE_DEVICES job=$GPULAB_JOB_ID"; '
        "cat /datasets/shared/hello.txt; echo result > ~/result.txt; "
        "for i in 1 2 3 4 5 6; do echo step $i; sleep 1; done; exit 3"
    )
    out = client(
        hub, token_file, "submit", "--gpus", "1", "--time", "10m", "--", "bash", "-c", script
    )
    assert out.returncode == 0, out.stderr
    job_id = int(re.search(r"job (\d+) submitted", out.stdout).group(1))
    running = wait_state(hub, token, job_id, ("running",))
    assert running["gpu_uuids"] == [GPUS[0]["uuid"]] and running["time_limit"] == "10m"

    # held like a server, with exactly its GPU, no hub token, labelled as alice's job
    (c,) = job_containers(hub)
    c.reload()
    hc, labels = c.attrs["HostConfig"], c.labels
    assert hc["CapDrop"] == ["ALL"] and "no-new-privileges:true" in hc["SecurityOpt"]
    assert [i for r in hc["DeviceRequests"] for i in r["DeviceIDs"]] == [GPUS[0]["uuid"]]
    assert labels["gpulab.user"] == "alice" and labels["gpulab.job-id"] == str(job_id)
    env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
    assert not any(k.startswith(("JUPYTERHUB_", "JPY_")) for k in env), sorted(env)

    # bob's GPU server waits for alice's job, and gets the GPU as soon as it ends
    spawned = {}
    spawn = threading.Thread(
        target=lambda: spawned.update(
            r=hub.api("POST", "/users/bob/server", json={"profile": "gpu"})
        )
    )
    spawn.start()
    time.sleep(1.5)
    queue = hub.api("GET", "/gpulab/gpus").json()["queue"]
    assert [q["user"] for q in queue] == ["bob"], queue

    # the client streams the output to the end
    logs = client(hub, token_file, "logs", "-f", str(job_id))
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    # (gpulab's start comes first: its hooks, then the runner's own line)
    (first,) = [line for line in lines if line.startswith("uid=")]
    assert first.endswith(f"gpus={GPUS[0]['uuid']} job={job_id}") and first != "uid=0"
    assert f"gpulab-job: job {job_id} on GPU(s) {GPUS[0]['uuid']}" in logs.stdout
    assert "shared data" in lines and lines[-1] == "step 6", lines
    assert "job failed: exit status 3" in logs.stderr

    done = wait_state(hub, token, job_id, ("failed",))
    assert done["exit_status"] == 3 and done["reason"] == "exit status 3"
    spawn.join(60)
    assert spawned["r"].status_code in (201, 202), spawned["r"].text
    hub.wait_ready("bob", timeout=60)
    bob_ready = time.time()
    assert bob_ready - done["ended"] < 10, (bob_ready, done["ended"])
    (bc,) = [c for c in hub.containers("bob") if c.status == "running"]
    assert bc.labels["gpulab.gpus"] == GPUS[0]["uuid"]
    hub.stop_server("bob")

    # what the job left in the home, and nothing on the engine
    assert home_file(hub, docker_client, "alice", "result.txt") == "result\n"
    assert home_file(hub, docker_client, "alice", f"jobs/{job_id}/status") == "3\n"
    log = home_file(hub, docker_client, "alice", f"jobs/{job_id}/log")
    assert "step 6" in log and "shared data" in log
    assert "bash -c" in home_file(hub, docker_client, "alice", f"jobs/{job_id}/command")
    assert not job_containers(hub)
    # Prometheus: the job counted by its outcome, its GPU-hours, none running now
    hub.create_user("admin")
    r = hub.api(
        "POST", "/users/admin/tokens", json={"note": "prometheus", "scopes": ["read:metrics"]}
    )
    assert r.status_code == 201, r.text
    metrics = requests.get(
        f"{hub.url}/hub/metrics",
        headers={"Authorization": f"token {r.json()['token']}"},
        timeout=30,
    ).text
    assert 'gpulab_jobs_finished_total{outcome="failed"} 1.0' in metrics
    assert 'gpulab_jobs{state="running"} 0.0' in metrics
    hours = re.search(r"^gpulab_job_gpu_hours_total ([0-9.e-]+)$", metrics, re.M)
    assert hours and 0 < float(hours.group(1)) < 0.01, hours
    listed = client(hub, token_file, "list")
    assert re.search(rf"^\s+{job_id}\s+failed\s+1\s+10m\s+bash -c", listed.stdout, re.M), listed


def test_time_limits_cancels_strangers_and_bad_input(hub):
    token, bob = hub.user_token("alice"), hub.user_token("bob")
    assert gpu_free(hub)
    # past its time limit (0.002 h = 7.2 s): stopped, and it says so
    t0 = time.monotonic()
    job = submit(hub, token, {"command": ["sleep", "300"], "time": 0.002})
    ended = wait_state(hub, token, job["id"], ("timed-out",), timeout=60)
    assert "time limit" in ended["reason"] and time.monotonic() - t0 < 40
    assert gpu_free(hub) and not job_containers(hub)

    # a running job, cancelled; a job waiting behind it, cancelled in the queue
    first = submit(hub, token, {"command": ["sleep", "300"], "name": "first"})
    wait_state(hub, token, first["id"], ("running",))
    second = submit(hub, token, {"command": ["true"]})
    waiting = wait_state(hub, token, second["id"], ("waiting",))
    assert waiting["position"] == 1 and "place 1 in the queue" in waiting["waiting_for"]

    # bob sees none of it, and can do nothing to it
    for method, path in (
        ("GET", jobs_url("alice")),
        ("GET", jobs_url("alice", first["id"])),
        ("GET", jobs_url("alice", first["id"], "log")),
        ("DELETE", jobs_url("alice", first["id"])),
        ("GET", jobs_url("bob", first["id"])),
        ("DELETE", jobs_url("bob", first["id"])),
        ("GET", jobs_url("bob", first["id"], "log")),
    ):
        r = hub.api(method, path, token=bob)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
    assert hub.api("GET", jobs_url("bob"), token=bob).json() == []

    r = hub.api("DELETE", jobs_url("alice", second["id"]), token=token)
    assert r.status_code == 202, r.text
    assert "while it waited" in wait_state(hub, token, second["id"], ("cancelled",))["reason"]
    r = hub.api("DELETE", jobs_url("alice", first["id"]), token=token)
    assert r.status_code == 202, r.text
    wait_state(hub, token, first["id"], ("cancelled",), timeout=60)
    assert gpu_free(hub) and not job_containers(hub)
    r = hub.api("DELETE", jobs_url("alice", first["id"]), token=token)
    assert r.status_code == 409 and "already ended" in r.json()["message"]

    # bad input: a 400 naming the field, and nothing made
    before = hub.api("GET", jobs_url("alice"), token=token).json()
    for body, field in (
        ({"command": ["x"], "gpus": 0}, "gpus"),
        ({"command": ["x"], "gpus": 2}, "gpus"),
        ({"command": ["x"], "profile": "nope"}, "profile"),
        ({"command": ["x"], "save": "nope"}, "save"),
        ({"command": []}, "command"),
        ({"command": ["x"], "time": "2h"}, "time"),
        ({"command": ["x"], "nodes": 2}, "nodes"),
    ):
        r = hub.api("POST", jobs_url("alice"), token=token, json=body)
        assert r.status_code == 400 and f"Invalid job {field}:" in r.json()["message"], r.text
    assert hub.api("GET", jobs_url("alice"), token=token).json() == before
    assert not job_containers(hub)

    # an admin's token (admin:servers) may list and cancel alice's jobs, never run one as her
    r = hub.api("POST", jobs_url("alice"), json={"command": ["true"]})
    assert r.status_code == 404, r.text
    assert hub.api("GET", jobs_url("alice"), token=None).status_code == 200
    for bad in ("99999999999999999999999", "00"):
        assert hub.api("GET", jobs_url("alice", bad), token=token).status_code == 404

    # the server's own token may run its owner's jobs (gpulab-client job in a terminal)
    hub.spawn("alice", {"profile": "cpu"})
    (c,) = [c for c in hub.containers("alice") if c.status == "running"]
    env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
    server_token = env["JUPYTERHUB_API_TOKEN"]
    job = submit(hub, server_token, {"command": "echo from the server"})
    assert wait_state(hub, server_token, job["id"], ("succeeded",))["reason"] == "exit status 0"
    r = hub.api("GET", jobs_url("bob"), token=server_token)
    assert r.status_code == 404
    # ...and the hub's own gpulab-client is on the PATH of the server's terminals
    code, out = c.exec_run(
        ["bash", "-lc", "gpulab-client job submit --follow -- echo from a terminal"],
        user=c.labels["gpulab.uid"],
    )
    assert code == 0 and "from a terminal" in out.decode(), out.decode()[-2000:]
    hub.stop_server("alice")


def test_the_jobs_page_submits_shows_and_cancels(hub):
    browser = Browser(hub, "alice")
    page = browser.s.get(hub.url + "/hub/jobs", cookies=browser.cookies(), timeout=30)
    assert page.status_code == 200 and "gpulab-submit" in page.text
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    r = browser.s.post(
        hub.url + "/hub/jobs",
        data={"_xsrf": xsrf, "action": "submit", "command": "echo 'hello page'", "gpus": "1"},
        cookies=browser.cookies(),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    (ok,) = messages(r.text, "ok")
    job_id = int(re.search(r"Job (\d+) submitted", ok).group(1))
    token = hub.user_token("alice")
    wait_state(hub, token, job_id, ("succeeded",))
    shown = browser.s.get(
        f"{hub.url}/hub/jobs?show={job_id}", cookies=browser.cookies(), timeout=30
    )
    assert "hello page" in shown.text and f'data-job="{job_id}"' in shown.text
    r = browser.s.post(
        hub.url + "/hub/jobs",
        data={"_xsrf": xsrf, "action": "submit", "command": "true", "gpus": "9"},
        cookies=browser.cookies(),
        timeout=60,
    )
    assert r.status_code == 400 and "gpus" in messages(r.text, "error")[0]


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_a_running_job_outlives_a_hub_restart(hub, how):
    """The hub stopped as a service stops it, or killed (SIGKILL: the OOM killer, a crash) with
    nothing cleaned up: the job's container runs on, and the next hub follows it to its end."""
    token = hub.user_token("alice")
    script = "for i in $(seq 1 40); do echo tick $i; sleep 1; done"
    job = submit(hub, token, {"command": script})
    wait_state(hub, token, job["id"], ("running",))
    (c,) = job_containers(hub)
    hub.stop() if how == "stopped" else hub.kill()
    hub.start(timeout=120)
    again = hub.api("GET", jobs_url("alice", job["id"]), token=token).json()
    assert again["state"] == "running", again
    assert [x.id for x in job_containers(hub)] == [c.id]  # the same container, followed again
    assert [g["holders"][0]["server"] for g in hub.api("GET", "/gpulab/gpus").json()["gpus"]] == [
        f"job/{job['id']}"
    ]
    done = wait_state(hub, token, job["id"], ("succeeded",), timeout=60)
    assert done["exit_status"] == 0
    assert gpu_free(hub) and not job_containers(hub)
    r = hub.api("GET", jobs_url("alice", job["id"], "log") + "?since=0", token=token).json()
    assert r["lines"][-1] == "tick 40" and not r["more"], r


def test_a_flood_of_output_never_swamps_the_hub(hub):
    """30 MB without a newline, then 300 000 short lines as fast as they come: the hub keeps
    answering, keeps lines of at most 4 KiB and a bounded tail, and the job ends normally."""
    token = hub.user_token("alice")
    script = "head -c 30000000 /dev/zero | tr '\\0' x; echo; yes flood | head -n 300000; echo end"
    job = submit(hub, token, {"command": script})
    t0 = time.monotonic()
    slowest = 0.0
    while True:
        t = time.monotonic()
        state = hub.api("GET", jobs_url("alice", job["id"]), token=token).json()["state"]
        slowest = max(slowest, time.monotonic() - t)
        if state not in ("waiting", "starting", "running"):
            break
        assert time.monotonic() - t0 < 180, "the job did not end"
        time.sleep(0.2)
    print(
        f"\n[gpulab] slowest job status answer during a 30 MB + 300 000-line flood: {slowest:.2f} s"
    )
    assert state == "succeeded" and slowest < 5.0, (state, slowest)
    log = hub.api("GET", jobs_url("alice", job["id"], "log"), token=token).json()
    assert log["lines"][-1] == "end" and len(log["lines"]) <= 200, log["lines"][-3:]
    assert max(len(line) for line in log["lines"]) <= 4096


NOTEBOOK = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    },
    "cells": [
        {
            "cell_type": "code",
            "id": "p",
            "metadata": {"tags": ["parameters"]},
            "source": "lr = 0.1\n",
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "id": "t",
            "metadata": {},
            "source": "import os\nprint(f\"trained with lr={lr} on {os.environ['NVIDIA_VISIBLE_DEVICES']}\")\n",
            "outputs": [],
            "execution_count": None,
        },
    ],
}


def test_a_notebook_runs_as_a_job_with_its_parameters(hub, docker_client, tmp_path):
    import json

    token = hub.user_token("alice")
    write = f"mkdir -p ~/work && cat > ~/work/train.ipynb << 'EOF'\n{json.dumps(NOTEBOOK)}\nEOF"
    made = submit(hub, token, {"command": write})
    assert wait_state(hub, token, made["id"], ("succeeded",))["exit_status"] == 0
    token_file = tmp_path / "token"
    token_file.write_text(token)
    out = client(
        hub,
        token_file,
        "submit",
        "--notebook",
        "work/train.ipynb",
        "-p",
        "lr",
        "0.0003",
        "--follow",
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    job_id = int(re.search(r"job (\d+) submitted", out.stdout).group(1))
    assert f"trained with lr=0.0003 on {GPUS[0]['uuid']}" in out.stdout, out.stdout[-3000:]
    executed = json.loads(home_file(hub, docker_client, "alice", f"work/train.job{job_id}.ipynb"))
    printed = "".join(
        "".join(o.get("text", "")) for cell in executed["cells"] for o in cell.get("outputs", [])
    )
    assert "trained with lr=0.0003" in printed
    shown = hub.api("GET", jobs_url("alice", job_id), token=token).json()
    assert shown["executed_copy"] == f"~/work/train.job{job_id}.ipynb"
    assert shown["parameters"] == {"lr": 0.0003}
