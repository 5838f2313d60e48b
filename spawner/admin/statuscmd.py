"""``gpulab status``: one screen for the admin, on the hub's machine: the hub and its proxy, the
nodes (ready, GPUs, engine), the GPUs held and idle, the queue, jobs, the last reclaims and the
disk the saves and home backups take. Exit status 1 when something needs attention (for
monitoring scripts): the hub or its proxy not answering, the hub's status older than a minute, a
node down, a spawn waiting for more than ``--queue-minutes``."""

import json
import os
import sys
import time
import urllib.error
import urllib.request

from ..backends import select
from ..core.site import facts
from ..core.site.model import load_site
from ..core.site.schema import ConfigError
from ..hub.status import status_path
from .command import Command, config_argument

STALE = 60  # seconds: the hub writes its status every 10


def _ago(seconds):
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _gib(n):
    return f"{(n or 0) / 1024**3:.1f} GiB"


def _answers(url, timeout=5):
    """(True, detail) when the URL answers HTTP (any status below 500), else (False, why)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return True, r.status
    except urllib.error.HTTPError as e:
        return e.code < 500, e.code
    except (urllib.error.URLError, OSError) as e:
        return False, getattr(e, "reason", e)


def _du(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def gather(site, now=None, client=None):
    """Everything the screen shows, with the problems found: a dict (also for --json)."""
    now = time.time() if now is None else now
    problems = []
    mode = select(site).mode
    out = {"hub": site["hub"]["name"], "mode": mode, "problems": problems}
    public = facts.public_url(site).rstrip("/")
    ok, detail = _answers(f"{public}/hub/api/")
    out["proxy"] = {"url": public, "answers": ok, "detail": str(detail)}
    if not ok:
        problems.append(f"the hub does not answer at {public} ({detail})")
    path = status_path(facts.state_dir(site))
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        doc = None
        problems.append(f"the hub has written no status ({path}: {e}); is it running?")
    if doc is not None:
        age = now - doc["time"]
        out["status_age"] = age
        if age > STALE:
            problems.append(f"the hub's status is {_ago(age)} old: the hub may be stuck")
        out.update({k: doc[k] for k in ("gpus", "queue", "jobs", "reclaims", "readings")})
    out["nodes"] = _nodes(mode, client, problems)
    out["disk"] = _disk(site, mode, client)
    return out


def _nodes(mode, client, problems):
    import docker

    try:
        client = client or docker.from_env(version="auto", timeout=20)
        version = client.version().get("Version", "?")
    except Exception as e:
        problems.append(f"the Docker engine does not answer: {e}")
        return []
    if mode != "swarm":
        return [{"name": "this host", "state": "ready", "engine": version}]
    rows = []
    for node in client.nodes.list():
        spec, desc, st = node.attrs["Spec"], node.attrs["Description"], node.attrs["Status"]
        gpus = sum(
            1
            for r in desc.get("Resources", {}).get("GenericResources") or []
            if r.get("DiscreteResourceSpec") or r.get("NamedResourceSpec")
        )
        row = {
            "name": desc.get("Hostname", node.id[:12]),
            "role": spec.get("Role"),
            "state": st.get("State"),
            "availability": spec.get("Availability"),
            "engine": desc.get("Engine", {}).get("EngineVersion", "?"),
            "gpus": gpus,
        }
        rows.append(row)
        if row["state"] != "ready" or row["availability"] != "active":
            problems.append(f"node {row['name']} is {row['state']} ({row['availability']})")
    return rows


def _disk(site, mode, client):
    disk = {}
    backups = facts.home_backups_dir(site)
    if os.path.isdir(backups):
        disk["home backups"] = _du(backups)
    if client is not None and mode != "swarm":
        from ..core import contract

        images = client.images.list(
            filters={
                "label": [contract.deployment_filter(site["hub"]["name"]), f"{contract.L_SAVE}=1"]
            }
        )
        disk["saved environments"] = sum(
            int((i.labels or {}).get(contract.L_SAVE_BYTES) or 0) for i in images
        )
    return disk


def render(s, queue_minutes):
    lines = [f"gpulab {s['hub']} ({s['mode']})"]
    p = s["proxy"]
    lines.append(
        f"  hub and proxy  {'answering' if p['answers'] else 'NOT answering'} at {p['url']}"
        + (f", status written {_ago(s['status_age'])} ago" if "status_age" in s else "")
    )
    for n in s["nodes"]:
        extra = f", {n['gpus']} GPU(s), {n['role']}" if "gpus" in n else ""
        lines.append(f"  node  {n['name']}: {n['state']}, engine {n['engine']}{extra}")
    gpus = s.get("gpus") or []
    held = [g for g in gpus if g["holders"]]
    lines.append(f"  GPUs  {len(held)} of {len(gpus)} held (readings: {s.get('readings', '?')})")
    for g in gpus:
        util = "–" if g["utilization"] is None else f"{g['utilization']:.0f}%"
        who = ", ".join(g["holders"]) or "free"
        idle = f", idle {_ago(g['idle_for'])}" if g["holders"] and g.get("idle_for") else ""
        node = f"{g['node']} " if g.get("node") else ""
        outside = ", USED OUTSIDE gpulab" if g.get("outside") else ""
        lines.append(f"    {node}GPU {g['index']} {g['model']}: {who}, {util}{idle}{outside}")
    queue = s.get("queue") or []
    lines.append(f"  queue  {len(queue)} waiting")
    for q in queue:
        lines.append(f"    {q['user']}: {q['gpus']} GPU(s) for {_ago(q['waiting'])}")
        if q["waiting"] > queue_minutes * 60:
            s["problems"].append(f"{q['user']} has waited {_ago(q['waiting'])} for GPUs")
    jobs = s.get("jobs") or {}
    lines.append(
        f"  jobs  {len(jobs.get('backups', []))} home backup/restore, {jobs.get('saves', 0)} save(s) running"
    )
    for r in (s.get("reclaims") or [])[-5:]:
        when = time.strftime("%H:%M", time.gmtime(r["time"]))
        lines.append(
            f"  reclaimed  {when} UTC {r['user']}{'/' + r['server'] if r['server'] else ''}: {r['reason']}"
        )
    for what, size in s["disk"].items():
        lines.append(f"  disk  {what}: {_gib(size)}")
    if s["problems"]:
        lines.append("needs attention:")
        lines += [f"  - {p}" for p in s["problems"]]
    else:
        lines.append("all good")
    return "\n".join(lines)


def cmd_status(args):
    try:
        site = load_site(args.site)
    except ConfigError as e:
        print(f"gpulab status: {e}", file=sys.stderr)
        return 2
    import docker

    try:
        client = docker.from_env(version="auto", timeout=20)
    except Exception:
        client = None
    s = gather(site, client=client)
    text = render(s, args.queue_minutes)
    print(json.dumps(s, indent=2) if args.json else text)
    return 1 if s["problems"] else 0


def _status_arguments(p):
    config_argument(p)
    p.add_argument("--json", action="store_true", help="the same, as JSON")
    p.add_argument(
        "--queue-minutes",
        type=float,
        default=30.0,
        help="a spawn waiting longer than this needs attention (default 30)",
    )


COMMANDS = [
    Command(
        "status",
        "one screen: hub, proxy, nodes, GPUs held and idle, queue, jobs, reclaims, disk; exit 1 when something needs attention",
        cmd_status,
        _status_arguments,
    )
]
