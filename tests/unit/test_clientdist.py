"""The laptop client the hub serves (gpulab.hub.clientdist): a wheel pip installs into a fresh
virtual environment with nothing else, and a single file that runs as it is."""

import os
import subprocess
import sys
import zipfile

import gpulab_client
from gpulab.hub import clientdist


def test_the_wheel_installs_alone_into_a_fresh_environment(tmp_path):
    name, data = clientdist.wheel()
    assert name == f"gpulab_client-{gpulab_client.__version__}-py3-none-any.whl"
    assert clientdist.wheel() == (name, data), "the same package gives the same bytes"
    wheel = tmp_path / name
    wheel.write_bytes(data)
    with zipfile.ZipFile(wheel) as z:
        assert "gpulab_client/sshproxy.py" in z.namelist()
        assert not [n for n in z.namelist() if n.startswith("gpulab/")], "no server code"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # pip from this interpreter installs into the new environment, offline, no dependencies
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "-q", "--no-index", str(wheel)],
        check=True,
    )  # fmt: skip
    out = subprocess.run(
        [str(venv / "bin" / "gpulab-client"), "--version"], capture_output=True, text=True
    )
    assert (
        out.returncode == 0 and out.stdout.strip() == f"gpulab-client {gpulab_client.__version__}"
    )


def test_the_single_file_runs_as_it_is(tmp_path):
    name, data = clientdist.zipapp()
    pyz = tmp_path / name
    pyz.write_bytes(data)
    os.chmod(pyz, 0o755)
    assert data.startswith(b"#!/usr/bin/env python3\n")
    env = {"PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin"}
    out = subprocess.run([str(pyz), "ssh-proxy", "--help"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "--token-file" in out.stdout, out.stderr
