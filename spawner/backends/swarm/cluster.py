"""The Swarm as gpulab sees it, from the manager's API (pure functions over its JSON).

* :func:`gpus_from_nodes`: every GPU the nodes advertise as a ``gpu`` generic resource, with its
  node, and the model from the node label ``gpulab.gpu-model`` (set by ``gpulab node setup``);
  GPUs of nodes that are down, drained or paused are not offered;
* :func:`holdings_from_tasks`: which server holds which GPUs, from the tasks Swarm assigned them
  to: the source of truth after a hub restart;
* :func:`describe_task`: a task's state in words for the spawn page ("pending on no node:
  insufficient resources on 2 nodes", "preparing on gpu2: pulling the image").
"""

import re
import time
from datetime import datetime, timezone

from ...core import contract
from ...core.gpus.inventory import GPU

LIVE_TASK_STATES = (
    "new",
    "pending",
    "assigned",
    "accepted",
    "preparing",
    "ready",
    "starting",
    "running",
)


#: a task's states after which it never runs again
DONE_STATES = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")


def node_name(node):
    return (node.get("Description") or {}).get("Hostname") or node.get("ID", "")[:12]


def node_usable(node):
    return (node.get("Status") or {}).get("State") == "ready" and (node.get("Spec") or {}).get(
        "Availability"
    ) == "active"


def node_gpu_uuids(node):
    out = []
    for r in ((node.get("Description") or {}).get("Resources") or {}).get("GenericResources") or []:
        named = r.get("NamedResourceSpec") or {}
        if named.get("Kind") == contract.GPU_RESOURCE and named.get("Value"):
            out.append(named["Value"])
    return sorted(out)


def servers(nodes):
    """The names of the nodes a user may ask for by name: workers that are ready and active."""
    return {
        node_name(n)
        for n in nodes
        if node_usable(n) and (n.get("Spec") or {}).get("Role") == "worker"
    }


def gpus_isolated(node):
    """True when ``gpulab node setup`` found the node's NVIDIA runtime giving each task only the
    GPUs Swarm assigned it; a node that is not would let every GPU task see every GPU."""
    return ((node.get("Spec") or {}).get("Labels") or {}).get(
        contract.NL_GPU_ISOLATION
    ) == contract.GPU_ISOLATION


def gpus_from_nodes(nodes):
    """(usable GPUs, {node name: node id}) of the usable nodes, indices counted per node. GPUs of
    a node without isolation (:func:`gpus_isolated`) are not offered: fail safe."""
    gpus, ids = [], {}
    for node in sorted(nodes, key=node_name):
        name = node_name(node)
        ids[name] = node["ID"]
        if not node_usable(node) or not gpus_isolated(node):
            continue
        labels = (node.get("Spec") or {}).get("Labels") or {}
        memory = int(labels.get(contract.NL_GPU_MEMORY) or 0)
        for i, uuid in enumerate(node_gpu_uuids(node)):
            gpus.append(
                GPU(
                    index=i,
                    uuid=uuid,
                    model=labels.get(contract.NL_GPU_MODEL, "GPU"),
                    memory_total=memory,
                    node=name,
                )
            )
    return gpus, ids


def task_gpus(task):
    out = []
    for r in (
        task.get("GenericResources") or task.get("AssignedGenericResources") or []
    ):  # what Swarm assigned
        named = r.get("NamedResourceSpec") or {}
        if named.get("Kind") == contract.GPU_RESOURCE and named.get("Value"):
            out.append(named["Value"])
    return out


def timestamp(text):
    """Swarm's RFC 3339 times (nanoseconds, 'Z') as seconds since the epoch."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?", text or "")
    if not m:
        return time.time()
    base = (
        datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    )
    return base + (float("0" + m.group(2)) if m.group(2) else 0.0)


def holdings_from_tasks(services, tasks):
    """{holder: (uuids, since)} from the deployment's services and their live tasks."""
    by_id = {s["ID"]: s for s in services}
    out = {}
    for task in tasks:
        service = by_id.get(task.get("ServiceID"))
        if service is None or task.get("DesiredState") != "running":
            continue
        if (task.get("Status") or {}).get("State") not in LIVE_TASK_STATES:
            continue
        labels = (service.get("Spec") or {}).get("Labels") or {}
        uuids = task_gpus(task)
        if uuids:
            holder = (labels.get(contract.L_USER, ""), labels.get(contract.L_SERVER, ""))
            out[holder] = (uuids, timestamp(task.get("CreatedAt", "")))
    return out


def describe_task(task, node_names):
    """One line for the spawn page about where the task is and why it waits or failed."""
    status = task.get("Status") or {}
    state = status.get("State", "unknown")
    node = node_names.get(task.get("NodeID"), "") if task.get("NodeID") else ""
    where = f" on {node}" if node else ""
    detail = status.get("Err") or status.get("Message") or ""
    if state == "preparing":
        detail = detail or "pulling the image"
    return f"Task{where}: {state}" + (f" ({detail})" if detail and detail != state else "")


def node_labels(nodes):
    """{node name: its labels, plus its role as the pseudo-label ``node.role``}."""
    out = {}
    for n in nodes:
        spec = n.get("Spec") or {}
        out[node_name(n)] = {**(spec.get("Labels") or {}), "node.role": spec.get("Role", "")}
    return out


def node_cpus(nodes):
    """{node name: CPUs it reports to the Swarm}."""
    return {
        node_name(n): ((n.get("Description") or {}).get("Resources") or {}).get("NanoCPUs", 0)
        // 10**9
        for n in nodes
    }


CONSTRAINT = re.compile(
    r"^node\.(hostname|role|labels\.([A-Za-z0-9_.-]+))\s*(==|!=)\s*([A-Za-z0-9_.:-]+)$"
)


def parse_constraint(text):
    m = CONSTRAINT.match(text.strip())
    if not m:
        raise ValueError(f"unsupported placement constraint {text!r}")
    return (m.group(2) or f"node.{m.group(1)}", m.group(3), m.group(4))


def constraint_matcher(constraints, labels_by_node):
    """A GPU -> bool predicate for Swarm placement constraints (node.hostname, node.role, node.labels.X),
    so gpulab chooses among the same GPUs Swarm would; None when there are none."""
    parsed = [parse_constraint(c) for c in constraints]
    if not parsed:
        return None

    def matches(gpu):
        labels = labels_by_node.get(gpu.node, {})
        for key, op, value in parsed:
            actual = gpu.node if key == "node.hostname" else labels.get(key)
            if (actual == value) != (op == "=="):
                return False
        return True

    return matches
