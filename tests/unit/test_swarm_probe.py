"""gpulab check's probe on every Swarm node (gpulab.backends.swarm.probe): the script run here as
Python runs it on a node, its answer read back, and each finding in words."""

import json
import subprocess
import sys

from gpulab.backends.swarm import probe
from gpulab.core.spec import Hardening


def test_the_probe_answers_for_its_node():
    r = subprocess.run(
        [sys.executable, "-IS", "-c", probe.PROBE, json.dumps([]), "NODE_NAME"],
        env={"NODE_NAME": "w2"},
        capture_output=True,
        text=True,
        check=True,
    )
    answer = probe.findings(r.stdout)["w2"]
    assert answer["reached"] == [] and answer["no_new_privs"] in ("0", "1")
    assert probe.problems({**answer, "no_new_privs": "1"}) == []


def test_the_probe_job_mounts_the_managers_marker_only_when_asked():
    kw = dict(deployment="lab", image="img", network="lab-net", targets=["10.0.0.1:2377"])
    job = probe.probe_job(**kw, hardening=Hardening(4096, "10m", 3))
    assert job.mounts == ()
    job = probe.probe_job(
        **kw, hardening=Hardening(4096, "10m", 3), shared_root="/srv/gpulab/", marker=".m"
    )
    (m,) = job.mounts
    assert (m.source, m.target, m.read_only) == ("/srv/gpulab/.m", probe.SHARED, True)
    assert "/srv/gpulab is not the lab's shared storage" in probe.without_shared_storage(
        "/srv/gpulab"
    )
