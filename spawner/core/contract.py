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
``GPULAB_TENSORBOARD_LOGDIR``       what ``/user/<name>/tensorboard/`` shows (site file: ``hooks.tensorboard_logdir``)
``TENSORBOARD_PROXY_URL``           ``<server prefix>proxy/%PORT%/``, so ``%tensorboard`` loads through the hub
``PIP_USER``                        ``1``: ``pip install`` goes to ``~/.local`` (the persistent home)
==================================  =================================================================

Set inside the image, never by the hub (the start scripts' own knobs, for tests and custom images):
``GPULAB_HOOK_DIR`` (start hooks), ``GPULAB_USER_ENV`` / ``GPULAB_USER_PROFILE`` (the user's own
overrides, written by ``20-user-env.sh``), ``GPULAB_PROFILE_ENV`` and ``GPULAB_EXPORT_ENV`` (what
login shells see, ``10-env.sh``), ``GPULAB_SSH_HOST_KEYS`` (where sshd keeps its host keys).

Labels (on every container or service; the hub rebuilds its GPU table from them after a restart):
``gpulab.deployment``, ``gpulab.user``, ``gpulab.server``, ``gpulab.profile``, ``gpulab.uid``,
``gpulab.gpus`` (the allocated UUIDs). Volumes carry ``gpulab.deployment`` and ``gpulab.user``.
A job container or service (home backups, archives, save jobs) carries ``gpulab.job`` (its kind);
the hub's own container on a Swarm ``gpulab.role=hub``; images gpulab builds ``gpulab.image``;
saved environments ``gpulab.save`` and ``gpulab.save.*`` (profile, note, created, bytes), and
``gpulab.user-id``: the hub's id of their owner, never reused (a new account with an old name
sees nothing of the old one).

Node labels (a Swarm's GPU servers, set by ``gpulab node setup``): ``gpulab.gpu-model``,
``gpulab.gpu-count``, ``gpulab.gpu-memory``, ``gpulab.gpu-isolation=swarm-resource`` (the node's
NVIDIA runtime gives a task only its own GPUs; a node without it offers none); their GPUs are the
generic resource ``gpu``.

The hub process itself reads ``GPULAB_CONFIG`` (the site file); a save job reads ``GPULAB_SAVE_JOB``.

Mounts: the home at ``/home/<login>``; the SSH host keys at ``/etc/gpulab/ssh-host``; datasets
where the site file says (read-only unless ``mode: rw``); scratch at ``storage.scratch_target``.
What runs as root at start comes from the hub, read-only: ``gpulab-start`` at
``/usr/local/bin/gpulab-start`` and the start hooks at ``/etc/gpulab/hooks`` (the image's own copies
are hidden, so a saved environment cannot change them). Runtime secrets (the server's API token for
the SSH helpers) live in the tmpfs ``/run/gpulab``, logs in the tmpfs ``/var/log``: never in a
layer a save could keep.

Ports inside the container: Jupyter on ``8888``, sshd on ``22``.
"""

# --- environment ---
NB_USER = "NB_USER"
NB_UID = "NB_UID"
NB_GID = "NB_GID"
NB_HOME = "NB_HOME"
HOME = "HOME"
SUDO = "GPULAB_SUDO"
JOB_ID = "GPULAB_JOB_ID"  # in a user's GPU job: its number (its output is ~/jobs/<number>)
JOB_RANK = "GPULAB_JOB_RANK"  # a multi-node job's task: its rank (0 runs the command)
JOB_HOSTS = "GPULAB_JOB_HOSTS"  # ... the host names of all its tasks, rank order, space separated
JOB_SLOTS = "GPULAB_JOB_SLOTS"  # ... the GPUs of each task
JOB_SECRET = "GPULAB_JOB_SECRET"  # ... the file with the job's SSH key (a Swarm secret)
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

# --- set inside the image only (the start scripts' own knobs) ---
HOOK_DIR_ENV = "GPULAB_HOOK_DIR"
USER_ENV_FILE = "GPULAB_USER_ENV"
USER_PROFILE_FILE = "GPULAB_USER_PROFILE"
PROFILE_ENV_FILE = "GPULAB_PROFILE_ENV"
EXPORT_ENV = "GPULAB_EXPORT_ENV"
SERVER_PATH = "GPULAB_SERVER_PATH"  # gpulab-start to its hooks: the PATH the server gets
SSH_HOST_KEYS_ENV = "GPULAB_SSH_HOST_KEYS"

# --- the hub's and the jobs' own environment ---
SITE_FILE_ENV = "GPULAB_CONFIG"
SAVE_JOB_ENV = "GPULAB_SAVE_JOB"
PROBE_NODE_ENV = (
    "GPULAB_PROBE_NODE"  # a check's probe: the node it runs on (gpulab check on a Swarm)
)

#: Variables that only gpulab may set: an admin's ``environment`` naming one stops the hub at startup.
OWNED_ENV = (
    NB_USER,
    NB_UID,
    NB_GID,
    NB_HOME,
    SUDO,
    VISIBLE_DEVICES,
    SWARM_GPUS,
    "CUDA_VISIBLE_DEVICES",
    SSH,
)

# --- labels ---
LABEL_PREFIX = "gpulab."
L_DEPLOYMENT = "gpulab.deployment"
L_USER = "gpulab.user"
L_SERVER = "gpulab.server"
L_PROFILE = "gpulab.profile"
L_UID = "gpulab.uid"
L_GPUS = "gpulab.gpus"
L_SSH_HOST_KEYS = "gpulab.ssh-host-keys"
L_JOB = (
    "gpulab.job"  # a job container or service: its kind ("backup", "restore", "archive", "save")
)
L_ROLE = "gpulab.role"  # the hub's own container on a Swarm: "hub"
L_IMAGE = "gpulab.image"  # an image gpulab builds: its name
L_SAVE = "gpulab.save"  # a saved environment
L_SAVE_PROFILE = "gpulab.save.profile"
L_SAVE_NOTE = "gpulab.save.note"
L_SAVE_CREATED = "gpulab.save.created"
L_SAVE_BYTES = "gpulab.save.bytes"
L_BASE_IMAGE = "gpulab.base-image"  # what `gpulab images build` built an image on
BOOTSTRAP_PREFIX = "localhost/gpulab/bootstrap:"  # gpulab's plain Debian bases (no CUDA)
L_SAVE_SUDO = "gpulab.save.sudo"  # "1": made while its user had sudo (or from such a save)
L_JOB_ID = "gpulab.job-id"  # a user's GPU job: its number in the hub's job list
L_USER_ID = "gpulab.user-id"  # the hub's user id (never reused): saves and backups are keyed by it

# --- Swarm node labels and resources (gpulab node setup) ---
GPU_RESOURCE = "gpu"  # the generic resource kind each GPU is advertised as: gpu=GPU-<uuid>
NL_GPU_MODEL = "gpulab.gpu-model"
NL_GPU_COUNT = "gpulab.gpu-count"
NL_GPU_MEMORY = "gpulab.gpu-memory"  # bytes per GPU (optional)
#: a GPU node whose NVIDIA runtime gives each task only the GPUs Swarm assigned it
#: (swarm-resource = "DOCKER_RESOURCE_GPU"), checked by gpulab node setup; nodes without it offer no GPUs
NL_GPU_ISOLATION = "gpulab.gpu-isolation"
GPU_ISOLATION = "swarm-resource"

# --- paths and ports in the image ---
HOME_ROOT = "/home"
SSH_HOST_KEY_DIR = "/etc/gpulab/ssh-host"
HOOK_DIR = "/etc/gpulab/hooks"
START_SCRIPT = "/usr/local/bin/gpulab-start"
RUNTIME_DIR = "/run/gpulab"  # a tmpfs: what the container keeps only while it runs
LOG_DIR = "/var/log"  # a tmpfs: sshd's wtmp/lastlog never reach a save
#: what gpulab's start writes into /etc, each on a tmpfs of the container's own (never a layer,
#: so a save neither keeps nor can plant it): the sudo rule (only when the admin allows sudo)
#: and sshd's settings; sshd's PAM stack is the hub's, read-only
SUDOERS_DIR = "/etc/sudoers.d"
SSHD_CONFIG_DIR = "/etc/ssh/sshd_config.d"
PAM_SSHD = "/etc/pam.d/sshd"
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

SAVES_REPOSITORY = (
    "localhost/gpulab/saves"  # saved environments on one host (a Swarm: <registry>/gpulab/saves)
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
    return any(
        target == path or (path != "/" and target.startswith(path + "/"))
        for path in PROTECTED_TARGETS
    )
