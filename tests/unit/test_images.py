"""Unit tests for gpulab.admin.images and the image files (no Docker needed)."""

import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from gpulab.admin import images
from gpulab.core import versions

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / spec.dockerfile for spec in images.IMAGES.values()]


def _build_args(argv):
    return [argv[i + 1] for i, a in enumerate(argv) if a == "--build-arg"]


# --- build_command -------------------------------------------------------


def test_base_command_has_args_tag_and_repo_root_context():
    argv = images.build_command(
        "base",
        tag="lab/base:1",
        base_image="localhost/gpulab/bootstrap:bookworm",
        jupyterhub_spec="jupyterhub==6.1.*",
        pip_index_url="http://pypi.lab/simple",
        apt_mirror="http://apt.lab/debian",
        ca_bundle=None,
        repo_root="/repo",
        docker_cli=["/usr/bin/docker", "build"],
        pip_refresh="2026-W48",
    )
    assert argv[:2] == ["/usr/bin/docker", "build"]
    assert argv[argv.index("-t") + 1] == "lab/base:1"
    assert argv[argv.index("-f") + 1] == "/repo/images/base/Dockerfile"
    assert argv[-1] == "/repo"
    assert _build_args(argv) == [
        "BASE_IMAGE=localhost/gpulab/bootstrap:bookworm",
        "JUPYTERHUB_VERSION=jupyterhub==6.1.*",
        "SERVER_PACKAGES=" + " ".join(f"{name}{spec}" for name, spec in versions.IMAGE.items()),
        "PIP_REFRESH=2026-W48",
        "PIP_INDEX_URL=http://pypi.lab/simple",
        "APT_MIRROR=http://apt.lab/debian",
    ]
    assert "--progress=plain" in argv


def test_pip_layers_refresh_weekly_and_floors_come_from_one_place():
    assert images.week_stamp(1795657151) == "2026-W48"  # 2026-11-26
    argv = images.build_command("base", repo_root="/repo")
    assert f"PIP_REFRESH={images.week_stamp()}" in _build_args(argv)
    assert any(
        a.startswith("SERVER_PACKAGES=") and "jupyter-server>=" in a and "tornado>=" in a
        for a in _build_args(argv)
    )


def test_secret_only_when_ca_bundle_given():
    without = images.build_command("base", repo_root="/repo")
    assert "--secret" not in without
    with_ca = images.build_command("base", repo_root="/repo", ca_bundle="/etc/ca.pem")
    assert with_ca[with_ca.index("--secret") + 1] == "id=ca_bundle,src=/etc/ca.pem"
    assert not any("/etc/ca.pem" in a for a in _build_args(with_ca))


def test_unset_options_are_not_passed_and_defaults_apply():
    argv = images.build_command("base", repo_root="/repo", progress=None)
    assert [a.split("=")[0] for a in _build_args(argv)] == ["SERVER_PACKAGES", "PIP_REFRESH"]
    assert argv[argv.index("-t") + 1] == "localhost/gpulab/base:latest"
    assert not any(a.startswith("--progress") for a in argv)
    assert "--no-cache" not in argv
    assert "--no-cache" in images.build_command("base", repo_root="/repo", no_cache=True)


def test_pytorch_is_built_from_base_tag_without_base_only_args():
    argv = images.build_command(
        "pytorch",
        repo_root="/repo",
        jupyterhub_spec="jupyterhub==6.1.*",
        apt_mirror="http://apt.lab/debian",
    )
    assert _build_args(argv) == [
        "BASE_IMAGE=localhost/gpulab/base:latest",
        f"PIP_REFRESH={images.week_stamp()}",
    ]
    assert argv[argv.index("-t") + 1] == "localhost/gpulab/pytorch:latest"
    assert argv[-1] == "/repo"


def test_build_order_puts_dependencies_first():
    assert images.build_order(["pytorch"]) == ["base", "pytorch"]
    assert images.build_order(["pytorch", "base"]) == ["base", "pytorch"]
    with pytest.raises(ValueError, match="unknown image"):
        images.build_order(["tensorflow"])


# --- find_buildkit_cli ---------------------------------------------------


def fake_runner(buildx_ok=(), versions=None):
    calls = []

    def run(argv, **kw):
        calls.append(argv)
        if argv[1:] == ["buildx", "version"]:
            return SimpleNamespace(
                returncode=0 if argv[0] in buildx_ok else 1, stdout="", stderr=""
            )
        if argv[1] == "version":
            return SimpleNamespace(
                returncode=0, stdout=(versions or {}).get(argv[0], ""), stderr=""
            )
        raise AssertionError(argv)

    run.calls = calls
    return run


def which_both(name):
    return {"docker": "/usr/local/bin/docker", "/usr/bin/docker": "/usr/bin/docker"}.get(name)


def test_prefers_buildx():
    run = fake_runner(buildx_ok={"/usr/local/bin/docker"})
    prefix, env = images.find_buildkit_cli(run=run, which=which_both)
    assert prefix == ["/usr/local/bin/docker", "buildx", "build", "--load"]
    assert env == {}


def test_falls_back_to_old_cli_with_docker_buildkit():
    run = fake_runner(
        versions={"/usr/local/bin/docker": "28.2.2\n", "/usr/bin/docker": "20.10.24+dfsg1\n"}
    )
    prefix, env = images.find_buildkit_cli(run=run, which=which_both)
    assert prefix == ["/usr/bin/docker", "build"]
    assert env == {"DOCKER_BUILDKIT": "1"}


def test_no_buildkit_cli_raises_with_advice():
    run = fake_runner(versions={"/usr/local/bin/docker": "28.2.2\n", "/usr/bin/docker": "24.0.5\n"})
    with pytest.raises(images.ImageBuildError, match="buildx"):
        images.find_buildkit_cli(run=run, which=which_both)


# --- build_images, list_images, bootstrap, jupyterhub spec ------------------


class FakePopen:
    runs = []

    def __init__(self, argv, **kw):
        self.argv, self.env = argv, kw["env"]
        FakePopen.runs.append(self)
        name = Path(argv[argv.index("-f") + 1]).parent.name
        self.rc = 1 if name == os.environ.get("FAIL_IMAGE") else 0
        self.stdout = iter([f"#5 [2/3] RUN build {name}\n", "noise\n"])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def wait(self):
        return self.rc


def test_build_images_builds_in_order_and_streams(monkeypatch):
    FakePopen.runs = []
    lines = []
    elapsed = images.build_images(
        ["pytorch"],
        tags={"base": "lab/base:2"},
        jupyterhub_spec="jupyterhub==6.1.*",
        ca_bundle=None,
        cli=(["docker", "build"], {"DOCKER_BUILDKIT": "1"}),
        on_line=images.step_lines(lines.append),
        popen=FakePopen,
    )
    assert list(elapsed) == ["base", "pytorch"]
    assert "BASE_IMAGE=lab/base:2" in _build_args(FakePopen.runs[1].argv)
    assert FakePopen.runs[0].env["DOCKER_BUILDKIT"] == "1"
    assert lines == ["#5 [2/3] RUN build base", "#5 [2/3] RUN build pytorch"]


def test_build_failure_reports_last_lines(monkeypatch):
    monkeypatch.setenv("FAIL_IMAGE", "base")
    with pytest.raises(images.ImageBuildError, match=r"(?s)'base' failed.*RUN build base"):
        images.build_images(
            ["base"],
            jupyterhub_spec="x",
            ca_bundle=None,
            cli=(["docker", "build"], {}),
            on_line=lambda line: None,
            popen=FakePopen,
        )


def test_list_images_parses_json_lines():
    out = '{"Repository":"localhost/gpulab/base","Tag":"latest","ID":"42dd","Size":"789MB","CreatedAt":"2026-11-24 05:21:00 +0000 UTC"}\n'

    def run(argv, **kw):
        assert "label=gpulab.image" in argv
        return SimpleNamespace(returncode=0, stdout=out, stderr="")

    assert images.list_images(run=run) == [
        {
            "repository": "localhost/gpulab/base",
            "tag": "latest",
            "id": "42dd",
            "size": "789MB",
            "created": "2026-11-24 05:21:00 +0000 UTC",
        }
    ]


def test_bootstrap_skips_existing_and_imports_new(tmp_path):
    calls = []

    def run(argv, **kw):
        calls.append(argv)
        if argv[:3] == ["docker", "image", "inspect"]:
            return SimpleNamespace(returncode=0 if exists else 1)
        if argv[0] == "debootstrap":
            Path(argv[-1], "etc/apt").mkdir(parents=True)
        return SimpleNamespace(returncode=0)

    exists = True
    assert images.bootstrap_base(run=run, workdir=tmp_path) is False
    assert len(calls) == 1
    exists = False
    assert images.bootstrap_base(suite="trixie", run=run, workdir=tmp_path) is True
    assert calls[2][:3] == ["debootstrap", "--variant=minbase", "trixie"]
    assert "import" in calls[3][-1] and calls[3][-1].endswith(
        " localhost/gpulab/bootstrap:bookworm"
    )
    assert list(tmp_path.iterdir()) == []  # temp dir cleaned


def test_default_jupyterhub_spec_pins_major_minor(monkeypatch):
    monkeypatch.setattr(images.metadata, "version", lambda name: "6.1.1")
    assert images.default_jupyterhub_spec() == "jupyterhub==6.1.*"


# --- the image files -------------------------------------------------------


def instructions(path):
    """Dockerfile instructions with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_ca_bundle_is_never_copied_and_pip_uses_the_secret(dockerfile):
    for ins in instructions(dockerfile):
        op = ins.split()[0].upper()
        if op in ("COPY", "ADD"):
            assert not re.search(r"ca[-_]?bundle|\.crt|\.pem|certs|secret", ins, re.I), ins
        if (
            op == "RUN" and "pip install" in ins and "--no-index" not in ins
        ):  # pip reaching an index uses the secret
            assert "--mount=type=secret,id=ca_bundle" in ins
            assert "PIP_CERT=/run/secrets/ca_bundle" in ins
            assert "--no-cache-dir" in ins


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_image_references_name_no_registry_host(dockerfile):
    ins = instructions(dockerfile)
    default = next(i for i in ins if i.startswith("ARG BASE_IMAGE=")).split("=", 1)[1]
    first = default.split("/")[0]
    # a local-only name (localhost/...: never looked up in a public registry), or a base (CUDA, Debian)
    # named without any registry host
    assert (
        first == "localhost"
        or "/" not in default
        or ("." not in first and ":" not in first.split("/")[0])
    )
    assert ins[1] == "FROM ${BASE_IMAGE}"


def test_base_dockerfile_contract():
    ins = instructions(ROOT / "images/base/Dockerfile")
    assert 'ENTRYPOINT ["/usr/bin/tini", "-g", "--"]' in ins
    assert 'CMD ["gpulab-start"]' in ins
    assert "LABEL gpulab.image=base" in ins
    assert not any(i.startswith("USER") for i in ins)  # gpulab-start must run as root
    assert any("rm -f /etc/ssh/ssh_host_*" in i for i in ins)


def test_scripts_are_executable():
    for path in [ROOT / "images/base/gpulab-start", *ROOT.glob("hooks/start.d/*.sh")]:
        assert os.access(path, os.X_OK), f"{path} must be chmod 755 (git keeps the bit)"


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_env_hook_writes_quoted_profile(tmp_path):
    out = tmp_path / "00-gpulab.sh"
    tricky = 'it\'s "q" $HOME `x`\nline2'
    env = {
        "PATH": "/usr/bin:/bin",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "TF_X": tricky,
        "MINE": "a b",
        "SECRET": "no",
        "GPULAB_EXPORT_ENV": "MINE bad-name",
        "GPULAB_PROFILE_ENV": str(out),
    }
    subprocess.run([str(ROOT / "hooks/start.d/10-env.sh")], env=env, check=True)
    got = subprocess.run(
        [
            "sh",
            "-c",
            f'. {out}; printf "%s|" "$PATH" "$CUDA_VISIBLE_DEVICES" "$TF_X" "$MINE" "${{SECRET:-unset}}"',
        ],
        env={},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert got == f"/opt/gpulab/venv/bin:/usr/bin:/bin|0,1|{tricky}|a b|unset|"


# --- push_images ----------------------------------------------------------


def test_push_reports_each_image_by_the_digest_the_registry_stored():
    digest = "sha256:" + "ab" * 32
    calls = []

    def run(argv, **kw):
        calls.append(argv)
        out = f"latest: digest: {digest} size: 1234\n" if argv[1] == "push" else ""
        return SimpleNamespace(returncode=0, stdout=out, stderr="")

    pushed = images.push_images(["base"], "reg.lab:5000", run=run, on_line=lambda _: None)
    target = images.registry_name(images.IMAGES["base"].tag, "reg.lab:5000")
    assert pushed == [f"{target}@{digest}"]
    assert calls == [
        ["docker", "tag", images.IMAGES["base"].tag, target],
        ["docker", "push", target],
    ]


def test_push_of_an_image_not_built_here_says_so():
    def run(argv, **kw):
        return SimpleNamespace(returncode=1, stdout="", stderr="No such image")

    with pytest.raises(images.ImageBuildError, match="gpulab images build base"):
        images.push_images(["base"], "reg.lab:5000", run=run, on_line=lambda _: None)
