import os

from setuptools import setup

here = os.path.dirname(os.path.abspath(__file__))
version_ns = {}
with open(os.path.join(here, "spawner", "_version.py")) as f:
    exec(f.read(), version_ns)

with open(os.path.join(here, "README.md"), encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="gpulab",
    version=version_ns["__version__"],
    description="A JupyterHub for a lab's shared GPU servers: per-user CUDA containers, GPUs, SSH, TensorBoard",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    packages=["spawner", "spawner.gpus", "spawner.ssh"],
    package_data={"spawner": ["templates/*.html"]},
    python_requires=">=3.10",
    install_requires=[
        "jupyterhub>=5.2,<6",  # jupyterhub-nativeauthenticator 1.3 (the default login) does not run on JupyterHub 6
        "dockerspawner>=13",
        "docker>=7",
        "oauthenticator>=16",
        "jupyterhub-nativeauthenticator>=1.3",
        "jupyterhub-idle-culler>=1.4",
        "traitlets>=5.9",
        "tornado>=6.4",
        "PyYAML>=6",
        "escapism>=1.0",
        "bcrypt>=4",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-asyncio>=0.23",
            "requests>=2.31",
            "selenium>=4.11",  # drives Debian's chromium + chromedriver (explicit paths, no downloads)
        ],
    },
    entry_points={
        "jupyterhub.spawners": ["gpulab = spawner:GPUDockerSpawner"],
        "console_scripts": ["gpulab = spawner.cli:main"],
    },
)
