"""Which GPU path the Docker tests use on this host.

* **real**: the host has the NVIDIA container toolkit (Docker lists an ``nvidia`` runtime, or a
  ``nvidia-container-runtime-hook`` that is not gpulab's test fixture is installed). The tests
  then use the real GPUs (NVML) through the real runtime, and nothing touches the Docker daemon.
* **fixture**: a CPU-only host. ``tests/fixtures/nvidia-container-runtime-hook`` (a stand-in that
  only succeeds) makes Docker's GPU request path work, and the tests use three made-up GPUs.

``python -m harness.gpuhost mode`` prints the mode (``scripts/install-test-gpu-hook.sh`` uses it);
``python -m harness.gpuhost devices`` prints the GPUs the tests will list, as JSON.
"""

import json
import os
import shutil
import subprocess
import sys

FIXTURE_MARK = "TEST FIXTURE"
FAKE_GPUS = [
    {"index": i, "uuid": f"GPU-test-{i}", "model": "Test GPU", "memory": "16G"} for i in range(3)
]


def is_fixture(path):
    try:
        with open(path, errors="replace") as f:
            return FIXTURE_MARK in f.read(4096)
    except OSError:
        return False


def docker_runtimes():
    proc = subprocess.run(
        ["docker", "info", "--format", "{{json .Runtimes}}"], capture_output=True, text=True
    )
    try:
        return json.loads(proc.stdout) or {}
    except ValueError:
        return {}


def decide(runtimes, hook_path):
    """'real' when a real NVIDIA toolkit is there, else 'fixture'. Pure: the inputs are read by the caller."""
    if "nvidia" in runtimes:
        return "real"
    if hook_path and not is_fixture(hook_path):
        return "real"
    return "fixture"


def mode():
    forced = os.environ.get("GPULAB_TEST_GPU_MODE")
    if forced in ("real", "fixture"):
        return forced
    return decide(docker_runtimes(), shutil.which("nvidia-container-runtime-hook"))


def devices(nvml_loader=None):
    """The ``gpus.devices`` list for test site files: real GPUs from NVML, or the three fakes."""
    if mode() == "fixture":
        return [dict(g) for g in FAKE_GPUS]
    from gpulab.core.gpus.inventory import from_nvml, load_pynvml

    nvml = (nvml_loader or load_pynvml)()
    if nvml is None:
        raise RuntimeError(
            "this host has a real NVIDIA runtime but NVML does not answer; see nvidia-smi"
        )
    return [
        {"index": g.index, "uuid": g.uuid, "model": g.model, "memory": g.memory_total}
        for g in from_nvml(nvml)
    ]


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "mode"
    print(mode() if what == "mode" else json.dumps(devices()))
