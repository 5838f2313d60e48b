"""``gpulab node setup``: what one GPU server needs to serve gpulab in a Docker Swarm.

From the node's own GPUs (NVML), pure functions compute:

* the Docker daemon settings (``/etc/docker/daemon.json``): the NVIDIA runtime as the default
  runtime, and every GPU advertised as a named Swarm generic resource ``gpu=GPU-<uuid>``;
* the NVIDIA container runtime setting (``/etc/nvidia-container-runtime/config.toml``):
  ``swarm-resource = "DOCKER_RESOURCE_GPU"``, so a task's container gets exactly the GPUs
  Swarm assigned to it;
* the node labels (GPU model, count, and ``gpulab.gpu-isolation`` once the runtime is found set
  up: a node without it offers no GPUs) to add on a manager;
* the node's egress rules (:func:`egress_rules`): containers on ``docker_gwbridge`` (every user
  task's way out of its overlay) reach DNS and the internet, not the node, the other nodes' Swarm
  ports, the lab's NFS, the registry or other lab services (``hub.egress_blocked``).

Nothing is written unless the admin asks (``--write``) and confirms.
"""

import copy
import re

from ...core import contract
from .. import firewall
from .cluster import node_gpu_uuids, node_name

SWARM_RESOURCE_LINE = 'swarm-resource = "DOCKER_RESOURCE_GPU"'
DAEMON_JSON = "/etc/docker/daemon.json"
RUNTIME_CONFIG = "/etc/nvidia-container-runtime/config.toml"


def label_value(text):
    """A node label value from a GPU model name: 'NVIDIA H100 80GB HBM3' -> 'NVIDIA-H100-80GB-HBM3'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "GPU"


def generic_resources(gpus):
    return [f"{contract.GPU_RESOURCE}={g.uuid}" for g in sorted(gpus, key=lambda g: g.index)]


def daemon_config(existing, gpus):
    """``existing`` daemon.json (a dict) with the NVIDIA runtime as default and the GPUs advertised.

    Other settings are kept; generic resources of other kinds are kept; old GPU entries are replaced.
    """
    config = copy.deepcopy(existing or {})
    runtimes = config.setdefault("runtimes", {})
    runtimes.setdefault("nvidia", {"path": "nvidia-container-runtime", "runtimeArgs": []})
    config["default-runtime"] = "nvidia"
    others = [
        r
        for r in config.get("node-generic-resources") or []
        if not r.startswith(f"{contract.GPU_RESOURCE}=")
    ]
    config["node-generic-resources"] = others + generic_resources(gpus)
    return config


def runtime_config(text):
    """The NVIDIA container runtime config with ``swarm-resource`` set (top level, before any table)."""
    lines = (text or "").splitlines()
    out, done = [], False
    for line in lines:
        if re.match(r"\s*#?\s*swarm-resource\s*=", line):
            if not done:
                out.append(SWARM_RESOURCE_LINE)
                done = True
            continue
        out.append(line)
    if not done:
        first_table = next(
            (i for i, line in enumerate(out) if line.strip().startswith("[")), len(out)
        )
        out.insert(first_table, SWARM_RESOURCE_LINE)
    return "\n".join(out) + "\n"


def runtime_isolates(text):
    """True when the NVIDIA runtime's config gives tasks only their Swarm-assigned GPUs."""
    return any(line.strip() == SWARM_RESOURCE_LINE for line in (text or "").splitlines())


def egress_rules(blocked, dns=()):
    """The iptables argument lists of a GPU node's egress rules (see :mod:`gpulab.backends.firewall`):
    nothing of the node from ``docker_gwbridge``, no blocked range through it but DNS."""
    return firewall.rules(EGRESS_CHAINS, GWBRIDGE, None, 0, dns, blocked)


def node_labels(gpus, isolated=False):
    models = sorted({g.model for g in gpus})
    labels = {contract.NL_GPU_COUNT: str(len(gpus))}
    if isolated:
        labels[contract.NL_GPU_ISOLATION] = contract.GPU_ISOLATION
    if len(models) == 1:
        labels[contract.NL_GPU_MODEL] = label_value(models[0])
    return labels


def label_command(node, labels):
    args = " ".join(f"--label-add {k}={v}" for k, v in sorted(labels.items()))
    return f"docker node update {args} {node}"


#: 20.10 rejects services with both a network and a generic resource (moby/moby#44378); 23.0.3
#: fixed encrypted overlays letting unencrypted traffic in (CVE-2023-28840/28841/28842)
MIN_ENGINE = (23, 0, 3)
EGRESS_CHAINS = "node"  # iptables chains GPULAB-NODE-IN/-OUT
GWBRIDGE = "docker_gwbridge"
MIN_TOOLKIT = (1, 19, 1)


def version_tuple(text):
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(x or 0) for x in m.groups()) if m else None


def at_least(text, minimum):
    v = version_tuple(text)
    return v is not None and v >= minimum


def check_node(node):
    """Problems of one Swarm node (a manager's ``docker node inspect`` JSON), as short sentences."""

    problems = []
    desc = node.get("Description") or {}
    engine = (desc.get("Engine") or {}).get("EngineVersion", "")
    if not at_least(engine, MIN_ENGINE):
        problems.append(
            f"Docker engine {engine or '?'} is older than {'.'.join(map(str, MIN_ENGINE))} (services with a GPU and a network are rejected)"
        )
    if (node.get("Status") or {}).get("State") != "ready":
        problems.append(f"state is {(node.get('Status') or {}).get('State')}")
    spec = node.get("Spec") or {}
    if spec.get("Role") == "worker":
        if not node_gpu_uuids(node):
            problems.append("advertises no GPUs (run `gpulab node setup` on it)")
        elif (spec.get("Labels") or {}).get(contract.NL_GPU_ISOLATION) != contract.GPU_ISOLATION:
            problems.append(
                "its NVIDIA runtime is not known to give each task only its own GPUs: it offers none "
                f"(`gpulab node setup --write` on it sets swarm-resource and prints the {contract.NL_GPU_ISOLATION} label)"
            )
        elif contract.NL_GPU_MODEL not in (spec.get("Labels") or {}):
            problems.append(
                f"has no {contract.NL_GPU_MODEL} label (the command `gpulab node setup` prints adds it)"
            )
    return node_name(node), problems
