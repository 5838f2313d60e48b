"""The hub side of GPU reclaim, accounting and metrics: the deployment's :class:`GPUService`,
started with the hub (:meth:`gpulab.hub.deployment.Deployment.start`), found by the page and API
handlers as ``deployment.gpu_service``.

It owns the monitor (:mod:`.monitor`), the readings source (NVML on this host, or readings
pushed by the nodes' collectors) and the usage book (:mod:`gpulab.hub.usagebook`), uses the
deployment's Prometheus metrics (:mod:`.metrics`), and stops servers the policy reclaims the way
an admin's stop does.
"""

import asyncio
import time
from datetime import datetime, timezone

from ...core.gpus.inventory import load_pynvml
from ...core.gpus.readings import NVMLSource, PushedReadings
from ...core.gpus.reclaim import Policy
from ...core.site.facts import usage_path
from ..usagebook import UsageStore
from .monitor import GPUMonitor


class ThreadedSource:
    """A blocking readings source (NVML) read in a thread."""

    def __init__(self, source):
        self.source = source

    async def read(self):
        return await asyncio.to_thread(self.source.read)


def readings_mode(gpus, hub_sees_gpus, nvml_loader=load_pynvml):
    """Where readings come from: NVML on this host, or pushed by collectors (``gpulab collect``).
    ``hub_sees_gpus``: the GPUs are on the hub's own host (one host), not on other nodes (a Swarm)."""
    mode = gpus["readings"]
    if mode != "auto":
        return mode
    if not hub_sees_gpus:
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
    def __init__(self, app, lab, *, nvml_loader=load_pynvml):
        self.app = app
        self.lab = lab
        gpus = lab.gpu_settings
        self.manager = lab.gpus
        self.policy = Policy.from_settings(gpus["reclaim"])
        self.show_holders = gpus["show_holders"]
        self.mode = readings_mode(gpus, lab.backend.mode == "single", nvml_loader)
        self.pushed = PushedReadings(max_age=3 * gpus["reclaim"]["interval"] + 30)
        readings = ThreadedSource(NVMLSource(nvml_loader)) if self.mode == "nvml" else self.pushed
        self.usage = UsageStore(usage_path(lab.state_dir))
        self.metrics = lab.metrics
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

        if gpus["queue_order"] == "fair-share":
            self.manager.allocator.priority = self.recent_hours
        self._recent = (0.0, {})
        self.fair_share_days = gpus["fair_share_days"]

    def recent_hours(self, user, now=None):
        """GPU-hours ``user`` held (servers and jobs) in the last ``gpus.fair_share_days``: the
        queue's order under fair-share (read from the usage book at most once a minute)."""
        now = time.time() if now is None else now
        read_at, hours = self._recent
        if now - read_at > 60:
            hours = self.usage.held_hours(self.fair_share_days, now=now)
            self._recent = (now, hours)
        return hours.get(user, 0.0)

    def start(self):
        self.app.log.info(
            "gpulab: GPU monitor every %ss, readings from %s, reclaim %s",
            self.monitor.interval,
            "NVML on this host"
            if self.mode == "nvml"
            else "the nodes' collectors (POST /hub/api/gpulab/readings)",
            "on: idle under %g%% for %g min, %g min grace"
            % (self.policy.idle_percent, self.policy.idle_minutes, self.policy.grace_minutes)
            if self.policy.enabled
            else "off",
        )
        self.monitor.start()
        from ..status import keep_writing

        self._status = asyncio.ensure_future(keep_writing(self.lab, self, self.app.log))

    _status = None

    def close(self):
        self.monitor.close()
        if self._status is not None:
            self._status.cancel()
            self._status = None

    # --- what the monitor needs from the hub ---

    _by_name = None  # {name: User} of the users the hub had loaded, at the last look

    def _user(self, username):
        """JupyterHub's User named ``username``. A name given to JupyterHub's UserDict is a
        database query (and a new holder is looked up each time, every holder in the first round
        after a start): a user with a running server is among the users the hub has loaded, found
        here by name without one; anyone else is asked of the UserDict (KeyError: no such user)."""
        users = self.app.users
        by_name = self._by_name or {}
        user = by_name.get(username)
        if user is None or user.name != username or dict.get(users, user.id) is not user:
            by_name = self._by_name = {u.name: u for u in dict.values(users)}
            user = by_name.get(username)
        if user is None:
            return users[username]  # not loaded (or renamed): the database
        return users[user.id]  # loaded: by id, no query (and with the hub's session, as always)

    def _spawner(self, holder):
        username, server = holder
        try:
            user = self._user(username)
        except KeyError:
            return None, None
        return user, user.spawners.get(server)

    def profile_minutes(self, holder):
        _, spawner = self._spawner(holder)
        if spawner is None:
            return None
        name = getattr(
            spawner, "profile_name", None
        )  # the profile it runs, not what its options say
        for p in self.lab.profiles:
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
        return [
            {**r, "time_text": _clock(r["time"])}
            for r in self.usage.reclaims(since)
            if r["user"] == username
        ]

    def banner(self, user, now=None):
        """For every hub page: the user's warnings, and reclaims of the last 12 hours (None: nothing)."""
        if user is None or getattr(user, "kind", "user") != "user":
            return None
        now = time.time() if now is None else now
        warnings = [{"server": s, **n} for s, n in self.notices_for(user.name).items()]
        running = {name for name, sp in user.spawners.items() if sp.active}
        reclaimed = [
            r
            for r in self.recent_reclaims(user.name, now - 12 * 3600)
            if r["server"] not in running
        ]
        return (
            {"warnings": warnings, "reclaimed": reclaimed[-3:]} if warnings or reclaimed else None
        )


def _clock(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M") if t else ""


def banner(user):
    """The reclaim banner on every hub page: a template variable JupyterHub calls with the page's
    user (None when nobody is logged in); the deployment is in the hub's settings."""
    lab = (getattr(user, "settings", None) or {}).get("gpulab") if user is not None else None
    service = lab.gpu_service if lab is not None else None
    return service.banner(user) if service else None
