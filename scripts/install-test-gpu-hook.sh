#!/usr/bin/env bash
# Make Docker's GPU request path usable by the tests, without harming a real GPU server.
#
# - A host with the real NVIDIA container toolkit ("real" mode, harness/gpuhost.py): nothing is
#   installed and the Docker daemon is never restarted; the GPU tests use the real GPUs.
# - A CPU-only host ("fixture" mode): the stand-in tests/fixtures/nvidia-container-runtime-hook is
#   put on dockerd's PATH (only where no hook exists at all). dockerd registers its nvidia device
#   driver only at start, so a dockerd that is running without it is restarted once.
# The probe uses localhost/gpulab/base:latest, which `make images` builds on every kind of host.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
image=localhost/gpulab/base:latest
docker image inspect "$image" >/dev/null 2>&1 || { echo "gpu-hook: $image missing; run after the images are built" >&2; exit 1; }

mode=$(cd "$here" && "$python" -m harness.gpuhost mode)
if [ "$mode" = real ]; then
  echo "gpu-hook: a real NVIDIA container runtime is installed: using it (the Docker daemon is left alone)"
  docker run --rm --gpus all --entrypoint /bin/true "$image" \
    || { echo "gpu-hook: docker run --gpus all fails on this GPU host; fix the NVIDIA runtime first" >&2; exit 1; }
  echo "gpu-hook: real GPUs: $(cd "$here" && "$python" -m harness.gpuhost devices)"
  exit 0
fi

if ! command -v nvidia-container-runtime-hook >/dev/null; then
  install -m 0755 "$here/tests/fixtures/nvidia-container-runtime-hook" /usr/local/bin/nvidia-container-runtime-hook
  echo "gpu-hook: installed the test fixture as /usr/local/bin/nvidia-container-runtime-hook"
fi

probe() {  # does dockerd accept a GPU device request?
  docker run --rm --gpus device=GPU-probe --entrypoint /bin/true "$image" >/dev/null 2>&1
}
if probe; then
  echo "gpu-hook: Docker's GPU request path works (test fixture)"
  exit 0
fi
echo "gpu-hook: restarting dockerd once so it registers its nvidia device driver (CPU-only host)"
if [ -d /run/systemd/system ] && systemctl is-active -q docker 2>/dev/null; then
  systemctl restart docker
else
  pkill -x dockerd || true
  for _ in $(seq 1 30); do pgrep -x dockerd >/dev/null || break; sleep 1; done
  nohup dockerd --live-restore >/var/log/gpulab-dockerd.log 2>&1 &
fi
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
probe || { echo "gpu-hook: Docker still refuses GPU requests; see /var/log/gpulab-dockerd.log" >&2; exit 1; }
echo "gpu-hook: Docker's GPU request path works (test fixture)"
