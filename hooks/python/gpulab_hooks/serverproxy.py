"""jupyter-server-proxy entry points (group ``jupyter_serverproxy_servers``).

Each is a zero-argument function returning the server's settings; jupyter-server-proxy
starts the command on the first request to ``<server prefix>/<name>/``, restarts it
when it dies, and checks the user's server auth (login redirect / 403) before proxying.
"""

import os
import sys

ICON_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "icons")


def tensorboard():
    """TensorBoard for the user's log directory at ``/user/<name>/tensorboard/``.

    ``absolute_url=False``: the proxy strips the prefix and TensorBoard, whose web app
    only uses relative URLs, is served at its own root on a free localhost port.
    """
    return {
        "command": [sys.executable, "-m", "gpulab_hooks.tensorboard", "{port}"],
        "timeout": 60,
        "absolute_url": False,
        "launcher_entry": {
            "enabled": True,
            "title": "TensorBoard",
            "icon_path": os.path.join(ICON_DIR, "tensorboard.svg"),
        },
        "new_browser_tab": True,
    }
