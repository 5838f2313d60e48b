"""GPU jobs: a user's command run in their environment on GPUs the allocator grants, that gives the
GPUs back when it ends. Pure: what a request may ask (:func:`validate_job`), a job's states, its
holder in the GPU table and its container's command. The hub side (queue, store, run, API) is
:mod:`gpulab.hub.gpujobs`; the container is made from the same spec as a server's
(:meth:`gpulab.hub.spawner.GPULabSpawner.job_spec`) and run through the backend's ``run_job``.

A job is one task on one GPU server. Its command runs as the user, under gpulab's start (the
user's uid, home, datasets, the profile's or save's image and limits, exactly the granted GPUs),
through :data:`RUNNER`, which keeps ``~/jobs/<id>/`` (``command``, ``log``, ``started``,
``ended``, ``status``).
"""

import math
import re
from dataclasses import dataclass

from . import contract

#: a job's states; the first three are live, the others final
WAITING, STARTING, RUNNING = "waiting", "starting", "running"
SUCCEEDED, FAILED, CANCELLED, TIMED_OUT = "succeeded", "failed", "cancelled", "timed-out"
LIVE = (WAITING, STARTING, RUNNING)
FINAL = (SUCCEEDED, FAILED, CANCELLED, TIMED_OUT)

#: what runs the user's command in the container, as the user (gpulab-start's last step): the
#: hub's read-only copy of hooks/job/gpulab-job
RUNNER = f"{contract.HOOK_DIR}/job/gpulab-job"
#: the value of the gpulab.job label on a user's job container (gpulab's own jobs: backup, ...)
KIND = "user"
#: seconds a job gets to stop (checkpoint) when it is cancelled or runs out of time
STOP_GRACE = 30

HOLDER_PREFIX = "job/"  # a JupyterHub server name never holds a "/": a job is never a server
MAX_COMMAND_BYTES = 64 * 1024
MAX_ARGS = 4096
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_. -]{0,63}")
DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([dhm]?)\s*")
UNIT_HOURS = {"d": 24.0, "h": 1.0, "m": 1 / 60, "": 1.0}


class JobInputError(ValueError):
    """A request that cannot be a job; ``field`` is what was wrong (the API's 400 names it)."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field


def holder(username, job_id, rank=None):
    """The job's holder in the GPU table: (user, ``job/<id>``); a multi-node job's task of
    ``rank``: (user, ``job/<id>/<rank>``)."""
    if rank is None:
        return (username, f"{HOLDER_PREFIX}{job_id}")
    return (username, f"{HOLDER_PREFIX}{job_id}/{rank}")


def is_job_holder(holder_):
    return str(holder_[1]).startswith(HOLDER_PREFIX)


def job_id_of(holder_):
    return int(holder_[1][len(HOLDER_PREFIX) :].split("/")[0])


def container_name(deployment, job_id, rank=None):
    """The container (service) of a job, or of one task of a multi-node job: also its host name
    on the job's own network."""
    return f"{deployment}-job-{job_id}" + ("" if rank is None else f"-{rank}")


def network_name(deployment, job_id):
    """A multi-node job's own overlay network: only its tasks are on it."""
    return f"{deployment}-job-{job_id}-net"


# --- a job on several GPU servers (a Swarm): one task per server, rank 0 runs the command ---

#: where a task's SSH server listens for the job's other tasks (as the user: a port above 1024)
TASK_SSH_PORT = 2222
#: torch.distributed's rendezvous port on rank 0
MASTER_PORT = 29500
#: what the start hook makes for the job's SSH (root-owned setup, the user's files), per task
TASK_DIR = f"{contract.RUNTIME_DIR}/job"
HOSTFILE = "/etc/gpulab/hostfile"
#: what Open MPI's mpirun starts its daemons with on the other tasks
RSH_AGENT = f"{contract.HOOK_DIR}/job/gpulab-job-ssh"


def hostfile(hosts, gpus):
    """The job's hostfile (Open MPI's format): one line per task, its slots = its GPUs."""
    return "".join(f"{h} slots={gpus}\n" for h in hosts)


def task_env(hosts, rank, gpus, subnet=""):
    """What a multi-node job's task of ``rank`` is told: the job's shape, the variables
    ``torchrun`` and ``torch.distributed`` expect, and Open MPI's settings (the agent that reaches
    the other tasks, and the job's own network for its traffic). WORLD_SIZE counts processes:
    tasks x GPUs per task."""
    env = {
        contract.JOB_RANK: str(rank),
        contract.JOB_HOSTS: " ".join(hosts),
        contract.JOB_SLOTS: str(gpus),
        "MASTER_ADDR": hosts[0],
        "MASTER_PORT": str(MASTER_PORT),
        "WORLD_SIZE": str(len(hosts) * gpus),
        "NNODES": str(len(hosts)),
        "NODE_RANK": str(rank),
        "NPROC_PER_NODE": str(gpus),
        "OMPI_MCA_plm_rsh_agent": RSH_AGENT,
        "OMPI_MCA_orte_default_hostfile": HOSTFILE,
        # processes of one task share memory without cross-memory attach (no ptrace in a container)
        "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
    }
    if subnet:
        env["OMPI_MCA_btl_tcp_if_include"] = subnet
        env["OMPI_MCA_oob_tcp_if_include"] = subnet
    return env


def parse_hours(value, field="time"):
    """``48h``, ``90m``, ``2d``, ``1.5h`` or a number of hours -> hours (float)."""
    if isinstance(value, bool):
        raise JobInputError(field, f"must be a duration such as 48h, 90m or 2d, got {value!r}")
    if isinstance(value, (int, float)):
        hours = float(value)
    elif isinstance(value, str) and (m := DURATION.fullmatch(value)):
        hours = float(m.group(1)) * UNIT_HOURS[m.group(2)]
    else:
        raise JobInputError(
            field, f"must be a duration such as 48h, 90m or 2d, got {str(value)[:40]!r}"
        )
    if not math.isfinite(hours) or hours <= 0:
        raise JobInputError(field, f"must be longer than 0, got {str(value)[:40]!r}")
    return hours


def format_hours(hours):
    if hours >= 1 and float(hours).is_integer():
        return f"{int(hours)}h"
    return f"{round(hours * 60)}m"


@dataclass(frozen=True)
class JobRequest:
    """A valid request: ``profile`` is the profile's dict (a save's own profile when ``save``)."""

    command: tuple
    gpus: int
    nodes: int
    profile: dict
    save: str
    hours: float
    name: str
    notebook: str = ""  # a notebook run with papermill instead of a command
    parameters: dict = None

    @property
    def timeout(self):
        return self.hours * 3600

    def command_for(self, job_id):
        """What the job runs: its command, or papermill on its notebook."""
        if self.notebook:
            return notebook_command(self.notebook, self.parameters or {}, job_id)
        return self.command


FIELDS = ("command", "notebook", "parameters", "gpus", "nodes", "profile", "save", "time", "name")
NOTEBOOK = re.compile(r"[^\0\n]{1,1000}\.ipynb")
#: how a notebook runs as a job: papermill in the server's environment (gpulab's images have it)
PAPERMILL = ("/opt/gpulab/venv/bin/python3", "-m", "papermill")


def executed_copy(notebook, job_id):
    """Where a notebook job writes its executed copy: next to it, with the job's number."""
    return f"{notebook[: -len('.ipynb')]}.job{job_id}.ipynb"


def notebook_command(notebook, parameters, job_id):
    """papermill on ``notebook`` (relative to the home) with ``parameters`` (injected after its
    cell tagged ``parameters``), its executed copy next to it."""
    import json

    return (
        *PAPERMILL,
        "--log-output",
        "-y",
        json.dumps(parameters, sort_keys=True),
        notebook,
        executed_copy(notebook, job_id),
    )


def _notebook(body):
    notebook, parameters = body.get("notebook") or "", body.get("parameters")
    if not isinstance(notebook, str) or not NOTEBOOK.fullmatch(notebook):
        raise JobInputError("notebook", "must be the path of a .ipynb file in your home")
    if notebook.startswith("/") or ".." in notebook.split("/"):
        raise JobInputError("notebook", "must be a path inside your home, e.g. work/train.ipynb")
    _utf8("notebook", notebook)
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict) or not all(
        isinstance(k, str) and k.isidentifier() for k in parameters
    ):
        raise JobInputError("parameters", 'must map Python names to values, e.g. {"lr": 0.0003}')
    if not all(isinstance(v, (str, int, float, bool)) or v is None for v in parameters.values()):
        raise JobInputError("parameters", "values must be strings, numbers, true, false or null")
    return notebook, dict(parameters)


def _int(body, field, default):
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobInputError(field, f"must be a whole number, got {str(value)[:40]!r}")
    return value


def _command(value):
    if isinstance(value, str):
        value = ["bash", "-lc", value] if value.strip() else []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise JobInputError("command", "must be a list of arguments (or one shell line)")
    if not value or not value[0].strip():
        raise JobInputError("command", "is empty: give what to run, e.g. python train.py")
    for a in value:
        _utf8("command", a)
    if len(value) > MAX_ARGS or sum(len(a.encode()) + 1 for a in value) > MAX_COMMAND_BYTES:
        raise JobInputError("command", f"is longer than {MAX_COMMAND_BYTES // 1024} KiB")
    if any("\0" in a for a in value):
        raise JobInputError("command", "holds a NUL character")
    return tuple(value)


def _utf8(field, text):
    """``text`` if it is text a container can take (no lone surrogates, which JSON may carry)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JobInputError(field, "is not valid Unicode text (it holds a lone surrogate)")
    return text


def validate_job(body, *, profiles, default_profile, limits, saves=None, largest_node=0, nodes=1):
    """The :class:`JobRequest` of an API body, or :class:`JobInputError` naming the field.

    ``profiles``: the hub's profiles; ``limits``: the validated ``jobs`` section; ``saves``: {tag:
    profile name} of the user's saves (None: not looked up, no ``save`` asked); ``largest_node``:
    the most GPUs one GPU server has that the profile may use; ``nodes``: how many GPU servers a
    job may span on this hub (1 on one host).
    """
    if not isinstance(body, dict):
        raise JobInputError("body", 'must be a JSON object such as {"command": [...], "gpus": 1}')
    unknown = sorted(str(k)[:40] for k in body if k not in FIELDS)
    if unknown:
        raise JobInputError(unknown[0], f"is not a job field (fields: {', '.join(FIELDS)})")
    notebook, parameters = "", {}
    if body.get("notebook") not in (None, ""):
        if body.get("command") not in (None, "", []):
            raise JobInputError("command", "give a command or a notebook, not both")
        notebook, parameters = _notebook(body)
        command = (
            "papermill",
            notebook,
        )  # made into papermill's command once the job has its number
    else:
        if body.get("parameters"):
            raise JobInputError("parameters", "are for a notebook (give notebook too)")
        command = _command(body.get("command"))
    save = body.get("save") or ""
    by_name = {p["name"]: p for p in profiles}
    if not isinstance(save, str):
        raise JobInputError("save", "must be the name of one of your saves")
    if save:
        if save not in (saves or {}):
            raise JobInputError("save", f"{save[:40]!r} is not one of your saves")
        if body.get("profile") not in (None, "", saves[save]):
            raise JobInputError("profile", f"a save starts with its own profile ({saves[save]})")
        profile_name = saves[save]
    else:
        profile_name = body.get("profile") or default_profile
    if not isinstance(profile_name, str) or profile_name not in by_name:
        shown = str(profile_name)[:40]
        raise JobInputError(
            "profile", f"{shown!r} is not a profile of this hub ({', '.join(by_name)})"
        )
    profile = by_name[profile_name]
    gpus = _int(body, "gpus", 1)
    top = min(limits["max_gpus"], profile.get("max_gpus", limits["max_gpus"]) or 0)
    if gpus < 1:
        raise JobInputError("gpus", f"must be at least 1 (a job runs on GPUs), got {gpus}")
    if gpus > top:
        raise JobInputError("gpus", f"{gpus} is over the limit of {top} per job for {profile_name}")
    if largest_node and gpus > largest_node:
        raise JobInputError(
            "gpus",
            f"{gpus} requested but no GPU server this profile may use has more than {largest_node}",
        )
    count = _int(body, "nodes", 1)
    most = min(limits["max_nodes"], nodes)
    if count < 1 or count > most:
        raise JobInputError("nodes", f"must be between 1 and {most} on this hub, got {count}")
    hours = (
        limits["default_hours"]
        if body.get("time") in (None, "")
        else parse_hours(body["time"], "time")
    )
    if hours > limits["max_hours"]:
        raise JobInputError(
            "time",
            f"{format_hours(hours)} is over the limit of {format_hours(limits['max_hours'])}",
        )
    name = body.get("name") or ""
    if not isinstance(name, str) or (name and not NAME.fullmatch(name)):
        raise JobInputError("name", "must be up to 64 letters, digits, spaces, '.', '_' or '-'")
    return JobRequest(command, gpus, count, profile, save, hours, name, notebook, parameters)


def runner_command(job_id, command):
    """What gpulab's start runs as the user: the runner, the job's id, then the command."""
    return (RUNNER, str(int(job_id)), "--", *command)


def outcome(status, timed_out=False, cancelled=False):
    """(state, reason) of a job that ended with exit ``status`` (None: stopped, or never started)."""
    if cancelled:
        return CANCELLED, "cancelled"
    if timed_out:
        return TIMED_OUT, "ran past its time limit and was stopped"
    if status == 0:
        return SUCCEEDED, "exit status 0"
    if isinstance(status, int):
        return FAILED, f"exit status {status}"
    return FAILED, str(status or "it ended without an exit status")
