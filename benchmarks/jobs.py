"""GPU jobs against servers, measured in one run on this machine (``make bench``).

* **one host**: a 1-GPU job, submit to running (its container started), against a 1-GPU server,
  POST to ready, on the same gpulab hub (one made-up GPU with the test hook), ``--runs`` times each;
* **a Swarm** (with ``--swarm``, in :mod:`benchmarks.swarm`): a 2-node gang against a 1-node job.

Every ratio is job / server (or gang / 1-node job), both measured in this run.
"""

import statistics
import sys
import tempfile
import time
import traceback

from benchmarks.hubs import GpulabHub
from benchmarks.spawning import spawn_and_wait
from harness import gpuhost
from harness.hub import BASE_IMAGE


def submit_to_running(hub, token, user, body, timeout=300):
    """Seconds from the job's POST to its state "running"; the job is then cancelled and waited for."""
    t0 = time.monotonic()
    r = hub.api("POST", f"/gpulab/users/{user}/jobs", token=token, json=body)
    if r.status_code != 201:
        raise RuntimeError(f"job submit: {r.status_code} {r.text[:300]}")
    job_id = r.json()["id"]
    url = f"/gpulab/users/{user}/jobs/{job_id}"
    deadline = t0 + timeout
    while True:
        state = hub.api("GET", url, token=token).json()["state"]
        if state == "running":
            took = time.monotonic() - t0
            break
        if state not in ("waiting", "starting") or time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} is {state}")
        time.sleep(0.02)
    hub.api("DELETE", url, token=token)
    while hub.api("GET", url, token=token).json()["state"] in ("waiting", "starting", "running"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} did not stop")
        time.sleep(0.2)
    return took


def measure(client, args):
    out = {"errors": {}}
    with tempfile.TemporaryDirectory(prefix="gpulab-bench-jobs-") as workdir:
        hub = GpulabHub(workdir, client)
        hub.site["gpus"] = {"devices": gpuhost.devices()[:1]}
        hub.site["profiles"] = [
            {"name": "gpu", "image": BASE_IMAGE, "gpus": 1, "max_gpus": 1, "description": "bench"}
        ]
        try:
            hub.start(timeout=120)
            hub.create_user("jobs")
            token = hub.user_token("jobs")
            out["server"], out["job"] = [], []
            for i in range(args.runs):  # interleaved: both see the same machine
                out["server"].append(spawn_and_wait(hub, "jobs", {"profile": "gpu"}))
                hub.stop_server("jobs", timeout=120)
                body = {"command": ["sleep", "600"], "gpus": 1, "name": f"bench {i}"}
                out["job"].append(submit_to_running(hub, token, "jobs", body))
        except Exception as e:
            out["errors"]["jobs"] = (
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            )
            traceback.print_exc(file=sys.stderr)
        finally:
            hub.stop()
            hub.cleanup()
    return out


def rows(jobs):
    server = statistics.median(jobs["server"]) if jobs.get("server") else None
    job = statistics.median(jobs["job"]) if jobs.get("job") else None
    spread = f" (job runs: {', '.join(f'{t:.2f}' for t in jobs['job'])})" if jobs.get("job") else ""
    return [
        {
            "metric": f"job submit-to-running vs a server spawn, 1 GPU, median{spread}",
            "stock": server,
            "gpulab": job,
            "ratio": job / server if job and server else None,
            "unit": "s",
        }
    ]
