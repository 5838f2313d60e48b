"""What an image can do under gpulab, from gpulab's probe (hooks/probe-image): parsed here; the
probe itself runs in real images in tests/docker/test_lab_images.py."""

import subprocess
from pathlib import Path

import pytest

from gpulab.core import imagefacts

PROBE = Path(__file__).resolve().parents[2] / "hooks" / "probe-image"
ALL_TOOLS = "\n".join(f"{t}=1" for t in imagefacts.START_TOOLS)


def answer(**kw):
    lines = {"gpulab-probe": "1", "singleuser": "1", "sshd": "1", "python3": "1", "gpulab": "0"}
    lines.update(kw)
    return ALL_TOOLS + "\n" + "\n".join(f"{k}={v}" for k, v in lines.items())


def test_gpulabs_own_image_can_do_everything():
    f = imagefacts.parse(answer(gpulab="1", proxies="sshd tensorboard"))
    assert f == imagefacts.ImageFacts(gpulab=True)


def test_a_docker_stacks_image_starts_but_says_what_it_lacks():
    f = imagefacts.parse(answer(sshd="0", python3="0", proxies=""))
    assert f.starts == "" and "OpenSSH server" in f.ssh and "OpenSSH server" in f.ssh_via_hub
    assert "TensorBoard proxy" in f.tensorboard
    # with sshd and python3 added: SSH on its own port, not through the hub (no sshd proxy)
    f = imagefacts.parse(answer(proxies="tensorboard"))
    assert f.ssh == "" and "through the hub" in f.ssh_via_hub and f.tensorboard == ""


def test_an_image_gpulab_cannot_start_says_why():
    f = imagefacts.parse(answer(singleuser="0"))
    assert "no jupyterhub-singleuser" in f.starts
    f = imagefacts.parse(
        answer().replace("setpriv=1", "setpriv=0").replace("useradd=1", "useradd=0")
    )
    assert f.starts.startswith("the image lacks setpriv, useradd")


def test_an_answer_that_is_not_the_probes_is_refused():
    with pytest.raises(imagefacts.ProbeError):
        imagefacts.parse("exec: /bin/sh: not found")


def test_the_probe_runs_under_a_plain_sh_and_answers_every_name():
    out = subprocess.run(["sh", str(PROBE)], capture_output=True, text=True, check=True).stdout
    names = {line.split("=", 1)[0] for line in out.splitlines()}
    assert {
        "gpulab-probe",
        "singleuser",
        "sshd",
        "python3",
        "proxies",
        *imagefacts.START_TOOLS,
    } <= names
    imagefacts.parse(out)
