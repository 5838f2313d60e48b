#!/usr/bin/env python3
"""Check gpulab's GPU paths on a real GPU host, without Docker: prints one JSON report.

    python3 scripts/check-gpu-host.py            # from a checkout; needs nvidia-ml-py, nvidia-smi

1. the NVML inventory gpulab builds (gpulab.core.gpus.inventory) against ``nvidia-smi``;
2. the readings source (gpulab.core.gpus.readings.NVMLSource): idle, then under a real load (a
   PyTorch matrix loop, if PyTorch is installed), per GPU and per process, against ``nvidia-smi``;
3. JAX with gpulab's default ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` against JAX's own default
   (if JAX is installed): the process's GPU memory as NVML sees it;
4. what ``gpulab node setup`` would write for this host (daemon.json, the runtime's config.toml);
5. which GPU path ``make test`` would take here (harness/gpuhost.py).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_gpulab():
    """gpulab from this checkout without installing it (the folder spawner/ is the package gpulab)."""
    link_dir = tempfile.mkdtemp(prefix="gpulab-pkg-")
    os.symlink(os.path.join(HERE, "spawner"), os.path.join(link_dir, "gpulab"))
    sys.path[:0] = [link_dir, HERE]


def smi(query, kind="gpu"):
    flag = "--query-gpu" if kind == "gpu" else "--query-compute-apps"
    out = subprocess.run(
        ["nvidia-smi", f"{flag}={query}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        [f.strip() for f in line.split(",")] for line in out.strip().splitlines() if line.strip()
    ]


LOAD = """
import sys, time, torch
a = torch.randn(8192, 8192, device="cuda"); b = torch.randn(8192, 8192, device="cuda")
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    (a @ b).sum().item()
"""

JAX = """
import os, jax, jax.numpy as jnp
x = jnp.ones((1024, 1024)); x.block_until_ready()
print("ready", flush=True)
import time; time.sleep(4)
"""


def process_memory(source, pid):
    for r in source.read():
        for p in r.processes:
            if p.pid == pid:
                return p.memory_used
    return None


def run_with_reading(code, args, env, source, settle=2.0):
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        return proc, None, proc.stderr.read()[-2000:]
    time.sleep(settle)
    return proc, source.read(), None


def main():
    import_gpulab()
    from gpulab.backends.swarm import nodes as nodesetup
    from gpulab.core.gpus.inventory import discover, load_pynvml
    from gpulab.core.gpus.readings import NVMLSource
    from gpulab.core.site.model import gpu_defaults
    from harness import gpuhost

    report = {"host": os.uname().nodename}
    # 1. inventory
    gpus = discover(gpu_defaults(), nvml_loader=load_pynvml)
    smi_gpus = smi("index,uuid,name,memory.total")
    report["inventory"] = [g.as_dict() for g in gpus]
    report["nvidia_smi"] = smi_gpus
    report["inventory_matches_nvidia_smi"] = [
        (str(g.index), g.uuid, g.model, str(g.memory_total // 2**20)) for g in gpus
    ] == [tuple(row) for row in smi_gpus]

    # 2. readings
    source = NVMLSource()
    report["idle"] = [r.as_dict() for r in source.read()]
    try:
        import torch  # noqa: F401

        proc, busy, err = run_with_reading(LOAD, ["6"], dict(os.environ), source)
        smi_apps = smi("pid,used_memory", kind="apps")
        proc.wait(30)
        report["busy"] = [r.as_dict() for r in busy] if busy else err
        if busy:
            mine = [p for r in busy for p in r.processes if p.pid == proc.pid]
            report["busy_check"] = {
                "utilization": [r.utilization for r in busy],
                "load_pid": proc.pid,
                "load_pid_seen_by_nvml": bool(mine),
                "nvml_process_memory_mib": [p.memory_used // 2**20 for p in mine],
                "nvidia_smi_apps": smi_apps,
            }
    except ImportError:
        report["busy"] = "PyTorch not installed: no load test"

    # 3. JAX preallocation
    try:
        import jax  # noqa: F401

        mem = {}
        for label, value in (("gpulab default (false)", "false"), ("JAX default (unset)", None)):
            env = dict(os.environ)
            env.pop("XLA_PYTHON_CLIENT_PREALLOCATE", None)
            if value:
                env["XLA_PYTHON_CLIENT_PREALLOCATE"] = value
            proc, _, err = run_with_reading(JAX, [], env, source, settle=1.0)
            used = process_memory(source, proc.pid)
            proc.kill()
            proc.wait()
            mem[label] = used // 2**20 if used is not None else err
        report["jax_process_memory_mib"] = mem
    except ImportError:
        report["jax_process_memory_mib"] = "JAX not installed"

    # 4. node setup
    report["node_setup"] = {
        "daemon_json": nodesetup.daemon_config({}, gpus),
        "runtime_config": nodesetup.runtime_config(""),
        "labels": nodesetup.node_labels(gpus),
    }
    # 5. make test's GPU path
    report["tools"] = {
        t: shutil.which(t)
        for t in (
            "docker",
            "dockerd",
            "nvidia-container-runtime-hook",
            "nvidia-ctk",
            "nvidia-container-cli",
        )
    }
    hook = shutil.which("nvidia-container-runtime-hook")
    report["make_test_gpu_mode"] = (
        gpuhost.decide({}, hook) if not shutil.which("docker") else gpuhost.mode()
    )
    source.close()
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
