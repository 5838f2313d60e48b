"""``gpulab node setup`` and ``gpulab node firewall``: what one GPU server needs to serve gpulab in
a Swarm, printed, or written with consent (the pure parts: :mod:`gpulab.backends.swarm.nodes`).

``node setup --write`` writes the Docker daemon and NVIDIA runtime settings, applies the node's
egress rules and installs a systemd unit that applies them again at every boot (``gpulab node
firewall``, after Docker). The node labels it prints include ``gpulab.gpu-isolation`` only when the
runtime's setting is there: a node without it offers no GPUs.
"""

import json
import os
import shutil
import subprocess
import sys
import time

from ..backends import firewall
from ..backends.swarm import nodes as nodesetup
from ..core.gpus.inventory import discover, load_pynvml
from ..core.site import default
from ..core.site.model import gpu_defaults, load_site
from ..core.site.schema import ConfigError
from .command import Command

UNIT = "/etc/systemd/system/gpulab-node-firewall.service"


def blocked_ranges(args):
    """The ranges user tasks may not reach: --blocked, else the site file's (if this node has
    it), else gpulab's defaults."""
    if args.blocked:
        return list(args.blocked)
    if os.path.exists(args.site):
        try:
            return load_site(args.site)["hub"]["egress_blocked"]
        except ConfigError as e:
            print(f"gpulab node: {e} (using the default blocked ranges)", file=sys.stderr)
    ranges = list(default("hub.egress_blocked"))
    # said every time: a lab on public addresses must name its own (--blocked, or the site file)
    print(
        f"gpulab node: blocking the default private ranges ({', '.join(ranges)}); a lab whose "
        "servers, storage or services have public addresses names them with --blocked",
        file=sys.stderr,
    )
    return ranges


def apply_firewall(blocked):
    firewall.install(*nodesetup.egress_rules(blocked, firewall.dns_servers()))


def unit_text(blocked):
    gpulab = os.path.join(os.path.dirname(sys.executable), "gpulab")
    ranges = " ".join(f"--blocked {r}" for r in blocked)
    return f"""[Unit]
Description=gpulab: keep user containers on this GPU node off the lab's network
After=docker.service
Requires=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={gpulab} node firewall {ranges}

[Install]
WantedBy=multi-user.target
"""


def cmd_node_firewall(args):
    """Apply this GPU node's egress rules (idempotent; the systemd unit runs it at boot)."""
    blocked = blocked_ranges(args)
    try:
        apply_firewall(blocked)
    except firewall.FirewallError as e:
        print(f"gpulab node firewall: {e}", file=sys.stderr)
        return 1
    print(
        f"gpulab node firewall: user containers on {nodesetup.GWBRIDGE} reach DNS and the internet, not {', '.join(blocked)}"
    )
    return 0


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
    blocked = blocked_ranges(args)
    print(f"# {len(gpus)} GPU(s): " + ", ".join(f"{g.index}: {g.model} {g.uuid}" for g in gpus))
    print(f"# {args.daemon_json}\n{json.dumps(daemon, indent=2)}")
    print(f"# {args.runtime_config} (top of the file)\n{nodesetup.SWARM_RESOURCE_LINE}")
    setup, hooks = nodesetup.egress_rules(blocked, firewall.dns_servers())
    print("# egress rules (iptables):\n" + "\n".join("iptables " + " ".join(a) for a in setup))
    print("\n".join(f"iptables -I {chain} 1 {' '.join(spec)}" for chain, spec in hooks))
    if not args.write:
        labels = nodesetup.node_labels(gpus, isolated=nodesetup.runtime_isolates(runtime_text))
        print(f"# then on a manager:\n{nodesetup.label_command(os.uname().nodename, labels)}")
        if not nodesetup.runtime_isolates(runtime_text):
            print("# no GPU is offered until the runtime setting above is written (--write)")
        print(
            "# nothing was written; --write writes both files (with backups) and applies the egress rules"
        )
        return 0
    question = f"Write {args.daemon_json} and {args.runtime_config}, apply the egress rules and install {UNIT}? [y/N] "
    if not args.yes and input(question).strip().lower() != "y":
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
    with open(args.runtime_config) as f:
        isolated = nodesetup.runtime_isolates(f.read())  # read back: what the runtime will read
    try:
        apply_firewall(blocked)
    except firewall.FirewallError as e:
        print(f"gpulab node setup: the egress rules failed: {e}", file=sys.stderr)
        return 1
    if os.path.isdir(os.path.dirname(UNIT)) and shutil.which("systemctl"):
        with open(UNIT, "w") as f:
            f.write(unit_text(blocked))
        subprocess.run(["systemctl", "daemon-reload"], check=False)
        subprocess.run(["systemctl", "enable", os.path.basename(UNIT)], check=False)
        print(f"gpulab node setup: installed {UNIT} (the egress rules again at every boot)")
    labels = nodesetup.node_labels(gpus, isolated=isolated)
    print(
        f"gpulab node setup: now on a manager:\n{nodesetup.label_command(os.uname().nodename, labels)}"
    )
    print(
        "gpulab node setup: restart Docker to apply the daemon settings (systemctl restart docker); it is not restarted for you"
    )
    return 0


def _firewall_arguments(p):
    p.add_argument(
        "--blocked",
        action="append",
        metavar="CIDR",
        help="a range user containers may not reach (repeat; default: the site file's hub.egress_blocked)",
    )


def _setup_arguments(p):
    p.add_argument(
        "--write",
        action="store_true",
        help="write the two files (with backups) and apply the egress rules, after asking",
    )
    p.add_argument("--yes", action="store_true", help="with --write: do not ask")
    p.add_argument("--daemon-json", default="/etc/docker/daemon.json")
    p.add_argument("--runtime-config", default="/etc/nvidia-container-runtime/config.toml")
    _firewall_arguments(p)


COMMANDS = [
    Command(
        "node setup",
        "print (or --write) what this GPU server needs: daemon.json, the NVIDIA runtime config, egress rules, labels",
        cmd_node_setup,
        _setup_arguments,
    ),
    Command(
        "node firewall",
        "apply this GPU server's egress rules (node setup --write installs a unit that runs it at boot)",
        cmd_node_firewall,
        _firewall_arguments,
    ),
]
