"""Images the tests build for themselves: stand-ins for a lab's own images (tests/fixtures/images/),
built the way `gpulab images build` builds gpulab's (BuildKit, the host's CA bundle as a build
secret, never in a layer), once per run: Docker's cache makes a rebuild a no-op."""

import os
import subprocess

from gpulab.admin import images

FIXTURES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "images"
)
#: a docker-stacks-shaped image (non-root jovyan, its own start script, no sshd), and the same with sshd
STACKS = "localhost/gpulab-test/stacks:latest"
STACKS_SSHD = "localhost/gpulab-test/stacks-sshd:latest"
#: gpulab's base image with Debian's Open MPI and mpi4py (multi-node jobs)
MPI = "localhost/gpulab-test/mpi:latest"


def build_stacks(with_sshd=False, timeout=1200):
    """Build (or find in Docker's cache) the docker-stacks-shaped stand-in; returns its tag."""
    tag = STACKS_SSHD if with_sshd else STACKS
    prefix, env_extra = images.find_buildkit_cli()
    argv = list(prefix) + ["--progress=plain", "-t", tag]
    argv += ["--build-arg", f"BASE_IMAGE={images.BOOTSTRAP_TAG}"]
    argv += ["--build-arg", f"JUPYTERHUB_VERSION={images.default_jupyterhub_spec()}"]
    argv += ["--build-arg", f"WITH_SSHD={1 if with_sshd else 0}"]
    ca = images.resolve_ca_bundle()
    if ca:
        argv += ["--secret", f"id=ca_bundle,src={ca}"]
    argv.append(os.path.join(FIXTURES, "stacks"))
    proc = subprocess.run(
        argv, env={**os.environ, **env_extra}, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building {tag} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return tag


def build_mpi(timeout=1200):
    """Build (or find in Docker's cache) the Open MPI image on this checkout's base; returns its tag."""
    prefix, env_extra = images.find_buildkit_cli()
    argv = list(prefix) + ["--progress=plain", "-t", MPI]
    argv += ["--build-arg", "BASE_IMAGE=localhost/gpulab/base:latest"]
    argv.append(os.path.join(FIXTURES, "mpi"))
    proc = subprocess.run(
        argv, env={**os.environ, **env_extra}, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building {MPI} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return MPI
