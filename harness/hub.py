"""A real JupyterHub process started from the committed jupyterhub_config.py.

The only test-specific settings (a throwaway authenticator, a service token for the
API, unique names and ports) live in a small wrapper config that loads the committed
one first, exactly as an admin's overrides would.
"""

import ipaddress
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

import requests
import yaml

from gpulab.backends import firewall
from gpulab.core import contract

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_IMAGE = os.environ.get("GPULAB_TEST_IMAGE", "localhost/gpulab/base:latest")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_base(span=64):
    """A base for per-user SSH ports (base + user id) whose next ``span`` ports are free,
    below the kernel's ephemeral range so client connections never take them."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral_low = int(f.read().split()[0])
    except (OSError, ValueError):
        ephemeral_low = 32768
    for _ in range(100):
        base = random.randrange(20000, ephemeral_low - span)
        try:
            for port in range(base + 1, base + span):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range for SSH")


def free_subnet(client):
    used = []
    for net in client.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            if cfg.get("Subnet"):
                used.append(ipaddress.ip_network(cfg["Subnet"], strict=False))
    for third in range(200, 250):
        candidate = ipaddress.ip_network(f"172.30.{third}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise RuntimeError("no free 172.30.x.0/24 subnet for the test network")


DUMMY_AUTH = """c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True
"""

TEST_CONFIG = """
c = get_config()  # noqa
load_subconfig({config!r})  # noqa: the committed configuration, unchanged
{auth}c.JupyterHub.services = (list(c.JupyterHub.services) if "services" in c.JupyterHub else []) + [{{"name": "gpulab-test", "api_token": {token!r}}}]
c.JupyterHub.load_roles = list(c.JupyterHub.load_roles) + [{{
    "name": "gpulab-test",
    "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "list:users", "read:users", "proxy", "read:metrics"],
    "services": ["gpulab-test"],
}}]
"""


class HubClient:
    """The hub's REST API as a test uses it (``url``, ``token`` and ``log_tail`` come from the subclass)."""

    def api(self, method, path, token=None, **kw):
        headers = {"Authorization": f"token {token or self.token}"}
        return requests.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kw
        )

    def create_user(self, name):
        r = self.api("POST", f"/users/{requests.utils.quote(name, safe='')}")
        assert r.status_code in (201, 409), r.text
        return self.api("GET", f"/users/{requests.utils.quote(name, safe='')}").json()

    def user_token(self, name):
        r = self.api(
            "POST", f"/users/{requests.utils.quote(name, safe='')}/tokens", json={"note": "test"}
        )
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def spawn(self, name, options=None, timeout=90):
        """POST .../server and wait until ready. Returns seconds from POST to ready."""
        quoted = requests.utils.quote(name, safe="")
        t0 = time.monotonic()
        r = self.api("POST", f"/users/{quoted}/server", json=options or {})
        assert r.status_code in (201, 202), f"{r.status_code} {r.text}\n{self.log_tail()}"
        self.wait_ready(name, timeout)
        return time.monotonic() - t0

    def wait_ready(self, name, timeout=90):
        quoted = requests.utils.quote(name, safe="")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api("GET", f"/users/{quoted}").json().get("servers", {}).get("")
            if server and server.get("ready"):
                return server
            if not server:
                raise AssertionError(
                    f"server for {name} is gone (spawn failed?)\n{self.log_tail()}"
                )
            time.sleep(0.25)
        raise AssertionError(f"server for {name} not ready in {timeout}s\n{self.log_tail()}")

    def stop_server(self, name, timeout=60):
        quoted = requests.utils.quote(name, safe="")
        r = self.api("DELETE", f"/users/{quoted}/server")
        assert r.status_code in (202, 204), r.text
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.api("GET", f"/users/{quoted}").json().get("servers", {}).get(""):
                return
            time.sleep(0.25)
        raise AssertionError(f"server for {name} did not stop")

    def user_url(self, name, path=""):
        """The user's server URL as the hub publishes it (JupyterHub's own escaping; a full URL
        on the user's own host name when the hub gives users subdomains)."""
        server = self.api("GET", f"/users/{requests.utils.quote(name, safe='')}").json()["servers"][
            ""
        ]
        return (server["url"] if "://" in server["url"] else self.url + server["url"]) + path

    def progress(self, name):
        """Events from the hub's real progress stream (server-sent events)."""
        quoted = requests.utils.quote(name, safe="")
        events = []
        with self.api("GET", f"/users/{quoted}/server/progress", stream=True) as r:
            assert r.status_code == 200, r.text
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[5:])
                    events.append(event)
                    if event.get("ready") or event.get("failed"):
                        break
        return events

    def spawn_following_progress(self, name, options=None, timeout=120):
        """POST the spawn in the background and read its progress stream while it is pending.

        Returns (POST status code, events). The hub keeps its default behaviour (the POST
        waits up to 10 s), so validation errors are still answered with 400.
        """
        quoted = requests.utils.quote(name, safe="")
        result = {}
        poster = threading.Thread(
            target=lambda: result.update(
                r=self.api("POST", f"/users/{quoted}/server", json=options or {})
            )
        )
        poster.start()
        deadline = time.monotonic() + 30
        while True:
            server = self.api("GET", f"/users/{quoted}").json().get("servers", {}).get("")
            if server and server.get("pending") == "spawn":
                break
            assert time.monotonic() < deadline, f"spawn of {name} never became pending: {result}"
            time.sleep(0.05)
        events = self.progress(name)
        poster.join(timeout)
        return result["r"].status_code, events


class Hub(HubClient):
    app_module = "gpulab.hub.app"  # how gpulab's hub starts (gpulab up runs the same)

    def __init__(
        self,
        workdir,
        client,
        *,
        site_overrides=None,
        hub_name=None,
        extra_config="",
        site_auth=False,
        subdomains=False,
        release=None,
    ):
        # another release of gpulab (the upgrade test): (python, its tree, its hub module)
        self.python, self.repo, app_module = release or (sys.executable, REPO, None)
        self.app_module = app_module or self.app_module
        self.workdir = str(workdir)
        self.client = client
        self.name = hub_name or "gpulabt-" + secrets.token_hex(3)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16)
        self.password = secrets.token_urlsafe(12)
        self.datasets_dir = os.path.join(self.workdir, "datasets")
        os.makedirs(self.datasets_dir, exist_ok=True)
        with open(os.path.join(self.datasets_dir, "hello.txt"), "w") as f:
            f.write("shared data\n")
        self.site = {
            "hub": {
                "name": self.name,
                "bind_url": self.url,
                "state_dir": os.path.join(self.workdir, "state"),
                "api_port": free_port(),
                "proxy_api_port": free_port(),
                "subnet": free_subnet(client),
                "start_timeout": 90,
            },
            "auth": {"admin_users": ["admin"]},
            "profiles": [
                {
                    "name": "base",
                    "image": BASE_IMAGE,
                    "description": "test",
                    "mem_limit": "2G",
                    "cpu_limit": 1,
                    "shm_size": "256M",
                    "max_gpus": 0,
                },
                {"name": "small", "image": BASE_IMAGE, "description": "test 2", "mem_limit": "1G"},
            ],
            "storage": {
                "datasets": [
                    {"name": "shared", "source": self.datasets_dir, "target": "/datasets/shared"}
                ]
            },
            # per-user SSH ports are port_base + user id: a free random base keeps test hubs apart
            "ssh": {"port_base": free_port_base()},
        }
        if subdomains:
            # each user on <name>.localhost:<port> (RFC 6761: loopback; see harness.localhost); the
            # hub itself on localhost:<port>, where its cookies live
            self.site["hub"]["subdomain_host"] = f"http://localhost:{self.port}"
            self.url = f"http://localhost:{self.port}"
        for key, value in (site_overrides or {}).items():
            self.site[key] = value
        self.site_path = os.path.join(self.workdir, "gpulab.yaml")
        self.config_path = os.path.join(self.workdir, "test_jupyterhub_config.py")
        self.log_path = os.path.join(self.workdir, "hub.log")
        self.proc = None
        self.extra_config = (
            extra_config  # plain traitlets after the committed config, as an admin would add
        )
        self.site_auth = (
            site_auth  # True: the site file's authenticator (native by default), not the test one
        )

    def use_release(self, release=None):
        """Run this deployment (same site file, state, ports and token) with another release of
        gpulab from the next start on: (python, its tree, its hub module), None for this one."""
        self.python, self.repo, app_module = release or (sys.executable, REPO, None)
        self.app_module = app_module or Hub.app_module

    def write_files(self):
        with open(self.site_path, "w") as f:
            yaml.safe_dump(self.site, f)
        with open(self.config_path, "w") as f:
            auth = "" if self.site_auth else DUMMY_AUTH.format(password=self.password)
            f.write(
                TEST_CONFIG.format(
                    config=os.path.join(self.repo, "jupyterhub_config.py"),
                    auth=auth,
                    token=self.token,
                )
            )
            f.write(self.extra_config)

    def env(self):
        env = dict(os.environ, GPULAB_CONFIG=self.site_path, PYTHONPATH=self.repo)
        # its own gpulab first, then this one's (configurable-http-proxy lives in .venv/bin)
        env["PATH"] = os.pathsep.join(
            [os.path.dirname(self.python), os.path.dirname(sys.executable), env.get("PATH", "")]
        )
        return env

    def start(self, timeout=60):
        self.write_files()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [self.python, "-m", self.app_module, "-f", self.config_path],
            cwd=self.workdir,
            env=self.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url + "/hub/api/", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"hub did not answer in {timeout}s:\n{self.log_tail()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self._log.close()

    def kill(self):
        """SIGKILL the hub process alone, as the kernel's OOM killer or a crash would: its proxy
        and the users' containers keep running, nothing is cleaned up; ``start()`` runs it again on
        the same state (site file, state directory, database, ports, token)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc:
            self._log.close()

    def proxy_pid(self):
        """The pid of the configurable-http-proxy the hub started (its pid file in the state dir)."""
        with open(os.path.join(self.site["hub"]["state_dir"], "jupyterhub-proxy.pid")) as f:
            return int(f.read().strip())

    def log_tail(self, n=60):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def why_unreachable(self):
        """When the proxy answers 503 for the hub: is the hub process alive, does its API answer
        on its own address (past the proxy), what did the proxy last fail on, and the log's tail.
        A test that meets a 503 puts this in its failure."""
        lines = []
        if self.proc is None:
            lines.append("the hub was never started")
        elif self.proc.poll() is not None:
            code = self.proc.returncode
            lines.append(
                f"the hub process {self.proc.pid} has exited: "
                + (f"signal {-code}" if code < 0 else f"exit code {code}")
            )
        else:
            lines.append(f"the hub process {self.proc.pid} is running")
        log = self.log_tail(100000)  # read once: the address, the proxy's failures, the tail
        address = re.search(r"Hub API listening on (http://[^ ]+?)/hub/", log)
        if address:
            try:
                r = requests.get(address.group(1) + "/hub/api/", timeout=5)
                lines.append(f"its API at {address.group(1)} answers {r.status_code} directly")
            except requests.RequestException as e:
                lines.append(f"its API at {address.group(1)} does not answer directly: {e}")
        failures = [line for line in log.splitlines() if "[ConfigProxy]" in line and "503" in line]
        if failures:
            lines.append(f"the proxy's first 503: {failures[0][-300:]}")
        return "\n".join(lines) + "\nthe hub's log ends:\n" + "".join(log.splitlines(True)[-40:])

    # --- Docker objects of this deployment ---

    def containers(self, username=None):
        filters = [contract.deployment_filter(self.name)]
        if username:
            filters.append(f"{contract.L_USER}={username}")
        return self.client.containers.list(all=True, filters={"label": filters})

    def volumes(self, username=None):
        """All volumes of the deployment (or of one user: home, SSH host keys, ...)."""
        filters = [contract.deployment_filter(self.name)]
        if username:
            filters.append(f"{contract.L_USER}={username}")
        return self.client.volumes.list(filters={"label": filters})

    def home_volumes(self, username):
        return [
            v
            for v in self.volumes(username)
            if contract.L_SSH_HOST_KEYS not in (v.attrs.get("Labels") or {})
        ]

    def cleanup(self):
        """Remove what this hub made. A container or volume that went away meanwhile (a spawner
        removing it, a removal already under way) is not an error."""
        import docker.models.containers

        for item in [*self.containers(), *self.volumes()]:
            try:
                if isinstance(item, docker.models.containers.Container):
                    item.remove(force=True, v=True)
                else:
                    item.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                if e.status_code != 409:  # "removal already in progress"
                    raise
        # saved environments of this hub (their untagged parents go with them)
        for image in self.client.images.list(filters={"label": f"gpulab.deployment={self.name}"}):
            for tag in image.tags:
                try:
                    self.client.images.remove(tag, force=True)
                except docker.errors.NotFound:
                    pass
        for n in self.client.networks.list(names=[self.name]):
            if n.name == self.name:
                firewall.remove(self.name, firewall.bridge_of(n))
                n.remove()
