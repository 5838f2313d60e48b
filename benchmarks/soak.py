"""A lab day on a real hub, at high speed: load, what it costs the hub over time, and what is left.

    make soak                                   # 30 users, 15 minutes, docs/img/soak.png
    .venv/bin/python -m benchmarks.soak --users 8 --minutes 2.5     # the short run CI makes

One real hub on this machine (the committed configuration, the test GPUs, reclaim on, jobs on).
The day is ``benchmarks.labsim``'s trace (seeded) with its 8:00-20:00 squeezed into ``--minutes``:
each student logs in through the login page, starts a server (with 1-2 GPUs, or without: every
third student works on CPUs), and while a training block lasts runs code in a kernel over the
Jupyter websocket and now and then an SSH session with a transfer through the hub, reads
TensorBoard, submits a short GPU job; in pauses their GPUs read idle (a collector pushes readings
as a GPU server's would), so reclaim warns and stops them, and the next block starts the server
again (waiting in the GPU queue when the GPUs are taken). At the end of a day some save their
environment, back up their home, stop their server; the others leave it running.

Printed: per operation its count, errors (each with its reason), p50 and p95 latency; over the
run (sampled every second) the hub's RSS, open file descriptors, threads, its event loop's worst
lag (``gpulab_event_loop_lag_max_seconds``) and the proxy's routes against the running servers;
at the end the leaks: servers, containers, GPU holdings, server tokens and routes that should not
exist once every user has stopped, then anything of the deployment left on this machine after the
hub's clean-up (harness.leaks). ``--json`` keeps it all; ``--plot`` draws latency and hub memory.
"""

import argparse
import collections
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback

import docker
import requests

from benchmarks.labsim import make_trace
from harness import gpuhost, leaks
from harness.hub import BASE_IMAGE, Hub
from harness.jupyter_ws import kernel_run
from harness.ssh import SSH, keygen

ARTIFACTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test-artifacts"
)
DAY_START, DAY_END = 8 * 3600, 20 * 3600  # the part of the trace's day that is replayed
KERNEL_CODE = "import math; print(sum(math.sqrt(i) for i in range(200000)))"
OPS = (
    "login",
    "spawn",
    "kernel",
    "ssh",
    "tensorboard",
    "job",
    "save",
    "backup",
    "stop",
    "api (other user)",
)


def site(gpus, idle_s):
    return {
        "gpus": {
            "devices": gpus,
            "readings": "push",
            "wait_timeout": 600,
            "quota": {"default": 2},
            "reclaim": {
                "enabled": True,
                "interval": 1,
                "idle_percent": 5,
                "idle_minutes": idle_s / 60,
                "grace_minutes": idle_s / 60,
            },
        },
        "profiles": [
            {"name": "gpu", "image": BASE_IMAGE, "gpus": 1, "max_gpus": 2, "mem_limit": "1G"},
            {"name": "cpu", "image": BASE_IMAGE, "gpus": 0, "max_gpus": 0, "mem_limit": "1G"},
        ],
        "jobs": {"max_hours": 1, "default_hours": 0.1, "max_per_user": 2},
    }


def fd_kinds(pid):
    """The hub's open files by kind: {"socket": n, "pipe": n, "anon_inode": n, "file": n}."""
    unix = set()
    with open(f"/proc/{pid}/net/unix") as f:
        for line in list(f)[1:]:
            unix.add(line.split()[6])
    kinds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":", 1)[0] if ":" in target and not target.startswith("/") else "file"
        if kind == "socket":
            kind = "unix socket" if target[8:-1] in unix else "tcp socket"
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items()))


class Unfinished(Exception):
    """The run ended while an operation waited (a spawn in the GPU queue, a job): not an error."""


class Record:
    """Every operation's outcome, and the samples over time (thread-safe)."""

    def __init__(self, t0):
        self.t0 = t0
        self.lock = threading.Lock()
        self.ops = []  # (t, op, seconds, error or None)
        self.samples = []  # {t, rss_mib, fds, threads, lag_max, routes, running}
        self.notes = collections.Counter()  # what happened that is not an operation (reclaims)

    def op(self, name, fn, *args, **kw):
        t = time.monotonic()
        try:
            result = fn(*args, **kw)
        except Unfinished:
            with self.lock:
                self.notes[f"{name}: still waiting when the run ended"] += 1
            return None
        except Exception as e:  # recorded with its reason; the user goes on
            reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
            with self.lock:
                self.ops.append((t - self.t0, name, time.monotonic() - t, reason))
            return None
        with self.lock:
            self.ops.append((t - self.t0, name, time.monotonic() - t, None))
        return result

    def table(self):
        rows = []
        for name in OPS:
            mine = [o for o in self.ops if o[1] == name]
            if not mine:
                continue
            ok = sorted(o[2] for o in mine if o[3] is None)
            errors = collections.Counter(o[3] for o in mine if o[3] is not None)
            rows.append(
                {
                    "op": name,
                    "count": len(mine),
                    "errors": sum(errors.values()),
                    "reasons": dict(errors),
                    "p50": pct(ok, 50),
                    "p95": pct(ok, 95),
                }
            )
        return rows


def pct(values, p):
    if not values:
        return None
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Soak:
    def __init__(self, client, workdir, users, minutes, seed, idle_s):
        self.client = client
        self.workdir = workdir
        self.n_users = users
        self.seconds = minutes * 60
        self.seed = seed
        self.gpus = gpuhost.devices()
        self.idle_s = idle_s
        self.hub = Hub(os.path.join(workdir, "hub"), client, site_overrides=site(self.gpus, idle_s))
        os.makedirs(self.hub.workdir, exist_ok=True)
        self.names = [f"s{u:02d}" for u in range(users)]
        self.tokens = {}
        self.busy = {}  # user -> in a training block now (what the collector reports for their GPUs)
        self.stop_event = threading.Event()
        self.record = None

    # --- the users ---

    def schedule(self):
        """Per user: [(start, end, busy)] in seconds of this run, and whether the day ends with a stop."""
        scale = self.seconds / (DAY_END - DAY_START)
        plans = {}
        for s in make_trace(self.n_users, 1, self.seed):
            blocks = [
                ((a - DAY_START) * scale, (min(b, DAY_END) - DAY_START) * scale, busy)
                for a, b, busy in s["blocks"]
                if a < DAY_END
            ]
            plans[s["user"]] = {"blocks": blocks, "gpus": s["gpus"], "stop": s["stop_at_end"]}
        return plans

    def user(self, name, plan, rnd):
        hub, rec = self.hub, self.record
        token = self.tokens[name]
        auth = {"Authorization": f"token {token}"}
        gpus = 0 if int(name[1:]) % 3 == 2 else plan["gpus"]
        options = {"profile": "gpu", "gpus": str(gpus)} if gpus else {"profile": "cpu"}
        work = tempfile.mkdtemp(prefix="soak-", dir=self.workdir)
        key = keygen(os.path.join(work, "key"))
        with open(os.path.join(work, "token"), "w") as f:
            f.write(token)
        ssh = SSH(work, os.path.join(work, "key"))
        payload = os.path.join(work, "payload.bin")
        with open(payload, "wb") as f:
            f.write(os.urandom(1 << 20))
        rec.op("login", self.login, name)
        r = requests.post(
            f"{hub.url}/hub/api/gpulab/ssh/keys", json={"key": key}, headers=auth, timeout=30
        )
        self.raise_for(r, f"{name}'s SSH key")
        for start, end, busy in plan["blocks"]:
            if not self.wait_until(start):
                break
            self.busy[name] = busy
            if not busy:
                continue
            if not self.running(name) and rec.op("spawn", self.spawn, name, options) is None:
                continue
            url = hub.user_url(name)
            while not self.stop_event.is_set() and self.now() < end:
                rec.op("kernel", kernel_run, url, token, KERNEL_CODE, timeout=60)
                roll = rnd.random()
                if roll < 0.15:
                    rec.op("ssh", self.ssh_session, name, ssh, payload)
                elif roll < 0.3:
                    rec.op("tensorboard", self.tensorboard, url, token)
                elif roll < 0.36 and gpus == 1:
                    rec.op("job", self.job, name, auth)
                rec.op("api (other user)", self.other_api, auth)
                self.stop_event.wait(rnd.uniform(1, 3))
                if not self.running(name):
                    break  # reclaimed in a pause the trace did not have: the next block starts it
        if self.stop_event.is_set():
            return
        self.busy[name] = False
        if rnd.random() < 0.25:
            rec.op("save", self.save, name, auth)
        if rnd.random() < 0.25:
            rec.op("backup", self.backup, name, auth)
        if plan["stop"] and self.running(name):
            rec.op("stop", hub.stop_server, name, 120)

    def now(self):
        return time.monotonic() - self.record.t0

    def wait_until(self, t):
        while not self.stop_event.is_set() and self.now() < t:
            self.stop_event.wait(min(1.0, t - self.now()))
        return not self.stop_event.is_set() and self.now() < self.seconds

    def running(self, name):
        server = self.hub.api("GET", f"/users/{name}").json().get("servers", {}).get("")
        return bool(server and server.get("ready"))

    def login(self, name):
        s = requests.Session()
        s.get(f"{self.hub.url}/hub/login", timeout=30)
        r = s.post(
            f"{self.hub.url}/hub/login",
            data={"username": name, "password": self.hub.password, "_xsrf": s.cookies.get("_xsrf")},
            timeout=30,
        )
        if r.status_code != 200 or "/hub/login" in r.url:
            raise RuntimeError(f"login: {r.status_code} at {r.url}")

    def spawn(self, name, options):
        r = self.hub.api("POST", f"/users/{name}/server", json=options)
        if r.status_code not in (201, 202):
            raise RuntimeError(f"spawn: {r.status_code} {r.text[:200]}")
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not self.stop_event.is_set():
            server = self.hub.api("GET", f"/users/{name}").json().get("servers", {}).get("")
            if server and server.get("ready"):
                return True
            if not server:
                raise RuntimeError(f"spawn failed: {self.last_progress(name)}")
            time.sleep(0.5)
        if self.stop_event.is_set():
            raise Unfinished()
        raise RuntimeError("spawn: not ready in 600 s")

    def last_progress(self, name):
        """Why the user's start failed, as the hub tells the user (its progress stream's last
        event, or the notices of a start or server that ended)."""
        r = self.hub.api("GET", f"/users/{name}/server/progress", stream=True)
        events = [
            json.loads(line[5:])
            for line in r.iter_lines(decode_unicode=True)
            if line and line.startswith("data:")
        ]
        if events and events[-1].get("failed"):
            return events[-1].get("message") or "(no message)"
        notices = self.hub.api(
            "GET", f"/gpulab/users/{name}/notices", token=self.tokens[name]
        ).json()
        told = notices.get("ended", []) + notices.get("lost_starts", [])
        return told[-1]["message"] if told else "(the hub told the user nothing)"

    def ssh_session(self, name, ssh, payload):
        c = self.hub.containers(name)[0]
        login = next(
            e.split("=", 1)[1] for e in c.attrs["Config"]["Env"] if e.startswith("NB_USER=")
        )
        port = int(c.attrs["HostConfig"]["PortBindings"]["22/tcp"][0]["HostPort"])
        way = SSH.via_hub(self.hub.url, name, os.path.join(os.path.dirname(payload), "token"), port)
        r = ssh.scp(way, login, payload, "soak.bin", timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"scp: {r.stderr.strip()[-200:]}")
        r = ssh.run(way, login, "sha256sum", "soak.bin", timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"ssh: {r.stderr.strip()[-200:]}")

    def tensorboard(self, url, token):
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            r = requests.get(
                url + "tensorboard/data/runs",
                headers={"Authorization": f"token {token}"},
                timeout=60,
            )
            if r.status_code == 200:
                return r.json()
            if r.status_code not in (502, 503):
                raise RuntimeError(f"tensorboard: {r.status_code}")
            time.sleep(1)
        raise RuntimeError("tensorboard: not up in 90 s")

    def job(self, name, auth):
        r = requests.post(
            f"{self.hub.url}/hub/api/gpulab/users/{name}/jobs",
            json={"command": ["python3", "-c", "print('soak')"], "gpus": 1, "time": "5m"},
            headers=auth,
            timeout=30,
        )
        if r.status_code != 201:
            raise RuntimeError(f"job submit: {r.status_code} {r.text[:200]}")
        job = r.json()["id"]
        while not self.stop_event.is_set():
            got = requests.get(
                f"{self.hub.url}/hub/api/gpulab/users/{name}/jobs/{job}", headers=auth, timeout=30
            ).json()
            if got["state"] not in ("waiting", "starting", "running"):
                if got["state"] != "succeeded":
                    raise RuntimeError(f"job {got['state']}: {got.get('reason')}")
                return
            time.sleep(1)
        requests.delete(
            f"{self.hub.url}/hub/api/gpulab/users/{name}/jobs/{job}", headers=auth, timeout=30
        )
        raise Unfinished()

    def save(self, name, auth):
        r = requests.post(
            f"{self.hub.url}/hub/api/gpulab/users/{name}/saves",
            json={"note": "end of the day"},
            headers=auth,
            timeout=600,
        )
        if r.status_code == 409 and "running" in r.text:
            return None  # reclaimed before: nothing to save (a real answer, not an error)
        if r.status_code != 201:
            raise RuntimeError(f"save: {r.status_code} {r.text[:200]}")

    def backup(self, name, auth):
        r = requests.post(
            f"{self.hub.url}/hub/api/gpulab/users/{name}/home-backups", headers=auth, timeout=60
        )
        if r.status_code != 202:
            raise RuntimeError(f"backup: {r.status_code} {r.text[:200]}")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            got = requests.get(
                f"{self.hub.url}/hub/api/gpulab/users/{name}/home-backups", headers=auth, timeout=30
            ).json()
            job = got.get("job") or {}
            if job.get("state") != "running":
                if job.get("state") == "failed":
                    raise RuntimeError(f"backup failed: {job.get('error') or job}")
                return
            time.sleep(1)
        raise RuntimeError("backup: not done in 300 s")

    def other_api(self, auth):
        """What every page does while others start: a trivial call (its latency is the hub's)."""
        r = requests.get(f"{self.hub.url}/hub/api/user", headers=auth, timeout=30)
        r.raise_for_status()

    # --- the lab around them ---

    def collector(self, token):
        """GPU readings every half second, as a GPU server's collector sends them: a held GPU is
        busy while its user is in a training block, idle in a pause."""
        uuids = [g["uuid"] for g in self.gpus]
        while not self.stop_event.is_set():
            try:
                holders = {
                    g["uuid"]: [h["user"] for h in g["holders"]]
                    for g in self.hub.api("GET", "/gpulab/gpus").json()["gpus"]
                }
                body = {
                    "node": "",
                    "gpus": [
                        {
                            "uuid": u,
                            "utilization": 90.0
                            if any(self.busy.get(h.split("/")[0]) for h in holders.get(u, []))
                            else 0.0,
                            "memory_used": 1 << 30,
                            "memory_total": 16 << 30,
                            "processes": [],
                        }
                        for u in uuids
                    ],
                }
                requests.post(
                    f"{self.hub.url}/hub/api/gpulab/readings",
                    json=body,
                    headers={"Authorization": f"token {token}"},
                    timeout=10,
                )
            except requests.RequestException:
                pass
            self.stop_event.wait(0.5)

    def sampler(self):
        pid = self.hub.proc.pid
        while not self.stop_event.is_set():
            try:
                self.record.samples.append(self.sample(pid))
            except Exception:  # a sample missed is not a failure of the hub
                traceback.print_exc()
            self.stop_event.wait(1)

    def sample(self, pid):
        t = self.now()
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        routes = self.hub.api("GET", "/proxy").json()
        users = self.hub.api("GET", "/users").json()
        running = sum(1 for u in users if u.get("server"))
        return {
            "t": t,
            "rss_mib": int(status["VmRSS"].split()[0]) / 1024,
            "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "fd_kinds": fd_kinds(pid),
            "lag_max": self.metric("gpulab_event_loop_lag_max_seconds"),
            "routes": sum(1 for path in routes if path.rstrip("/") not in ("", "/hub")),
            "running": running,
        }

    def metrics_text(self):
        r = requests.get(
            f"{self.hub.url}/hub/metrics",
            headers={"Authorization": f"token {self.hub.token}"},
            timeout=30,
        )
        self.raise_for(r, "/hub/metrics")
        return r.text

    def raise_for(self, r, what):
        """``raise_for_status``; a 503 from the proxy (it could not reach the hub) says why."""
        if r.status_code == 503:
            raise RuntimeError(f"{what}: 503 from the proxy\n{self.hub.why_unreachable()}")
        r.raise_for_status()

    def metric(self, name):
        text = self.metrics_text()
        m = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
        return float(m.group(1)) if m else None

    def reclaims(self):
        m = re.findall(
            r'^gpulab_reclaims_total\{reason="(\w+)"\} ([0-9.e+]+)$', self.metrics_text(), re.M
        )
        return {reason: int(float(v)) for reason, v in m}

    # --- the run ---

    def run(self):
        self.hub.start()
        try:
            return self._run()
        finally:
            self.stop_event.set()
            self.hub.stop()
            # the hub's log stays for whoever reads the table (test-artifacts/, not committed)
            os.makedirs(ARTIFACTS, exist_ok=True)
            if os.path.exists(self.hub.log_path):
                shutil.copy(self.hub.log_path, os.path.join(ARTIFACTS, f"soak-{self.hub.name}.log"))
            self.hub.cleanup()

    def _run(self):
        hub = self.hub
        for name in self.names:
            hub.create_user(name)
            self.tokens[name] = hub.user_token(name)
        hub.create_user("admin")
        r = hub.api(
            "POST",
            "/users/admin/tokens",
            json={"note": "collector", "scopes": ["custom:gpulab:readings"]},
        )
        collector_token = r.json()["token"]
        plans = self.schedule()
        self.record = Record(time.monotonic())
        threads = [
            threading.Thread(target=self.collector, args=(collector_token,), daemon=True),
            threading.Thread(target=self.sampler, daemon=True),
        ]
        rnd = random.Random(self.seed)
        for name in self.names:
            if name not in plans:
                continue  # not in the lab that day
            threads.append(
                threading.Thread(
                    target=self.user,
                    args=(name, plans[name], random.Random(rnd.random())),
                    daemon=True,
                )
            )
        for t in threads:
            t.start()
        deadline = self.record.t0 + self.seconds
        for t in threads[2:]:
            t.join(max(0, deadline - time.monotonic()))
        self.stop_event.set()
        for t in threads:
            t.join(180)  # an operation under way ends (each has its own timeout)
        reclaims = self.reclaims()
        lag_worst = self.worst_lag()
        end = self.end_state()
        return {
            "users": self.n_users,
            "seconds": self.seconds,
            "ops": self.record.table(),
            "samples": self.record.samples,
            "op_times": [(t, op, s, err) for t, op, s, err in self.record.ops],
            "reclaims": reclaims,
            "unfinished": dict(self.record.notes),
            "worst_lag": lag_worst,
            "end": end,
        }

    def worst_lag(self):
        """The worst event-loop block of the whole run, and where the hub's watch saw it."""
        text = self.metrics_text()
        buckets = re.findall(
            r'^gpulab_event_loop_lag_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)$', text, re.M
        )
        count = float(
            re.search(r"^gpulab_event_loop_lag_seconds_count ([0-9.e+]+)$", text, re.M).group(1)
        )
        over = {le: count - float(n) for le, n in buckets if le != "+Inf"}
        blocked = [
            line
            for line in self.hub.log_tail(100000).splitlines()
            if "gpulab: the event loop was blocked" in line
        ]
        return {
            "max_in_samples": max((s["lag_max"] or 0 for s in self.record.samples), default=0),
            "ticks": count,
            "ticks_over": {le: int(v) for le, v in over.items() if float(le) >= 0.1},
            "blocks_logged": blocked[-20:],
        }

    def end_state(self):
        """Stop every server; then nothing of a server may be left: containers, holdings,
        server tokens, routes (what must not exist, each named)."""
        hub = self.hub
        found = {}
        users = hub.api("GET", "/users").json()
        running_api = {u["name"] for u in users if u.get("server")}
        # a start still under way (waiting for a GPU) is stopped as well: it would end running
        with_server = {u["name"] for u in users if u.get("servers", {}).get("")}
        running_docker = {
            c.labels.get("gpulab.user")
            for c in hub.containers()
            if c.status == "running" and c.labels.get("gpulab.job") is None
        }
        found["containers without a server"] = sorted(running_docker - running_api)
        found["servers without a container"] = sorted(running_api - running_docker)
        for name in self.names:  # their jobs end too (waiting ones leave the queue)
            for job in hub.api("GET", f"/gpulab/users/{name}/jobs", token=self.tokens[name]).json():
                if job["state"] in ("waiting", "starting", "running"):
                    hub.api(
                        "DELETE", f"/gpulab/users/{name}/jobs/{job['id']}", token=self.tokens[name]
                    )
        for name in sorted(running_api | with_server):
            r = hub.api("DELETE", f"/users/{name}/server")
            if r.status_code not in (202, 204):
                found.setdefault("stop refused", []).append(f"{name}: {r.status_code}")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if not any(u.get("servers", {}).get("") for u in hub.api("GET", "/users").json()):
                break
            time.sleep(1)
        for j in hub.api("GET", "/gpulab/gpus").json()["gpus"]:
            if j["holders"]:
                found.setdefault("GPU holdings", []).append(f"{j['uuid']}: {j['holders']}")
        time.sleep(2)
        found["containers"] = [c.name for c in hub.containers() if c.status == "running"]
        routes = hub.api("GET", "/proxy").json()
        found["routes"] = sorted(p for p in routes if p.rstrip("/") not in ("", "/hub"))
        for name in self.names:
            for tok in hub.api("GET", f"/users/{name}/tokens").json().get("api_tokens", []):
                if (tok.get("note") or "").startswith("Server at"):
                    found.setdefault("server tokens", []).append(f"{name}: {tok['note']}")
        return {k: v for k, v in found.items() if v}


def report(result, out=sys.stdout):
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"\nsoak: {result['users']} users, {result['seconds'] / 60:.1f} min of a lab day")
    p(f"{'operation':18} {'count':>6} {'errors':>6} {'p50 s':>8} {'p95 s':>8}")
    for row in result["ops"]:
        f = lambda v: f"{v:8.2f}" if v is not None else "       -"  # noqa: E731
        p(f"{row['op']:18} {row['count']:6d} {row['errors']:6d} {f(row['p50'])} {f(row['p95'])}")
        for reason, n in row["reasons"].items():
            p(f"    {n} x {reason}")
    s = result["samples"]
    if s:
        rss = [x["rss_mib"] for x in s]
        p(
            f"hub RSS {rss[0]:.0f} -> {rss[-1]:.0f} MiB (max {max(rss):.0f}); "
            f"fds {s[0]['fds']} -> {s[-1]['fds']} (max {max(x['fds'] for x in s)}); "
            f"threads {s[0]['threads']} -> {s[-1]['threads']} (max {max(x['threads'] for x in s)})"
        )
        p(f"open files by kind, first and last sample: {s[0]['fd_kinds']} -> {s[-1]['fd_kinds']}")
        mismatch = sum(1 for x in s if x["routes"] != x["running"])
        p(f"proxy routes vs running servers: {len(s) - mismatch}/{len(s)} samples equal")
    p(f"reclaims: {result['reclaims']}")
    for what, n in result.get("unfinished", {}).items():
        p(f"{what}: {n}")
    w = result["worst_lag"]
    p(
        f"event loop: worst lag in a minute's window {w['max_in_samples']:.3f} s; ticks {int(w['ticks'])}, later than: {w['ticks_over']}"
    )
    for line in w["blocks_logged"][-5:]:
        p(f"    {line[-220:]}")
    p(f"left at the end: {result['end'] or 'nothing'}")
    p(f"left on this machine after the clean-up: {result.get('machine') or 'nothing'}")


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    by_op = collections.defaultdict(list)
    for t, op, secs, err in result["op_times"]:
        if err is None:
            by_op[op].append((t, secs))
    for op in ("spawn", "kernel", "ssh", "tensorboard", "api (other user)"):
        if by_op[op]:
            ax1.scatter(*zip(*by_op[op], strict=True), s=8, label=op)
    ax1.set_yscale("log")
    ax1.set_ylabel("latency (s)")
    ax1.legend(fontsize=8, ncol=3)
    ax1.set_title(f"soak: {result['users']} users, a lab day in {result['seconds'] / 60:.0f} min")
    s = result["samples"]
    ax2.plot([x["t"] for x in s], [x["rss_mib"] for x in s], label="hub RSS (MiB)")
    ax2.plot([x["t"] for x in s], [x["running"] for x in s], label="running servers")
    ax2.set_xlabel("time (s)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=90)


def run(users=30, minutes=15.0, seed=1, idle_s=8, client=None):
    client = client or docker.from_env(version="auto")
    before = leaks.snapshot(client)
    workdir = tempfile.mkdtemp(prefix="gpulab-soak-")
    try:
        result = Soak(client, workdir, users, minutes, seed, idle_s).run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["machine"] = [
        f"{kind}: {what}" for kind, what in leaks.left_behind(before, leaks.snapshot(client))
    ]
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=30)
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--idle", type=float, default=8, help="seconds idle before a reclaim warning")
    ap.add_argument("--json", help="write the whole result here")
    ap.add_argument("--plot", help="write a PNG of latency and hub memory over the run")
    args = ap.parse_args(argv)
    result = run(args.users, args.minutes, args.seed, args.idle)
    report(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.plot:
        plot(result, args.plot)
        print(f"plot: {args.plot}")
    errors = sum(r["errors"] for r in result["ops"])
    return 1 if result["end"] or result["machine"] or errors else 0


if __name__ == "__main__":
    sys.exit(main())
