"""``gpulab node setup``: what one GPU server needs to serve gpulab in a Swarm, printed, or
written with consent (the pure parts: :mod:`gpulab.backends.swarm.nodes`)."""

import json
import os
import shutil
import subprocess
import sys
import time

from ..backends.swarm import nodes as nodesetup
from ..core.gpus.inventory import discover, load_pynvml
from ..core.site.model import gpu_defaults
from .command import Command


def cmd_node_setup(args):
    """What this GPU server needs to serve gpulab in a Swarm: printed, or written with consent."""
    gpus = discover(gpu_defaults(), nvml_loader=load_pynvml)
    if not gpus:
        print(
            "gpulab node setup: NVML finds no GPU on this machine (is the NVIDIA driver installed? nvidia-smi)",
            file=sys.stderr,
        )
        return 1
    toolkit = (
        subprocess.run(["nvidia-ctk", "--version"], capture_output=True, text=True)
        if shutil.which("nvidia-ctk")
        else None
    )
    if toolkit is None:
        print(
            "gpulab node setup: warning: the NVIDIA container toolkit (nvidia-ctk) is not installed; install it first"
        )
    elif not nodesetup.at_least(toolkit.stdout, nodesetup.MIN_TOOLKIT):
        print(
            f"gpulab node setup: warning: NVIDIA container toolkit {toolkit.stdout.strip()[:60]} is older than 1.19.1; upgrade it"
        )
    try:
        with open(args.daemon_json) as f:
            existing = json.load(f)
    except FileNotFoundError:
        existing = {}
    except (OSError, ValueError) as e:
        print(f"gpulab node setup: cannot read {args.daemon_json}: {e}", file=sys.stderr)
        return 1
    try:
        with open(args.runtime_config) as f:
            runtime_text = f.read()
    except FileNotFoundError:
        runtime_text = ""
    daemon = nodesetup.daemon_config(existing, gpus)
    runtime = nodesetup.runtime_config(runtime_text)
    labels = nodesetup.node_labels(gpus)
    print(f"# {len(gpus)} GPU(s): " + ", ".join(f"{g.index}: {g.model} {g.uuid}" for g in gpus))
    print(f"# {args.daemon_json}\n{json.dumps(daemon, indent=2)}")
    print(f"# {args.runtime_config} (top of the file)\n{nodesetup.SWARM_RESOURCE_LINE}")
    print(f"# then on a manager:\n{nodesetup.label_command(os.uname().nodename, labels)}")
    if not args.write:
        print(
            "# nothing was written; --write writes both files (with backups), then restart Docker yourself"
        )
        return 0
    if (
        not args.yes
        and input(f"Write {args.daemon_json} and {args.runtime_config}? [y/N] ").strip().lower()
        != "y"
    ):
        print("gpulab node setup: nothing written")
        return 1
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for path, text in (
        (args.daemon_json, json.dumps(daemon, indent=2) + "\n"),
        (args.runtime_config, runtime),
    ):
        if os.path.exists(path):
            shutil.copy2(path, f"{path}.gpulab-backup-{stamp}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        print(f"gpulab node setup: wrote {path}")
    print(
        "gpulab node setup: restart Docker to apply it (systemctl restart docker); it is not restarted for you"
    )
    return 0


def _setup_arguments(p):
    p.add_argument(
        "--write", action="store_true", help="write the two files (with backups) after asking"
    )
    p.add_argument("--yes", action="store_true", help="with --write: do not ask")
    p.add_argument("--daemon-json", default="/etc/docker/daemon.json")
    p.add_argument("--runtime-config", default="/etc/nvidia-container-runtime/config.toml")


COMMANDS = [
    Command(
        "node setup",
        "print (or --write) what this GPU server needs: daemon.json, the NVIDIA runtime config, labels",
        cmd_node_setup,
        _setup_arguments,
    ),
]
