"""The ``gpulab-client`` command. Subcommands import only what they use (start-up time matters:
``ssh-proxy`` runs on every ``ssh``)."""

import argparse
import sys


def parser():
    from . import envs, gpus, homes, sshproxy

    p = argparse.ArgumentParser(
        prog="gpulab-client",
        description="gpulab on your own machine: SSH through the hub, the GPU table, saved environments.",
    )
    from . import __version__

    p.add_argument("--version", action="version", version=f"gpulab-client {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sshproxy.add_parser(sub)
    gpus.add_parser(sub)
    envs.add_parser(sub)
    homes.add_parser(sub)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    sys.exit(args.func(args) or 0)


if __name__ == "__main__":
    main()
