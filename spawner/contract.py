"""The container contract: what the hub writes into a user's container and the image reads.

This is gpulab's most important interface; every name here is used on both sides.

Environment (set by the hub; read by ``images/base/gpulab-start`` and ``hooks/``):

==================================  =================================================================
``NB_USER``                         login name in the container (the hub name made a valid login)
``NB_UID`` / ``NB_GID``             the user's uid (``users.uid_base`` + hub user id) and group
``NB_HOME`` (and ``HOME``)          the home, ``/home/<login>``: the persistent home is mounted here
``GPULAB_SUDO``                     ``1``: passwordless sudo inside the container; ``0``: none
``NVIDIA_VISIBLE_DEVICES``          the allocated GPU UUIDs, comma separated, or ``void`` for none
                                    (never ``all``, whatever the image says)
``DOCKER_RESOURCE_GPU``             swarm mode: set by Docker Swarm to the GPUs it assigned
``GPULAB_SSH``                      ``1``: start sshd (``hooks/start.d/30-sshd.sh``)
``GPULAB_SERVER_MODULE``            the module ``gpulab-start`` runs as the server (default
                                    ``jupyterhub.singleuser``); the spawner names gpulab's launcher
``GPULAB_SSH_PASSWORD_LOGIN``       ``1``: the admin allows password logins
``GPULAB_SSH_ACTIVITY_INTERVAL``    seconds between activity reports while SSH sessions are open
``GPULAB_SSH_TCP_FORWARDING``       ``1``: SSH port forwarding (``-L``/``-R``, VS Code Remote-SSH) allowed
``GPULAB_SSH_X11_FORWARDING``       ``1``: X11 forwarding (``ssh -X``) allowed
``TF_FORCE_GPU_ALLOW_GROWTH``       ``true``: TensorFlow takes GPU memory as it needs it
``XLA_PYTHON_CLIENT_PREALLOCATE``   ``false``: JAX does not reserve most of the card at start
``GPULAB_TENSORBOARD_LOGDIR``       what ``/user/<name>/tensorboard/`` shows (default ``~/runs``)
``TENSORBOARD_PROXY_URL``           ``<server prefix>proxy/%PORT%/``, so ``%tensorboard`` loads through the hub
``PIP_USER``                        ``1``: ``pip install`` goes to ``~/.local`` (the persistent home)
==================================  =================================================================

Labels (on every container or service; the hub rebuilds its GPU table from them after a restart):
``gpulab.deployment``, ``gpulab.user``, ``gpulab.server``, ``gpulab.profile``, ``gpulab.uid``,
``gpulab.gpus`` (the allocated UUIDs). Volumes carry ``gpulab.deployment`` and ``gpulab.user``.

Mounts: the home at ``/home/<login>``; the SSH host keys at ``/etc/gpulab/ssh-host``; datasets
where the site file says (read-only unless ``mode: rw``); scratch at ``storage.scratch_target``.

Ports inside the container: Jupyter on ``8888``, sshd on ``22``.
"""

# --- environment ---
NB_USER = "NB_USER"
NB_UID = "NB_UID"
NB_GID = "NB_GID"
NB_HOME = "NB_HOME"
HOME = "HOME"
SUDO = "GPULAB_SUDO"
VISIBLE_DEVICES = "NVIDIA_VISIBLE_DEVICES"
SWARM_GPUS = "DOCKER_RESOURCE_GPU"
NO_GPU = "void"
SERVER_MODULE = "GPULAB_SERVER_MODULE"
FAST_SERVER = "gpulab_hooks.singleuser"  # jupyterhub.singleuser, minus 1 s of imports
SSH = "GPULAB_SSH"
SSH_PASSWORD_LOGIN = "GPULAB_SSH_PASSWORD_LOGIN"
SSH_ACTIVITY_INTERVAL = "GPULAB_SSH_ACTIVITY_INTERVAL"
SSH_TCP_FORWARDING = "GPULAB_SSH_TCP_FORWARDING"
SSH_X11_FORWARDING = "GPULAB_SSH_X11_FORWARDING"
TF_GROWTH = "TF_FORCE_GPU_ALLOW_GROWTH"
JAX_PREALLOCATE = "XLA_PYTHON_CLIENT_PREALLOCATE"
TENSORBOARD_LOGDIR = "GPULAB_TENSORBOARD_LOGDIR"
TENSORBOARD_PROXY_URL = "TENSORBOARD_PROXY_URL"
PIP_USER = "PIP_USER"

#: Variables that only gpulab may set: an admin's ``environment`` naming one stops the hub at startup.
OWNED_ENV = (NB_USER, NB_UID, NB_GID, NB_HOME, SUDO, VISIBLE_DEVICES, SWARM_GPUS, "CUDA_VISIBLE_DEVICES", SSH)

# --- labels ---
LABEL_PREFIX = "gpulab."
L_DEPLOYMENT = "gpulab.deployment"
L_USER = "gpulab.user"
L_SERVER = "gpulab.server"
L_PROFILE = "gpulab.profile"
L_UID = "gpulab.uid"
L_GPUS = "gpulab.gpus"
L_SSH_HOST_KEYS = "gpulab.ssh-host-keys"

# --- paths and ports in the image ---
HOME_ROOT = "/home"
SSH_HOST_KEY_DIR = "/etc/gpulab/ssh-host"
HOOK_DIR = "/etc/gpulab/hooks"
VENV = "/opt/gpulab/venv"
JUPYTER_PORT = 8888
SSH_PORT = 22

#: Container paths that datasets and scratch may not cover (they would hide the system or a home).
PROTECTED_TARGETS = (
    "/",
    HOME_ROOT,
    "/opt/gpulab",
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/var",
    "/boot",
    "/root",
)


def home_dir(login):
    return f"{HOME_ROOT}/{login}"


def gpu_list(uuids):
    """The value of ``gpulab.gpus`` and ``NVIDIA_VISIBLE_DEVICES`` for these UUIDs ('' / 'void' for none)."""
    return ",".join(uuids)


def parse_gpu_list(value):
    return tuple(u for u in (value or "").split(",") if u)


def deployment_filter(deployment):
    """Docker label filter for everything of one deployment."""
    return f"{L_DEPLOYMENT}={deployment}"


def is_protected(target):
    """True when a mount at ``target`` would hide part of the container system or a home."""
    return any(target == path or (path != "/" and target.startswith(path + "/")) for path in PROTECTED_TARGETS)
