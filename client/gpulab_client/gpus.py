"""``gpulab-client gpus``: who holds which GPU, from the running hub (an admin token is needed)."""

import json
import os
import sys
import time

from .hub import Hub, HubError, read_token


def table(data, now=None):
    """The admin table: one line per GPU (and per holder of a shared GPU), then the queue."""
    now = now or time.time()
    nodes = any(g.get("node") for g in data["gpus"])
    node_col = f"{'NODE':14} " if nodes else ""
    lines = [f"{node_col}{'GPU':4} {'MODEL':28} {'MEMORY':>9}  {'HOLDER':32} SINCE"]
    for g in data["gpus"]:
        mem = f"{g['memory_total'] / 1024**3:.0f} GiB"
        holders = g["holders"] or [None]
        for i, h in enumerate(holders):
            node = f"{(g.get('node') or '-')[:14]:14} " if nodes else ""
            head = (
                f"{node}{g['index']:<4} {g['model'][:28]:28} {mem:>9}"
                if i == 0
                else " " * (len(node_col) + 44)
            )
            if h is None:
                lines.append(f"{head}  {'-':32} -")
            else:
                who = h["user"] + (f"/{h['server']}" if h["server"] else "")
                since = time.strftime("%Y-%m-%d %H:%M", time.localtime(h["since"]))
                lines.append(f"{head}  {who[:32]:32} {since} ({int(now - h['since']) // 60} min)")
    if data.get("queue"):
        lines.append("")
        lines.append(
            "waiting: " + ", ".join(f"{q['user']} ({q['gpus']} GPU)" for q in data["queue"])
        )
    return "\n".join(lines)


def add_parser(sub):
    p = sub.add_parser("gpus", help="who holds which GPU, from the running hub (admin token)")
    p.add_argument(
        "--hub",
        "--hub-url",
        dest="hub",
        default=os.environ.get("GPULAB_HUB_URL"),
        help="the hub's URL (default: $GPULAB_HUB_URL)",
    )
    p.add_argument(
        "--token",
        default="",
        help="admin API token (default: $JUPYTERHUB_API_TOKEN / $GPULAB_TOKEN / --token-file)",
    )
    p.add_argument("--token-file", default="", help="file with an admin API token")
    p.add_argument(
        "--ca-file",
        default=os.environ.get("GPULAB_CA_FILE"),
        help="CA certificate(s) for the hub's TLS certificate",
    )
    p.add_argument("--json", action="store_true", help="print the JSON the hub serves")
    p.set_defaults(func=main)
    return p


def main(args):
    try:
        if not args.hub:
            raise HubError("pass --hub URL (or set GPULAB_HUB_URL)")
        token = args.token or read_token(args.token_file)
        data = Hub(args.hub, token, ca_file=args.ca_file).api("GET", "/gpulab/gpus")
    except HubError as e:
        hint = " (an admin token is needed)" if e.status == 403 else ""
        print(f"gpulab gpus: {e}{hint}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2) if args.json else table(data))
    return 0
