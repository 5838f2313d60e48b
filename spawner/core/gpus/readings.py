"""What the GPUs are doing: utilisation and memory per GPU and per process.

One interface, :class:`ReadingsSource` (``read() -> [GPUReading]``); where the GPUs and their
holders come from is another thing, the backend's inventory source:

* :class:`NVMLSource` reads the GPUs of the machine it runs on through NVML (nvidia-ml-py);
  NVML is injected (``nvml_loader``), so tests pass a fake and never import it.
* :class:`PushedReadings` keeps what the nodes' collectors (``gpulab collect``) reported through
  the hub's API (swarm mode, and a hub that cannot see its host's GPUs).
* :class:`StaticSource` serves readings set by the caller: the test double.

Utilisation is NVML's: the percentage of the last sample period (1/6 s to 1 s, by model)
during which a kernel ran on the GPU.
"""

import time
from dataclasses import dataclass, field

from .inventory import _text, load_pynvml


@dataclass(frozen=True)
class ProcessReading:
    pid: int
    memory_used: int  # bytes; 0 when the driver does not say (some MIG/vGPU set-ups)


@dataclass(frozen=True)
class GPUReading:
    uuid: str
    utilization: float  # percent, 0..100
    memory_used: int  # bytes
    memory_total: int  # bytes
    processes: tuple = ()
    node: str = ""
    time: float = field(default_factory=time.time)

    def as_dict(self):
        return {
            "uuid": self.uuid,
            "utilization": self.utilization,
            "memory_used": self.memory_used,
            "memory_total": self.memory_total,
            "processes": [{"pid": p.pid, "memory_used": p.memory_used} for p in self.processes],
            "node": self.node,
            "time": self.time,
        }

    @classmethod
    def from_dict(cls, d):
        """A reading as a collector reports it; TypeError or ValueError (OverflowError) name what
        is not one."""
        for key in ("uuid", "node"):
            if not isinstance(d.get(key, ""), str):
                raise TypeError(f"{key} must be a string")
        return cls(
            uuid=d["uuid"],
            utilization=float(d["utilization"]),
            memory_used=int(d["memory_used"]),
            memory_total=int(d["memory_total"]),
            processes=tuple(
                ProcessReading(int(p["pid"]), int(p.get("memory_used") or 0))
                for p in d.get("processes") or ()
            ),
            node=d.get("node") or "",
            time=float(d.get("time") or time.time()),
        )


class ReadingsSource:
    """Anything with ``read()`` returning the current readings of the GPUs it can see."""

    def read(self):
        raise NotImplementedError


class StaticSource(ReadingsSource):
    def __init__(self, readings=()):
        self.readings = list(readings)

    def set(self, readings):
        self.readings = list(readings)

    def read(self):
        return list(self.readings)


def _processes(nvml, handle):
    out = {}
    for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        fn = getattr(nvml, getter, None)
        if fn is None:
            continue
        try:
            found = fn(handle)
        except nvml.NVMLError:
            continue
        for p in found:
            used = getattr(p, "usedGpuMemory", None)
            out[int(p.pid)] = ProcessReading(
                int(p.pid), int(used) if isinstance(used, int) and used >= 0 else 0
            )
    return tuple(sorted(out.values(), key=lambda p: p.pid))


class NVMLSource(ReadingsSource):
    """Readings of this machine's GPUs. ``node`` labels them (swarm mode: the node's name)."""

    def __init__(self, nvml_loader=load_pynvml, node=""):
        self._loader = nvml_loader
        self._nvml = None
        self.node = node

    def _lib(self):
        if self._nvml is None:
            nvml = self._loader()
            if nvml is None:
                return None
            nvml.nvmlInit()  # kept initialised: one init per process, not per reading
            self._nvml = nvml
        return self._nvml

    def read(self):
        nvml = self._lib()
        if nvml is None:
            return []
        now = time.time()
        out = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            util = nvml.nvmlDeviceGetUtilizationRates(handle)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            out.append(
                GPUReading(
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    utilization=float(util.gpu),
                    memory_used=int(mem.used),
                    memory_total=int(mem.total),
                    processes=_processes(nvml, handle),
                    node=self.node,
                    time=now,
                )
            )
        return out

    def close(self):
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None


class PushedReadings(ReadingsSource):
    """Readings reported by collectors, per node; a node's readings older than ``max_age``
    seconds are not used (a dead collector is no evidence that a GPU is idle)."""

    def __init__(self, max_age=90.0, clock=time.time):
        self.max_age = max_age
        self.clock = clock
        self.by_node = {}  # node -> (received, [GPUReading])

    def push(self, node, readings):
        self.by_node[node] = (
            self.clock(),
            [r if isinstance(r, GPUReading) else GPUReading.from_dict(r) for r in readings],
        )

    def read(self):
        now = self.clock()
        return [
            r
            for received, readings in self.by_node.values()
            if now - received <= self.max_age
            for r in readings
        ]
