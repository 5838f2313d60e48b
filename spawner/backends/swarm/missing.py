"""GPU servers that lack the lab's shared storage (homes, the SSH host keys, the boot files). A
node whose NFS mount failed at boot has an empty local folder, or none, where the shared root
should be; a server's task placed there is rejected by Swarm ("bind source path does not exist":
Swarm never creates a bind's source, so nothing lands on the node's own disk).

When the hub itself sees the missing path (it mounts the shared root: the path is there, the node
is what lacks it; a path missing everywhere, say a dataset's folder misspelt in the site file,
passes no node over), the user is told which node lacks what, and the node is passed over: none of
its GPUs offered, no server without GPUs placed there, a start naming it refused. Every
``RECHECK_EVERY`` seconds a small job on that node mounts the hub's boot folder (on the shared
storage, mounted by every server; read-only, as nobody, no capabilities): once it runs, the node is
offered again. Nothing a user names or owns decides a check. Pure but for the clock."""

import re
import time
import uuid

from ...core.job import NODE_BRIDGE, build_job
from ...core.spec import MountSpec

RECHECK_EVERY = 30.0  # seconds between checks of a node passed over
_NOT_THERE = re.compile(r"bind source path does not exist: (\S+)")


def missing_path(task):
    """The bind source a task was rejected for lacking on its node, or ""."""
    status = task.get("Status") or {}
    found = _NOT_THERE.search(status.get("Err") or status.get("Message") or "")
    return found.group(1) if found else ""


def explain(node, path, passed_over=True):
    """For the user whose start failed (the path is one of their own server's)."""
    return f"{node} does not have {path}, which every GPU server must have" + (
        " (is the lab's shared storage mounted there?); gpulab places no server there until it has"
        if passed_over
        else ""
    )


class MissingStorage:
    """Which nodes are passed over, since when, and when they were last checked."""

    def __init__(self, recheck_every=RECHECK_EVERY):
        self.recheck_every = recheck_every
        self.nodes = {}  # node name -> {"since": t, "checked": t, "checking": bool}

    def lacks(self, node, now=None):
        now = time.time() if now is None else now
        self.nodes.setdefault(node, {"since": now, "checked": now, "checking": False})

    def lacking(self):
        return set(self.nodes)

    def why(self, node):
        """For anyone (no user's path in it)."""
        if node not in self.nodes:
            return ""
        return (
            f"{node} does not have the lab's shared storage now; gpulab places no server there "
            "until it has"
        )

    def due(self, now=None):
        """Nodes to check now (each marked as being checked)."""
        now = time.time() if now is None else now
        out = []
        for node, entry in sorted(self.nodes.items()):
            if not entry["checking"] and now - entry["checked"] >= self.recheck_every:
                entry["checking"] = True
                out.append(node)
        return out

    def checked(self, node, present, now=None):
        """The check of ``node`` ended: ``present`` True forgets the node (it is offered again)."""
        entry = self.nodes.get(node)
        if entry is None:
            return
        if present:
            del self.nodes[node]
        else:
            entry["checking"] = False
            entry["checked"] = time.time() if now is None else now

    def forget_all_but(self, nodes):
        """Nodes that left the Swarm are not checked any more."""
        for node in set(self.nodes) - set(nodes):
            del self.nodes[node]


def check_job(*, deployment, node, shared_path, image, hardening):
    """A job on ``node`` that only starts when ``shared_path`` (the hub's boot folder on the
    shared storage) is there."""
    return build_job(
        deployment=deployment,
        name=f"{deployment}-storagecheck-{uuid.uuid4().hex[:8]}",
        kind="storage-check",
        image=image,
        command=["true"],
        mounts=[MountSpec(target="/check", source=shared_path, kind="bind", read_only=True)],
        user="65534:65534",
        network=NODE_BRIDGE,  # a job on a node always has the node's bridge
        node=node,
        hardening=hardening,
        timeout=120,
    )
