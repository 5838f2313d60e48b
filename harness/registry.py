"""A real image registry for the tests: Debian's ``docker-registry`` (Distribution 2.8) on 127.0.0.1.

Docker treats registries on 127.0.0.0/8 as insecure-allowed, so plain HTTP works without
changing the daemon's configuration. A lab's registry (the Swarm tests') serves TLS and asks for
a login (htpasswd, bcrypt), as a lab's should: anyone who can push can change what nodes run.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import requests

from .hub import free_port

BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


class Registry:
    def __init__(self, host="127.0.0.1", port=None, tls=None, users=None):
        """``tls``: (certificate, key) paths to serve HTTPS (a lab registry); plain HTTP otherwise.
        ``users``: {name: password} who may log in (pull and push); anyone, without it."""
        self.host = host
        self.port = port or free_port()
        self.address = f"{host}:{self.port}"
        self.dir = tempfile.mkdtemp(prefix="gpulab-registry-")
        self.proc = None
        self.tls = tls
        self.users = dict(users or {})

    def start(self, timeout=30):
        if not os.access(BINARY, os.X_OK):
            raise AssertionError(
                f"{BINARY} is missing: apt-get install docker-registry (scripts/setup-host.sh does)"
            )
        config = os.path.join(self.dir, "config.yml")
        auth = ""
        if self.users:
            import bcrypt

            htpasswd = os.path.join(self.dir, "htpasswd")
            with open(htpasswd, "w") as f:
                for name, password in self.users.items():
                    f.write(
                        f"{name}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=6)).decode()}\n"
                    )
            auth = f"auth: {{htpasswd: {{realm: gpulab-test, path: {htpasswd}}}}}\n"
        with open(config, "w") as f:
            f.write(
                "version: 0.1\nlog: {level: warn}\n"
                f"storage: {{filesystem: {{rootdirectory: {self.dir}/data}}, delete: {{enabled: true}}}}\n"
                f"http: {{addr: {self.address}"
                + (f", tls: {{certificate: {self.tls[0]}, key: {self.tls[1]}}}" if self.tls else "")
                + "}\n"
                + auth
            )
        self.log = open(os.path.join(self.dir, "registry.log"), "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [BINARY, "serve", config], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                scheme = "https" if self.tls else "http"
                if requests.get(
                    f"{scheme}://{self.address}/v2/", timeout=1, verify=False
                ).status_code in (200, 401):
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"the registry did not answer on {self.address}")

    def down(self):
        """The registry goes down (its process ends) but keeps its data, address, TLS and users:
        :meth:`up` brings the same registry back."""
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None
            self.log.close()

    def pause(self):
        """The registry stops answering (SIGSTOP) but keeps its connections open: a push hangs."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def up(self, timeout=30):
        """The same registry again, after :meth:`down`: same port, data, TLS and users."""
        if self.proc is None:
            self.start(timeout)
        return self

    def stop(self):
        self.down()
        shutil.rmtree(self.dir, ignore_errors=True)
