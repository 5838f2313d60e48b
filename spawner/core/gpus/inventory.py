"""The host's GPUs: from NVML (nvidia-ml-py) or from a static list in the site file.

People see indices and models; allocation works on UUIDs (indices can change
across reboots).  NVML is injected, never imported by tests: pass any object with
the ``pynvml`` functions used below.
"""

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GPU:
    index: int
    uuid: str
    model: str
    memory_total: int  # bytes
    max_shared: int = 1  # servers that may hold it at once (1 = exclusive)
    node: str = ""  # the Swarm node it is on; '' on a single host

    def as_dict(self):
        return {
            "index": self.index,
            "uuid": self.uuid,
            "model": self.model,
            "memory_total": self.memory_total,
            "max_shared": self.max_shared,
            "node": self.node,
        }


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def from_nvml(nvml):
    """Read every GPU through an initialised-or-not ``pynvml``-like module."""
    nvml.nvmlInit()
    try:
        gpus = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            gpus.append(
                GPU(
                    index=i,
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    model=_text(nvml.nvmlDeviceGetName(handle)),
                    memory_total=int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
                )
            )
        return gpus
    finally:
        nvml.nvmlShutdown()


def load_pynvml():
    """The real NVML binding, or None on a host without the NVIDIA driver."""
    try:
        import pynvml
    except ImportError as e:
        log.warning(
            "nvidia-ml-py is not installed (%s): this host offers no GPUs unless the site file lists them",
            e,
        )
        return None
    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except (
        pynvml.NVMLError
    ) as e:  # no driver (NVMLError_LibraryNotFound), driver/library mismatch, ...
        log.warning(
            "NVML not available (%s): this host offers no GPUs unless the site file lists them", e
        )
        return None
    return pynvml


def from_site(entries):
    """A validated static list from the site file ``gpus.devices``."""
    return [
        GPU(index=e["index"], uuid=e["uuid"], model=e["model"], memory_total=e["memory"])
        for e in entries
    ]


def discover(site_gpus, nvml_loader=load_pynvml):
    """``site_gpus`` is the validated ``gpus`` section. Applies per-GPU sharing limits."""
    if site_gpus["devices"] == "auto":
        nvml = nvml_loader()
        found = from_nvml(nvml) if nvml else []
    else:
        found = from_site(site_gpus["devices"])
    default_share = site_gpus["max_shared"] if site_gpus["mode"] == "shared" else 1
    overrides = site_gpus["shared_overrides"]
    return [
        GPU(
            g.index,
            g.uuid,
            g.model,
            g.memory_total,
            max_shared=overrides.get(g.uuid, overrides.get(str(g.index), default_share)),
        )
        for g in found
    ]
