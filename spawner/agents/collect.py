"""``gpulab collect``: read this node's GPUs with NVML and report them to the hub
(``POST /hub/api/gpulab/readings``), every ``interval`` seconds.

Runs where the GPUs are: on every GPU server of a Swarm (as a global service, see docs/admin.md), or
next to a hub that cannot see its host's GPUs. Its token needs only the scope
``custom:gpulab:readings`` (an admin makes one on the hub's token page or with the API).
"""

import json
import socket
import sys
import time
import urllib.error
import urllib.request

from ..core.gpus.readings import NVMLSource


def payload(source, node):
    return {"node": node, "gpus": [r.as_dict() for r in source.read()]}


def post(hub_url, token, body, timeout=10):
    req = urllib.request.Request(
        hub_url.rstrip("/") + "/hub/api/gpulab/readings",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"{}")


def run(hub_url, token, *, node=None, interval=30.0, once=False, source=None, log=print):
    node = node or socket.gethostname()
    source = source or NVMLSource(node=node)
    while True:
        try:
            answer = post(hub_url, token, payload(source, node))
            if once:
                log(
                    f"gpulab collect: {answer.get('accepted', 0)} GPU reading(s) of {node} accepted by {hub_url}"
                )
        except urllib.error.HTTPError as e:
            log(
                f"gpulab collect: the hub answered {e.code}: {e.read()[:200].decode(errors='replace')}"
            )
            if e.code in (401, 403) or once:
                return 2
        except (OSError, ValueError) as e:
            log(f"gpulab collect: {e}")
            if once:
                return 2
        if once:
            return 0
        time.sleep(interval)


def main(args):
    try:
        with open(args.token_file) as f:
            token = f.read().strip()
    except OSError as e:
        print(f"gpulab collect: {e}", file=sys.stderr)
        return 2
    return run(
        args.hub,
        token,
        node=args.node,
        interval=args.interval,
        once=args.once,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
