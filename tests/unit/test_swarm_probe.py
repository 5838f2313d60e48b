"""gpulab check's probe on every Swarm node (gpulab.backends.swarm.probe): the script run here as
Python runs it on a node, its answer read back, and each finding in words."""

import json
import subprocess
import sys

from gpulab.backends.swarm import probe


def run_probe(tmp_path, *marker):
    r = subprocess.run(
        [sys.executable, "-IS", "-c", probe.PROBE, json.dumps([]), "NODE_NAME", *marker],
        env={"NODE_NAME": "w2"},
        capture_output=True,
        text=True,
        check=True,
    )
    return probe.findings(r.stdout)["w2"]


def test_the_probe_sees_the_managers_marker_through_the_shared_storage(tmp_path):
    (tmp_path / ".gpulab-check-1").write_text("x")
    seen = run_probe(tmp_path, str(tmp_path / ".gpulab-check-1"))
    assert seen["shared"] is True and probe.problems({**seen, "no_new_privs": "1"}) == []
    missing = run_probe(tmp_path, str(tmp_path / ".gpulab-check-2"))
    (problem,) = probe.problems({**missing, "no_new_privs": "1"}, "/srv/gpulab")
    assert "/srv/gpulab is not the lab's shared storage" in problem
    assert run_probe(tmp_path)["shared"] is None, "not asked: not judged"


def test_the_probe_job_mounts_the_shared_root_read_only_only_when_asked():
    from gpulab.core.spec import Hardening

    kw = dict(deployment="lab", image="img", network="lab-net", targets=["10.0.0.1:2377"])
    job = probe.probe_job(**kw, hardening=Hardening(4096, "10m", 3))
    assert job.mounts == () and len(job.command) == 6
    job = probe.probe_job(
        **kw, hardening=Hardening(4096, "10m", 3), shared_root="/srv/gpulab", marker=".m"
    )
    (m,) = job.mounts
    assert (m.source, m.target, m.read_only) == ("/srv/gpulab", probe.SHARED, True)
    assert job.command[-1] == f"{probe.SHARED}/.m"
