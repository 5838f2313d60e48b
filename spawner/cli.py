"""The ``gpulab`` admin command: up, prepare, check, images, gpus, ssh-proxy.

Subcommands import what they use when they run, so the light ones (``ssh-proxy``, ``gpus``,
which come from the laptop client ``gpulab_client``) start fast.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

from . import images, ops
from .schema import SiteConfigError
from .siteconfig import load_site, site_path


def _ok(msg):
    print(f"  ok    {msg}")


def _bad(msg):
    print(f"  FAIL  {msg}")


def check(site_file, *, need_images="all"):
    """Validate the site file and the host. Returns the number of problems."""
    problems = 0
    print(f"gpulab check: site file {site_file}")
    try:
        site = load_site(site_file)
        _ok("site file is valid")
    except SiteConfigError as e:
        _bad(str(e))
        return 1
    from .hubconfig import missing_host_paths, proxy_command
    from .network import HostError, docker_client

    problems += _check_spawner_settings(site)
    try:
        client = docker_client()
        _ok(f"Docker engine reachable (server {client.version().get('Version')})")
    except HostError as e:
        _bad(str(e))
        return problems + 1
    swarm = site["cluster"]["mode"] == "swarm"
    wanted = site["profiles"] if need_images == "all" else [p for p in site["profiles"] if p["name"] == site["default_profile"]]
    if swarm:
        wanted = []  # the nodes pull from the registry (gpulab images push); the hub image has the proxy
        print(f"  note  swarm mode: images come from {site['cluster']['registry']} (gpulab images push)")
    for profile in wanted:
        try:
            client.images.get(profile["image"])
            _ok(f"image {profile['image']} (profile {profile['name']}) is present")
        except docker_errors().ImageNotFound:
            problems += 1
            _bad(f"image {profile['image']} (profile {profile['name']}) is missing: run `gpulab images build`")
    for profile in site["profiles"]:
        if profile not in wanted:
            print(f"  note  profile {profile['name']}: image {profile['image']} not checked")
    for key, path in missing_host_paths(site):
        problems += 1
        _bad(f"{key}: host path {path} does not exist")
    chp = proxy_command()
    if swarm:
        pass
    elif os.access(chp, os.X_OK):
        _ok(f"configurable-http-proxy installed ({chp})")
    else:
        problems += 1
        _bad("configurable-http-proxy is not installed: `npm install -g configurable-http-proxy` (make up does)")
    print("gpulab check: " + ("all good" if not problems else f"{problems} problem(s)"))
    return problems


def docker_errors():
    import docker.errors

    return docker.errors


def _check_spawner_settings(site):
    """The spawner settings as a whole (site file + jupyterhub_config.py), as the hub checks them."""
    from traitlets import TraitError
    from traitlets.config import Config

    from .hubconfig import configure
    from .settings import ConfigError
    from .spawner import GPUDockerSpawner

    c = Config()
    try:
        configure(c, site)
        GPUDockerSpawner(config=c).check_settings()
    except (ConfigError, TraitError, SiteConfigError) as e:
        _bad(str(e))
        return 1
    _ok("spawner settings are consistent")
    return 0


def check_swarm_nodes(site):
    """Every node of the Swarm this host manages: engine version, state, GPUs, labels."""
    from .network import HostError, docker_client
    from .swarm import nodesetup

    try:
        nodes = docker_client().api.nodes()
    except HostError as e:
        _bad(str(e))
        return 1
    except docker_errors().APIError as e:
        _bad(f"cannot list the Swarm's nodes ({e.explanation or e}): run gpulab check on a manager")
        return 1
    problems = 0
    for node in nodes:
        name, issues = nodesetup.check_node(node)
        if issues:
            problems += 1
            _bad(f"node {name}: " + "; ".join(issues))
        else:
            _ok(f"node {name}: ready, engine {(node['Description'].get('Engine') or {}).get('EngineVersion')}")
    return problems


def cmd_check(args):
    problems = check(args.site)
    try:
        site = load_site(args.site)
    except SiteConfigError:
        return 1
    if site["cluster"]["mode"] == "swarm":
        node_problems = check_swarm_nodes(site)
        problems += node_problems
        print("gpulab check: Swarm nodes " + ("all good" if not node_problems else f"{node_problems} problem(s)"))
    return 1 if problems else 0


def cmd_node_setup(args):
    """What this GPU server needs to serve gpulab in a Swarm: printed, or written with consent."""
    import json

    from .gpus.inventory import discover, load_pynvml
    from .siteconfig import gpu_defaults
    from .swarm import nodesetup

    gpus = discover(gpu_defaults(), nvml_loader=load_pynvml)
    if not gpus:
        print("gpulab node setup: NVML finds no GPU on this machine (is the NVIDIA driver installed? nvidia-smi)", file=sys.stderr)
        return 1
    toolkit = subprocess.run(["nvidia-ctk", "--version"], capture_output=True, text=True) if shutil.which("nvidia-ctk") else None
    if toolkit is None:
        print("gpulab node setup: warning: the NVIDIA container toolkit (nvidia-ctk) is not installed; install it first")
    elif not nodesetup.at_least(toolkit.stdout, nodesetup.MIN_TOOLKIT):
        print(f"gpulab node setup: warning: NVIDIA container toolkit {toolkit.stdout.strip()[:60]} is older than 1.19.1; upgrade it")
    try:
        with open(args.daemon_json) as f:
            existing = json.load(f)
    except FileNotFoundError:
        existing = {}
    except (OSError, ValueError) as e:
        print(f"gpulab node setup: cannot read {args.daemon_json}: {e}", file=sys.stderr)
        return 1
    try:
        with open(args.runtime_config) as f:
            runtime_text = f.read()
    except FileNotFoundError:
        runtime_text = ""
    daemon = nodesetup.daemon_config(existing, gpus)
    runtime = nodesetup.runtime_config(runtime_text)
    labels = nodesetup.node_labels(gpus)
    print(f"# {len(gpus)} GPU(s): " + ", ".join(f"{g.index}: {g.model} {g.uuid}" for g in gpus))
    print(f"# {args.daemon_json}\n{json.dumps(daemon, indent=2)}")
    print(f"# {args.runtime_config} (top of the file)\n{nodesetup.SWARM_RESOURCE_LINE}")
    print(f"# then on a manager:\n{nodesetup.label_command(os.uname().nodename, labels)}")
    if not args.write:
        print("# nothing was written; --write writes both files (with backups), then restart Docker yourself")
        return 0
    if not args.yes and input(f"Write {args.daemon_json} and {args.runtime_config}? [y/N] ").strip().lower() != "y":
        print("gpulab node setup: nothing written")
        return 1
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for path, text in ((args.daemon_json, json.dumps(daemon, indent=2) + "\n"), (args.runtime_config, runtime)):
        if os.path.exists(path):
            shutil.copy2(path, f"{path}.gpulab-backup-{stamp}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        print(f"gpulab node setup: wrote {path}")
    print("gpulab node setup: restart Docker to apply it (systemctl restart docker); it is not restarted for you")
    return 0


def cmd_prepare(args):
    from .host import prepare
    from .network import HostError

    try:
        gateway = prepare(load_site(args.site))
    except (SiteConfigError, HostError) as e:
        print(f"gpulab prepare: {e}", file=sys.stderr)
        return 1
    print(f"gpulab prepare: ready (the hub API will listen on {gateway})")
    return 0


def cmd_up(args):
    site = load_site(args.site) if os.path.exists(args.site) else None
    if site is not None and site["cluster"]["mode"] == "swarm":
        return up_swarm(args, site)
    if check(args.site, need_images="default"):
        print("gpulab up: fix the problems above first", file=sys.stderr)
        return 1
    config = os.path.abspath(args.config)
    os.environ["GPULAB_CONFIG"] = os.path.abspath(args.site)
    argv = [sys.executable, "-m", "gpulab.app", "-f", config]
    print(f"gpulab up: starting {' '.join(argv)}", flush=True)
    os.execv(sys.executable, argv)


def site_images(site):
    """The buildable images (names in images.IMAGES) that the site file's profiles use."""
    by_tag = {spec.tag: name for name, spec in images.IMAGES.items()}
    return [by_tag[p["image"]] for p in site["profiles"] if p["image"] in by_tag]


def up_swarm(args, site):
    """On a Swarm manager: the hub runs in a container there (gpulab.swarm.hub)."""
    from .network import HostError, docker_client
    from .swarm import hub

    try:
        client = docker_client()
        config_dir = hub.stage_config(site, args.site, args.config, os.path.join(os.path.abspath(site["hub"]["state_dir"]), "config"))
        container = hub.run_hub(client, site, config_dir=config_dir, config_file=args.config, replace=args.replace)
    except (HostError, OSError) as e:
        print(f"gpulab up: {e}", file=sys.stderr)
        return 1
    except docker_errors().APIError as e:
        print(f"gpulab up: Docker refused to start the hub container: {e.explanation or e}", file=sys.stderr)
        return 1
    print(f"gpulab up: the hub runs in container {container.name} ({hub.hub_image(site)}); logs: docker logs -f {container.name}")
    return 0


def cmd_images_build(args):
    names = list(args.names or ["base"])
    if args.for_site:
        try:
            names += [n for n in site_images(load_site(args.site)) if n not in names]
        except SiteConfigError as e:
            print(f"gpulab images build: {e}", file=sys.stderr)
            return 2
    unknown = [n for n in names if n not in images.IMAGES]
    if unknown:
        print(f"gpulab images build: unknown image {unknown[0]!r} (known: {', '.join(images.IMAGES)})", file=sys.stderr)
        return 2
    if args.if_missing:
        names = [n for n in names if not images.image_exists(images.IMAGES[n].tag)]
        if not names:
            print("gpulab images build: all requested images are present")
            return 0
    base_image = args.base_image
    try:
        roots = [n for n in images.build_order(names) if images.IMAGES[n].depends_on is None]
        if args.bootstrap_if_unpullable and not base_image and roots:
            for default in {images.default_base(n) for n in roots}:
                if not images.image_exists(default) and subprocess.run(["docker", "pull", default], capture_output=True).returncode != 0:
                    print(f"gpulab images build: cannot pull {default}; falling back to a local Debian base")
                    args.bootstrap_base = True
                    break
        if args.bootstrap_base:
            print(f"gpulab images build: bootstrapping a Debian base as {images.BOOTSTRAP_TAG} (debootstrap)")
            images.bootstrap_base(mirror=args.apt_mirror)
            base_image = base_image or images.BOOTSTRAP_TAG
        print(f"gpulab images build: build context {images.REPO_ROOT}", flush=True)
        elapsed = images.build_images(
            names,
            base_image=base_image,
            pip_index_url=args.pip_index_url,
            apt_mirror=args.apt_mirror,
            ca_bundle=args.ca_bundle or images.AUTO,
            pip_refresh=time.strftime("%Y%m%dT%H%M%S") if args.refresh else None,
            on_line=images.step_lines() if not args.verbose else print,
        )
    except images.ImageBuildError as e:
        print(f"gpulab images build: {e}", file=sys.stderr)
        return 1
    for name, seconds in elapsed.items():
        print(f"gpulab images build: {name}: {seconds:.0f}s")
    return 0


def cmd_images_push(args):
    names = args.names or ["base"]
    unknown = [n for n in names if n not in images.IMAGES]
    if unknown:
        print(f"gpulab images push: unknown image {unknown[0]!r} (known: {', '.join(images.IMAGES)})", file=sys.stderr)
        return 2
    registry = args.registry
    if not registry:
        try:
            registry = load_site(args.site)["cluster"]["registry"]
        except SiteConfigError as e:
            print(f"gpulab images push: {e}", file=sys.stderr)
            return 2
    if not registry:
        print("gpulab images push: give --registry (or cluster.registry in the site file)", file=sys.stderr)
        return 2
    try:
        for target in images.push_images(names, registry):
            print(f"gpulab images push: {target}")
    except images.ImageBuildError as e:
        print(f"gpulab images push: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_images_list(args):
    rows = images.list_images()
    if not rows:
        print("no gpulab images on this host: run `gpulab images build`")
        return 0
    print(f"{'IMAGE':40} {'ID':14} {'SIZE':10} CREATED")
    for r in rows:
        print(f"{r['repository'] + ':' + r['tag']:40} {r['id']:14} {r['size']:10} {r['created']}")
    return 0


def read_password(path):
    """From a file (first line), or asked twice on the terminal."""
    if path:
        with open(path) as f:
            return f.readline().rstrip("\n")
    import getpass

    first = getpass.getpass("Password for the new account: ")
    if first != getpass.getpass("Again: "):
        raise ValueError("the two passwords differ")
    return first


def cmd_admin_create(args):
    """The first admin (and any approved account) of a native-login hub, made on the hub's machine."""
    from jupyterhub import orm

    from .auth import create_account
    from .hubconfig import db_url

    try:
        site = load_site(args.site)
    except SiteConfigError as e:
        print(f"gpulab admin create: {e}", file=sys.stderr)
        return 2
    if site["auth"]["type"] != "native":
        print(f"gpulab admin create: auth.type is {site['auth']['type']}: accounts live at the identity provider", file=sys.stderr)
        return 2
    try:
        password = read_password(args.password_file)
    except (OSError, ValueError) as e:
        print(f"gpulab admin create: {e}", file=sys.stderr)
        return 2
    if len(password) < 10:
        print("gpulab admin create: the password needs at least 10 characters", file=sys.stderr)
        return 2
    os.makedirs(os.path.abspath(site["hub"]["state_dir"]), mode=0o700, exist_ok=True)
    # JupyterHub's own session factory: a new database gets the hub's schema (and its version
    # stamp), so the hub starts on it as on one it made itself
    session_factory = orm.new_session_factory(db_url(site))
    with session_factory() as db:
        create_account(db, args.name, password)
    role = "an admin" if args.name in site["auth"]["admin_users"] else "approved, not an admin (add them to auth.admin_users)"
    print(f"gpulab admin create: account {args.name!r} is ready: {role}")
    return 0


def cmd_client(args):
    """``gpulab gpus`` / ``gpulab ssh-proxy``: the laptop client's commands (gpulab_client)."""
    if args.command == "gpus" and not args.hub:
        try:
            args.hub = load_site(args.site)["hub"]["bind_url"]
        except SiteConfigError as e:
            print(f"gpulab gpus: {e} (or pass --hub)", file=sys.stderr)
            return 2
    return args.client_main(args)


def parser():
    p = argparse.ArgumentParser(prog="gpulab", description="Run and manage a gpulab hub.")
    p.add_argument("--site", default=site_path(), help="site file (default: $GPULAB_CONFIG or ./gpulab.yaml)")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="check the host, then start the hub")
    up.add_argument("--config", default="jupyterhub_config.py", help="JupyterHub config file (default ./jupyterhub_config.py)")
    up.add_argument("--replace", action="store_true", help="swarm mode: replace a running hub container")
    up.set_defaults(func=cmd_up)
    sub.add_parser("check", help="validate the site file and the host").set_defaults(func=cmd_check)
    img = sub.add_parser("images", help="build or list the user images").add_subparsers(dest="images_command", required=True)
    build = img.add_parser("build", help="build images (default: base)")
    build.add_argument("names", nargs="*", help=f"images to build: {', '.join(images.IMAGES)} (dependencies are built first)")
    build.add_argument("--bootstrap-base", action="store_true", help="make a Debian base with debootstrap (for hosts that cannot pull the CUDA base)")
    build.add_argument(
        "--bootstrap-if-unpullable", action="store_true", help="use the CUDA base if it is present or can be pulled, else --bootstrap-base"
    )
    build.add_argument("--base-image", help=f"FROM image for base (default {images.DEFAULT_BASE_IMAGE})")
    build.add_argument("--pip-index-url", help="PyPI mirror used inside the build")
    build.add_argument("--apt-mirror", help="Debian/Ubuntu mirror used inside the build")
    build.add_argument(
        "--ca-bundle", help=f"CA bundle for HTTPS inside the build, passed as a BuildKit secret (default {images.HOST_CA_BUNDLE} if present)"
    )
    build.add_argument("--if-missing", action="store_true", help="only build images that are not present")
    build.add_argument("--refresh", action="store_true", help="reinstall the Python packages now (by default they refresh weekly)")
    build.add_argument("--for-site", action="store_true", help="also build every image the site file's profiles name that gpulab knows how to build")
    build.add_argument("-v", "--verbose", action="store_true", help="show every build output line")
    build.set_defaults(func=cmd_images_build)
    img.add_parser("list", help="list gpulab images on this host").set_defaults(func=cmd_images_list)
    push = img.add_parser("push", help="push built images to the lab's registry (swarm mode: the nodes pull them)")
    push.add_argument("names", nargs="*", help=f"images to push: {', '.join(images.IMAGES)} (default: base)")
    push.add_argument("--registry", help="registry address, e.g. registry.lab.example:5000 (default: cluster.registry)")
    push.set_defaults(func=cmd_images_push)
    admin = sub.add_parser("admin", help="accounts of a native-login hub").add_subparsers(dest="admin_command", required=True)
    create = admin.add_parser("create", help="create (or reset) an approved account, e.g. the first admin")
    create.add_argument("name", help="the account name, e.g. one of auth.admin_users")
    create.add_argument("--password-file", help="read the password from this file (default: ask)")
    create.set_defaults(func=cmd_admin_create)
    node = sub.add_parser("node", help="GPU servers of a Swarm").add_subparsers(dest="node_command", required=True)
    setup = node.add_parser("setup", help="print (or --write) what this GPU server needs: daemon.json, the NVIDIA runtime config, labels")
    setup.add_argument("--write", action="store_true", help="write the two files (with backups) after asking")
    setup.add_argument("--yes", action="store_true", help="with --write: do not ask")
    setup.add_argument("--daemon-json", default="/etc/docker/daemon.json")
    setup.add_argument("--runtime-config", default="/etc/nvidia-container-runtime/config.toml")
    setup.set_defaults(func=cmd_node_setup)
    ops.add_parsers(sub)
    sub.add_parser("prepare", help="create the state directory, Docker network and SSH store (gpulab up does)").set_defaults(func=cmd_prepare)
    from gpulab_client import gpus, sshproxy

    for module in (gpus, sshproxy):
        client = module.add_parser(sub)
        client.set_defaults(func=cmd_client, client_main=module.main)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    sys.exit(args.func(args) or 0)


if __name__ == "__main__":
    main()
