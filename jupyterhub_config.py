# gpulab's JupyterHub configuration.
#
# Everything comes from the site file (GPULAB_CONFIG, default ./gpulab.yaml); a bad
# site file stops startup with the key path that is wrong. Plain traitlets set below
# the configure call override the site file, e.g.:
#   c.GPUDockerSpawner.mem_limit = "8G"
from gpulab.hub.wiring import configure_or_exit

c = get_config()  # noqa: F821 (provided by JupyterHub)
configure_or_exit(c)
