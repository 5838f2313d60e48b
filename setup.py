"""The gpulab hub package: the folder ``spawner/`` installs as the import package ``gpulab``.

The user's laptop needs only ``client/`` (distribution ``gpulab-client``, standard library only);
the hub depends on it for its own ``gpulab ssh-proxy`` and ``gpulab gpus``.
A built wheel carries ``images/`` and ``hooks/`` (the image build context) as ``gpulab/buildctx``,
so ``gpulab images build`` works from an installed package, not only from a checkout.
"""

import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

here = os.path.dirname(os.path.abspath(__file__))
version_ns = {}
with open(os.path.join(here, "spawner", "_version.py")) as f:
    exec(f.read(), version_ns)
floors = {}
with open(os.path.join(here, "spawner", "core", "versions.py")) as f:
    exec(f.read(), floors)  # the version floors (above known advisories), one place

with open(os.path.join(here, "README.md"), encoding="utf-8") as f:
    long_description = f.read()

BUILD_CONTEXT = ("images", "hooks")  # what the Dockerfiles COPY, relative to the repository root


class build_py_with_context(build_py):
    """Also copy the image build context into the built package (gpulab/buildctx/)."""

    def run(self):
        super().run()
        if self.editable_mode:
            return  # an editable install builds from the checkout itself
        target = os.path.join(self.build_lib, "gpulab", "buildctx")
        for name in BUILD_CONTEXT:
            src = os.path.join(here, name)
            dst = os.path.join(target, name)
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            shutil.copytree(
                src,
                dst,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build"),
            )


setup(
    name="gpulab",
    version=version_ns["__version__"],
    description="A JupyterHub for a lab's shared GPU servers: per-user CUDA containers, GPUs, SSH, TensorBoard",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    package_dir={"gpulab": "spawner"},
    # spawner/ is the package gpulab; its sub-packages by where code runs: core, backends, hub, admin, agents
    packages=["gpulab", *(f"gpulab.{p}" for p in find_packages("spawner"))],
    package_data={"gpulab": ["hub/templates/*.html"]},
    cmdclass={"build_py": build_py_with_context},
    python_requires=">=3.10",
    install_requires=[
        f"gpulab-client=={version_ns['__version__']}",  # client/ in this repository (make venv installs it first)
        *floors["requirements"](floors["HUB"]),
        "dockerspawner>=14,<15",  # the drop-in claim is tested against DockerSpawner 14's own test suite
        "docker>=7",
        "nvidia-ml-py>=12",  # NVML: the GPU inventory (a host without the driver offers no GPUs)
        "prometheus-client>=0.17",  # gpulab's metrics, in JupyterHub's registry
        "oauthenticator>=16",
        "jupyterhub-nativeauthenticator>=1.3",
        "jupyterhub-idle-culler>=2",
        "traitlets>=5.9",
        "PyYAML>=6",
        "escapism>=1.0",
        "bcrypt>=4",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-asyncio>=0.24",
            "requests>=2.32",
            "selenium>=4.11",  # drives Debian's chromium + chromedriver (explicit paths, no downloads)
            "ruff>=0.6",
            "matplotlib>=3.7",  # make bench's plot of the burst
        ],
    },
    entry_points={
        "jupyterhub.spawners": [
            "gpulab = gpulab.backends.docker.spawner:GPUDockerSpawner",
            "gpulab-swarm = gpulab.backends.swarm.spawner:GPUSwarmSpawner",
        ],
        "console_scripts": ["gpulab = gpulab.admin.cli:main"],
    },
)
