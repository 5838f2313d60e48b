"""Measurements beyond spawning: idle memory, TensorBoard latency, SSH throughput."""

import os
import shutil
import tempfile
import time

import requests

from benchmarks.stats import pct
from gpulab.core import contract
from harness.ssh import SSH, keygen
from harness.tensorboard import RUN, write_events

SCALAR_POINTS = 1000  # TensorBoard's default sample of a scalar tag: a plot as users see it


def _wait(fn, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if fn():
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError("timed out waiting for TensorBoard")


def tensorboard_latency(hub, name, count):
    """Latency of TensorBoard requests: /user/<name>/tensorboard/ (hub proxy, auth,
    jupyter-server-proxy) vs a TensorBoard on the container's own port. Seconds per request,
    for the runs API (the smallest request) and for one plot's data (a scalar tag's points)."""
    c = _container(hub, name)
    uid = c.labels[contract.L_UID]
    assert c.exec_run(["python3", "-c", write_events(SCALAR_POINTS)], user=uid).exit_code == 0
    c.exec_run(
        ["bash", "-c", "exec tensorboard --logdir ~/runs --port 6006 --bind_all"],
        user=uid,
        detach=True,
    )
    c.reload()
    ip = c.attrs["NetworkSettings"]["Networks"][hub.name]["IPAddress"]
    token = hub.user_token(name)
    session = requests.Session()
    auth = {"Authorization": f"token {token}"}
    via_hub = (hub.user_url(name, "tensorboard/data/runs"), auth)
    # the same request to the user's Jupyter server's own port: the server's auth check and
    # jupyter-server-proxy without the hub's proxy (where the added time goes)
    path = hub.user_url(name, "tensorboard/data/runs").split("/user/", 1)[1]
    via_server = (f"http://{ip}:{contract.JUPYTER_PORT}/user/{path}", auth)
    direct = (f"http://{ip}:6006/data/runs", {})
    scalars = f"data/plugin/scalars/scalars?run={RUN}&tag=loss"
    out = {}
    for label, (url, headers) in (("direct", direct), ("server", via_server), ("hub", via_hub)):
        _wait(
            lambda url=url, headers=headers: (
                RUN in session.get(url, headers=headers, timeout=10).json()
            )
        )
        for what, u in (("runs", url), ("scalars", url.replace("data/runs", scalars))):
            times = []
            for _ in range(count):
                t0 = time.monotonic()
                r = session.get(u, headers=headers, timeout=10)
                times.append(time.monotonic() - t0)
                r.raise_for_status()
            if what == "scalars":
                assert len(r.json()) >= min(SCALAR_POINTS, 1000) * 0.9, len(r.json())
            out[f"{label} {what}"] = times
    return out


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
    try:
        return _ssh_throughput(hub, name, mib, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ssh_throughput(hub, name, mib, work):
    token = hub.user_token(name)
    token_file = os.path.join(work, "token")
    with open(token_file, "w") as f:
        f.write(token)
    pub = keygen(os.path.join(work, "key"))
    r = requests.post(
        hub.url + "/hub/api/gpulab/ssh/keys",
        json={"key": pub},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
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
    for label, way in (
        ("direct", SSH.direct(port)),
        ("hub", SSH.via_hub(hub.url, name, token_file, port)),
    ):
        t0 = time.monotonic()
        result = ssh.scp(way, login, src, "bench-payload.bin", timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"scp {label} failed: {result.stderr}")
        speeds[label] = mib / (time.monotonic() - t0)
    ssh.run(SSH.direct(port), login, "rm", "-f", "bench-payload.bin")
    return speeds


def _share(part, whole):
    """part / whole when both were measured above zero (a few requests can make either noise)."""
    return part / whole if part > 0 and whole > 0 else None


def measure_gpulab_extras(hub, client, name, args):
    tb = tensorboard_latency(hub, name, args.requests)
    tb_rows = [
        {
            "metric": f"TensorBoard {title} p{p} ({args.requests} requests): direct vs hub",
            "stock": pct(tb[f"direct {what}"], p) * 1000,
            "gpulab": pct(tb[f"hub {what}"], p) * 1000,
            "ratio": pct(tb[f"hub {what}"], p) / pct(tb[f"direct {what}"], p),
            "unit": "ms",
        }
        for what, title in (
            ("runs", "runs API"),
            ("scalars", f"plot data ({SCALAR_POINTS} points)"),
        )
        for p in (50, 95)
    ]
    tb_rows.append(
        {
            "metric": "TensorBoard added time at p50 (runs API): all vs the user server's part",
            "stock": (pct(tb["hub runs"], 50) - pct(tb["direct runs"], 50)) * 1000,
            "gpulab": (pct(tb["server runs"], 50) - pct(tb["direct runs"], 50)) * 1000,
            "ratio": _share(
                pct(tb["server runs"], 50) - pct(tb["direct runs"], 50),
                pct(tb["hub runs"], 50) - pct(tb["direct runs"], 50),
            ),
            "unit": "ms",
        }
    )
    speeds = ssh_throughput(hub, name, args.scp_mib)
    ssh_rows = [
        {
            "metric": f"SSH scp {args.scp_mib} MiB: direct port vs through the hub",
            "stock": speeds["direct"],
            "gpulab": speeds["hub"],
            "ratio": speeds["hub"] / speeds["direct"],
            "unit": "MiB/s",
        }
    ]
    return {"tensorboard": tb_rows, "ssh": ssh_rows}
