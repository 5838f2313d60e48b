"""The hub side of GPU reclaim, accounting and metrics: one :class:`GPUService` per deployment,
started with the hub (:mod:`gpulab.app`), found by the page and API handlers (:mod:`.pages`).

It owns the monitor (:mod:`.monitor`), the readings source (NVML on this host, or readings
pushed by the nodes' collectors), the usage book (:mod:`.usage`) and the Prometheus metrics
(:mod:`.metrics`), and it stops servers the policy reclaims the way an admin's stop does.
"""

import asyncio
import os
import time
from datetime import datetime, timezone

from .inventory import load_pynvml
from .manager import get_manager
from .monitor import GPUMonitor, PushedReadings
from .readings import NVMLSource
from .reclaim import Policy
from .sources import HostSource, SwarmSource
from .usage import UsageStore, usage_path

_services = {}


def get_service(deployment):
    return _services.get(deployment)


class ThreadedSource:
    """A blocking readings source (NVML) read in a thread."""

    def __init__(self, source):
        self.source = source

    async def read(self):
        return await asyncio.to_thread(self.source.read)


def readings_mode(gpus, swarm, nvml_loader=load_pynvml):
    """Where readings come from: NVML on this host, or pushed by collectors (``gpulab collect``)."""
    mode = gpus["readings"]
    if mode != "auto":
        return mode
    if swarm:
        return "push"  # the GPUs are on the nodes, not where the hub runs
    nvml = nvml_loader()
    if nvml is None:
        return "push"
    try:
        nvml.nvmlInit()
        nvml.nvmlShutdown()
    except Exception:
        return "push"
    return "nvml"


class GPUService:
    def __init__(self, app, site, *, nvml_loader=load_pynvml):
        self.app = app
        self.site = site
        self.deployment = site["hub"]["name"]
        gpus = site["gpus"]
        self.swarm = site["cluster"]["mode"] == "swarm"
        source = SwarmSource(self.deployment) if self.swarm else HostSource(self.deployment, gpus)
        self.manager = get_manager(self.deployment, gpus, source)
        self.policy = Policy.from_settings(gpus["reclaim"])
        self.show_holders = gpus["show_holders"]
        self.mode = readings_mode(gpus, self.swarm, nvml_loader)
        self.pushed = PushedReadings(max_age=3 * gpus["reclaim"]["interval"] + 30)
        readings = ThreadedSource(NVMLSource(nvml_loader)) if self.mode == "nvml" else self.pushed
        self.usage = UsageStore(usage_path(os.path.abspath(site["hub"]["state_dir"])))
        from .metrics import Metrics

        self.metrics = Metrics.shared()
        self.monitor = GPUMonitor(
            self.manager,
            readings,
            self.policy,
            usage=self.usage,
            stop=self.stop_server,
            interval=gpus["reclaim"]["interval"],
            profile_minutes=self.profile_minutes,
            log=app.log,
            metrics=self.metrics,
        )
        _services[self.deployment] = self

    def start(self):
        self.app.log.info(
            "gpulab: GPU monitor every %ss, readings from %s, reclaim %s",
            self.monitor.interval,
            "NVML on this host" if self.mode == "nvml" else "the nodes' collectors (POST /hub/api/gpulab/readings)",
            "on: idle under %g%% for %g min, %g min grace" % (self.policy.idle_percent, self.policy.idle_minutes, self.policy.grace_minutes)
            if self.policy.enabled
            else "off",
        )
        self.monitor.start()

    def close(self):
        self.monitor.close()
        _services.pop(self.deployment, None)

    # --- what the monitor needs from the hub ---

    def _spawner(self, holder):
        username, server = holder
        try:
            user = self.app.users[username]  # JupyterHub's UserDict takes a name
        except KeyError:
            return None, None
        return user, user.spawners.get(server)

    def profile_minutes(self, holder):
        _, spawner = self._spawner(holder)
        if spawner is None:
            return None
        name = (spawner.user_options or {}).get("profile")
        for p in self.site["profiles"]:
            if p["name"] == name:
                return p.get("gpu_idle_minutes")
        return None

    async def stop_server(self, holder, reason):
        """Stop a server as an admin would (route first, then the spawner, which gives the GPUs back)."""
        user, spawner = self._spawner(holder)
        if spawner is None or not spawner.active or spawner.pending:
            return
        spawner.gpulab_stop_reason = reason
        await self.app.proxy.delete_user(user, holder[1])
        await user.stop(holder[1])

    # --- what the pages show ---

    def notices_for(self, username):
        """{server name: notice} for the user's servers that were warned."""
        out = {}
        for (user, server), _ in self.manager.allocator.holdings.items():
            if user == username:
                notice = self.monitor.notice((user, server))
                if notice:
                    out[server] = {**notice, "stop_at_text": _clock(notice["stop_at"])}
        return out

    def recent_reclaims(self, username, since):
        return [{**r, "time_text": _clock(r["time"])} for r in self.usage.reclaims(since) if r["user"] == username]

    def banner(self, user, now=None):
        """For every hub page: the user's warnings, and reclaims of the last 12 hours (None: nothing)."""
        if user is None or getattr(user, "kind", "user") != "user":
            return None
        now = time.time() if now is None else now
        warnings = [{"server": s, **n} for s, n in self.notices_for(user.name).items()]
        running = {name for name, sp in user.spawners.items() if sp.active}
        reclaimed = [r for r in self.recent_reclaims(user.name, now - 12 * 3600) if r["server"] not in running]
        return {"warnings": warnings, "reclaimed": reclaimed[-3:]} if warnings or reclaimed else None


def _clock(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M") if t else ""


def banner_for(deployment):
    """A template variable (JupyterHub calls it with the page's user)."""

    def banner(user):
        service = get_service(deployment)
        return service.banner(user) if service else None

    return banner
