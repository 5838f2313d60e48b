"""make test on a real GPU server: which GPU path the Docker tests take (harness/gpuhost.py)."""

import os

from harness import gpuhost

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "nvidia-container-runtime-hook")


def test_a_real_runtime_is_used_and_never_replaced(tmp_path):
    real_hook = tmp_path / "nvidia-container-runtime-hook"
    real_hook.write_bytes(b"\x7fELF...a real binary")
    assert gpuhost.decide({"nvidia": {"path": "nvidia-container-runtime"}}, None) == "real"
    assert gpuhost.decide({"runc": {}}, str(real_hook)) == "real"


def test_cpu_only_hosts_use_the_fixture():
    assert gpuhost.is_fixture(FIXTURE)
    assert gpuhost.decide({"runc": {}}, None) == "fixture"
    assert gpuhost.decide({"runc": {}}, FIXTURE) == "fixture"


def test_devices_in_fixture_mode_are_three_fakes(monkeypatch):
    monkeypatch.setenv("GPULAB_TEST_GPU_MODE", "fixture")
    assert [g["uuid"] for g in gpuhost.devices()] == ["GPU-test-0", "GPU-test-1", "GPU-test-2"]


def test_devices_in_real_mode_come_from_nvml(monkeypatch):
    from tests.unit.test_gpus import FakeNVML

    monkeypatch.setenv("GPULAB_TEST_GPU_MODE", "real")
    nvml = FakeNVML([{"uuid": "GPU-5a1c", "name": "NVIDIA H100", "mem": 80 << 30}])
    assert gpuhost.devices(lambda: nvml) == [
        {"index": 0, "uuid": "GPU-5a1c", "model": "NVIDIA H100", "memory": 80 << 30}
    ]
