"""``gpulab-client job``: run a command on GPUs of its own that come back when it ends, from your
laptop or from a terminal of your server (with your token, or the server's own).

    gpulab-client job submit --gpus 2 --time 48h -- python train.py --lr 3e-4
    gpulab-client job list
    gpulab-client job logs -f 12
    gpulab-client job cancel 12
"""

import sys
import time
from urllib.parse import quote

from .hub import HubError, add_user_arguments, connect

FINAL = ("succeeded", "failed", "cancelled", "timed-out")


def add_parser(sub):
    p = sub.add_parser(
        "job", help="run a command on GPUs that come back when it ends; list, follow, cancel"
    )
    actions = p.add_subparsers(dest="action", required=True)
    submit = actions.add_parser(
        "submit", help="submit: gpulab-client job submit [options] -- COMMAND..."
    )
    submit.add_argument("--gpus", type=int, default=1, help="GPUs (default 1)")
    submit.add_argument("--nodes", type=int, default=1, help="GPU servers (default 1)")
    submit.add_argument("--profile", default="", help="the profile (default: the hub's)")
    submit.add_argument("--save", default="", help="one of your saved environments")
    submit.add_argument("--time", default="", help="time limit, e.g. 48h, 90m, 2d")
    submit.add_argument("--name", default="", help="a name for the list")
    submit.add_argument(
        "--notebook",
        default="",
        help="run this notebook of your home (papermill) instead of a command",
    )
    submit.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="--notebook: a parameter (a number, true/false, or text)",
    )
    submit.add_argument(
        "-f", "--follow", action="store_true", help="print its output until it ends"
    )
    lists = actions.add_parser("list", help="your jobs")
    parsers = [submit, lists]
    for name, text in (
        ("show", "one job"),
        ("logs", "its output (-f: until it ends)"),
        ("cancel", "stop it, or take it out of the queue"),
    ):
        one = actions.add_parser(name, help=text)
        one.add_argument("job", type=int, help="the job's number (gpulab-client job list)")
        if name == "logs":
            one.add_argument("-f", "--follow", action="store_true", help="until the job ends")
        parsers.append(one)
    for one in parsers:
        add_user_arguments(one)
        one.set_defaults(func=main)
    return p


def _value(text):
    """A parameter as papermill gets it: a number, true/false/null, else the text itself."""
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, bool)) or value is None else text


def follow(hub, path, since=0, out=sys.stdout, follow=True):
    """Print the job's output from line ``since``; with ``follow`` until the job ends. Returns
    the job's last state."""
    while True:
        r = hub.api("GET", f"{path}/log?since={since}&wait={25 if follow else 0}")
        for line in r["lines"]:
            print(line, file=out, flush=True)
        since = r["next"]
        if not follow or not r["more"]:
            return r


def main(args):
    try:
        hub, user = connect(args)
        path = f"/gpulab/users/{quote(user, safe='')}/jobs"
        if args.action == "submit":
            command = getattr(args, "command_argv", None)
            if args.notebook:
                body = {
                    "notebook": args.notebook,
                    "parameters": {k: _value(v) for k, v in args.parameter},
                }
            elif not command:
                raise HubError("submit: give the command after --, e.g. -- python train.py")
            else:
                body = {"command": list(command)}
            body.update(gpus=args.gpus, nodes=args.nodes)
            for key in ("profile", "save", "time", "name"):
                if getattr(args, key):
                    body[key] = getattr(args, key)
            job = hub.api("POST", path, body)
            print(
                f"job {job['id']} submitted: {job['gpus']} GPU(s), {job['profile']}, "
                f"at most {job['time_limit']}; output in {job['output_dir']} "
                f"(gpulab-client job logs -f {job['id']})"
            )
            if args.follow:
                end = follow(hub, f"{path}/{job['id']}")
                print(f"job {job['id']} {end['state']}: {end['reason']}", file=sys.stderr)
                return 0 if end["state"] == "succeeded" else 1
        elif args.action == "list":
            rows = hub.api("GET", path)
            print(f"{'#':>5}  {'STATE':10} {'GPUS':>4}  {'LIMIT':>6}  COMMAND")
            for j in rows:
                cmd = j["command"] if isinstance(j["command"], str) else " ".join(j["command"])
                cmd = f"notebook {j['notebook']}" if j.get("notebook") else cmd
                note = f"  [{j['waiting_for'] or j['reason']}]" if j.get("waiting_for") else ""
                print(
                    f"{j['id']:>5}  {j['state']:10} {j['gpus']:>4}  {j['time_limit']:>6}  {cmd[:60]}{note}"
                )
            if not rows:
                print("(no jobs)")
        elif args.action == "show":
            j = hub.api("GET", f"{path}/{args.job}")
            for key in (
                "id",
                "name",
                "state",
                "reason",
                "waiting_for",
                "gpus",
                "gpu_uuids",
                "profile",
                "save",
                "time_limit",
                "output_dir",
                "notebook",
                "parameters",
                "executed_copy",
                "exit_status",
            ):
                if j.get(key) not in (None, "", []):
                    print(f"{key:12} {j[key]}")
            for key in ("submitted", "started", "ended"):
                if j.get(key):
                    print(f"{key:12} {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(j[key]))}")
        elif args.action == "logs":
            end = follow(hub, f"{path}/{args.job}", follow=args.follow)
            if end["state"] in FINAL:
                print(f"(job {end['state']}: {end['reason']})", file=sys.stderr)
        else:
            number = args.job
            hub.api("DELETE", f"{path}/{number}")
            print(f"job {number} is being cancelled")
    except HubError as e:
        print(f"gpulab-client job: {e}", file=sys.stderr)
        return 1
    return 0
