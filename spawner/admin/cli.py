"""The ``gpulab`` admin command: one registry of subcommands (:data:`COMMANDS`), each declared
where it is implemented (:mod:`.hubcmds`, :mod:`.imagecmds`, :mod:`.nodecmds`, :mod:`.ops`), plus
the laptop client's ``gpus`` and ``ssh-proxy``.

Subcommands import what they use when they run, so the light ones (``ssh-proxy``, ``gpus``,
which come from the laptop client ``gpulab_client``) start fast.
"""

import argparse
import sys

from ..core.site.model import load_site, site_path
from ..core.site.schema import ConfigError
from . import hubcmds, imagecmds, nodecmds, ops, statuscmd

#: help of the words that group commands (`gpulab images ...`)
GROUPS = {
    "images": "build or list the user images",
    "admin": "accounts of a native-login hub",
    "node": "GPU servers of a Swarm",
}


def cmd_client(args):
    """``gpulab gpus`` / ``gpulab ssh-proxy``: the laptop client's commands (gpulab_client)."""
    if args.command == "gpus" and not args.hub:
        try:
            args.hub = load_site(args.site)["hub"]["bind_url"]
        except ConfigError as e:
            print(f"gpulab gpus: {e} (or pass --hub)", file=sys.stderr)
            return 2
    return args.client_main(args)


def _client_commands():
    from gpulab_client import gpus, sshproxy

    return [(module, cmd_client) for module in (gpus, sshproxy)]


COMMANDS = [
    *hubcmds.COMMANDS,
    *imagecmds.COMMANDS,
    *nodecmds.COMMANDS,
    *ops.COMMANDS,
    *statuscmd.COMMANDS,
]


def parser(commands=COMMANDS):
    p = argparse.ArgumentParser(prog="gpulab", description="Run and manage a gpulab hub.")
    p.add_argument(
        "--site", default=site_path(), help="site file (default: $GPULAB_CONFIG or ./gpulab.yaml)"
    )
    sub = p.add_subparsers(dest="command", required=True)
    groups = {}
    for cmd in commands:
        words = cmd.name.split()
        where = sub
        if len(words) == 2:
            if words[0] not in groups:
                groups[words[0]] = sub.add_parser(words[0], help=GROUPS[words[0]]).add_subparsers(
                    dest=f"{words[0]}_command", required=True
                )
            where = groups[words[0]]
        one = where.add_parser(words[-1], help=cmd.help)
        if cmd.arguments:
            cmd.arguments(one)
        one.set_defaults(func=cmd.run)
    for module, run in _client_commands():
        module.add_parser(sub).set_defaults(func=run, client_main=module.main)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    sys.exit(args.func(args) or 0)


if __name__ == "__main__":
    main()
