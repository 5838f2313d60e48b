"""What an image can do under gpulab, from the answer of gpulab's probe (``hooks/probe-image``,
run by the hub once per image): whether gpulab can start a server from it at all, and whether
SSH and TensorBoard work there. What it lacks is shown in the spawn form with the reason, instead
of a start that fails. Pure."""

from dataclasses import dataclass

from . import contract

#: what gpulab's start script runs as root to make the user
START_TOOLS = ("bash", "setpriv", "useradd", "usermod", "groupadd", "getent")


@dataclass(frozen=True)
class ImageFacts:
    """Each field is "" when it works, else why not (said to users as is)."""

    starts: str = ""
    ssh: str = ""
    ssh_via_hub: str = ""
    tensorboard: str = ""
    gpulab: bool = False  # gpulab's own image (its Python environment and server launcher)


def without_cuda(labels):
    """Whether an image's labels say it was built on gpulab's plain Debian base: no CUDA, no
    nvidia-smi (a host that could not pull the CUDA base)."""
    return (labels or {}).get(contract.L_BASE_IMAGE, "").startswith(contract.BOOTSTRAP_PREFIX)


NO_CUDA = "built on a plain Debian base, without CUDA: no nvidia-smi, no CUDA libraries"


class ProbeError(ValueError):
    pass


def parse(output):
    """ImageFacts from the probe's ``name=value`` lines (other lines are ignored)."""
    answers = {}
    for line in (output or "").splitlines():
        name, sep, value = line.strip().partition("=")
        if sep:
            answers[name] = value.strip()
    if answers.get("gpulab-probe") != "1":
        raise ProbeError("the image did not run gpulab's probe (no /bin/sh?)")

    def has(name):
        return answers.get(name) == "1"

    missing = [t for t in START_TOOLS if not has(t)]
    if missing:
        starts = (
            f"the image lacks {', '.join(missing)}, which gpulab's start needs to make the user"
        )
    elif not has("singleuser"):
        starts = (
            "the image has no jupyterhub-singleuser (JupyterHub's server, which every image needs)"
        )
    else:
        starts = ""
    proxies = set(answers.get("proxies", "").split())
    if not has("sshd"):
        ssh = "the image has no OpenSSH server (/usr/sbin/sshd)"
    elif not has("python3"):
        ssh = "the image has no /usr/bin/python3, which gpulab's SSH helpers run with"
    else:
        ssh = ""
    via_hub = ssh or (
        ""
        if "sshd" in proxies
        else "SSH goes through the hub, and the image's Jupyter has no gpulab-hooks "
        "(jupyter-server-proxy's sshd entry)"
    )
    tensorboard = (
        ""
        if "tensorboard" in proxies
        else "the image's Jupyter has no TensorBoard proxy (jupyter-server-proxy, tensorboard "
        "and gpulab-hooks)"
    )
    return ImageFacts(
        starts=starts,
        ssh=ssh,
        ssh_via_hub=via_hub,
        tensorboard=tensorboard,
        gpulab=has("gpulab"),
    )
