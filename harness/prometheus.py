"""A real Prometheus (Debian's ``prometheus`` package) scraping a target every second, on a free
127.0.0.1 port with its own data directory; queried through its HTTP API."""

import os
import subprocess
import time
from urllib.parse import urlparse

import requests
import yaml

from .hub import free_port

PROMETHEUS = os.environ.get("GPULAB_PROMETHEUS", "/usr/bin/prometheus")


class Prometheus:
    def __init__(self, workdir, *, target, metrics_path, token):
        self.workdir = str(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        u = urlparse(target)
        token_file = os.path.join(self.workdir, "token")
        with open(token_file, "w") as f:
            f.write(token)
        os.chmod(token_file, 0o600)
        self.config = os.path.join(self.workdir, "prometheus.yml")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "gpulab",
                    "metrics_path": metrics_path,
                    "scheme": u.scheme,
                    "authorization": {"type": "Bearer", "credentials_file": token_file},
                    "static_configs": [{"targets": [u.netloc]}],
                }
            ],
        }
        with open(self.config, "w") as f:
            yaml.safe_dump(config, f)
        self.proc = None
        self.log_path = os.path.join(self.workdir, "prometheus.log")

    def __enter__(self):
        if not os.access(PROMETHEUS, os.X_OK):
            raise AssertionError(
                f"{PROMETHEUS} is missing: apt-get install prometheus (scripts/setup-host.sh does)"
            )
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.config}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={os.path.join(self.workdir, 'data')}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/-/ready", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise AssertionError(f"Prometheus did not start:\n{self.log_tail()}")

    def __exit__(self, *exc):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self._log.close()

    def log_tail(self, n=30):
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def targets_up(self):
        r = requests.get(self.url + "/api/v1/targets", timeout=10).json()
        return [t for t in r["data"]["activeTargets"] if t["health"] == "up"]

    def value(self, query):
        """The query's single value now (None when it has no result)."""
        r = requests.get(self.url + "/api/v1/query", params={"query": query}, timeout=10)
        r.raise_for_status()
        result = r.json()["data"]["result"]
        if not result:
            return None
        return float(result[0]["value"][1])
