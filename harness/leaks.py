"""What a test deployment may leave behind on this machine, taken before and after a run.

``snapshot()`` lists what the engine and the host have (containers, volumes, networks, images and
their tags, Swarm services, temporary folders, cgroups, firewall chains and rules, mounts);
``left_behind(before, after)`` names what is new at the end: each a leak, with what it is."""

import glob
import os
import subprocess
import tempfile

import docker

TMP = tempfile.gettempdir()
# pytest keeps its own last few runs' tmp_path folders by design
TMP_KEPT = ("pytest-of-",)


def snapshot(client):
    snap = {}
    snap["containers"] = {c.id: c.name for c in client.containers.list(all=True)}
    snap["volumes"] = {v.name: v.name for v in client.volumes.list()}
    # by name: a daemon restart makes the default bridge again, with a new id
    snap["networks"] = {n.name: n.name for n in client.networks.list()}
    images = {}
    for image in client.images.list(all=True):
        images[image.id] = ", ".join(image.tags) or "<none>"
        for tag in image.tags:
            images[tag] = f"tag {tag}"
    snap["images"] = images
    try:
        snap["services"] = {s.id: s.name for s in client.services.list()}
    except docker.errors.APIError:  # this engine is not a Swarm manager
        snap["services"] = {}
    # folders: what a deployment's tools make (CA, registry, nodes, browsers); a stray file (a
    # daemon's pid file) is not counted
    snap["temporary folders"] = {
        name: os.path.join(TMP, name)
        for name in os.listdir(TMP)
        if not name.startswith(TMP_KEPT)
        and not name.startswith("bash_")
        and os.path.isdir(os.path.join(TMP, name))
    }
    snap["cgroups"] = {path: path for path in _cgroups()}
    snap["firewall"] = {line: line for line in _iptables()}
    snap["mounts"] = {line: line for line in _mounts()}
    return snap


def left_behind(before, after):
    """``[(kind, what)]``: what ``after`` has that ``before`` had not."""
    leaks = []
    for kind, now in after.items():
        was = before.get(kind, {})
        leaks.extend((kind, what) for key, what in sorted(now.items()) if key not in was)
    return leaks


def describe(leaks):
    return "\n".join(f"  {kind}: {what}" for kind, what in leaks)


def _cgroups():
    """The cgroups one level under each hierarchy's root (a Docker-in-Docker node's
    ``--cgroup-parent`` lives there) and under Docker's own parent."""
    found = []
    for top in glob.glob("/sys/fs/cgroup/*/") + ["/sys/fs/cgroup/"]:
        for parent in (top, os.path.join(top, "docker")):
            try:
                entries = os.scandir(parent)
            except OSError:
                continue
            with entries:
                found.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
    return found


def _iptables():
    out = []
    for table in ("filter", "nat"):
        try:
            r = subprocess.run(
                ["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        out.extend(f"{table}: {line}" for line in r.stdout.splitlines())
    return out


def _mounts():
    try:
        with open("/proc/self/mounts") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    # a container's own mounts come and go with the engine (overlay, shm, netns): not ours
    return [
        line
        for line in lines
        if "/var/lib/docker/" not in line and "/run/docker/netns/" not in line
    ]
