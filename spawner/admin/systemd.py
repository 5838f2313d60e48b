"""``gpulab install``: the hub as a systemd service that starts at boot, logs to the journal and
restarts on failure. ``gpulab up`` in a terminal stays for trying it out.

One host: the unit runs ``gpulab up`` (the hub and its proxy) as a simple service.
Swarm mode: ``gpulab up --replace`` starts the hub container on this manager and exits; the unit
is a oneshot that stays "active" and removes the container when stopped (the hub's own log is the
container's: ``docker logs``).

Where systemd is not running (a container, a CI machine) the command says so and installs
nothing; a failed step removes what was written.
"""

import os
import shutil
import subprocess
import sys

from ..backends import select
from ..core import contract
from ..core.site.facts import hub_container_name, unit_name

UNIT_DIR = "/etc/systemd/system"
SYSTEMD_RUNNING = "/run/systemd/system"  # what sd_booted() looks for


class InstallError(Exception):
    pass


def render_unit(site, *, site_file, config_file, gpulab_bin=None, path_dirs=()):
    """The unit file text. Paths are made absolute; ``path_dirs`` go first on PATH (the venv's bin,
    where configurable-http-proxy is)."""
    gpulab_bin = os.path.abspath(
        gpulab_bin or os.path.join(os.path.dirname(sys.executable), "gpulab")
    )
    site_file, config_file = os.path.abspath(site_file), os.path.abspath(config_file)
    path = ":".join(
        [
            *(os.path.abspath(p) for p in path_dirs or [os.path.dirname(gpulab_bin)]),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ]
    )
    name = site["hub"]["name"]
    up = f"{gpulab_bin} --site {site_file} up --config {config_file}"
    head = f"""[Unit]
Description=gpulab hub {name}: JupyterHub for the lab's GPU servers
Documentation=https://jupyterhub.readthedocs.io/
After=network-online.target docker.service
Wants=network-online.target
Requires=docker.service

[Service]
Environment={contract.SITE_FILE_ENV}={site_file}
Environment=PATH={path}
# secrets (auth.*.client_secret_env, cluster.registry_auth.password_env) live here, root-only, never in the unit
EnvironmentFile=-{environment_file(site)}
WorkingDirectory={os.path.dirname(config_file)}
SyslogIdentifier=gpulab-{name}
"""
    if not select(site).hub_on_host:
        docker = shutil.which("docker") or "/usr/bin/docker"
        body = f"""Type=oneshot
RemainAfterExit=yes
ExecStart={up} --replace
ExecStop={docker} rm -f {hub_container_name(site)}
TimeoutStartSec=300
"""
    else:
        body = f"""Type=simple
ExecStart={up}
Restart=on-failure
RestartSec=5
KillMode=mixed
TimeoutStopSec=60
"""
    return head + body + "\n[Install]\nWantedBy=multi-user.target\n"


def environment_file(site):
    """Where the unit reads its secrets from: a root-only file the admin writes."""
    return f"/etc/gpulab/{site['hub']['name']}.env"


def unsafe_paths(paths):
    """The paths (and their folders, up to /) that someone other than root could change: the hub
    runs as root, so whoever can write its code or configuration can become root."""
    out = []
    seen = set()
    for path in paths:
        p = os.path.abspath(path)
        while True:
            if p not in seen:
                seen.add(p)
                try:
                    st = os.stat(p)
                except OSError:
                    st = None
                # a sticky folder of root's (/tmp) lets nobody replace what root owns in it
                sticky = (
                    st is not None and st.st_uid == 0 and st.st_mode & 0o1000 and os.path.isdir(p)
                )
                if st is not None and not sticky and (st.st_uid != 0 or st.st_mode & 0o022):
                    out.append(p)
            parent = os.path.dirname(p)
            if parent == p:
                break
            p = parent
    return out


def check_sources(site_file, config_file, gpulab_bin=None):
    """Refuse to install a hub whose code or configuration others can change (raises InstallError)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the gpulab package
    gpulab_bin = gpulab_bin or os.path.join(os.path.dirname(sys.executable), "gpulab")
    bad = unsafe_paths([site_file, config_file, gpulab_bin, package, sys.executable])
    if bad:
        raise InstallError(
            "the hub would run as root from files others can change: "
            + ", ".join(bad[:4])
            + (" …" if len(bad) > 4 else "")
            + " (owned by another user, or writable by group or others): chown root and chmod go-w them, or install from a root-owned checkout"
        )


def systemd_running():
    return os.path.isdir(SYSTEMD_RUNNING)


def install(site, unit_text, *, unit_dir=UNIT_DIR, start=True, run=subprocess.run):
    """Write the unit, reload systemd, enable (and start) it. On any failure nothing stays written."""
    env = environment_file(site)
    if os.path.exists(env) and os.stat(env).st_mode & 0o077:
        raise InstallError(f"{env} holds secrets but others can read it: chmod 600 {env}")
    if not systemd_running():
        raise InstallError(
            f"systemd is not running on this machine ({SYSTEMD_RUNNING} is missing): nothing was installed. "
            "Run the hub with `gpulab up` here, or install on a host booted with systemd"
        )
    path = os.path.join(unit_dir, unit_name(site))
    if os.path.exists(path):
        raise InstallError(
            f"{path} exists: remove it (systemctl disable --now {unit_name(site)}) or edit it"
        )
    with open(path, "x") as f:
        f.write(unit_text)
    os.chmod(path, 0o644)
    try:
        for cmd in (
            ["systemd-analyze", "verify", path],
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", *(["--now"] if start else []), unit_name(site)],
        ):
            r = run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise InstallError(
                    f"`{' '.join(cmd)}` failed: {(r.stderr or r.stdout).strip()[:500]}"
                )
    except BaseException:
        os.unlink(path)
        run(["systemctl", "daemon-reload"], capture_output=True, text=True)
        raise
    return path
