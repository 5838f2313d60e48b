"""The ``gpulab-client`` command. Subcommands import only what they use (start-up time matters:
``ssh-proxy`` runs on every ``ssh``)."""

import argparse
import sys


def parser():
    from . import envs, gpus, homes, jobs, sshproxy

    p = argparse.ArgumentParser(
        prog="gpulab-client",
        description="gpulab on your own machine: SSH through the hub, the GPU table, saved environments, GPU jobs.",
    )
    from . import __version__

    p.add_argument("--version", action="version", version=f"gpulab-client {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sshproxy.add_parser(sub)
    gpus.add_parser(sub)
    envs.add_parser(sub)
    homes.add_parser(sub)
    jobs.add_parser(sub)
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    command = None
    if "--" in argv:  # `job submit [options] -- COMMAND...`: the command is never options
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1 :]
    args = parser().parse_args(argv)
    args.command_argv = command
    sys.exit(args.func(args) or 0)


if __name__ == "__main__":
    main()
