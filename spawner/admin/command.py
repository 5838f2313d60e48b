"""One admin command: its name (``"images build"``), help, arguments and what it runs."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str  # words after `gpulab`, e.g. "images build"
    help: str
    run: object  # run(args) -> exit status (None: 0)
    arguments: object = None  # arguments(parser): adds its options


def config_argument(p):
    p.add_argument(
        "--config",
        default="jupyterhub_config.py",
        help="JupyterHub config file (default ./jupyterhub_config.py)",
    )
