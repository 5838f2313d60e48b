"""GPUs come back when idle: the reclaim policy, as pure functions of readings and time.

Nothing here reads a clock, the hub or Docker: the monitor (:mod:`.monitor`) calls
:func:`observe` with each round of readings and :func:`decide` with the time, and carries out
what comes back. Tests and the lab simulation (``benchmarks/labsim.py``) drive the same
functions in fast time.

The rules, for a server that holds GPUs:

* it is *idle* while every one of its GPUs reads under ``idle_percent`` utilisation. A GPU with
  no fresh reading is never idle (no evidence, no reclaim);
* idle for ``idle_minutes`` (``full_idle_minutes`` while someone waits in the queue, when that is
  shorter; a profile may set its own) -> a warning; still idle ``grace_minutes`` after the
  warning -> stopped. Busy again, or the user clicks "keep", withdraws the warning and restarts
  the idle clock;
* a server whose GPUs are busy is never stopped for idleness, however long it runs, up to the
  admin's optional ``max_hours`` (warned ``grace_minutes`` before; "keep" does not extend it).
"""

from dataclasses import dataclass

WARN = "warn"
RECLAIM = "reclaim"
CLEAR = "clear"

IDLE = "idle"
LIFETIME = "lifetime"


@dataclass(frozen=True)
class Policy:
    enabled: bool = False
    idle_percent: float = 5.0
    idle_minutes: float = 60.0
    grace_minutes: float = 15.0
    full_idle_minutes: float = 0.0  # while the queue is not empty (0: same as idle_minutes)
    max_hours: float = 0.0  # the longest a GPU server may run (0: no limit)

    @classmethod
    def from_settings(cls, reclaim):
        """From the site file's ``gpus.reclaim`` section (validated, defaults filled)."""
        return cls(**{k: reclaim[k] for k in cls.__dataclass_fields__ if k in reclaim})

    def idle_limit(self, queue_waiting, profile_minutes=None):
        """Minutes of idleness before a warning."""
        limit = profile_minutes if profile_minutes is not None else self.idle_minutes
        if queue_waiting and self.full_idle_minutes:
            limit = min(limit, self.full_idle_minutes)
        return limit


@dataclass
class Watch:
    """What the policy remembers about one server holding GPUs."""

    holder: tuple  # (user, server name)
    uuids: tuple
    started: float
    idle_since: float = None  # when all its GPUs last went idle; None while busy or unknown
    warned_at: float = None
    warned_for: str = ""  # IDLE or LIFETIME
    stop_at: float = None  # when it will be stopped unless something changes
    warned_text: str = ""  # why, in words
    profile_idle_minutes: float = None

    def notice(self):
        """What the user is told (None when there is nothing to tell)."""
        if self.warned_at is None:
            return None
        return {
            "reason": self.warned_for,
            "text": self.warned_text,
            "warned_at": self.warned_at,
            "stop_at": self.stop_at,
            "gpus": list(self.uuids),
        }


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str


def observe(watch, utilisation, now, policy):
    """Take one round of readings: ``utilisation`` maps GPU UUID -> percent (missing: no fresh
    reading). Updates ``watch.idle_since``; returns True while the server counts as idle."""
    values = [utilisation.get(u) for u in watch.uuids]
    idle = bool(values) and all(v is not None and v < policy.idle_percent for v in values)
    if not idle:
        watch.idle_since = None
    elif watch.idle_since is None:
        watch.idle_since = now
    return idle


def keep(watch, now):
    """The user clicked "keep": the idle clock starts again and an idle warning is withdrawn
    (a lifetime warning stays: keeping does not extend the admin's limit)."""
    watch.idle_since = now if watch.idle_since is not None else None
    if watch.warned_for == IDLE:
        _clear(watch)


def _warn(watch, now, why, stop_at, text):
    watch.warned_at, watch.warned_for, watch.stop_at, watch.warned_text = now, why, stop_at, text
    return Decision(WARN, text)


def _clear(watch):
    watch.warned_at = None
    watch.warned_for = ""
    watch.stop_at = None
    watch.warned_text = ""


def _minutes(seconds):
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def decide(watch, now, policy, queue_waiting=False):
    """What to do with the server now: a Decision (WARN, RECLAIM, CLEAR) or None. Updates the
    watch's warning state to match what it returns."""
    if not policy.enabled:
        return None
    # the admin's lifetime limit, busy or not
    if policy.max_hours:
        end = watch.started + policy.max_hours * 3600
        if now >= end:
            return Decision(RECLAIM, f"ran for the maximum lifetime of {policy.max_hours:g} h")
        if now >= end - policy.grace_minutes * 60 and watch.warned_for != LIFETIME:
            return _warn(
                watch,
                now,
                LIFETIME,
                end,
                f"it reaches the maximum lifetime of {policy.max_hours:g} h for servers with GPUs",
            )
    if watch.warned_for == LIFETIME:
        return None
    limit = policy.idle_limit(queue_waiting, watch.profile_idle_minutes) * 60
    idle_for = now - watch.idle_since if watch.idle_since is not None else 0.0
    if watch.warned_for == IDLE:
        if watch.idle_since is None:
            _clear(watch)
            return Decision(CLEAR, "its GPUs are busy again")
        if now >= watch.stop_at:
            why = (
                f"its GPUs were under {policy.idle_percent:g}% utilisation for {_minutes(idle_for)}"
            )
            return Decision(
                RECLAIM, why + (" while others waited for GPUs" if queue_waiting else "")
            )
        return None
    if watch.idle_since is not None and idle_for >= limit:
        text = f"its GPUs have been under {policy.idle_percent:g}% utilisation for {_minutes(idle_for)}"
        return _warn(watch, now, IDLE, now + policy.grace_minutes * 60, text)
    return None


def cull_cpu_only(inactive, inactive_limit, server, **kwargs):
    """jupyterhub-idle-culler's arbiter when reclaim is on: a server holding GPUs (its state
    names them) is never culled for browser inactivity; the GPU monitor judges it."""
    if (server.get("state") or {}).get("gpu_uuids"):
        return False
    return inactive.total_seconds() >= inactive_limit
