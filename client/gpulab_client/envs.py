"""``gpulab-client env``: save your running server as an environment, list and delete your saves
(with your own API token). Start a save from the hub's spawn form ("Start from"), or with
``{"save": "<name>"}`` in the spawn API."""

import os
import sys
import time
from urllib.parse import quote

from .hub import Hub, HubError, read_token


def add_parser(sub):
    p = sub.add_parser("env", help="save your running server as an environment; list and delete your saves")
    p.add_argument("action", choices=("list", "save", "rm"))
    p.add_argument("name", nargs="?", help="rm: the save to delete (its date, as `list` shows)")
    p.add_argument("--note", default="", help="save: a note, e.g. 'before upgrading CUDA'")
    p.add_argument("--server", default="", help="a named server (default: your default server)")
    p.add_argument("--hub", default=os.environ.get("GPULAB_HUB_URL"), help="the hub's URL (default: $GPULAB_HUB_URL)")
    p.add_argument("--user", help="your hub user name (default: the token's)")
    p.add_argument("--token-file", default="", help="file with your API token (default: ~/.config/gpulab/token)")
    p.add_argument("--ca-file", default=os.environ.get("GPULAB_CA_FILE"), help="CA certificate(s) for the hub's TLS certificate")
    p.set_defaults(func=main)
    return p


def main(args):
    try:
        if not args.hub:
            raise HubError("pass --hub URL (or set GPULAB_HUB_URL)")
        hub = Hub(args.hub, read_token(args.token_file), ca_file=args.ca_file)
        user = args.user or hub.whoami()
        path = f"/gpulab/users/{quote(user, safe='')}/saves"
        if args.action == "list":
            rows = hub.api("GET", path)
            print(f"{'NAME':16} {'PROFILE':14} {'SIZE':>9}  NOTE")
            for r in rows:
                print(f"{r['tag']:16} {r['profile'][:14]:14} {r['bytes'] / 1024**2:>5.0f} MiB  {r['note']}")
            if not rows:
                print("(no saves)")
        elif args.action == "save":
            t0 = time.monotonic()
            r = hub.api("POST", path, {"server": args.server, "note": args.note})
            print(f"saved as {r['tag']} ({r['bytes'] / 1024**2:.0f} MiB, profile {r['profile']}) in {time.monotonic() - t0:.0f} s")
        else:
            if not args.name:
                raise HubError("rm: name the save (see `gpulab-client env list`)")
            hub.api("DELETE", f"{path}/{quote(args.name, safe='')}")
            print(f"deleted {args.name}")
    except HubError as e:
        print(f"gpulab-client env: {e}", file=sys.stderr)
        return 1
    return 0
