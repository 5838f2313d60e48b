"""gpulab on a user's laptop: ``gpulab-client ssh-proxy`` and ``gpulab-client gpus``.

Standard library only. The server package (``gpulab``) uses the same code for its own
``gpulab ssh-proxy`` and ``gpulab gpus`` commands.
"""

__version__ = "0.4.0"
