#!/usr/bin/env bash
# For tests on CPU-only hosts: make Docker's real GPU request path available by putting
# the fixture tests/fixtures/nvidia-container-runtime-hook on dockerd's PATH.
# Never replaces a real hook. dockerd registers its nvidia driver only at start, so
# dockerd is restarted once if it is running without the driver.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if command -v nvidia-container-runtime-hook >/dev/null; then
  real=$(command -v nvidia-container-runtime-hook)
  if ! grep -q "TEST FIXTURE" "$real" 2>/dev/null; then
    echo "gpu-hook: a real $real exists; leaving it alone"
  fi
else
  install -m 0755 "$here/tests/fixtures/nvidia-container-runtime-hook" /usr/local/bin/nvidia-container-runtime-hook
  echo "gpu-hook: installed the test fixture as /usr/local/bin/nvidia-container-runtime-hook"
fi

probe() {  # does dockerd accept a GPU device request?
  docker run --rm --gpus device=GPU-probe --entrypoint /bin/true gpulab/bootstrap:bookworm >/dev/null 2>&1
}
image=gpulab/bootstrap:bookworm
docker image inspect "$image" >/dev/null 2>&1 || { echo "gpu-hook: $image missing; run after the images are built" >&2; exit 1; }
if probe; then
  echo "gpu-hook: Docker's GPU request path works"
  exit 0
fi
if [ -d /run/systemd/system ] && systemctl is-active -q docker 2>/dev/null; then
  systemctl restart docker
else
  echo "gpu-hook: restarting dockerd so it registers its nvidia device driver"
  pkill -x dockerd || true
  for _ in $(seq 1 30); do pgrep -x dockerd >/dev/null || break; sleep 1; done
  nohup dockerd --live-restore >/var/log/gpulab-dockerd.log 2>&1 &
fi
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
probe || { echo "gpu-hook: Docker still refuses GPU requests; see /var/log/gpulab-dockerd.log" >&2; exit 1; }
echo "gpu-hook: Docker's GPU request path works"
