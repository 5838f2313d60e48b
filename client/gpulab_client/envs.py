"""``gpulab-client env``: save your running server as an environment, list and delete your saves
(with your own API token). Start a save from the hub's spawn form ("Start from"), or with
``{"save": "<name>"}`` in the spawn API."""

import sys
import time
from urllib.parse import quote

from .hub import HubError, add_user_arguments, connect
from .progress import Waiting


def add_parser(sub):
    p = sub.add_parser(
        "env", help="save your running server as an environment; list and delete your saves"
    )
    p.add_argument("action", choices=("list", "save", "rm"))
    p.add_argument("name", nargs="?", help="rm: the save to delete (its date, as `list` shows)")
    p.add_argument("--note", default="", help="save: a note, e.g. 'before upgrading CUDA'")
    p.add_argument("--server", default="", help="a named server (default: your default server)")
    add_user_arguments(p)
    p.set_defaults(func=main)
    return p


def main(args):
    try:
        hub, user = connect(args)
        path = f"/gpulab/users/{quote(user, safe='')}/saves"
        if args.action == "list":
            rows = hub.api("GET", path)
            print(f"{'NAME':16} {'PROFILE':14} {'SIZE':>9}  NOTE")
            for r in rows:
                print(
                    f"{r['tag']:16} {r['profile'][:14]:14} {r['bytes'] / 1024**2:>5.0f} MiB  {r['note']}"
                )
            if not rows:
                print("(no saves)")
        elif args.action == "save":
            t0 = time.monotonic()
            with Waiting("saving your environment"):
                r = hub.api("POST", path, {"server": args.server, "note": args.note})
            print(
                f"saved as {r['tag']} ({r['bytes'] / 1024**2:.0f} MiB, profile {r['profile']}) in {time.monotonic() - t0:.0f} s"
            )
        else:
            if not args.name:
                raise HubError("rm: name the save (see `gpulab-client env list`)")
            hub.api("DELETE", f"{path}/{quote(args.name, safe='')}")
            print(f"deleted {args.name}")
    except HubError as e:
        print(f"gpulab-client env: {e}", file=sys.stderr)
        return 1
    return 0
