"""`gpulab gpus`: the admin table, fetched from the running hub's REST API."""

import json
import time
import urllib.request


def fetch(hub_url, token, timeout=10):
    req = urllib.request.Request(hub_url.rstrip("/") + "/hub/api/gpulab/gpus", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def table(data, now=None):
    now = now or time.time()
    lines = [f"{'GPU':4} {'MODEL':28} {'MEMORY':>9}  {'HOLDER':32} SINCE"]
    for g in data["gpus"]:
        mem = f"{g['memory_total'] / 1024**3:.0f} GiB"
        holders = g["holders"] or [None]
        for i, h in enumerate(holders):
            head = f"{g['index']:<4} {g['model'][:28]:28} {mem:>9}" if i == 0 else " " * 44
            if h is None:
                lines.append(f"{head}  {'-':32} -")
            else:
                who = h["user"] + (f"/{h['server']}" if h["server"] else "")
                since = time.strftime("%Y-%m-%d %H:%M", time.localtime(h["since"]))
                lines.append(f"{head}  {who[:32]:32} {since} ({int(now - h['since']) // 60} min)")
    if data.get("queue"):
        lines.append("")
        lines.append("waiting: " + ", ".join(f"{q['user']} ({q['gpus']} GPU)" for q in data["queue"]))
    return "\n".join(lines)
