"""gpulab's Prometheus metrics, in JupyterHub's own registry: they are served at ``/hub/metrics``
with JupyterHub's (scrape with a token that has the ``read:metrics`` scope).

GPUs total / held / held-but-idle per node and model, utilisation per GPU, GPUs per user, the
queue (length, longest wait, waits), spawn durations per profile, reclaims by reason.
``grafana/gpulab.json`` is a dashboard over them.
"""

import time

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

_shared = None


class Metrics:
    def __init__(self, registry=REGISTRY):
        kw = {"registry": registry}
        self._shown = {}  # id(gauge) -> the label values update() set on it last
        self.gpus = Gauge("gpulab_gpus", "GPUs that can be handed out", ["node", "model"], **kw)
        self.held = Gauge("gpulab_gpus_held", "GPUs held by a server", ["node", "model"], **kw)
        self.idle = Gauge(
            "gpulab_gpus_held_idle",
            "GPUs held by a server and under the idle threshold",
            ["node", "model"],
            **kw,
        )
        self.util = Gauge(
            "gpulab_gpu_utilization_percent",
            "GPU utilisation (NVML)",
            ["node", "model", "gpu"],
            **kw,
        )
        self.memory = Gauge(
            "gpulab_gpu_memory_used_bytes",
            "GPU memory in use (NVML)",
            ["node", "model", "gpu"],
            **kw,
        )
        self.user_gpus = Gauge("gpulab_user_gpus_held", "GPUs each user holds", ["user"], **kw)
        self.queue = Gauge("gpulab_queue_length", "Spawns waiting for GPUs", **kw)
        self.oldest = Gauge(
            "gpulab_queue_oldest_wait_seconds",
            "How long the first spawn in the queue has waited",
            **kw,
        )
        self.waits = Histogram(
            "gpulab_queue_wait_seconds",
            "Time spawns waited for GPUs",
            buckets=(1, 10, 60, 300, 900, 1800, 3600, 7200, 14400),
            **kw,
        )
        self.spawns = Histogram(
            "gpulab_spawn_duration_seconds",
            "From start to a running server (GPU wait included)",
            ["profile"],
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
            **kw,
        )
        self.reclaims = Counter(
            "gpulab_reclaims", "Servers stopped by the reclaim policy", ["reason"], **kw
        )
        for reason in ("idle", "lifetime"):
            self.reclaims.labels(reason)
        self.jobs = Gauge(
            "gpulab_jobs", "Users' GPU jobs now, by state (waiting, running)", ["state"], **kw
        )
        self.jobs_finished = Counter(
            "gpulab_jobs_finished",
            "Users' GPU jobs that ended, by outcome",
            ["outcome"],
            **kw,
        )
        self.job_gpu_hours = Counter(
            "gpulab_job_gpu_hours", "GPU-hours held by users' jobs that ended", **kw
        )
        self.loop_lag = Histogram(
            "gpulab_event_loop_lag_seconds",
            "How late the hub's event loop ran a 0.1 s tick (time it was blocked)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
            **kw,
        )
        self.loop_lag_max = Gauge(
            "gpulab_event_loop_lag_max_seconds", "The worst event-loop lag in the last minute", **kw
        )
        for state in ("waiting", "running"):
            self.jobs.labels(state)
        for outcome in ("succeeded", "failed", "cancelled", "timed-out"):
            self.jobs_finished.labels(outcome)

    @classmethod
    def shared(cls):
        """The process's one set (Prometheus refuses to register a name twice)."""
        global _shared
        if _shared is None:
            _shared = cls()
        return _shared

    def update(self, monitor, now=None):
        now = time.time() if now is None else now
        allocator = monitor.manager.allocator
        util = monitor.utilisation()
        held_gpus = allocator.holders_by_gpu()
        totals, held, idle = {}, {}, {}
        for g in allocator.gpus.values():
            key = (g.node or "", g.model)
            totals[key] = totals.get(key, 0) + 1
            if held_gpus.get(g.uuid):
                held[key] = held.get(key, 0) + 1
                if g.uuid in util and util[g.uuid] < monitor.policy.idle_percent:
                    idle[key] = idle.get(key, 0) + 1
        for gauge, values in ((self.gpus, totals), (self.held, held), (self.idle, idle)):
            self._show(gauge, {key: values.get(key, 0) for key in totals})
        utils, memory = {}, {}
        for uuid, r in monitor.readings.items():
            g = allocator.gpus.get(uuid)
            labels = (r.node or (g.node if g else ""), g.model if g else "", uuid)
            utils[labels] = r.utilization
            memory[labels] = r.memory_used
        self._show(self.util, utils)
        self._show(self.memory, memory)
        per_user = {}
        for (user, _), holding in allocator.holdings.items():
            per_user[(user,)] = per_user.get((user,), 0) + len(holding.uuids)
        self._show(self.user_gpus, per_user)
        waiting = [w for w in allocator.queue if w.future is not None and not w.future.done()]
        self.queue.set(len(waiting))
        self.oldest.set(max((now - w.enqueued for w in waiting), default=0))

    def _show(self, gauge, values):
        """Set ``gauge`` to exactly ``values`` ({label values: value}): series that are gone are
        removed, the others set in place (as clear() and labels() for each, without making
        every series again each round: a department has thousands)."""
        shown = self._shown.setdefault(id(gauge), set())
        for key in shown - values.keys():
            try:
                gauge.remove(*key)
            except KeyError:
                pass
        for key, value in values.items():
            gauge.labels(*key).set(value)
        self._shown[id(gauge)] = set(values)

    def job_counts(self, waiting, running):
        self.jobs.labels("waiting").set(waiting)
        self.jobs.labels("running").set(running)

    def job_finished(self, outcome, gpu_hours):
        self.jobs_finished.labels(outcome).inc()
        self.job_gpu_hours.inc(max(gpu_hours, 0.0))

    def reclaimed(self, reason):
        self.reclaims.labels("lifetime" if "lifetime" in reason else "idle").inc()

    def waited(self, seconds):
        self.waits.observe(seconds)

    def spawned(self, profile, seconds):
        self.spawns.labels(profile or "").observe(seconds)
