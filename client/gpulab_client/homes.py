"""``gpulab-client home``: back up your home into the lab's backup location, list the backups,
restore one into a new folder of your home (never over your files), with progress."""

import sys
import time
from urllib.parse import quote

from .hub import HubError, add_user_arguments, connect
from .progress import Progress


def add_parser(sub):
    p = sub.add_parser(
        "home", help="back up your home, list the backups, restore one into a new folder"
    )
    p.add_argument("action", choices=("backup", "list", "restore"))
    p.add_argument("name", nargs="?", help="restore: the backup (as `list` shows)")
    add_user_arguments(p)
    p.add_argument("--no-wait", action="store_true", help="start it and return")
    p.set_defaults(func=main)
    return p


def _show(job):
    done = (
        f"{job['progress'] / 1024**2:.1f} MiB"
        if job["unit"] == "bytes"
        else f"{job['progress']} files"
    )
    return f"{job['kind']} {job['state']}: {done}"


def main(args):
    try:
        hub, user = connect(args)
        path = f"/gpulab/users/{quote(user, safe='')}/home-backups"
        if args.action == "list":
            for a in hub.api("GET", path)["archives"]:
                print(f"{a['name']:32} {a['bytes'] / 1024**2:>8.1f} MiB")
            return 0
        if args.action == "restore":
            if not args.name:
                raise HubError("restore: name the backup (see `gpulab-client home list`)")
            job = hub.api("POST", f"{path}/{quote(args.name, safe='')}/restore")
            print(f"restoring into ~/{job['target']}", file=sys.stderr)
        else:
            job = hub.api("POST", path)
        bar = Progress(f"home {job['kind'] if job else args.action}")
        while not args.no_wait and job and job["state"] == "running":
            bar.update(None, _show(job))
            time.sleep(1)
            job = hub.api("GET", path)["job"]
        bar.done()
        print(
            _show(job) + (f" ({job['target']})" if job["state"] == "done" else f": {job['error']}")
        )
        return 0 if job["state"] in ("done", "running") else 1
    except HubError as e:
        print(f"gpulab-client home: {e}", file=sys.stderr)
        return 1
