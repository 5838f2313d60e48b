"""Environment defaults for the user's tools in the container: GPU memory, TensorBoard, pip.

A pure function of the site file's ``hooks`` section and the server's URL prefix;
the spawner merges the result into the container environment. The image's hooks read it:
``gpulab_hooks.tf_memory`` (IPython), ``gpulab_hooks.tensorboard`` (the TensorBoard
launcher) and ``start.d/10-env.sh`` (SSH/login shells). A user's
``~/.config/gpulab/env`` overrides these at container start (``start.d/20-user-env.sh``).
"""

TF_GROWTH = "TF_FORCE_GPU_ALLOW_GROWTH"
JAX_PREALLOCATE = "XLA_PYTHON_CLIENT_PREALLOCATE"
TENSORBOARD_LOGDIR = "GPULAB_TENSORBOARD_LOGDIR"
TENSORBOARD_PROXY_URL = "TENSORBOARD_PROXY_URL"


def tool_environment(*, tf_memory_growth, jax_preallocate, tensorboard_logdir, service_prefix):
    """Variables for the container.

    - ``tf_memory_growth``: TensorFlow allocates GPU memory as needed instead of taking
      the whole card (unset when off: TensorFlow's own default applies).
    - ``jax_preallocate``: False sets ``XLA_PYTHON_CLIENT_PREALLOCATE=false``.
    - ``service_prefix``: the server's prefix (``/user/alice/``), so ``%tensorboard``
      frames load through the hub at ``<prefix>proxy/<port>/`` instead of a raw port.
    - ``PIP_USER=1``: ``pip install X`` goes to ``~/.local`` (persistent, the user's own).
    """
    prefix = service_prefix if service_prefix.endswith("/") else service_prefix + "/"
    env = {
        TENSORBOARD_LOGDIR: tensorboard_logdir,
        TENSORBOARD_PROXY_URL: f"{prefix}proxy/%PORT%/",
        "PIP_USER": "1",
    }
    if tf_memory_growth:
        env[TF_GROWTH] = "true"
    if not jax_preallocate:
        env[JAX_PREALLOCATE] = "false"
    return env
