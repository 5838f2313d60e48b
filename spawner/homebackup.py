"""Home backups: a user's (or an admin's) copy of a home into a dated archive in the site file's
``storage.backups`` directory (a NAS path, say), and its restore into a new folder of the home.

Both run in a short-lived helper container (the base image, no network) that mounts the home (a
volume or a host path) and the backup directory, so the hub never reads users' files itself.
They run in the background: a job reports its progress (the archive's bytes written so far; the
files restored so far) until it is done or failed. A restore never overwrites: it unpacks into
``~/restored-<archive time>-<now>/``, owned by the user.
"""

import asyncio
import os
import re
import time

import docker

from . import contract
from . import spec as specs
from .userdata import HELPER_IMAGE

ARCHIVE = re.compile(r"home-(\d{8}-\d{6})\.tar\.gz")


class BackupError(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def backup_root(site):
    return site["storage"]["backups"] or os.path.join(os.path.abspath(site["hub"]["state_dir"]), "home-backups")


def user_dir(site, escaped_user):
    return os.path.join(backup_root(site), escaped_user)


def home_mount(spawner):
    """(source, kind) of the user's home: a Docker volume or a host path."""
    identity = spawner.identity()
    source = specs.render(spawner.home_source, identity, spawner.deployment)
    return source, ("bind" if specs.is_host_path(source) else "volume")


def list_archives(site, escaped_user):
    folder = user_dir(site, escaped_user)
    try:
        names = sorted((n for n in os.listdir(folder) if ARCHIVE.fullmatch(n)), reverse=True)
    except FileNotFoundError:
        return []
    return [{"name": n, "bytes": os.path.getsize(os.path.join(folder, n)), "time": ARCHIVE.fullmatch(n).group(1)} for n in names]


class Job:
    def __init__(self, kind, username, target):
        self.kind, self.username, self.target = kind, username, target
        self.state = "running"
        self.started = time.time()
        self.finished = None
        self.progress = 0  # bytes written (backup) or files restored (restore)
        self.error = ""

    def as_dict(self):
        unit = "bytes" if self.kind == "backup" else "files"
        return {
            "kind": self.kind,
            "state": self.state,
            "target": self.target,
            "started": self.started,
            "finished": self.finished,
            "progress": self.progress,
            "unit": unit,
            "error": self.error,
        }


class HomeBackups:
    """The hub's jobs (one at a time per user)."""

    def __init__(self, site, client_factory=None, poll=0.5):
        self.site = site
        self.client_factory = client_factory or (lambda: docker.from_env(version="auto", timeout=120))
        self.poll = poll
        self.jobs = {}  # username -> the latest Job

    def job(self, username):
        job = self.jobs.get(username)
        return job.as_dict() if job else None

    def _busy(self, username):
        job = self.jobs.get(username)
        if job and job.state == "running":
            raise BackupError(f"a {job.kind} of this home is running: wait for it to finish", 409)

    def start_backup(self, spawner, now=None):
        username = spawner.user.name
        self._busy(username)
        source, kind = home_mount(spawner)
        folder = user_dir(self.site, spawner.escaped_name)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        name = f"home-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now or time.time()))}.tar.gz"
        if os.path.exists(os.path.join(folder, name)):
            raise BackupError("a backup was made this second: try again", 409)
        part = f".{name}.part"
        command = ["sh", "-c", f'tar -C /home-src -czf "/backup/{part}" . && chmod 600 "/backup/{part}" && mv "/backup/{part}" "/backup/{name}"']
        job = Job("backup", username, name)
        self.jobs[username] = job
        volumes = {source: {"bind": "/home-src", "mode": "ro"}, folder: {"bind": "/backup", "mode": "rw"}}
        # progress: the archive's bytes so far (the .part file, then the finished archive)
        asyncio.ensure_future(self._run(job, command, volumes, lambda: _size(os.path.join(folder, part)) or _size(os.path.join(folder, name))))
        return job.as_dict()

    def start_restore(self, spawner, archive, now=None):
        username = spawner.user.name
        self._busy(username)
        found = {a["name"] for a in list_archives(self.site, spawner.escaped_name)}
        if archive not in found:
            raise BackupError(f"no backup {archive[:80]!r} of your home", 404)
        source, kind = home_mount(spawner)
        stamp = ARCHIVE.fullmatch(archive).group(1)
        target = f"restored-{stamp}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now or time.time()))}"
        identity = spawner.identity()
        # as root in a box (no network; only the home and, read-only, the backups): the archive is
        # readable by root only; what is restored is then given to the user
        owner = f"{identity.uid}:{identity.gid}"
        command = [
            "sh",
            "-c",
            f'mkdir "/home-dst/{target}" && tar -C "/home-dst/{target}" -xzvf "/backup/{archive}" && chown -R {owner} "/home-dst/{target}"',
        ]
        job = Job("restore", username, target)
        self.jobs[username] = job
        volumes = {source: {"bind": "/home-dst", "mode": "rw"}, user_dir(self.site, spawner.escaped_name): {"bind": "/backup", "mode": "ro"}}
        asyncio.ensure_future(self._run(job, command, volumes, None))
        return job.as_dict()

    async def _run(self, job, command, volumes, measure):
        """Run the helper (as root in its box) to the end; ``measure()`` gives the progress, or
        None: the files tar has listed so far."""
        labels = {contract.L_DEPLOYMENT: self.site["hub"]["name"], contract.L_USER: job.username, "gpulab.job": job.kind}
        try:
            client = await asyncio.to_thread(self.client_factory)
            container = await asyncio.to_thread(
                client.containers.run,
                HELPER_IMAGE,
                command,
                entrypoint=[],
                detach=True,
                network_mode="none",
                user="0",
                volumes=volumes,
                labels=labels,
            )
            try:
                while True:
                    await asyncio.to_thread(container.reload)
                    if measure:
                        job.progress = measure()
                    else:
                        job.progress = sum(1 for line in (await asyncio.to_thread(container.logs, stdout=True, stderr=False)).splitlines() if line)
                    if container.status == "exited":
                        break
                    await asyncio.sleep(self.poll)
                result = await asyncio.to_thread(container.wait)
                if result.get("StatusCode", 1) != 0:
                    tail = (await asyncio.to_thread(container.logs, stdout=False, stderr=True)).decode(errors="replace")[-300:]
                    raise BackupError(f"{job.kind} failed: {tail.strip() or 'exit ' + str(result.get('StatusCode'))}", 500)
                if measure:
                    job.progress = measure()
                job.state = "done"
            finally:
                await asyncio.to_thread(container.remove, force=True)
        except Exception as e:
            job.state = "failed"
            job.error = str(e)[:500]
        job.finished = time.time()


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
