"""Home backups: a user's (or an admin's) copy of a home into a dated archive in the site file's
``storage.backups`` directory (a NAS path, say; by default outside the hub's state directory), and
its restore into a new folder of the home.

Both are jobs (:class:`~gpulab.core.job.JobSpec`) run through the deployment's one door,
``run_job``: the base image, no network, every capability dropped but the few tar needs, the
lab's pids and log limits, a memory and CPU limit and a timeout; so the hub never reads users'
files itself. They run in the background: a job reports its progress (the archive's bytes written
so far; the files restored so far) until it is done or failed.

* A backup is ``tar --sparse`` of the home; a user keeps at most ``storage.backups_per_user`` of
  them in at most ``storage.backups_max_size`` (a backup that grows past what is left is stopped),
  and those older than ``storage.backups_keep_days`` are deleted at the next backup. A failed
  backup leaves no part behind.
* A restore never overwrites and never runs as root on the user's files: it checks that the
  archive's contents fit the home's free space, then unpacks as the user (so quotas apply) into
  ``~/restored-<archive time>-<now>/``.
* Backups are kept per hub user id (``<user id>-<name>/``): a new account that takes a deleted
  user's name finds none of theirs. Nothing is backed up or restored before the home exists (the
  server's first start makes it).
"""

import asyncio
import os
import re
import time

import docker

from ..core import spec as specs
from ..core.job import build_job

#: home-<UTC time>.tar.gz, or home-<time>-<n>.tar.gz for the n-th backup made in the same second
ARCHIVE = re.compile(r"home-(\d{8}-\d{6}(?:-\d{1,3})?)\.tar\.gz")
JOB_TIMEOUT = 6 * 3600  # a home of a few hundred GB on a slow NAS
#: tar as root reads any user's files (backup); a restore reads the archive as root and unpacks as
#: the user (setpriv needs SETUID and SETGID to become them)
BACKUP_CAPABILITIES = ("DAC_READ_SEARCH",)
RESTORE_CAPABILITIES = ("DAC_READ_SEARCH", "SETUID", "SETGID")
OVER_SIZE = 75  # the exit status a restore gives when the archive does not fit


class HomeBackupError(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def user_dir(lab, user_id, escaped_user):
    """A user's backups, keyed by the hub's user id (never reused)."""
    return os.path.join(lab.home_backups_dir, f"{user_id}-{escaped_user}")


def home_mount(spawner):
    """(source, kind) of the user's home: a Docker volume or a host path."""
    identity = spawner.identity()
    source = specs.render(spawner.home_source, identity, spawner.deployment)
    return source, ("bind" if specs.is_host_path(source) else "volume")


def list_archives(lab, user_id, escaped_user):
    folder = user_dir(lab, user_id, escaped_user)
    try:
        names = sorted(
            (n for n in os.listdir(folder) if ARCHIVE.fullmatch(n)), key=_order, reverse=True
        )
    except FileNotFoundError:
        return []
    return [
        {"name": n, "bytes": _size(os.path.join(folder, n)), "time": _order(n)[0]} for n in names
    ]


def _order(name):
    """(time, n): the n-th backup made in one second comes after the first."""
    when = ARCHIVE.fullmatch(name).group(1)
    return (when[:15], int(when[16:] or 1))


def new_archive_name(folder, stamp):
    """home-<stamp>.tar.gz, or -2, -3, ... when a backup of that second exists (a user's backups
    run one at a time, so a second backup in one second is a quick one, not a race)."""
    for i in range(1, 1000):
        name = f"home-{stamp}{'' if i == 1 else f'-{i}'}.tar.gz"
        if not os.path.exists(os.path.join(folder, name)) and not os.path.exists(
            os.path.join(folder, f".{name}.part")
        ):
            return name
    raise HomeBackupError("a thousand backups were made this second: try again", 409)


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
        self.jobs = {}  # hub user id -> the latest Job (a new account of an old name has none)

    def job(self, user_id):
        job = self.jobs.get(user_id)
        return job.as_dict() if job else None

    def _busy(self, user_id):
        job = self.jobs.get(user_id)
        if job and job.state == "running":
            raise HomeBackupError(
                f"a {job.kind} of this home is running: wait for it to finish", 409
            )

    def _home(self, spawner):
        """(source, kind) of a home that exists; a home not made yet is refused, not created."""
        source, kind = home_mount(spawner)
        if kind == "bind":
            exists = os.path.isdir(source)
        else:
            try:
                self.lab.docker().volumes.get(source)
                exists = True
            except docker.errors.NotFound:
                exists = False
        if not exists:
            raise HomeBackupError(
                "there is no home yet: it is made when your server first starts", 409
            )
        return source, kind

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

    def expire(self, user_id, escaped_user, now=None):
        """Delete the user's backups older than ``storage.backups_keep_days``; returns their names."""
        days = self.lab.home_backups_keep_days
        if not days:
            return []
        cutoff = time.strftime("%Y%m%d-%H%M%S", time.gmtime((now or time.time()) - days * 86400))
        gone = [
            a["name"] for a in list_archives(self.lab, user_id, escaped_user) if a["time"] < cutoff
        ]
        for name in gone:
            os.unlink(os.path.join(user_dir(self.lab, user_id, escaped_user), name))
        return gone

    def delete(self, spawner, archive):
        user_id = spawner.user.id
        if archive not in {
            a["name"] for a in list_archives(self.lab, user_id, spawner.escaped_name)
        }:
            raise HomeBackupError(f"no backup {archive[:80]!r} of your home", 404)
        os.unlink(os.path.join(user_dir(self.lab, user_id, spawner.escaped_name), archive))

    def start_backup(self, spawner, now=None):
        username, user_id = spawner.user.name, spawner.user.id
        self._busy(user_id)
        self.expire(user_id, spawner.escaped_name, now)
        existing = list_archives(self.lab, user_id, spawner.escaped_name)
        if len(existing) >= self.lab.home_backups_per_user:
            raise HomeBackupError(
                f"you have {len(existing)} home backup(s), the limit is {self.lab.home_backups_per_user}: delete one first",
                409,
            )
        room = self.lab.home_backups_max_size - sum(a["bytes"] for a in existing)
        if room <= 0:
            raise HomeBackupError(
                f"your home backups use all of the {_gib(self.lab.home_backups_max_size)} they may: delete one first",
                409,
            )
        source, kind = self._home(spawner)
        folder = user_dir(self.lab, user_id, spawner.escaped_name)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time()))
        name = new_archive_name(folder, stamp)
        stamp = ARCHIVE.fullmatch(name).group(1)
        part = f".{name}.part"
        command = [
            "sh",
            "-c",
            f'tar --sparse -C /home-src -czf "/backup/{part}" . && chmod 600 "/backup/{part}" '
            f'&& mv "/backup/{part}" "/backup/{name}" || {{ status=$?; rm -f "/backup/{part}"; exit $status; }}',
        ]
        mounts = [
            specs.MountSpec(target="/home-src", source=source, kind=kind, read_only=True),
            specs.MountSpec(target="/backup", source=folder, kind="bind"),
        ]
        job = Job("backup", username, name)
        self.jobs[user_id] = job
        spec = self._job_spec(spawner, "backup", stamp, command, mounts, BACKUP_CAPABILITIES)

        def written():  # the archive's bytes so far (the .part file, then the finished archive)
            return _size(os.path.join(folder, part)) or _size(os.path.join(folder, name))

        leftovers = [os.path.join(folder, part)]
        asyncio.ensure_future(self._run(job, spec, written, limit=room, leftovers=leftovers))
        return job.as_dict()

    def start_restore(self, spawner, archive, now=None):
        username, user_id = spawner.user.name, spawner.user.id
        self._busy(user_id)
        if archive not in {
            a["name"] for a in list_archives(self.lab, user_id, spawner.escaped_name)
        }:
            raise HomeBackupError(f"no backup {archive[:80]!r} of your home", 404)
        source, kind = self._home(spawner)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time()))
        target = f"restored-{ARCHIVE.fullmatch(archive).group(1)}-{stamp}"
        identity = spawner.identity()
        as_user = f"setpriv --reuid={identity.uid} --regid={identity.gid} --clear-groups --"
        # as root only to read the archive (readable by root only) and the free space; the files
        # are unpacked by the user: nothing of root's lands in the home, and quotas apply
        script = (
            f'need=$(tar -tvzf "/backup/{archive}" | awk \'{{s += $3}} END {{printf "%d", s}}\') || exit 1; '
            "free=$(df -B1 --output=avail /home-dst | tail -n 1 | tr -d ' '); "
            f'if [ "$need" -gt "$free" ]; then echo "the backup unpacks to $need bytes; the home has $free free" >&2; exit {OVER_SIZE}; fi; '
            f'{as_user} mkdir "/home-dst/{target}" && '
            f'cat "/backup/{archive}" | {as_user} tar --sparse -C "/home-dst/{target}" -xzvf -'
        )
        mounts = [
            specs.MountSpec(target="/home-dst", source=source, kind=kind),
            specs.MountSpec(
                target="/backup",
                source=user_dir(self.lab, user_id, spawner.escaped_name),
                kind="bind",
                read_only=True,
            ),
        ]
        job = Job("restore", username, target)
        self.jobs[user_id] = job
        spec = self._job_spec(
            spawner, "restore", stamp, ["sh", "-c", script], mounts, RESTORE_CAPABILITIES
        )
        asyncio.ensure_future(self._run(job, spec, None))
        return job.as_dict()

    async def _run(self, job, spec, measure, limit=None, leftovers=()):
        """Run the job to its end. ``measure()`` gives the progress, or None: the files tar has
        listed so far (its output, followed as it comes). A backup that grows past ``limit`` is
        stopped; whatever fails leaves none of ``leftovers``."""

        def counted(line):
            if line.strip():
                job.progress += 1

        run = asyncio.ensure_future(self.lab.run_job(spec, on_line=None if measure else counted))
        watch = asyncio.ensure_future(self._measure(job, measure, limit, run)) if measure else None
        try:
            try:
                result = await run
            except asyncio.CancelledError:
                raise HomeBackupError(
                    f"this backup passed what your backups may still take ({_gib(limit)}): stopped",
                    409,
                )
            if result.timed_out:
                raise HomeBackupError(f"{job.kind} did not finish in {spec.timeout:.0f} s", 500)
            if job.kind == "restore" and result.status == OVER_SIZE:
                raise HomeBackupError(result.output.strip().splitlines()[-1], 409)
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
            for path in leftovers:
                if os.path.exists(path):
                    os.unlink(path)
        finally:
            if watch is not None:
                watch.cancel()
        job.finished = time.time()

    async def _measure(self, job, measure, limit, run):
        while not run.done():
            job.progress = measure()
            if limit is not None and job.progress > limit:
                run.cancel()  # run_job removes the container as it is cancelled
                return
            await asyncio.sleep(self.poll)


def _gib(n):
    return f"{(n or 0) / 1024**3:.1f} GiB"


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
