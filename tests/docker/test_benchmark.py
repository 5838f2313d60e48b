"""Small-N runs of the benchmark (the full run is `make bench`): every row is there, and a
baseline that fails is reported without ending the run."""

import json
import math
import os
import subprocess
import sys

from harness.hub import REPO

NO_RATIO = (
    "servers ready",
    "per-user p50 / wall time",
    "API calls failed",
)  # counts and shares: both columns, no ratio
SMALL = [
    "--n",
    "2",
    "--burst",
    "3",
    "--runs",
    "1",
    "--requests",
    "5",
    "--scp-mib",
    "4",
    "--settle",
    "1",
]


def _run(args, timeout=900):
    env = dict(
        os.environ,
        PYTHONPATH=REPO,
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
    )
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("BENCH_JSON "))
    return proc, json.loads(line[len("BENCH_JSON ") :])


def _leftovers(docker_client):
    return [
        c.name
        for c in docker_client.containers.list(all=True)
        if c.name.startswith(("gpulabb-", "stockb-"))
    ]


def test_benchmark_smoke_run(docker_client, tmp_path):
    plot = tmp_path / "burst.png"
    proc, data = _run([*SMALL, "--swarm", "--plot", str(plot)])
    metrics = {r["metric"]: r for r in data["rows"]}
    for key in (
        "single spawn",
        "floor",
        "2 concurrent spawns, wall time",
        "per-user p95",
        "3-user burst: wall time",
        "3-user burst: per-user p50",
        "3-user burst: another user's API call",
        "idle RSS",
        "TensorBoard runs API",
        "TensorBoard plot data",
        "SSH scp",
        "swarm: single spawn",
        "swarm: 2 concurrent",
        "job submit-to-running vs a server spawn",
        "swarm: 2-node gang submit-to-running",
    ):
        rows = [r for m, r in metrics.items() if key in m and not m.endswith(NO_RATIO)]
        assert rows, f"no {key!r} row in {list(metrics)}"
        for row in rows:
            assert row["ratio"] is not None and math.isfinite(row["ratio"]) and row["ratio"] > 0, (
                row
            )
    steps = {m: r for m, r in metrics.items() if m.startswith("swarm phase: ")}
    assert len(steps) == 4, list(metrics)  # hub, Swarm's own, create, ready
    assert all(r["gpulab"] > 0 for r in steps.values()), steps
    ready = metrics["3-user burst: servers ready"]
    assert (ready["stock"], ready["gpulab"]) == (3, 3), ready
    assert 0 < metrics["3-user burst: per-user p50 / wall time"]["gpulab"] <= 1
    failed_calls = metrics["3-user burst: another user's API calls failed"]
    assert (failed_calls["stock"], failed_calls["gpulab"]) == (0, 0), failed_calls
    assert data["failed"] == {}, data["failed"]
    assert "ratio = gpulab / baseline" in proc.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    assert _leftovers(docker_client) == []  # everything the benchmark started is gone


def test_a_failing_baseline_is_reported_and_gpulab_still_measured(docker_client, tmp_path):
    plot = tmp_path / "burst.png"
    proc, data = _run(
        [
            "--n",
            "2",
            "--burst",
            "2",
            "--runs",
            "1",
            "--requests",
            "3",
            "--scp-mib",
            "1",
            "--settle",
            "1",
            "--plot",
            str(plot),
            "--stock-image",
            "localhost/gpulab/no-such-image:bench",
        ]
    )
    metrics = {r["metric"]: r for r in data["rows"]}
    single = metrics["single spawn, POST to ready (median)"]
    assert single["stock"] is None and single["gpulab"] > 0 and single["ratio"] is None, single
    assert metrics["2-user burst: servers ready"]["gpulab"] == 2
    assert "single spawns x1" in data["failed"]["stock"], data["failed"]
    assert "FAILED stock: single spawns x1:" in proc.stdout
    assert "gpulab" not in data["failed"], data["failed"]
    assert plot.exists()
    assert _leftovers(docker_client) == []
