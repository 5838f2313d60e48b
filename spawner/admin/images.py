"""Build the gpulab container images (stdlib only; importable without Docker).

The build context holds ``images/`` and ``hooks/``, so Dockerfiles can COPY ``hooks/`` and
``images/<name>/*``: in a checkout it is the repository root; an installed package carries
both as ``gpulab/buildctx`` (see setup.py), so builds work without a checkout.  Builds use BuildKit so that the host's CA
bundle can be handed to the pip step as a secret (``--secret id=ca_bundle``)
without ever being written into a layer.
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..core import contract, versions
from ..core.site.facts import registry_name
from ..hub.boot import find_build_context

try:
    REPO_ROOT = find_build_context()
except FileNotFoundError:  # reported when a build is asked for
    REPO_ROOT = None
DEFAULT_BASE_IMAGE = "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"
BOOTSTRAP_TAG = contract.BOOTSTRAP_PREFIX + "bookworm"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
AUTO = "auto"  # ca_bundle=AUTO: use the host's CA bundle when it exists


@dataclass(frozen=True)
class ImageSpec:
    name: str
    dockerfile: str  # relative to the repository root
    tag: str
    depends_on: str | None = None  # built with --build-arg BASE_IMAGE=<its tag>
    build_args: tuple = ()  # the optional ARGs this Dockerfile accepts
    prepare: object = None  # a function(repo_root) -> its own build context directory


IMAGES = {
    "base": ImageSpec(
        "base",
        "images/base/Dockerfile",
        "localhost/gpulab/base:latest",
        None,
        (
            "BASE_IMAGE",
            "JUPYTERHUB_VERSION",
            "SERVER_PACKAGES",
            "PIP_REFRESH",
            "PIP_INDEX_URL",
            "APT_MIRROR",
        ),
    ),
    "pytorch": ImageSpec(
        "pytorch",
        "images/pytorch/Dockerfile",
        "localhost/gpulab/pytorch:latest",
        "base",
        ("BASE_IMAGE", "PIP_REFRESH", "PIP_INDEX_URL"),
    ),
}


def prepare_hub_context(repo_root):
    """The hub image's context: its Dockerfile, wheels of gpulab and gpulab-client built from this
    checkout, and requirements.txt (their dependencies, JupyterHub at the hub's version)."""
    repo_root = Path(repo_root)
    if not (repo_root / "setup.py").is_file():
        raise ImageBuildError(
            f"the hub image is built from a checkout of gpulab (no setup.py in {repo_root})"
        )
    ctx = Path(tempfile.mkdtemp(prefix="gpulab-hub-"))
    (ctx / "images" / "hub").mkdir(parents=True)
    shutil.copy(repo_root / "images" / "hub" / "Dockerfile", ctx / "images" / "hub" / "Dockerfile")
    wheels = ctx / "wheels"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(wheels),
            str(repo_root),
            str(repo_root / "client"),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise ImageBuildError(f"building the gpulab wheels failed:\n{proc.stderr[-2000:]}")
    requires = []
    for wheel in wheels.glob("gpulab-[0-9]*.whl"):
        with zipfile.ZipFile(wheel) as z:
            meta = z.read(
                next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            ).decode()
        requires += [
            line.split(":", 1)[1].strip()
            for line in meta.splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line
        ]

    def name(requirement):
        return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()

    # gpulab-client is a wheel here; JupyterHub is pinned to the hub's own major.minor
    requires = [r for r in requires if name(r) not in ("gpulab-client", "jupyterhub")] + [
        default_jupyterhub_spec()
    ]
    (ctx / "requirements.txt").write_text("\n".join(requires) + "\n")
    return ctx


IMAGES["hub"] = ImageSpec(
    "hub",
    "images/hub/Dockerfile",
    "localhost/gpulab/hub:latest",
    None,
    ("BASE_IMAGE", "PIP_REFRESH", "PIP_INDEX_URL"),
    prepare_hub_context,
)


def default_base(name, repo_root=None):
    """The FROM image an image's Dockerfile names by default (``ARG BASE_IMAGE=...``)."""
    path = Path(repo_root or REPO_ROOT) / IMAGES[name].dockerfile
    for line in path.read_text().splitlines():
        if line.startswith("ARG BASE_IMAGE="):
            return line.split("=", 1)[1].strip()
    return None


class ImageBuildError(RuntimeError):
    """A build or bootstrap step failed; the message carries the last output lines."""


def default_jupyterhub_spec() -> str:
    """``jupyterhub==X.Y.*`` matching the hub's installed JupyterHub."""
    try:
        version = metadata.version("jupyterhub")
    except metadata.PackageNotFoundError:
        raise ImageBuildError(
            "jupyterhub is not installed in this Python; pass jupyterhub_spec explicitly"
        ) from None
    major, minor = re.match(r"(\d+)\.(\d+)", version).groups()
    return f"jupyterhub=={major}.{minor}.*"


def build_order(names) -> list[str]:
    """The requested images plus their dependencies, dependencies first."""
    order: list[str] = []

    def visit(name, chain=()):
        if name not in IMAGES:
            raise ValueError(f"unknown image {name!r}; known: {', '.join(IMAGES)}")
        if name in chain:
            raise ValueError(f"dependency cycle: {' -> '.join(chain + (name,))}")
        dep = IMAGES[name].depends_on
        if dep:
            visit(dep, chain + (name,))
        if name not in order:
            order.append(name)

    for name in names:
        visit(name)
    return order


def build_command(
    name,
    *,
    tag=None,
    base_image=None,
    jupyterhub_spec=None,
    pip_index_url=None,
    apt_mirror=None,
    ca_bundle=None,
    repo_root=REPO_ROOT,
    docker_cli=("docker", "build"),
    progress="plain",
    no_cache=False,
    pip_refresh=None,
    server_packages=None,
    context=None,
) -> list[str]:
    """The argv that builds image ``name`` (pure; nothing is run).

    ``docker_cli`` is the prefix from :func:`find_buildkit_cli`. ``base_image``
    defaults to the dependency's default tag (or the Dockerfile's own default).
    ``ca_bundle`` is a host file path handed to the build as secret ``ca_bundle``.
    """
    spec = IMAGES[name]
    if base_image is None and spec.depends_on:
        base_image = IMAGES[spec.depends_on].tag
    values = {
        "BASE_IMAGE": base_image,
        "JUPYTERHUB_VERSION": jupyterhub_spec,
        "SERVER_PACKAGES": " ".join(server_packages or versions.requirements(versions.IMAGE)),
        "PIP_REFRESH": pip_refresh or week_stamp(),
        "PIP_INDEX_URL": pip_index_url,
        "APT_MIRROR": apt_mirror,
    }
    argv = list(docker_cli)
    if progress:
        argv.append(f"--progress={progress}")
    if no_cache:
        argv.append("--no-cache")
    root = Path(context) if context else Path(repo_root)
    argv += ["-f", str(root / spec.dockerfile), "-t", tag or spec.tag]
    if base_image:  # what it was built on: the hub tells users when that had no CUDA
        argv += ["--label", f"{contract.L_BASE_IMAGE}={base_image}"]
    for arg in spec.build_args:
        if values[arg]:
            argv += ["--build-arg", f"{arg}={values[arg]}"]
    if ca_bundle:
        argv += ["--secret", f"id=ca_bundle,src={ca_bundle}"]
    argv.append(str(root))
    return argv


def week_stamp(now=None):
    """The ISO week, e.g. ``2026-W48``: the default PIP_REFRESH, so pip layers rebuild weekly."""
    year, week, _ = datetime.date.fromtimestamp(
        now if now is not None else time.time()
    ).isocalendar()
    return f"{year}-W{week:02d}"


def _client_major(docker, run) -> int | None:
    try:
        proc = run(
            [docker, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True
        )
    except OSError:
        return None
    match = re.match(r"\s*(\d+)\.", proc.stdout or "")
    return int(match.group(1)) if match else None


def find_buildkit_cli(run=subprocess.run, which=shutil.which):
    """``(argv_prefix, env_overrides)`` for a BuildKit build that loads into the engine.

    Prefers ``docker buildx build --load``; otherwise a docker CLI older than 23
    (whose ``build`` still speaks BuildKit itself) with ``DOCKER_BUILDKIT=1``.
    """
    candidates = []
    for cli in (which("docker"), which("/usr/bin/docker")):
        if cli and cli not in candidates:
            candidates.append(cli)
    for cli in candidates:
        try:
            if run([cli, "buildx", "version"], capture_output=True, text=True).returncode == 0:
                return [cli, "buildx", "build", "--load"], {}
        except OSError:
            continue
    for cli in candidates:
        major = _client_major(cli, run)
        if major is not None and major < 23:
            return [cli, "build"], {"DOCKER_BUILDKIT": "1"}
    raise ImageBuildError(
        "no BuildKit-capable docker CLI found: install the docker buildx plugin "
        "(Debian/Ubuntu package 'docker-buildx' or 'docker-buildx-plugin'); "
        f"tried: {', '.join(candidates) or 'no docker on PATH'}"
    )


def resolve_ca_bundle(ca_bundle=AUTO):
    """AUTO -> the host bundle if present, else None; a given path must exist."""
    if ca_bundle == AUTO:
        return HOST_CA_BUNDLE if os.path.isfile(HOST_CA_BUNDLE) else None
    if ca_bundle and not os.path.isfile(ca_bundle):
        raise ImageBuildError(f"CA bundle {ca_bundle} does not exist")
    return ca_bundle or None


STEP_RE = re.compile(r"^(#\d+ \[[^\]]*\]|Step \d+/\d+ :)")


def step_lines(on_line=print):
    """Wrap ``on_line`` so only BuildKit step headers (``#7 [3/6] RUN ...``) pass."""

    def forward(line):
        if STEP_RE.match(line):
            on_line(line)

    return forward


def _stream(argv, env, on_line, popen):
    tail = collections.deque(maxlen=40)
    proc = popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=env,
        bufsize=1,
    )
    with proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            on_line(line)
    return proc.wait(), list(tail)


def build_images(
    names,
    *,
    tags=None,
    base_image=None,
    jupyterhub_spec=None,
    pip_index_url=None,
    apt_mirror=None,
    ca_bundle=AUTO,
    repo_root=REPO_ROOT,
    with_deps=True,
    progress="plain",
    no_cache=False,
    pip_refresh=None,
    cli=None,
    on_line=print,
    popen=subprocess.Popen,
) -> dict:
    """Build images in dependency order; returns ``{name: elapsed_seconds}``.

    ``tags`` maps name -> tag override (dependents are built FROM the override).
    ``base_image`` is the FROM of images without a dependency (default: the
    Dockerfile's). ``jupyterhub_spec`` defaults to :func:`default_jupyterhub_spec`.
    Every output line goes to ``on_line``; see :func:`step_lines`.
    """
    if repo_root is None:
        raise ImageBuildError(
            f"this gpulab installation has no image build context ({Path(__file__).resolve().parent.parent}/buildctx is missing): reinstall gpulab"
        )
    tags = dict(tags or {})
    order = build_order(names) if with_deps else [n for n in build_order(names) if n in names]
    prefix, env_extra = cli or find_buildkit_cli()
    env = {**os.environ, **env_extra}
    ca = resolve_ca_bundle(ca_bundle)
    if "base" in order and jupyterhub_spec is None:
        jupyterhub_spec = default_jupyterhub_spec()
    elapsed = {}
    for name in order:
        spec = IMAGES[name]
        dep = spec.depends_on
        context = spec.prepare(repo_root) if spec.prepare else None
        argv = build_command(
            name,
            tag=tags.get(name, spec.tag),
            base_image=tags.get(dep, IMAGES[dep].tag) if dep else base_image,
            jupyterhub_spec=jupyterhub_spec,
            pip_index_url=pip_index_url,
            apt_mirror=apt_mirror,
            ca_bundle=ca,
            repo_root=repo_root,
            docker_cli=prefix,
            progress=progress,
            no_cache=no_cache,
            pip_refresh=pip_refresh,
            context=context,
        )
        on_line(f"gpulab: building {name}: {shlex.join(argv)}")
        start = time.monotonic()
        try:
            rc, tail = _stream(argv, env, on_line, popen)
        finally:
            if context:
                shutil.rmtree(context, ignore_errors=True)
        elapsed[name] = time.monotonic() - start
        if rc != 0:
            raise ImageBuildError(
                f"building image {name!r} failed (exit {rc}); last output:\n" + "\n".join(tail)
            )
        on_line(f"gpulab: built {name} as {tags.get(name, spec.tag)} in {elapsed[name]:.0f}s")
    return elapsed


# `docker push` ends with "<tag>: digest: sha256:<hex> size: <n>"
PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def push_images(names, registry, *, docker="docker", run=subprocess.run, on_line=print):
    """Tag the built images with the registry's name and push them; returns the pushed names,
    each as ``name:tag@sha256:...`` (what the registry stored) when the push reported it."""
    pushed = []
    for name in names:
        tag = IMAGES[name].tag
        target = registry_name(tag, registry)
        if run([docker, "tag", tag, target], capture_output=True).returncode != 0:
            raise ImageBuildError(
                f"image {tag} is not built here: run `gpulab images build {name}` first"
            )
        on_line(f"gpulab: pushing {target}")
        proc = run([docker, "push", target], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageBuildError(f"pushing {target} failed: {proc.stderr.strip()[-1000:]}")
        digest = PUSHED_DIGEST.search(proc.stdout or "")
        pushed.append(f"{target}@{digest.group(1)}" if digest else target)
    return pushed


def image_exists(tag, docker="docker", run=subprocess.run) -> bool:
    return run([docker, "image", "inspect", tag], capture_output=True).returncode == 0


def _mounts_under(path):
    prefix = os.path.realpath(path).rstrip("/") + "/"
    with open("/proc/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    return sorted((p for p in points if p.startswith(prefix)), reverse=True)


def bootstrap_base(
    tag=BOOTSTRAP_TAG,
    suite="bookworm",
    mirror=None,
    *,
    force=False,
    docker="docker",
    run=subprocess.run,
    workdir=None,
) -> bool:
    """debootstrap a minimal Debian rootfs and ``docker import`` it as ``tag``.

    For hosts that cannot pull the registry CUDA base. Needs root and debootstrap.
    Returns False (and does nothing) if ``tag`` exists and not ``force``.
    """
    if not force and image_exists(tag, docker, run):
        return False
    tmp = tempfile.mkdtemp(prefix="gpulab-bootstrap-", dir=workdir)
    rootfs = os.path.join(tmp, "rootfs")
    try:
        cmd = ["debootstrap", "--variant=minbase", suite, rootfs]
        if mirror:
            cmd.append(mirror)
        if run(cmd).returncode != 0:
            raise ImageBuildError(f"debootstrap failed: {shlex.join(cmd)}")
        sources = [
            f"deb {mirror or 'http://deb.debian.org/debian'} {s} main"
            for s in (suite, f"{suite}-updates")
        ]
        if not mirror:
            sources.append(f"deb http://deb.debian.org/debian-security {suite}-security main")
        Path(rootfs, "etc/apt/sources.list").write_text("\n".join(sources) + "\n")
        for sub in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for entry in Path(rootfs, sub).glob("*"):
                if entry.is_file():
                    entry.unlink()
        pipeline = (
            f"set -o pipefail; tar --numeric-owner -C {shlex.quote(rootfs)} -c . | "
            f"{shlex.quote(docker)} import --change 'CMD [\"/bin/bash\"]' "
            f"--change 'ENV PATH={DEFAULT_PATH}' --change 'ENV LANG=C.UTF-8' "
            f"--change 'LABEL gpulab.image=bootstrap' "
            f"- {shlex.quote(tag)}"
        )
        if run(["bash", "-c", pipeline]).returncode != 0:
            raise ImageBuildError(f"docker import of {rootfs} as {tag} failed")
        return True
    finally:
        for point in _mounts_under(tmp):
            run(["umount", "-l", point])
        if _mounts_under(tmp):
            raise ImageBuildError(f"{tmp} still has mounts; not removing it")
        shutil.rmtree(tmp, ignore_errors=True)


def list_images(docker="docker", run=subprocess.run) -> list[dict]:
    """Local images labelled ``gpulab.image``: repository, tag, id, size, created."""
    proc = run(
        [
            docker,
            "image",
            "ls",
            "--filter",
            "label=gpulab.image",
            "--filter",
            "dangling=false",
            "--format",
            "{{json .}}",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise ImageBuildError(f"docker image ls failed: {proc.stderr.strip()}")
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return [
        {
            "repository": r.get("Repository"),
            "tag": r.get("Tag"),
            "id": r.get("ID"),
            "size": r.get("Size"),
            "created": r.get("CreatedAt"),
        }
        for r in rows
    ]
