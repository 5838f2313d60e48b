"""The ``gpulab`` commands for running a lab's hub day to day (registered by :mod:`.cli`):
``usage`` (GPU-hours), ``collect`` (a GPU server's readings, :mod:`gpulab.agents.collect`),
``install`` (systemd), ``backup`` / ``restore`` (the hub's state). Each imports what it uses when
it runs."""

import os
import sys
import time

from ..core.site import facts
from ..core.site.model import load_site
from ..core.site.schema import ConfigError
from .command import Command, config_argument


def _site(args, command):
    """The validated site file, or None after printing why (the command then exits 2)."""
    try:
        return load_site(args.site)
    except ConfigError as e:
        print(f"gpulab {command}: {e}", file=sys.stderr)
        return None


def cmd_usage(args):
    """GPU-hours held and used per user or group and day (the hub's usage book)."""
    from ..core.gpus.usage import by_group, render
    from ..hub.usagebook import UsageStore

    site = _site(args, "usage")
    if site is None:
        return 2
    path = facts.usage_path(facts.state_dir(site))
    if not os.path.exists(path):
        print(
            f"gpulab usage: no usage recorded yet ({path} does not exist: the hub writes it)",
            file=sys.stderr,
        )
        return 1
    store = UsageStore(path)
    rows = store.rows(days=args.days, users={args.user} if args.user else None)
    if args.by == "group":
        from jupyterhub import orm

        with orm.new_session_factory(facts.db_url(site))() as db:
            groups = {u.name: [g.name for g in u.groups] for u in db.query(orm.User).all()}
        rows = by_group(rows, lambda name: groups.get(name, []))
    print(render(rows, args.format, key=args.by))
    return 0


def cmd_install(args):
    """The hub as a systemd service (boot, journal, restart on failure)."""
    from . import systemd

    site = _site(args, "install")
    if site is None:
        return 2
    if not os.path.exists(args.config):
        print(
            f"gpulab install: {args.config} does not exist (run it where jupyterhub_config.py is, or pass --config)",
            file=sys.stderr,
        )
        return 2
    unit = systemd.render_unit(site, site_file=args.site, config_file=args.config)
    if args.print:
        print(unit, end="")
        return 0
    try:
        systemd.check_sources(args.site, args.config)
        path = systemd.install(site, unit, unit_dir=args.unit_dir, start=not args.no_start)
    except (systemd.InstallError, OSError) as e:
        print(f"gpulab install: {e}", file=sys.stderr)
        return 2
    name = systemd.unit_name(site)
    print(f"gpulab install: wrote {path}, enabled{'' if args.no_start else ' and started'} {name}.")
    print(
        f"  status: systemctl status {name}   logs: journalctl -u {name} -f   stop: systemctl stop {name}"
    )
    return 0


def cmd_backup(args):
    """The hub's state (database, cookie secret, SSH keys, usage, site file) in a dated archive."""
    from .statebackup import StateBackupError, backup

    try:
        site = load_site(args.site)
        path = backup(site, args.site, args.to or facts.state_backups_dir(site))
    except (ConfigError, StateBackupError, OSError) as e:
        print(f"gpulab backup: {e}", file=sys.stderr)
        return 2
    print(f"gpulab backup: wrote {path} ({os.path.getsize(path) // 1024} KiB)")
    return 0


def cmd_restore(args):
    """Unpack a backup into the site file's (new, empty) state directory."""
    from .statebackup import StateBackupError, read_manifest, restore

    try:
        site = load_site(args.site)
        manifest = read_manifest(args.archive)
        written = restore(args.archive, site)
    except (ConfigError, StateBackupError, OSError) as e:
        print(f"gpulab restore: {e}", file=sys.stderr)
        return 2
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(manifest["time"]))
    print(
        f"gpulab restore: hub {manifest['hub']!r} as of {when} restored into {facts.state_dir(site)}:"
    )
    for path in written:
        print(f"  {path}")
    print("Compare gpulab.yaml.restored with your site file, then start the hub (gpulab up).")
    return 0


def cmd_upgrade_db(args):
    """JupyterHub's ``upgrade-db`` on the site's database (hub.db_url), run so that it finds the
    ``alembic`` of the hub's own environment (JupyterHub calls it by name, off PATH)."""
    import subprocess

    site = _site(args, "upgrade-db")
    if site is None:
        return 2
    db_url, state = facts.db_url(site), facts.state_dir(site)
    if db_url.startswith("sqlite:///") and not os.path.exists(db_url[len("sqlite:///") :]):
        print(f"gpulab upgrade-db: no database at {db_url[len('sqlite:///') :]}", file=sys.stderr)
        return 2
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=os.pathsep.join([bindir, os.environ.get("PATH", "")]))
    argv = [os.path.join(bindir, "jupyterhub"), "upgrade-db", f"--db={db_url}"]
    # in the state directory: JupyterHub's copy of a SQLite database before it upgrades lands there
    done = subprocess.run(argv, cwd=state, env=env)
    if done.returncode:
        print(
            f"gpulab upgrade-db: JupyterHub's upgrade-db failed (exit {done.returncode})",
            file=sys.stderr,
        )
        return 1
    from sqlalchemy.engine import make_url

    shown = make_url(db_url).render_as_string(hide_password=True)
    print(f"gpulab upgrade-db: {shown} is at the schema of JupyterHub {_jupyterhub_version()}")
    return 0


def _jupyterhub_version():
    from jupyterhub import __version__

    return __version__


def cmd_collect(args):
    from ..agents.collect import main as collect_main

    return collect_main(args)


def _usage_arguments(p):
    p.add_argument(
        "--days", type=int, default=7, help="the last N days, today included (default 7)"
    )
    p.add_argument("--by", choices=("user", "group"), default="user")
    p.add_argument("--user", help="only this user")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")


def _install_arguments(p):
    config_argument(p)
    p.add_argument("--print", action="store_true", help="only print the unit file")
    p.add_argument(
        "--no-start", action="store_true", help="enable it for the next boot, do not start it now"
    )
    p.add_argument("--unit-dir", default="/etc/systemd/system")


def _backup_arguments(p):
    p.add_argument(
        "--to", help="directory for the archive (default: hub.backup_dir, else <state_dir>/backups)"
    )


def _restore_arguments(p):
    p.add_argument("archive")


def _collect_arguments(p):
    p.add_argument("--hub", required=True, help="the hub's URL, e.g. http://gpulab-hub:8000")
    p.add_argument(
        "--token-file",
        required=True,
        help="a file with a token that has the scope custom:gpulab:readings",
    )
    p.add_argument("--node", help="this node's name (default: the host name)")
    p.add_argument("--interval", type=float, default=30.0)
    p.add_argument("--once", action="store_true", help="report once and exit (2 on failure)")


COMMANDS = [
    Command(
        "usage", "GPU-hours held and used per user (or group) and day", cmd_usage, _usage_arguments
    ),
    Command(
        "install",
        "install and start the hub as a systemd service (boot, journal, restarts)",
        cmd_install,
        _install_arguments,
    ),
    Command(
        "backup",
        "write the hub's state (database, cookie secret, SSH keys, usage, site file) to a dated archive",
        cmd_backup,
        _backup_arguments,
    ),
    Command(
        "restore",
        "unpack a backup into the site file's state directory (which must hold no hub state)",
        cmd_restore,
        _restore_arguments,
    ),
    Command(
        "upgrade-db",
        "bring the hub's database to the installed JupyterHub's schema (after an upgrade)",
        cmd_upgrade_db,
    ),
    Command(
        "collect",
        "report this node's GPU readings (NVML) to the hub, every --interval seconds",
        cmd_collect,
        _collect_arguments,
    ),
]
