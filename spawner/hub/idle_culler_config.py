"""jupyterhub-idle-culler's configuration when GPU reclaim is on (passed as --config-file):
servers that hold GPUs are judged by GPU utilisation (gpulab.core.gpus.reclaim), not by browser
activity; every other server is culled as usual."""

from gpulab.core.gpus.reclaim import cull_cpu_only  # loaded by path: no package here

c = get_config()  # noqa: F821 (defined by traitlets when it loads this file)
c.IdleCuller.cull_arbiter_hook = cull_cpu_only
