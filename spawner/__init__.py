"""gpulab: a JupyterHub for a lab's shared GPU servers."""

from ._version import __version__
from .spawner import GPUDockerSpawner

__all__ = ["GPUDockerSpawner", "__version__"]
