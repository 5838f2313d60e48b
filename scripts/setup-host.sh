#!/usr/bin/env bash
# Make a Debian 12 host ready for gpulab: Docker engine (installed and running),
# debootstrap, Python venv support, Node.js for the proxy, OpenSSH client,
# Chromium + chromedriver for the browser test, Prometheus for the metrics test, Xvfb and rsync
# for the SSH tests.
# Idempotent; never replaces what is already there. Needs root.
set -euo pipefail

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v ssh >/dev/null || need+=(openssh-client)
command -v docker-registry >/dev/null || need+=(docker-registry)   # a real registry for the pull and multi-host tests
[ -x /usr/bin/chromium ] || need+=(chromium)               # the browser test (tests/docker/test_browser.py)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
command -v Xvfb >/dev/null || need+=(xvfb)                  # ssh -X test: a local X server
command -v xauth >/dev/null || need+=(xauth)
command -v rsync >/dev/null || need+=(rsync)                # rsync over SSH test
[ -x /usr/bin/prometheus ] || need+=(prometheus)           # scrapes the hub's metrics (tests/docker/test_reclaim.py)
command -v tar >/dev/null || need+=(tar)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-host: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ] && systemctl start docker 2>/dev/null; then
    echo "setup-host: started docker.service"
  else
    echo "setup-host: starting dockerd (log: /var/log/gpulab-dockerd.log)"
    nohup dockerd --live-restore >/var/log/gpulab-dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "setup-host: the Docker engine did not come up; see /var/log/gpulab-dockerd.log" >&2; exit 1; }
fi
echo "setup-host: Docker engine $(docker version --format '{{.Server.Version}}') is running"
