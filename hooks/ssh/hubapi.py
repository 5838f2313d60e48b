"""Shared by the container's SSH helper scripts: ask the hub, with this server's token."""

import json
import urllib.request

CONF = "/run/gpulab/ssh"  # a tmpfs, written by start.d/30-sshd.sh


def settings():
    with open(f"{CONF}/settings.json") as f:
        return json.load(f)


def request(path, *, method="GET", body=None, timeout=10):
    with open(f"{CONF}/token") as f:
        token = f.read().strip()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        settings()["api_url"].rstrip("/") + path,
        data=data,
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()
