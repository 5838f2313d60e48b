"""Home backups: a user's (or an admin's) copy of a home into a dated archive in the site file's
``storage.backups`` directory (a NAS path, say), and its restore into a new folder of the home.

Both are jobs (:class:`~gpulab.core.job.JobSpec`) run through the deployment's one door,
``run_job``: the base image, no network, every capability dropped but the few tar needs, the
lab's pids and log limits, a memory and CPU limit and a timeout; so the hub never reads users'
files itself. They run in the background: a job reports its progress (the archive's bytes written
so far; the files restored so far) until it is done or failed. A restore never overwrites: it
unpacks into ``~/restored-<archive time>-<now>/``, owned by the user.
"""

import asyncio
import os
import re
import time

from ..core import spec as specs
from ..core.job import build_job

ARCHIVE = re.compile(r"home-(\d{8}-\d{6})\.tar\.gz")
JOB_TIMEOUT = 6 * 3600  # a home of a few hundred GB on a slow NAS
#: tar as root reads any user's files (backup) or writes and re-owns them (restore); nothing more
BACKUP_CAPABILITIES = ("DAC_READ_SEARCH",)
RESTORE_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER")


class HomeBackupError(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def user_dir(lab, escaped_user):
    return os.path.join(lab.home_backups_dir, escaped_user)


def home_mount(spawner):
    """(source, kind) of the user's home: a Docker volume or a host path."""
    identity = spawner.identity()
    source = specs.render(spawner.home_source, identity, spawner.deployment)
    return source, ("bind" if specs.is_host_path(source) else "volume")


def list_archives(lab, escaped_user):
    folder = user_dir(lab, escaped_user)
    try:
        names = sorted((n for n in os.listdir(folder) if ARCHIVE.fullmatch(n)), reverse=True)
    except FileNotFoundError:
        return []
    return [
        {
            "name": n,
            "bytes": os.path.getsize(os.path.join(folder, n)),
            "time": ARCHIVE.fullmatch(n).group(1),
        }
        for n in names
    ]


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
    """The deployment's home backup and restore jobs (one at a time per user)."""

    def __init__(self, lab, poll=0.5):
        self.lab = lab
        self.poll = poll
        self.jobs = {}  # username -> the latest Job

    def job(self, username):
        job = self.jobs.get(username)
        return job.as_dict() if job else None

    def _busy(self, username):
        job = self.jobs.get(username)
        if job and job.state == "running":
            raise HomeBackupError(
                f"a {job.kind} of this home is running: wait for it to finish", 409
            )

    def _job_spec(self, spawner, kind, stamp, command, mounts, capabilities):
        return build_job(
            deployment=self.lab.name,
            name=f"{self.lab.name}-{kind}-{spawner.escaped_name}-{stamp}"[:63].rstrip("-"),
            kind=kind,
            username=spawner.user.name,
            image=self.lab.job_image(),
            command=command,
            mounts=mounts,
            capabilities=capabilities,
            hardening=self.lab.hardening,
            timeout=JOB_TIMEOUT,
        )

    def start_backup(self, spawner, now=None):
        username = spawner.user.name
        self._busy(username)
        source, kind = home_mount(spawner)
        folder = user_dir(self.lab, spawner.escaped_name)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time()))
        name = f"home-{stamp}.tar.gz"
        if os.path.exists(os.path.join(folder, name)):
            raise HomeBackupError("a backup was made this second: try again", 409)
        part = f".{name}.part"
        command = [
            "sh",
            "-c",
            f'tar -C /home-src -czf "/backup/{part}" . && chmod 600 "/backup/{part}" && mv "/backup/{part}" "/backup/{name}"',
        ]
        mounts = [
            specs.MountSpec(target="/home-src", source=source, kind=kind, read_only=True),
            specs.MountSpec(target="/backup", source=folder, kind="bind"),
        ]
        job = Job("backup", username, name)
        self.jobs[username] = job
        spec = self._job_spec(spawner, "backup", stamp, command, mounts, BACKUP_CAPABILITIES)
        # progress: the archive's bytes so far (the .part file, then the finished archive)
        asyncio.ensure_future(
            self._run(
                job,
                spec,
                lambda: _size(os.path.join(folder, part)) or _size(os.path.join(folder, name)),
            )
        )
        return job.as_dict()

    def start_restore(self, spawner, archive, now=None):
        username = spawner.user.name
        self._busy(username)
        found = {a["name"] for a in list_archives(self.lab, spawner.escaped_name)}
        if archive not in found:
            raise HomeBackupError(f"no backup {archive[:80]!r} of your home", 404)
        source, kind = home_mount(spawner)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time()))
        target = f"restored-{ARCHIVE.fullmatch(archive).group(1)}-{stamp}"
        identity = spawner.identity()
        # as root in a box (no network; only the home and, read-only, the backups): the archive is
        # readable by root only; what is restored is then given to the user
        owner = f"{identity.uid}:{identity.gid}"
        command = [
            "sh",
            "-c",
            f'mkdir "/home-dst/{target}" && tar -C "/home-dst/{target}" -xzvf "/backup/{archive}" && chown -R {owner} "/home-dst/{target}"',
        ]
        mounts = [
            specs.MountSpec(target="/home-dst", source=source, kind=kind),
            specs.MountSpec(
                target="/backup",
                source=user_dir(self.lab, spawner.escaped_name),
                kind="bind",
                read_only=True,
            ),
        ]
        job = Job("restore", username, target)
        self.jobs[username] = job
        spec = self._job_spec(spawner, "restore", stamp, command, mounts, RESTORE_CAPABILITIES)
        asyncio.ensure_future(self._run(job, spec, None))
        return job.as_dict()

    async def _run(self, job, spec, measure):
        """Run the job to its end. ``measure()`` gives the progress, or None: the files tar has
        listed so far (its output, followed as it comes)."""

        def counted(line):
            if line.strip():
                job.progress += 1

        watch = asyncio.ensure_future(self._measure(job, measure)) if measure else None
        try:
            result = await self.lab.run_job(spec, on_line=None if measure else counted)
            if result.timed_out:
                raise HomeBackupError(f"{job.kind} did not finish in {spec.timeout:.0f} s", 500)
            if not result.ok:
                raise HomeBackupError(
                    f"{job.kind} failed: {result.output[-300:].strip() or 'exit ' + str(result.status)}",
                    500,
                )
            if measure:
                job.progress = measure()
            job.state = "done"
        except Exception as e:
            job.state = "failed"
            job.error = str(e)[:500]
        finally:
            if watch is not None:
                watch.cancel()
        job.finished = time.time()

    async def _measure(self, job, measure):
        while True:
            job.progress = measure()
            await asyncio.sleep(self.poll)


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
