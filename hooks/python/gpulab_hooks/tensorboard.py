"""Start TensorBoard for the user's log directory: ``python -m gpulab_hooks.tensorboard PORT``.

The log directory is ``$GPULAB_TENSORBOARD_LOGDIR`` (the spawner sets it from the site
file's ``hooks.tensorboard_logdir``; a user may override it in ``~/.config/gpulab/env``),
``~/runs`` when unset. It is created if missing so TensorBoard starts on a new home.
"""

import os
import sys

DEFAULT_LOGDIR = "~/runs"


def logdir(environ=os.environ):
    raw = environ.get("GPULAB_TENSORBOARD_LOGDIR") or DEFAULT_LOGDIR
    return os.path.abspath(os.path.expanduser(raw))


def command(port, environ=os.environ):
    exe = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    return [
        exe,
        f"--logdir={logdir(environ)}",
        f"--port={int(port)}",
        "--host=localhost",  # only the proxy in this container reaches it
        "--reload_interval=5",
    ]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not argv[0].isdigit():
        sys.exit("usage: python -m gpulab_hooks.tensorboard PORT")
    cmd = command(argv[0])
    os.makedirs(logdir(), exist_ok=True)
    # exec: jupyter-server-proxy supervises TensorBoard itself and restarts it if it dies
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
