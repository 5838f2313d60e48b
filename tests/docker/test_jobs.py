"""Every container gpulab runs that is not a user's server goes through one door, ``run_job``:
a home backup, its restore and the archive of a deleted user's home run held like a server
(seen in ``docker inspect`` while they run), end, and leave nothing behind."""

import asyncio
import threading
import time

import docker
import pytest
import requests

from gpulab.backends import container
from gpulab.core import contract
from gpulab.core.job import build_job
from gpulab.core.spec import Hardening
from harness.hub import BASE_IMAGE

HARDENING = Hardening(pids_limit=300, log_max_size=1024**2, log_max_files=2)


class JobWatcher:
    """Inspect every job container of a deployment while it exists (polled every 20 ms)."""

    def __init__(self, client, deployment, kind):
        self.client, self.filters = (
            client,
            {"label": [contract.deployment_filter(deployment), f"{contract.L_JOB}={kind}"]},
        )
        self.seen = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        api = self.client.api
        while not self._stop.is_set():
            for c in api.containers(all=True, filters=self.filters):
                if c["Id"] not in self.seen:
                    try:
                        self.seen[c["Id"]] = api.inspect_container(c["Id"])
                    except docker.errors.NotFound:
                        pass
            time.sleep(0.02)

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        return list(self.seen.values())


def assert_held(info, capabilities, network="none"):
    hc = info["HostConfig"]
    assert hc["CapDrop"] == ["ALL"] and sorted(
        c.removeprefix("CAP_") for c in hc["CapAdd"]
    ) == sorted(capabilities), hc
    assert "no-new-privileges:true" in hc["SecurityOpt"] and hc["PidsLimit"] == 4096, hc
    assert hc["Memory"] == 1024**3 and hc["NanoCpus"] in (0, None) and hc["CpuQuota"] == 100_000, hc
    assert hc["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-file": "3", "max-size": str(20 * 1024**2)},
    }, hc
    assert hc["NetworkMode"] == network and not hc.get("PortBindings"), hc
    assert hc.get("Privileged") is False and not hc.get("Devices") and not hc.get("DeviceRequests")


def big_home(hub, name):
    """A home worth a few seconds of gzip, so its jobs can be watched while they run."""
    (c,) = [c for c in hub.containers(name) if c.status == "running"]
    code, out = c.exec_run(
        ["sh", "-c", "head -c 120000000 /dev/urandom > ~/big.bin && echo ok > ~/small.txt"],
        user=c.labels["gpulab.uid"],
    )
    assert code == 0, out
    return c


def wait_job(hub, name, kind, timeout=300):
    token = hub.user_token(name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(
            f"{hub.url}/hub/api/gpulab/users/{name}/home-backups",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        ).json()
        if job["job"] and job["job"]["kind"] == kind and job["job"]["state"] != "running":
            assert job["job"]["state"] == "done", job
            return job
        time.sleep(0.3)
    raise AssertionError(f"the {kind} did not finish")


def test_home_backup_and_restore_run_held_and_leave_nothing(make_hub, docker_client, tmp_path):
    hub = make_hub({"storage": {"backups": str(tmp_path / "nas")}})
    hub.create_user("jo")
    hub.spawn("jo")
    c = big_home(hub, "jo")
    auth = {"Authorization": f"token {hub.user_token('jo')}"}

    watch = JobWatcher(docker_client, hub.name, "backup")
    r = requests.post(f"{hub.url}/hub/api/gpulab/users/jo/home-backups", headers=auth, timeout=30)
    assert r.status_code == 202, r.text
    listed = wait_job(hub, "jo", "backup")
    (backup,) = watch.stop()
    assert_held(backup, ["DAC_READ_SEARCH"])
    assert backup["Config"]["User"] == "0" and backup["Config"]["Labels"][contract.L_USER] == "jo"
    assert {m["Destination"]: m["RW"] for m in backup["Mounts"]} == {
        "/home-src": False,
        "/backup": True,
    }

    watch = JobWatcher(docker_client, hub.name, "restore")
    archive = listed["archives"][0]["name"]
    r = requests.post(
        f"{hub.url}/hub/api/gpulab/users/jo/home-backups/{archive}/restore",
        headers=auth,
        timeout=30,
    )
    assert r.status_code == 202, r.text
    done = wait_job(hub, "jo", "restore")
    (restore,) = watch.stop()
    # a restore reads the archive as root and unpacks it as the user (setpriv), never chowning
    assert_held(restore, ["DAC_READ_SEARCH", "SETGID", "SETUID"])
    assert {m["Destination"]: m["RW"] for m in restore["Mounts"]} == {
        "/home-dst": True,
        "/backup": False,
    }
    code, out = c.exec_run(
        ["cat", f"/home/jo/{done['job']['target']}/small.txt"], user=c.labels["gpulab.uid"]
    )
    assert code == 0 and out == b"ok\n", out
    jobs = docker_client.containers.list(
        all=True, filters={"label": [contract.deployment_filter(hub.name), contract.L_JOB]}
    )
    assert jobs == [], "every job container is removed"
    hub.stop_server("jo")


def test_deleting_a_user_archives_the_home_through_a_held_job(make_hub, docker_client):
    hub = make_hub()
    hub.create_user("kim")
    hub.spawn("kim")
    big_home(hub, "kim")
    hub.stop_server("kim")
    watch = JobWatcher(docker_client, hub.name, "archive")
    r = hub.api("DELETE", "/users/kim")
    assert r.status_code == 204, r.text
    (archive,) = watch.stop()
    assert_held(archive, ["DAC_READ_SEARCH"])
    assert (
        archive["Config"]["Cmd"][:2] == ["tar", "-C"]
        and archive["Config"]["Labels"][contract.L_USER] == "kim"
    )
    assert (
        hub.volumes("kim") == []
        and docker_client.containers.list(
            all=True, filters={"label": [contract.L_JOB + "=archive"]}
        )
        == []
    )


def test_a_job_that_runs_too_long_is_stopped_and_removed(docker_client):
    job = build_job(
        deployment="gpulabt-jobs",
        name="gpulabt-jobs-sleep",
        kind="backup",
        image=BASE_IMAGE,
        command=["sh", "-c", "echo started; sleep 60"],
        hardening=HARDENING,
        timeout=2,
    )
    lines = []
    began = time.monotonic()
    result = asyncio.run(container.run_job(docker_client.api, job, on_line=lines.append))
    assert result.timed_out and result.status is None and not result.ok
    assert time.monotonic() - began < 20 and lines == ["started"] and "started" in result.output
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get("gpulabt-jobs-sleep")


def test_a_failing_job_reports_its_status_and_output(docker_client):
    job = build_job(
        deployment="gpulabt-jobs",
        name="gpulabt-jobs-fail",
        kind="backup",
        image=BASE_IMAGE,
        command=["sh", "-c", "echo no space left >&2; exit 3"],
        hardening=HARDENING,
        timeout=60,
    )
    result = asyncio.run(container.run_job(docker_client.api, job))
    assert result.status == 3 and not result.ok and "no space left" in result.output
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get("gpulabt-jobs-fail")
