"""Packaging by where code runs: the hub package builds images without a checkout; the laptop
client installs alone, with no dependencies."""

import json
import os
import subprocess
import sys
import zipfile

from harness.hub import REPO

BASE = "localhost/gpulab/base:latest"


def build_wheel(src, out):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", src, "-w", str(out)],
        check=True,
        timeout=300,
    )
    (wheel,) = [p for p in out.iterdir() if p.suffix == ".whl"]
    return wheel


def test_an_installed_package_builds_the_images(tmp_path, docker_client):
    wheel = build_wheel(REPO, tmp_path / "dist")
    names = zipfile.ZipFile(wheel).namelist()
    assert (
        "gpulab/buildctx/images/base/Dockerfile" in names
        and "gpulab/buildctx/hooks/start.d/30-sshd.sh" in names
    )
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    where = subprocess.run(
        [sys.executable, "-c", "from gpulab.admin import images; print(images.REPO_ROOT)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip() == str(target / "gpulab" / "buildctx")
    before = docker_client.images.get(BASE).id
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpulab.admin.cli",
            "images",
            "build",
            "--bootstrap-if-unpullable",
            "base",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{target}/gpulab/buildctx" in proc.stdout, "built from the installed package's context"
    assert docker_client.images.get(BASE).id == before, (
        "the same context gives the same image (Docker's cache)"
    )


def test_the_laptop_client_installs_alone(tmp_path):
    wheel = build_wheel(os.path.join(REPO, "client"), tmp_path / "dist")
    meta = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("METADATA")))
        .decode()
    )
    assert "Requires-Dist" not in meta, "no dependencies"
    venv = tmp_path / "laptop"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    out = subprocess.run(
        [str(venv / "bin" / "gpulab-client"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "ssh-proxy" in out and "gpus" in out
    mods = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import json, sys, gpulab_client.cli; print(json.dumps(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert not [
        m
        for m in json.loads(mods)
        if m.split(".")[0] in ("jupyterhub", "docker", "tornado", "gpulab")
    ]
