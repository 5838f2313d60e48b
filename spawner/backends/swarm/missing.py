"""GPU servers that lack what every GPU server must have: the lab's shared storage (homes, the
SSH host keys, the boot files, datasets). A node whose NFS mount failed at boot has an empty local
folder, or none, where the shared root should be; a server's task placed there is rejected by
Swarm ("bind source path does not exist": Swarm never creates a bind's source, so nothing lands on
the node's own disk). When the hub itself sees the path (it mounts the shared root: the path is
there, the node is what lacks it; a path missing everywhere, say a dataset's folder misspelt in the
site file, passes no node over), it tells the user which node lacks what, offers none of that node's
GPUs and places no server there, and checks again every ``RECHECK_EVERY`` seconds with a small job
on that node that mounts what was missing (read-only, as nobody, no capabilities): once it runs,
the node is offered again. Pure but for the clock."""

import re
import time
import uuid

from ...core.job import NODE_BRIDGE, build_job
from ...core.spec import MountSpec

RECHECK_EVERY = 30.0  # seconds between checks of a node that lacked a path
_NOT_THERE = re.compile(r"bind source path does not exist: (\S+)")


def missing_path(task):
    """The bind source a task was rejected for lacking on its node, or ""."""
    status = task.get("Status") or {}
    found = _NOT_THERE.search(status.get("Err") or status.get("Message") or "")
    return found.group(1) if found else ""


def explain(node, path, passed_over=True):
    return f"{node} does not have {path}, which every GPU server must have" + (
        " (is the lab's shared storage mounted there?); gpulab places no server there until it has"
        if passed_over
        else ""
    )


class MissingStorage:
    """Which nodes lack which paths, since when, and when they were last checked."""

    def __init__(self, recheck_every=RECHECK_EVERY):
        self.recheck_every = recheck_every
        self.nodes = {}  # node name -> {"paths": set, "since": t, "checked": t, "checking": bool}

    def lacks(self, node, path, now=None):
        now = time.time() if now is None else now
        entry = self.nodes.setdefault(
            node, {"paths": set(), "since": now, "checked": now, "checking": False}
        )
        entry["paths"].add(path)
        entry["checked"] = now

    def lacking(self):
        return set(self.nodes)

    def why(self, node):
        entry = self.nodes.get(node)
        return explain(node, ", ".join(sorted(entry["paths"]))) if entry else ""

    def due(self, now=None):
        """[(node, paths)] to check now (each marked as being checked)."""
        now = time.time() if now is None else now
        out = []
        for node, entry in sorted(self.nodes.items()):
            if not entry["checking"] and now - entry["checked"] >= self.recheck_every:
                entry["checking"] = True
                out.append((node, sorted(entry["paths"])))
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


def check_job(*, deployment, node, paths, image, hardening):
    """A job on ``node`` that only starts when every one of ``paths`` is there."""
    return build_job(
        deployment=deployment,
        name=f"{deployment}-storagecheck-{uuid.uuid4().hex[:8]}",
        kind="storage-check",
        image=image,
        command=["true"],
        mounts=[
            MountSpec(target=f"/check/{i}", source=path, kind="bind", read_only=True)
            for i, path in enumerate(paths)
        ],
        user="65534:65534",
        network=NODE_BRIDGE,  # a job on a node always has the node's bridge
        node=node,
        hardening=hardening,
        timeout=120,
    )
