# gpulab: installed as /opt/gpulab/venv/etc/ipython/ipython_config.py, read by every
# IPython kernel and shell in the image (a user's ~/.ipython config still applies on top).
# The extension only arms an import hook: TensorFlow is not imported at kernel start.
c = get_config()  # noqa: F821
c.InteractiveShellApp.extensions.append("gpulab_hooks.tf_memory")
