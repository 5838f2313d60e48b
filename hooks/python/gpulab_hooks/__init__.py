"""gpulab's container-side Python hooks (installed into the image's venv).

- ``serverproxy.tensorboard``: the ``jupyter_serverproxy_servers`` entry point that
  serves TensorBoard at ``/user/<name>/tensorboard/``.
- ``tensorboard``: the launcher it runs (``python -m gpulab_hooks.tensorboard PORT``).
- ``tf_memory``: turns on TensorFlow GPU memory growth when TensorFlow is imported;
  loaded as an IPython extension by the image's ``ipython_config.py``.
- ``notices``: the server extension that relays the hub's GPU reclaim warnings to the
  user's terminals and to the ``gpulab-notices`` JupyterLab extension (``labextension/``).

Only the standard library is imported here, so kernel start stays fast.
"""

__version__ = "0.1.0"
