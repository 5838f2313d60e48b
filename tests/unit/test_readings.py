"""GPU readings through the one source interface, with NVML injected (checked against a real H200 too)."""

from types import SimpleNamespace

from gpulab.core.gpus.readings import GPUReading, NVMLSource, ProcessReading, StaticSource


class FakeNVML:
    class NVMLError(Exception):
        pass

    def __init__(self, gpus):
        self.gpus = gpus
        self.calls = []

    def nvmlInit(self):
        self.calls.append("init")

    def nvmlShutdown(self):
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.gpus[i]

    def nvmlDeviceGetUUID(self, h):
        return h["uuid"].encode()

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=h["util"], memory=0)

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=h["total"], used=h["used"], free=h["total"] - h["used"])

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [SimpleNamespace(pid=pid, usedGpuMemory=mem) for pid, mem in h["procs"]]

    def nvmlDeviceGetGraphicsRunningProcesses(self, h):
        raise self.NVMLError("not supported")


def test_nvml_source_reads_each_gpu_and_its_processes():
    nvml = FakeNVML(
        [
            {
                "uuid": "GPU-a",
                "util": 97,
                "total": 80 << 30,
                "used": 20 << 30,
                "procs": [(471, 1478 << 20), (12, None)],
            },
            {"uuid": "GPU-b", "util": 0, "total": 80 << 30, "used": 600 << 20, "procs": []},
        ]
    )
    src = NVMLSource(lambda: nvml, node="gpu1")
    a, b = src.read()
    assert (a.uuid, a.utilization, a.memory_used, a.node) == ("GPU-a", 97.0, 20 << 30, "gpu1")
    assert a.processes == (ProcessReading(12, 0), ProcessReading(471, 1478 << 20))
    assert (b.utilization, b.processes) == (0.0, ())
    src.read()
    assert nvml.calls == ["init"], "NVML initialised once, not per reading"
    src.close()
    assert nvml.calls == ["init", "shutdown"]


def test_no_driver_no_readings():
    assert NVMLSource(lambda: None).read() == []


def test_readings_round_trip_as_json_and_the_test_double():
    r = GPUReading("GPU-a", 5.0, 1, 2, (ProcessReading(1, 3),), "n1", 100.0)
    assert GPUReading.from_dict(r.as_dict()) == r
    double = StaticSource([r])
    assert double.read() == [r]
    double.set([])
    assert double.read() == []
