"""GPU memory defaults in a kernel, a terminal and an SSH session; the IPython hook; opt-outs."""

import subprocess

import pytest

from harness.jupyter_ws import kernel_run, terminal_run

USER = "hana"
NAMES = ("TF_FORCE_GPU_ALLOW_GROWTH", "XLA_PYTHON_CLIENT_PREALLOCATE", "PIP_USER")
DEFAULTS = {
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
    "PIP_USER": "1",
}
SHELL_ENV = "env | grep -E '^(" + "|".join(NAMES) + ")=' | sort; echo DONE$((40+2))"
KERNEL_ENV = "import os, sys\nfor n in %r: print(n + '=' + os.environ.get(n, '-'))\n" % (NAMES,)

FAKE_TF = """
import json, os
class _Experimental:
    @staticmethod
    def set_memory_growth(device, enable):
        with open("/tmp/faketf/calls.jsonl", "a") as f:
            f.write(json.dumps([device, enable]) + "\\n")
class config:
    experimental = _Experimental
    @staticmethod
    def list_physical_devices(kind):
        return [f"/physical_device:{kind}:{i}" for i in range(2)]
"""


def _env_lines(text):
    return dict(
        line.strip().split("=", 1)
        for line in text.splitlines()
        if line.strip().split("=", 1)[0] in NAMES
    )


@pytest.fixture(scope="module")
def server(hub):
    hub.create_user(USER)
    hub.spawn(USER)
    (c,) = hub.containers(USER)
    return c, hub.user_url(USER), hub.user_token(USER)


def test_kernel_has_the_defaults_and_the_hook_skips_tensorflow(server):
    _, url, token = server
    out, _ = kernel_run(
        url,
        token,
        KERNEL_ENV
        + "from gpulab_hooks import tf_memory\nprint('armed', tf_memory.installed(), 'tensorflow' in sys.modules)",
    )
    assert _env_lines(out) == DEFAULTS
    assert "armed True False" in out  # the hook waits; TensorFlow is not imported at start


def test_stand_in_tensorflow_gets_memory_growth_once_per_gpu(server):
    c, url, token = server
    uid = c.labels["gpulab.uid"]
    code = f"import os; os.makedirs('/tmp/faketf/tensorflow', exist_ok=True); open('/tmp/faketf/tensorflow/__init__.py', 'w').write({FAKE_TF!r})"
    assert c.exec_run(["python", "-c", code], user=uid).exit_code == 0
    out, _ = kernel_run(
        url,
        token,
        "import sys\nsys.path.insert(0, '/tmp/faketf')\nimport tensorflow\nimport tensorflow\nprint(open('/tmp/faketf/calls.jsonl').read())",
    )
    assert out.split() == [
        '["/physical_device:GPU:0",',
        "true]",
        '["/physical_device:GPU:1",',
        "true]",
    ]


def test_terminal_has_the_defaults(server):
    _, url, token = server
    assert _env_lines(terminal_run(url, token, SHELL_ENV, "DONE42")) == DEFAULTS


def test_ssh_session_has_the_defaults(server, tmp_path):
    c, _, _ = server
    uid = c.labels["gpulab.uid"]
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = key.with_suffix(".pub").read_text().strip()
    r = c.exec_run(
        ["bash", "-c", f"umask 077; mkdir -p ~/.ssh && echo '{pub}' > ~/.ssh/authorized_keys"],
        user=uid,
    )
    assert r.exit_code == 0, r.output
    # this test's own sshd, reading the key file (gpulab's sshd takes keys only from the hub)
    r = c.exec_run(
        [
            "bash",
            "-c",
            "ssh-keygen -A >/dev/null && /usr/sbin/sshd -p 2222 -o AuthorizedKeysFile=.ssh/authorized_keys",
        ]
    )
    assert r.exit_code == 0, r.output
    c.reload()
    ip = c.attrs["NetworkSettings"]["Networks"][c.labels["gpulab.deployment"]]["IPAddress"]
    ssh = [
        "ssh",
        "-tt",
        "-i",
        str(key),
        "-p",
        "2222",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        f"{USER}@{ip}",
    ]
    out = subprocess.run(
        ssh, input=SHELL_ENV + "; exit\n", capture_output=True, text=True, timeout=60
    )
    assert "DONE42" in out.stdout, out.stdout + out.stderr
    assert _env_lines(out.stdout.replace("\r", "")) == DEFAULTS


def test_pip_install_goes_to_the_users_home(server):
    c, _, _ = server
    wheel = (
        "import zipfile, base64, hashlib\n"
        "files = {'gpulab_demo.py': 'X = 42\\n', 'gpulab_demo-1.0.dist-info/METADATA': 'Metadata-Version: 2.1\\nName: gpulab-demo\\nVersion: 1.0\\n',"
        " 'gpulab_demo-1.0.dist-info/WHEEL': 'Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'}\n"
        "rec = ''.join(f'{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d.encode()).digest()).rstrip(b\"=\").decode()},{len(d)}\\n' for n, d in files.items())\n"
        "files['gpulab_demo-1.0.dist-info/RECORD'] = rec + 'gpulab_demo-1.0.dist-info/RECORD,,\\n'\n"
        "with zipfile.ZipFile('/tmp/gpulab_demo-1.0-py3-none-any.whl', 'w') as z:\n"
        "    [z.writestr(n, d) for n, d in files.items()]\n"
    )
    uid = c.labels["gpulab.uid"]
    assert c.exec_run(["python", "-c", wheel], user=uid).exit_code == 0
    r = c.exec_run(
        [
            "bash",
            "-lc",
            "pip install -q --no-index /tmp/gpulab_demo-1.0-py3-none-any.whl && cd / && python -c 'import gpulab_demo; print(gpulab_demo.__file__)'",
        ],
        user=uid,
    )
    assert r.exit_code == 0, r.output
    # the user site of whatever Python the image has (no test depends on which base was built)
    site = c.exec_run(
        ["python", "-c", "import site; print(site.getusersitepackages())"],
        user=uid,
        environment={"HOME": f"/home/{USER}"},
    )
    user_site = site.output.decode().strip()
    assert user_site.startswith(f"/home/{USER}/.local/lib/python3."), user_site
    assert r.output.decode().strip().splitlines()[-1] == f"{user_site}/gpulab_demo.py"


def test_user_opt_out_reaches_kernels_terminals_and_tensorboard(hub, server):
    c, _, _ = server
    uid = c.labels["gpulab.uid"]
    conf = "# my own settings\nTF_FORCE_GPU_ALLOW_GROWTH=false\nexport XLA_PYTHON_CLIENT_PREALLOCATE=true\nGPULAB_TENSORBOARD_LOGDIR=~/experiments\nPATH=/evil\n"
    r = c.exec_run(
        ["bash", "-c", f"mkdir -p ~/.config/gpulab && printf '%s' '{conf}' > ~/.config/gpulab/env"],
        user=uid,
    )
    assert r.exit_code == 0, r.output
    hub.stop_server(USER)
    hub.spawn(USER)
    url, token = hub.user_url(USER), hub.user_token(USER)
    want = {
        **DEFAULTS,
        "TF_FORCE_GPU_ALLOW_GROWTH": "false",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "true",
    }
    out, _ = kernel_run(
        url,
        token,
        KERNEL_ENV
        + "from gpulab_hooks import tf_memory\nprint('armed', tf_memory.installed())\nprint(os.environ['PATH'])",
    )
    assert _env_lines(out) == want and "armed False" in out and "/evil" not in out
    assert _env_lines(terminal_run(url, token, SHELL_ENV, "DONE42")) == want
    import requests

    r = requests.get(
        url + "tensorboard/data/environment",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["data_location"] == f"/home/{USER}/experiments", r.text
    (c2,) = hub.containers(USER)
    assert c2.exec_run(["test", "-d", f"/home/{USER}/experiments"]).exit_code == 0
