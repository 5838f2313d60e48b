"""Measurements beyond spawning: idle memory, TensorBoard latency, SSH throughput."""

import os
import tempfile
import time

import requests

from tests.docker.sshtools import SSH, keygen


def _container(hub, name):
    (c,) = hub.containers(name)
    return c


def idle_rss(hub, client, name, settle=5):
    """Resident memory of one idle user container (Jupyter server + sshd + anything else), bytes."""
    time.sleep(settle)
    c = _container(hub, name)
    mem = client.api.stats(c.id, stream=False)["memory_stats"]
    stats = mem.get("stats", {})
    if "rss" in stats:  # cgroup v1
        return stats["rss"]
    return mem["usage"] - stats.get("inactive_file", 0)  # cgroup v2


def ssh_throughput(hub, name, mib):
    """scp of one file of ``mib`` MiB over the direct port and through the hub; MiB/s each."""
    work = tempfile.mkdtemp(prefix="bench-ssh-")
    token = hub.user_token(name)
    token_file = os.path.join(work, "token")
    with open(token_file, "w") as f:
        f.write(token)
    pub = keygen(os.path.join(work, "key"))
    r = requests.post(hub.url + "/hub/api/gpulab/ssh/keys", json={"key": pub}, headers={"Authorization": f"token {token}"}, timeout=30)
    r.raise_for_status()
    port = int(_container(hub, name).attrs["HostConfig"]["PortBindings"]["22/tcp"][0]["HostPort"])
    src = os.path.join(work, "payload.bin")
    with open(src, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(2**20))
    ssh = SSH(work, os.path.join(work, "key"))
    login = _container(hub, name).attrs["Config"]["Env"]
    login = next(e.split("=", 1)[1] for e in login if e.startswith("NB_USER="))
    speeds = {}
    for label, way in (("direct", SSH.direct(port)), ("hub", SSH.via_hub(hub.url, name, token_file, port))):
        t0 = time.monotonic()
        result = ssh.scp(way, login, src, "bench-payload.bin", timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"scp {label} failed: {result.stderr}")
        speeds[label] = mib / (time.monotonic() - t0)
    ssh.run(SSH.direct(port), login, "rm", "-f", "bench-payload.bin")
    return speeds


def measure_gpulab_extras(hub, client, name, args):
    speeds = ssh_throughput(hub, name, args.scp_mib)
    ssh_rows = [{"metric": f"SSH scp {args.scp_mib} MiB: direct port vs through the hub", "stock": speeds["direct"], "gpulab": speeds["hub"],
                 "ratio": speeds["hub"] / speeds["direct"], "unit": "MiB/s"}]
    return {"ssh": ssh_rows}
