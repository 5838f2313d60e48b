"""The real OpenSSH client (Debian's openssh-client) driven from tests, plus hub page helpers."""

import html
import os
import re
import subprocess
import sys

import requests

GPULAB_CLIENT = os.path.join(os.path.dirname(sys.executable), "gpulab-client")


def keygen(path, kind="ed25519", bits=None):
    args = [
        "ssh-keygen",
        "-q",
        "-t",
        kind,
        "-N",
        "",
        "-C",
        f"test-{os.path.basename(path)}",
        "-f",
        str(path),
    ]
    if bits:
        args += ["-b", str(bits)]
    subprocess.run(args, check=True)
    with open(f"{path}.pub") as f:
        return f.read().strip()


class SSH:
    """ssh/scp with a private known_hosts; ``direct(port)`` or ``via_hub(hub_url, user, token_file)``."""

    def __init__(self, workdir, key=None):
        self.known_hosts = os.path.join(workdir, "known_hosts")
        self.key = key

    def options(self, strict="accept-new", password=False):
        opts = [
            "-F",
            "/dev/null",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            f"StrictHostKeyChecking={strict}",
            "-o",
            "ConnectTimeout=20",
            "-o",
            "LogLevel=ERROR",
        ]
        if password:
            return opts + [
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "NumberOfPasswordPrompts=1",
            ]
        return opts + [
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "PreferredAuthentications=publickey",
            "-i",
            str(self.key),
        ]

    @staticmethod
    def direct(port):
        return ["-o", f"Port={port}", "-o", f"HostKeyAlias=gpulab-{port}"], "127.0.0.1"

    @staticmethod
    def via_hub(hub_url, user, token_file, alias, client=None):
        """``alias``: the user's direct port, so both ways share one known_hosts entry (same
        container). ``client``: a gpulab-client other than this checkout's (the hub's own)."""
        proxy = f"{client or GPULAB_CLIENT} ssh-proxy --hub {hub_url} --user {user} --token-file {token_file}"
        return ["-o", f"ProxyCommand={proxy}", "-o", f"HostKeyAlias=gpulab-{alias}"], "gpulab-hub"

    def run(self, way, login, *command, strict="accept-new", password=None, timeout=180):
        extra, host = way
        env = dict(os.environ)
        if password is not None:
            askpass = os.path.join(os.path.dirname(self.known_hosts), "askpass.sh")
            with open(askpass, "w") as f:
                f.write("#!/bin/sh\nprintf '%s\\n' \"$GPULAB_TEST_PASSWORD\"\n")
            os.chmod(askpass, 0o700)
            env.update(
                SSH_ASKPASS=askpass,
                SSH_ASKPASS_REQUIRE="force",
                DISPLAY=":0",
                GPULAB_TEST_PASSWORD=password,
            )
        args = [
            "ssh",
            *self.options(strict, password is not None),
            *extra,
            f"{login}@{host}",
            "--",
            *command,
        ]
        return subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
        )

    def popen(self, way, login, *command):
        extra, host = way
        return subprocess.Popen(
            ["ssh", *self.options(), *extra, f"{login}@{host}", "--", *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def scp(self, way, login, src, dest, timeout=600):
        extra, _host = way
        host = "127.0.0.1" if "Port=" in " ".join(extra) else "gpulab-hub"
        # scp wants -P for the port; -o Port works too
        args = ["scp", "-q", *self.options(), *extra, str(src), f"{login}@{host}:{dest}"]
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def host_key_fingerprints(port):
    scan = subprocess.run(
        ["ssh-keyscan", "-p", str(port), "-t", "ed25519,ecdsa,rsa", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    fps = subprocess.run(
        ["ssh-keygen", "-lf", "-"], input=scan.stdout, capture_output=True, text=True
    )
    return sorted(line.split()[1] for line in fps.stdout.splitlines())


class Browser:
    """A logged-in browser session on the hub (cookie + xsrf), for the SSH page."""

    def __init__(self, hub, name):
        self.hub = hub
        self.s = requests.Session()
        self.s.get(hub.url + "/hub/login", timeout=30)
        r = self.s.post(
            hub.url + "/hub/login",
            data={
                "username": name,
                "password": hub.password,
                "_xsrf": self.s.cookies.get("_xsrf", ""),
            },
            timeout=30,
        )
        assert r.status_code == 200 and "/hub/login" not in r.url, (r.status_code, r.url)

    def page(self):
        return self._get().text

    def cookies(self):
        """Every cookie of the session, by name. The hub and its per-user subdomains are all on
        this machine; Python's cookie jar never returns a Domain=localhost cookie (the session
        id of a subdomain hub) to "localhost", as a browser would, so it is sent explicitly."""
        return {c.name: c.value for c in self.s.cookies}

    def _get(self):
        r = self.s.get(self.hub.url + "/hub/ssh", cookies=self.cookies(), timeout=30)
        assert r.status_code == 200, r.text
        return r

    def post(self, **form):
        r = self._get()
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', r.text).group(1)
        return self.s.post(
            self.hub.url + "/hub/ssh",
            data={"_xsrf": xsrf, **form},
            cookies=self.cookies(),
            timeout=60,
        )


def messages(page, kind):
    return [
        html.unescape(m.strip())
        for m in re.findall(rf'class="alert [^"]* gpulab-{kind}"[^>]*>(.*?)</div>', page, re.S)
    ]
