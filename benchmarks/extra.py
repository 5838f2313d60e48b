"""Measurements beyond spawning: idle memory, TensorBoard latency, SSH throughput."""

import time


def _container(hub, name):
    (c,) = hub.containers(name)
    return c


def idle_rss(hub, client, name, settle=5):
    """Resident memory of one idle user container (Jupyter server + sshd + anything else), bytes."""
    time.sleep(settle)
    c = _container(hub, name)
    mem = client.api.stats(c.id, stream=False)["memory_stats"]
    stats = mem.get("stats", {})
    if "rss" in stats:  # cgroup v1
        return stats["rss"]
    return mem["usage"] - stats.get("inactive_file", 0)  # cgroup v2


def measure_gpulab_extras(hub, client, name, args):
    return {}
