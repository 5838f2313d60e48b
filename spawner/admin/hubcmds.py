"""The hub's own host: ``gpulab check`` (the site file, the spawner settings, Docker, images, the
proxy, a Swarm's nodes), ``gpulab prepare``, ``gpulab up`` (the backend launches the hub) and
``gpulab admin create`` (the first admin of a native-login hub)."""

import os
import sys

from ..backends import select
from ..backends.engine import HostError, docker_client
from ..core.site import facts
from ..core.site.model import load_site
from ..core.site.schema import ConfigError
from .command import Command, config_argument


def _ok(msg):
    print(f"  ok    {msg}")


def _bad(msg):
    print(f"  FAIL  {msg}")


def spawner_for(site):
    """The backend's spawner, configured from the site file (and nothing else), as the hub would."""
    from traitlets.config import Config

    from ..hub.wiring import configure

    c = Config()
    configure(c, site)
    return select(site).load_spawner_class()(config=c)


def check(site_file):
    """Validate the site file and the host. Returns the number of problems."""
    problems = 0
    print(f"gpulab check: site file {site_file}")
    try:
        site = load_site(site_file)
        _ok("site file is valid")
    except ConfigError as e:
        _bad(str(e))
        return 1
    from ..hub.wiring import missing_host_paths, proxy_command

    backend = select(site)
    problems += _check_spawner_settings(site)
    try:
        client = docker_client()
        _ok(f"Docker engine reachable (server {client.version().get('Version')})")
    except HostError as e:
        _bad(str(e))
        return problems + 1
    # the default profile's image must be there; the others may come later (`gpulab images
    # build NAME`): until then the form shows them as unavailable
    wanted = [p for p in site["profiles"] if p["name"] == site["default_profile"]]
    if not backend.hub_on_host:
        wanted = []  # the nodes pull from the registry (gpulab images push); the hub image has the proxy
        print(
            f"  note  {backend.name} mode: images come from {site['cluster']['registry']} (gpulab images push)"
        )
    import docker.errors

    from ..core.imagefacts import without_cuda
    from .images import IMAGES

    buildable = {spec.tag: name for name, spec in IMAGES.items()}
    for profile in site["profiles"] if backend.hub_on_host else ():
        image, name = profile["image"], profile["name"]
        try:
            found = client.images.get(image)
        except docker.errors.ImageNotFound:
            how = (
                f"`gpulab images build {buildable[image]}`"
                if image in buildable
                else "build or pull it"
            )
            if profile in wanted:
                problems += 1
                _bad(f"image {image} (profile {name}) is missing: {how}")
            else:
                print(
                    f"  note  image {image} (profile {name}) is not built yet ({how}); the spawn "
                    "form shows the profile as unavailable until it is"
                )
            continue
        _ok(f"image {image} (profile {name}) is present")
        if without_cuda(found.labels):
            print(
                f"  note  image {image} (profile {name}) was built on a plain Debian base, without "
                "CUDA (no nvidia-smi, no CUDA libraries): rebuild it where the CUDA base can be pulled"
            )
    for key, path in missing_host_paths(site):
        problems += 1
        _bad(f"{key}: host path {path} does not exist")
    chp = proxy_command()
    if not backend.hub_on_host:
        pass
    elif os.access(chp, os.X_OK):
        _ok(f"configurable-http-proxy installed ({chp})")
    else:
        problems += 1
        _bad(
            "configurable-http-proxy is not installed: `npm install -g configurable-http-proxy` (make up does)"
        )
    print("gpulab check: " + ("all good" if not problems else f"{problems} problem(s)"))
    return problems


def _check_spawner_settings(site):
    """The spawner settings as a whole (site file + jupyterhub_config.py), as the hub checks them."""
    from traitlets import TraitError

    try:
        spawner_for(site).check_settings()
    except (ConfigError, TraitError) as e:
        _bad(str(e))
        return 1
    _ok("spawner settings are consistent")
    return 0


def check_nodes(site):
    """The GPU servers of this site's backend (a Swarm's nodes: engine, state, GPUs, labels)."""
    import docker.errors

    try:
        found = select(site).node_problems(docker_client(), site)
    except HostError as e:
        _bad(str(e))
        return 1
    except docker.errors.APIError as e:
        _bad(f"cannot list the GPU servers ({e.explanation or e}): run gpulab check on a manager")
        return 1
    problems = 0
    for name, issues, fine in found:
        if issues:
            problems += 1
            _bad(f"node {name}: " + "; ".join(issues))
        else:
            _ok(f"node {name}: {fine}")
    return problems


def cmd_check(args):
    problems = check(args.site)
    try:
        site = load_site(args.site)
    except ConfigError:
        return 1
    if not select(site).hub_on_host:
        node_problems = check_nodes(site)
        problems += node_problems
        print(
            "gpulab check: Swarm nodes "
            + ("all good" if not node_problems else f"{node_problems} problem(s)")
        )
    return 1 if problems else 0


def cmd_prepare(args):
    """What `gpulab up` prepares: the state directory, the backend's networks, the SSH store."""
    from traitlets import TraitError

    from ..hub.deployment import Deployment

    try:
        site = load_site(args.site)
        gateway = Deployment.from_spawner(spawner_for(site)).prepare_host(site["hub"]["api_port"])
    except (ConfigError, TraitError, HostError) as e:
        print(f"gpulab prepare: {e}", file=sys.stderr)
        return 1
    print(f"gpulab prepare: ready (the hub API will listen on {gateway})")
    return 0


def cmd_up(args):
    site = load_site(args.site) if os.path.exists(args.site) else None
    backend = select(site) if site is not None else None
    if backend is None or backend.hub_on_host:
        if check(args.site):
            print("gpulab up: fix the problems above first", file=sys.stderr)
            return 1
        backend = backend or select(load_site(args.site))
    import docker.errors

    try:
        return backend.launch_hub(
            site, site_file=args.site, config_file=args.config, replace=args.replace
        )
    except (HostError, OSError) as e:
        print(f"gpulab up: {e}", file=sys.stderr)
        return 1
    except docker.errors.APIError as e:
        print(
            f"gpulab up: Docker refused to start the hub container: {e.explanation or e}",
            file=sys.stderr,
        )
        return 1


def read_password(path, stdin=None):
    """From a file (its first line; ``-``: standard input), from standard input when it is not a
    terminal (``… | gpulab admin create NAME``), or asked twice on the terminal."""
    stdin = stdin or sys.stdin
    if path == "-" or (not path and not stdin.isatty()):
        line = stdin.readline()
        if not line.strip():
            raise ValueError("no password on standard input (one line expected)")
        return line.rstrip("\r\n")
    if path:
        with open(path) as f:
            return f.readline().rstrip("\r\n")
    import getpass

    try:
        first = getpass.getpass("Password for the new account (10 characters or more): ")
        again = getpass.getpass("Again: ")
    except (EOFError, KeyboardInterrupt):
        raise ValueError("no password given") from None
    if first != again:
        raise ValueError("the two passwords differ")
    return first


def cmd_admin_create(args):
    """The first admin (and any approved account) of a native-login hub, made on the hub's machine."""
    from jupyterhub import orm

    from ..hub.auth import create_account

    try:
        site = load_site(args.site)
    except ConfigError as e:
        print(f"gpulab admin create: {e}", file=sys.stderr)
        return 2
    if site["auth"]["type"] != "native":
        print(
            f"gpulab admin create: auth.type is {site['auth']['type']}: accounts live at the identity provider",
            file=sys.stderr,
        )
        return 2
    try:
        password = read_password(args.password_file)
    except (OSError, ValueError) as e:
        print(f"gpulab admin create: {e}", file=sys.stderr)
        return 2
    if len(password) < 10:
        print("gpulab admin create: the password needs at least 10 characters", file=sys.stderr)
        return 2
    os.makedirs(facts.state_dir(site), mode=0o700, exist_ok=True)
    # JupyterHub's own session factory: a new database gets the hub's schema (and its version
    # stamp), so the hub starts on it as on one it made itself
    session_factory = orm.new_session_factory(facts.db_url(site))
    with session_factory() as db:
        create_account(db, args.name, password)
    role = (
        "an admin"
        if args.name in site["auth"]["admin_users"]
        else "approved, not an admin (add them to auth.admin_users)"
    )
    print(f"gpulab admin create: account {args.name!r} is ready: {role}")
    return 0


def _up_arguments(p):
    config_argument(p)
    p.add_argument(
        "--replace", action="store_true", help="swarm mode: replace a running hub container"
    )


def _create_arguments(p):
    p.add_argument("name", help="the account name, e.g. one of auth.admin_users")
    p.add_argument(
        "--password-file",
        help="read the password (10 characters or more) from this file's first line, - for "
        "standard input (default: standard input when it is piped, else asked twice); "
        "works while the hub runs",
    )


COMMANDS = [
    Command("up", "check the host, then start the hub", cmd_up, _up_arguments),
    Command("check", "validate the site file and the host", cmd_check),
    Command(
        "prepare",
        "create the state directory, Docker network and SSH store (gpulab up does)",
        cmd_prepare,
    ),
    Command(
        "admin create",
        "create (or reset) an approved account, e.g. the first admin",
        cmd_admin_create,
        _create_arguments,
    ),
]
