"""A small-N smoke run of the benchmark (the full run is `make bench`)."""

import json
import math
import os
import subprocess
import sys

from harness.hub import REPO


def test_benchmark_smoke_run(docker_client):
    env = dict(os.environ, PYTHONPATH=REPO, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--n", "2", "--runs", "1", "--requests", "5", "--scp-mib", "4", "--settle", "1", "--swarm"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("BENCH_JSON "))
    data = json.loads(line[len("BENCH_JSON ") :])
    metrics = {r["metric"]: r for r in data["rows"]}
    for key in (
        "single spawn",
        "2 concurrent spawns, wall time",
        "per-user p95",
        "idle RSS",
        "floor",
        "TensorBoard",
        "SSH scp",
        "swarm: single spawn",
        "swarm: 2 concurrent",
    ):
        rows = [r for m, r in metrics.items() if key in m]
        assert rows, f"no {key!r} row in {list(metrics)}"
        for row in rows:
            assert math.isfinite(row["ratio"]) and row["ratio"] > 0, row
    assert "ratio = gpulab / baseline" in proc.stdout
    # everything the benchmark started is gone
    leftovers = [c.name for c in docker_client.containers.list(all=True) if c.name.startswith(("gpulabb-", "stockb-"))]
    assert leftovers == []
