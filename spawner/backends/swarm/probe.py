"""``gpulab check`` on a Swarm asks every node, by running a probe there as a user's server runs
(a job on every node, on the hub's overlay, held like a server): does the node's engine apply
no-new-privileges to services (Docker 27's API does; some older engines ignore it), and are the
places a user's container must not reach (the lab's registry, the manager's Swarm port, the lab's
NFS or whatever an admin names) refused? Is the lab's shared storage there, the same as the
manager's (a marker file written for this check is mounted into the probe: a node without it
rejects the probe's task, whatever the shared root's permissions)? Checked, not assumed: a
node without its egress rules (``gpulab node setup --write``), on an engine that drops the
setting, or without the shared storage is reported."""

import json
import uuid

from ...core import contract
from ...core.job import EVERY_NODE, build_job
from ...core.spec import MountSpec

SHARED = "/gpulab-shared-marker"  # where the probe gets the manager's marker file (read-only)

PROBE = r"""
import json, os, socket, sys
out = {"node": os.environ.get(sys.argv[2], "?"), "reached": []}
for line in open("/proc/self/status"):
    if line.startswith("NoNewPrivs:"):
        out["no_new_privs"] = line.split()[1]
for target in json.loads(sys.argv[1]):
    host, port = target.rsplit(":", 1)
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, int(port)))
        out["reached"].append(target)
    except OSError:
        pass
    finally:
        s.close()
print("gpulab-probe: " + json.dumps(out), flush=True)
"""


def probe_job(*, deployment, image, network, targets, hardening, shared_root="", marker=""):
    """``marker``: a file's name in ``shared_root`` that the node must have there."""
    shared = (
        [
            MountSpec(
                target=SHARED,
                source=f"{shared_root.rstrip('/')}/{marker}",
                kind="bind",
                read_only=True,
            )
        ]
        if marker
        else []
    )
    return build_job(
        deployment=deployment,
        name=f"{deployment}-probe-{uuid.uuid4().hex[:8]}",
        kind="probe",
        image=image,
        command=[
            "python3",
            "-IS",
            "-c",
            PROBE,
            json.dumps(sorted(targets)),
            contract.PROBE_NODE_ENV,
        ],
        mounts=shared,
        env={contract.PROBE_NODE_ENV: "{{.Node.Hostname}}"},  # Swarm fills in the node's name
        user="65534:65534",
        network=network,
        node=EVERY_NODE,
        hardening=hardening,
        timeout=180,
    )


def findings(output):
    """{node: its probe's answer} from a probe job's output."""
    out = {}
    for line in output.splitlines():
        start = line.find("gpulab-probe: ")
        if start >= 0:
            answer = json.loads(line[start + len("gpulab-probe: ") :])
            out[answer["node"]] = answer
    return out


def without_shared_storage(shared_root):
    """A node that rejected the probe for lacking the manager's marker file, in words."""
    return (
        f"its {shared_root} is not the lab's shared storage (not mounted there?): homes and saves "
        "would not be found; servers started there fail"
    )


def problems(answer):
    """What is wrong on one node, in words."""
    out = []
    if answer.get("no_new_privs") != "1":
        out.append(
            "its engine does not apply no-new-privileges to services (setuid programs in user servers could gain root)"
        )
    if answer.get("reached"):
        out.append(
            f"user containers reach {', '.join(answer['reached'])} (apply its egress rules: gpulab node setup --write)"
        )
    return out
