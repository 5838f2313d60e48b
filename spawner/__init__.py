"""gpulab: a JupyterHub for a lab's shared GPU servers.

The spawner is imported on first use, so ``import gpulab.<light module>`` (the command line,
the site-file schema) does not pull in JupyterHub and DockerSpawner.
"""

from ._version import __version__

__all__ = ["GPUDockerSpawner", "__version__"]


def __getattr__(name):
    if name == "GPUDockerSpawner":
        from .hub.spawner import GPUDockerSpawner

        return GPUDockerSpawner
    raise AttributeError(f"module 'gpulab' has no attribute {name!r}")
