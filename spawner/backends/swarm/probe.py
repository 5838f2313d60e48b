"""``gpulab check`` on a Swarm asks every node, by running a probe there as a user's server runs
(a job on every node, on the hub's overlay, held like a server): does the node's engine apply
no-new-privileges to services (Docker 27's API does; some older engines ignore it), and are the
places a user's container must not reach (the lab's registry, the manager's Swarm port, the lab's
NFS or whatever an admin names) refused? Is the lab's shared storage there, the same as the
manager's (a marker file written for this check must be seen through it)? Checked, not assumed: a
node without its egress rules (``gpulab node setup --write``), on an engine that drops the
setting, or without the shared storage is reported."""

import json
import uuid

from ...core import contract
from ...core.job import EVERY_NODE, build_job
from ...core.spec import MountSpec

SHARED = "/gpulab-shared"  # where the probe sees the shared root (read-only)

PROBE = r"""
import json, os, socket, sys
out = {"node": os.environ.get(sys.argv[2], "?"), "reached": []}
for line in open("/proc/self/status"):
    if line.startswith("NoNewPrivs:"):
        out["no_new_privs"] = line.split()[1]
out["shared"] = None
if len(sys.argv) > 3:
    try:
        os.stat(sys.argv[3])
        out["shared"] = True
    except PermissionError:
        out["shared"] = "unreadable"
    except OSError:
        out["shared"] = False
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
    """``marker``: a file's name in ``shared_root`` that the node must see there."""
    shared = (
        [MountSpec(target=SHARED, source=shared_root, kind="bind", read_only=True)]
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
            *([f"{SHARED}/{marker}"] if marker else []),
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


def problems(answer, shared_root=""):
    """What is wrong on one node, in words."""
    out = []
    if answer.get("shared") == "unreadable":
        out.append(
            f"its {shared_root or 'shared root'} cannot be searched by an unprivileged user (make it 0755)"
        )
    if answer.get("shared") is False:
        out.append(
            f"its {shared_root or 'shared root'} is not the lab's shared storage (not mounted there?): "
            "homes and saves would not be found; servers started there fail"
        )
    if answer.get("no_new_privs") != "1":
        out.append(
            "its engine does not apply no-new-privileges to services (setuid programs in user servers could gain root)"
        )
    if answer.get("reached"):
        out.append(
            f"user containers reach {', '.join(answer['reached'])} (apply its egress rules: gpulab node setup --write)"
        )
    return out
