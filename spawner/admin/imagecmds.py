"""``gpulab images build | push | list``: the user images and the hub image (:mod:`.images`)."""

import subprocess
import sys
import time

from ..core.site.model import load_site
from ..core.site.schema import ConfigError
from . import images
from .command import Command


def site_images(site):
    """The buildable images (names in images.IMAGES) that the site file's profiles use."""
    by_tag = {spec.tag: name for name, spec in images.IMAGES.items()}
    return [by_tag[p["image"]] for p in site["profiles"] if p["image"] in by_tag]


def cmd_images_build(args):
    names = list(args.names or ["base"])
    if args.for_site:
        try:
            names += [n for n in site_images(load_site(args.site)) if n not in names]
        except ConfigError as e:
            print(f"gpulab images build: {e}", file=sys.stderr)
            return 2
    unknown = [n for n in names if n not in images.IMAGES]
    if unknown:
        print(
            f"gpulab images build: unknown image {unknown[0]!r} (known: {', '.join(images.IMAGES)})",
            file=sys.stderr,
        )
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
                if (
                    not images.image_exists(default)
                    and subprocess.run(["docker", "pull", default], capture_output=True).returncode
                    != 0
                ):
                    print(
                        f"gpulab images build: cannot pull {default}; falling back to a local "
                        "Debian base: the images will have no CUDA (no nvidia-smi), and the spawn "
                        "form and `gpulab check` say so"
                    )
                    args.bootstrap_base = True
                    break
        if args.bootstrap_base:
            print(
                f"gpulab images build: bootstrapping a Debian base as {images.BOOTSTRAP_TAG} (debootstrap)"
            )
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
        print(
            f"gpulab images push: unknown image {unknown[0]!r} (known: {', '.join(images.IMAGES)})",
            file=sys.stderr,
        )
        return 2
    registry = args.registry
    if not registry:
        try:
            registry = load_site(args.site)["cluster"]["registry"]
        except ConfigError as e:
            print(f"gpulab images push: {e}", file=sys.stderr)
            return 2
    if not registry:
        print(
            "gpulab images push: give --registry (or cluster.registry in the site file)",
            file=sys.stderr,
        )
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


def _build_arguments(build):
    build.add_argument(
        "names",
        nargs="*",
        help=f"images to build: {', '.join(images.IMAGES)} (dependencies are built first)",
    )
    build.add_argument(
        "--bootstrap-base",
        action="store_true",
        help="make a Debian base with debootstrap (for hosts that cannot pull the CUDA base)",
    )
    build.add_argument(
        "--bootstrap-if-unpullable",
        action="store_true",
        help="use the CUDA base if it is present or can be pulled, else --bootstrap-base",
    )
    build.add_argument(
        "--base-image", help=f"FROM image for base (default {images.DEFAULT_BASE_IMAGE})"
    )
    build.add_argument("--pip-index-url", help="PyPI mirror used inside the build")
    build.add_argument("--apt-mirror", help="Debian/Ubuntu mirror used inside the build")
    build.add_argument(
        "--ca-bundle",
        help=f"CA bundle for HTTPS inside the build, passed as a BuildKit secret (default {images.HOST_CA_BUNDLE} if present)",
    )
    build.add_argument(
        "--if-missing", action="store_true", help="only build images that are not present"
    )
    build.add_argument(
        "--refresh",
        action="store_true",
        help="reinstall the Python packages now (by default they refresh weekly)",
    )
    build.add_argument(
        "--for-site",
        action="store_true",
        help="also build every image the site file's profiles name that gpulab knows how to build",
    )
    build.add_argument("-v", "--verbose", action="store_true", help="show every build output line")


def _push_arguments(push):
    push.add_argument(
        "names", nargs="*", help=f"images to push: {', '.join(images.IMAGES)} (default: base)"
    )
    push.add_argument(
        "--registry",
        help="registry address, e.g. registry.lab.example:5000 (default: cluster.registry)",
    )


COMMANDS = [
    Command("images build", "build images (default: base)", cmd_images_build, _build_arguments),
    Command("images list", "list gpulab images on this host", cmd_images_list),
    Command(
        "images push",
        "push built images to the lab's registry (swarm mode: the nodes pull them)",
        cmd_images_push,
        _push_arguments,
    ),
]
