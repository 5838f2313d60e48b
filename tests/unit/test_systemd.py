"""gpulab install: the unit file (checked by systemd-analyze verify) and no half-installs."""

import os
import subprocess
import sys

import pytest
import yaml

from gpulab.admin import systemd
from gpulab.core.site.model import load_site

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GPULAB_BIN = os.path.join(os.path.dirname(sys.executable), "gpulab")


def site_file(tmp_path, **extra):
    path = tmp_path / "gpulab.yaml"
    site = {
        "hub": {"name": "lab", "state_dir": str(tmp_path / "state")},
        "auth": {"admin_users": ["admin"]},
        "profiles": [{"name": "base", "image": "localhost/gpulab/base:latest"}],
        **extra,
    }
    path.write_text(yaml.safe_dump(site))
    return str(path)


@pytest.mark.parametrize("mode", ["single", "swarm"])
def test_unit_file_passes_systemd_analyze_verify(tmp_path, mode):
    swarm = {"mode": "swarm", "registry": "registry.lab.example:5000", "shared_root": "/srv/gpulab"}
    extra = (
        {
            "cluster": swarm,
            "storage": {"home": "/srv/gpulab/home/{username}"},
            "ssh": {"port_base": 0},
        }
        if mode == "swarm"
        else {}
    )
    path = site_file(tmp_path, **extra)
    site = load_site(path)
    unit = systemd.render_unit(
        site,
        site_file=path,
        config_file=os.path.join(REPO, "jupyterhub_config.py"),
        gpulab_bin=GPULAB_BIN,
    )
    unit_path = tmp_path / systemd.unit_name(site)
    unit_path.write_text(unit)
    r = subprocess.run(
        ["systemd-analyze", "verify", str(unit_path)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert f"ExecStart={GPULAB_BIN} --site {path} up --config {REPO}/jupyterhub_config.py" in unit
    assert "Requires=docker.service" in unit and "WantedBy=multi-user.target" in unit
    if mode == "swarm":
        assert (
            "Type=oneshot" in unit
            and "--replace" in unit
            and "ExecStop=" in unit
            and "lab-hub" in unit
        )
    else:
        assert "Type=simple" in unit and "Restart=on-failure" in unit
    assert systemd.unit_name(site) == "gpulab-lab.service"


def test_a_broken_unit_fails_verification(tmp_path):
    path = site_file(tmp_path)
    unit = systemd.render_unit(
        load_site(path),
        site_file=path,
        config_file="jupyterhub_config.py",
        gpulab_bin="/nonexistent/gpulab",
    )
    (tmp_path / "x.service").write_text(unit)
    assert (
        subprocess.run(
            ["systemd-analyze", "verify", str(tmp_path / "x.service")], capture_output=True
        ).returncode
        != 0
    )


def test_install_without_systemd_says_so_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(systemd, "SYSTEMD_RUNNING", str(tmp_path / "no-systemd"))
    path = site_file(tmp_path)
    units = tmp_path / "units"
    units.mkdir()
    with pytest.raises(systemd.InstallError, match="systemd is not running"):
        systemd.install(load_site(path), "x", unit_dir=str(units))
    assert list(units.iterdir()) == []


def test_install_removes_the_unit_when_a_step_fails(tmp_path, monkeypatch):
    running = tmp_path / "systemd"
    running.mkdir()
    monkeypatch.setattr(systemd, "SYSTEMD_RUNNING", str(running))
    path = site_file(tmp_path)
    units = tmp_path / "units"
    units.mkdir()
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        ok = cmd[:2] != ["systemctl", "enable"]
        return subprocess.CompletedProcess(
            cmd, 0 if ok else 1, "", "" if ok else "Failed to enable unit: access denied"
        )

    with pytest.raises(systemd.InstallError, match="access denied"):
        systemd.install(load_site(path), "[Unit]\n", unit_dir=str(units), run=run)
    assert list(units.iterdir()) == [] and calls[-1] == ["systemctl", "daemon-reload"]
    done = systemd.install(
        load_site(path),
        "[Unit]\n",
        unit_dir=str(units),
        run=lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, "", ""),
    )
    assert os.path.basename(done) == "gpulab-lab.service"


def test_cli_install_on_this_machine(tmp_path):
    """The CI machine runs no systemd: the command refuses with the reason, exit 2, nothing written."""
    if systemd.systemd_running():
        pytest.skip(
            "this machine runs systemd: installing here would change it (the other tests cover install)"
        )
    path = site_file(tmp_path)
    units = tmp_path / "units"
    units.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "gpulab.admin.cli",
        "--site",
        path,
        "install",
        "--config",
        os.path.join(REPO, "jupyterhub_config.py"),
        "--unit-dir",
        str(units),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert (
        r.returncode == 2 and "systemd is not running" in r.stderr and list(units.iterdir()) == []
    )
    printed = subprocess.run([*cmd, "--print"], capture_output=True, text=True)
    assert printed.returncode == 0 and printed.stdout.startswith("[Unit]")
