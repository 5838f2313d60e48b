"""A simulated lab, replayed in fast time against gpulab's real allocator, monitor and reclaim policy.

    .venv/bin/python -m benchmarks.labsim                       # prints the table, writes docs/img/labsim.svg
    .venv/bin/python -m benchmarks.labsim --users 30 --days 5 --seed 1

The trace (seeded, so every run of a seed is the same lab): ``--users`` students on ``--gpus``
GPUs over ``--days`` working days. Each day a student comes in with probability 0.8 between 8:00
and 12:00, asks for 1 GPU (2 with probability 0.25) and works in blocks: training runs of 20 min
to 4 h (60-100 % utilisation) and pauses of 5 min to 2 h (0-2 %: debugging, meetings, lunch). At
the end of the day 35 % stop their server; the others leave it running; a quarter of the days end
with a training run of 2-10 h that goes on overnight. A student whose server is gone (reclaimed)
when their next training run starts asks again and waits in the queue.

The same trace runs four ways: **static** (first come, GPUs held until the user stops: gpulab
without reclaim, and every ``docker run --gpus`` lab), **reclaim 60+15** (the example policy:
warn after 60 min under 5 %, stop 15 min later), the same **with 20 min while someone waits**,
and a strict **15+5**. Nobody clicks "keep" (the least idle time reclaim can reach). Printed per
way: GPU-hours held, held idle (under 5 %), mean and p90 wait for GPUs, servers reclaimed, of
those while the student was still in the lab (a pause longer than the policy: they start again,
files kept), and reclaims of a busy server (must be 0).
"""

import argparse
import asyncio
import json
import logging
import os
import random
import statistics

from gpulab.core.gpus import reclaim
from gpulab.core.gpus.allocator import Allocator
from gpulab.core.gpus.inventory import GPU
from gpulab.core.gpus.readings import GPUReading
from gpulab.hub.gpus.monitor import GPUMonitor

MIN = 60
DAY = 24 * 60 * MIN


# --- the trace ---


def make_trace(users, days, seed):
    """[{user, day, arrive, gpus, blocks: [(start, end, busy)], stop_at_end, overnight}] in seconds."""
    rnd = random.Random(seed)
    sessions = []
    for u in range(users):
        name = f"s{u:02d}"
        for day in range(days):
            if rnd.random() > 0.8:
                continue
            arrive = day * DAY + rnd.uniform(8, 12) * 3600
            leave = arrive + rnd.uniform(6, 10) * 3600
            blocks, t, busy = [], arrive, True
            while t < leave:
                length = rnd.uniform(20, 240) * MIN if busy else rnd.uniform(5, 120) * MIN
                blocks.append((t, min(t + length, leave), busy))
                t += length
                busy = not busy
            overnight = rnd.random() < 0.25
            if overnight:
                blocks.append((leave, leave + rnd.uniform(2, 10) * 3600, True))
            sessions.append(
                {
                    "user": name,
                    "day": day,
                    "arrive": arrive,
                    "gpus": 2 if rnd.random() < 0.25 else 1,
                    "blocks": blocks,
                    "stop_at_end": rnd.random() < 0.35 and not overnight,
                    "leave": leave,
                    "util": rnd.uniform(60, 100),
                }
            )
    return sorted(sessions, key=lambda s: s["arrive"])


# --- the replay ---


class Lab:
    """The students, their servers and the GPUs, minute by minute."""

    def __init__(self, trace, n_gpus, policy, days, jobs_share=0.0, fair_share=False):
        """``jobs_share``: the share of students (seeded) who run their training as GPU jobs (a
        job per training block, GPUs held only while it runs) instead of keeping a GPU server;
        ``fair_share``: the queue serves whoever held fewer GPU-hours so far first."""
        self.trace = trace
        self.held_by = {}  # user -> GPU-seconds held so far (fair-share's measure)
        self.allocator = Allocator(
            [GPU(i, f"GPU-{i}", "A100", 40 << 30) for i in range(n_gpus)],
            priority=(lambda user: self.held_by.get(user, 0.0)) if fair_share else None,
        )
        chooser = random.Random(7)
        users = sorted({s["user"] for s in trace})
        self.job_users = {u for u in users if chooser.random() < jobs_share}
        self.jobs = {}  # holder -> (asked at, end of its training block, task)
        self.policy = policy
        self.days = days
        self.now = 0.0
        self.pending = {}  # user -> (asked at, task)
        self.current = {}  # user -> the session now running (its blocks say what the GPUs do)
        self.waits = []
        self.reclaimed = 0
        self.busy_reclaims = 0
        self.cut_pauses = 0
        self.held_s = self.idle_s = 0.0
        self.series = []  # (time, held, busy, waiting)

    def busy(self, user):
        s = self.current.get(user)
        return bool(s) and any(a <= self.now < b and busy for a, b, busy in s["blocks"])

    def in_session(self, user):
        s = self.current.get(user)
        return bool(s) and s["arrive"] <= self.now < s["leave"]

    def readings(self):
        out = []
        for (user, _), holding in self.allocator.holdings.items():
            util = self.current[user]["util"] if self.busy(user) else 1.0
            out += [GPUReading(u, util, 0, 40 << 30, time=self.now) for u in holding.uuids]
        return out

    def stop(self, holder, reason):
        user = holder[0]
        self.reclaimed += 1
        if self.busy(user):
            self.busy_reclaims += 1
        if self.in_session(user):
            self.cut_pauses += 1
        self.allocator.release(holder)

    def ask(self, user, gpus):
        if user in self.pending or (user, "") in self.allocator.holdings:
            return
        task = asyncio.ensure_future(self.allocator.acquire((user, ""), gpus))
        self.pending[user] = (self.now, task)

    async def run(self):
        quiet = logging.getLogger("gpulab.labsim")
        quiet.disabled = True
        monitor = (
            GPUMonitor(self, self, self.policy, interval=MIN, stop=self.stop, log=quiet)
            if self.policy.enabled
            else None
        )
        sessions = list(self.trace)
        end = self.days * DAY
        while self.now < end:
            while sessions and sessions[0]["arrive"] <= self.now:
                s = sessions.pop(0)
                self.current[s["user"]] = s
                if s["user"] not in self.job_users:
                    self.ask(s["user"], s["gpus"])
            self.run_jobs()
            for user, s in self.current.items():
                if user in self.job_users:
                    continue
                holder = (user, "")
                if (
                    holder not in self.allocator.holdings
                    and user not in self.pending
                    and self.busy(user)
                    and self.in_session(user)
                ):
                    self.ask(user, s["gpus"])  # reclaimed (or gave up waiting): ask again to train
                if (
                    holder in self.allocator.holdings
                    and s["stop_at_end"]
                    and self.now >= s["leave"]
                ):
                    self.allocator.release(holder)
            await asyncio.sleep(0)
            for user, (asked, task) in list(self.pending.items()):
                if task.done():
                    self.waits.append(self.now - asked)
                    del self.pending[user]
                elif not self.in_session(user):
                    task.cancel()  # gone home without GPUs (the overnight run never started): the wait so far counts
                    self.waits.append(self.now - asked)
                    del self.pending[user]
            if monitor:
                await monitor.tick(self.now)
            for (u, _), h in self.allocator.holdings.items():
                self.held_by[u] = self.held_by.get(u, 0.0) + len(h.uuids) * MIN
            held = sum(len(h.uuids) for h in self.allocator.holdings.values())
            busy = sum(
                len(h.uuids) for (u, _), h in self.allocator.holdings.items() if self.busy(u)
            )
            self.held_s += held * MIN
            self.idle_s += (held - busy) * MIN
            if int(self.now) % (15 * MIN) == 0:
                self.series.append((self.now, held, busy, len(self.pending)))
            self.now += MIN
        for _, task in self.pending.values():
            task.cancel()
        for _, _, task in self.jobs.values():
            task.cancel()
        return self

    def run_jobs(self):
        """The job users' training blocks as GPU jobs: asked for when the block starts, given
        back when it ends (a job granted late still ends with its block: the run was that long)."""
        for user in self.job_users:
            s = self.current.get(user)
            if not s:
                continue
            for k, (a, b, busy) in enumerate(s["blocks"]):
                holder = (user, f"job/{s['day']}-{k}")
                if busy and a <= self.now < b and holder not in self.jobs:
                    task = asyncio.ensure_future(self.allocator.acquire(holder, s["gpus"]))
                    self.jobs[holder] = (self.now, b, task)
        for holder, (asked, block_end, task) in list(self.jobs.items()):
            if task.done() and not task.cancelled() and holder in self.allocator.holdings:
                if asked is not None:  # granted: the wait is known
                    self.waits.append(self.now - asked)
                    self.jobs[holder] = (None, block_end, task)
                if self.now >= block_end:
                    self.allocator.release(holder)
            elif self.now >= block_end and not task.done():
                task.cancel()  # its block is over before it got GPUs: the wait so far counts
                self.waits.append(self.now - asked)
                self.jobs[holder] = (None, block_end, task)

    # what GPUMonitor asks of its "manager"
    async def ensure_synced(self):
        pass

    def read(self):
        return self.readings()


def replay(trace, n_gpus, policy, days, **kw):
    return asyncio.run(Lab(trace, n_gpus, policy, days, **kw).run())


def jain(values):
    """Jain's fairness index: 1 when everyone has the same, 1/n when one has everything."""
    values = [v for v in values if v is not None]
    if not values or not any(values):
        return 1.0
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def summary(lab):
    waits = sorted(lab.waits)
    return {
        "gpu_hours_held": lab.held_s / 3600,
        "gpu_hours_held_idle": lab.idle_s / 3600,
        "mean_wait_min": statistics.mean(waits) / 60 if waits else 0.0,
        "p90_wait_min": waits[int(0.9 * (len(waits) - 1))] / 60 if waits else 0.0,
        "requests": len(waits),
        "reclaimed": lab.reclaimed,
        "busy_reclaims": lab.busy_reclaims,
        "pauses_cut": lab.cut_pauses,
        "jain_gpu_hours": jain(list(lab.held_by.values())),
    }


# --- the plot (SVG by hand: no plotting library needed) ---


def svg(runs, n_gpus, days, path):
    width, panel_h, left, top = 900, 150, 50, 30
    height = top + len(runs) * (panel_h + 40) + 20
    x = lambda t: left + (width - left - 20) * t / (days * DAY)  # noqa: E731
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">'
    ]
    out.append('<rect width="100%" height="100%" fill="white"/>')
    out.append(
        f'<text x="{left}" y="18" font-size="14">GPUs held (light), busy (dark) and spawns waiting (red) in a simulated lab, {n_gpus} GPUs</text>'
    )
    for i, (name, lab) in enumerate(runs):
        y0 = top + i * (panel_h + 40) + 20
        y = lambda v, y0=y0: y0 + panel_h - panel_h * v / n_gpus  # noqa: E731
        pts = lab.series
        for key, color in ((1, "#9ecae1"), (2, "#08519c")):
            poly = (
                [f"{x(pts[0][0]):.1f},{y(0):.1f}"]
                + [f"{x(p[0]):.1f},{y(p[key]):.1f}" for p in pts]
                + [f"{x(pts[-1][0]):.1f},{y(0):.1f}"]
            )
            out.append(f'<polygon points="{" ".join(poly)}" fill="{color}"/>')
        line = " ".join(f"{x(p[0]):.1f},{y(min(p[3], n_gpus)):.1f}" for p in pts)
        out.append(f'<polyline points="{line}" fill="none" stroke="#d62728" stroke-width="1.5"/>')
        out.append(
            f'<rect x="{left}" y="{y0}" width="{width - left - 20}" height="{panel_h}" fill="none" stroke="#444"/>'
        )
        s = summary(lab)
        title = f"{name}: {s['gpu_hours_held_idle']:.0f} GPU-h held idle of {s['gpu_hours_held']:.0f} held; mean wait {s['mean_wait_min']:.0f} min"
        out.append(f'<text x="{left}" y="{y0 - 6}">{title}</text>')
        for d in range(days + 1):
            out.append(
                f'<text x="{x(d * DAY) - 10:.1f}" y="{y0 + panel_h + 14}" fill="#444">day {d}</text>'
            )
        out.append(f'<text x="{left - 30}" y="{y(n_gpus) + 10:.1f}" fill="#444">{n_gpus}</text>')
        out.append(f'<text x="{left - 30}" y="{y(0):.1f}" fill="#444">0</text>')
    out.append("</svg>")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=30)
    p.add_argument("--gpus", type=int, default=16)
    p.add_argument("--days", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--jobs-share", type=float, default=0.5, help="students who train as jobs (default 0.5)"
    )
    p.add_argument(
        "--plot",
        default=os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "img", "labsim.svg"
        ),
    )
    args = p.parse_args(argv)
    trace = make_trace(args.users, args.days, args.seed)
    ways = [
        ("static (no reclaim)", reclaim.Policy(enabled=False)),
        ("reclaim 60+15 min", reclaim.Policy(enabled=True, idle_minutes=60, grace_minutes=15)),
        (
            "reclaim 60+15, 20 when full",
            reclaim.Policy(enabled=True, idle_minutes=60, grace_minutes=15, full_idle_minutes=20),
        ),
        ("reclaim 15+5 min", reclaim.Policy(enabled=True, idle_minutes=15, grace_minutes=5)),
    ]
    runs = [(name, replay(trace, args.gpus, policy, args.days)) for name, policy in ways]
    example = reclaim.Policy(enabled=True, idle_minutes=60, grace_minutes=15)
    runs += [
        (
            f"60+15, {args.jobs_share:.0%} train as jobs",
            replay(trace, args.gpus, example, args.days, jobs_share=args.jobs_share),
        ),
        (
            "static, fair-share queue",
            replay(trace, args.gpus, ways[0][1], args.days, fair_share=True),
        ),
        (
            "60+15, jobs, fair-share",
            replay(
                trace, args.gpus, example, args.days, jobs_share=args.jobs_share, fair_share=True
            ),
        ),
    ]
    base = summary(runs[0][1])
    print(
        f"simulated lab: {args.users} students, {args.gpus} GPUs, {args.days} days, {len(trace)} sessions (seed {args.seed})"
    )
    print(
        f"{'':28}{'GPU-h held':>11}{'held idle':>11}{'idle vs static':>15}{'mean wait':>11}{'p90 wait':>10}"
        f"{'reclaimed':>10}{'in session':>11}{'busy stopped':>13}{'Jain':>6}"
    )
    result = {}
    for name, lab in runs:
        s = summary(lab)
        result[name] = s
        ratio = (
            s["gpu_hours_held_idle"] / base["gpu_hours_held_idle"]
            if base["gpu_hours_held_idle"]
            else 0.0
        )
        print(
            f"{name:28}{s['gpu_hours_held']:>11.0f}{s['gpu_hours_held_idle']:>11.0f}{ratio:>14.1%} "
            f"{s['mean_wait_min']:>8.0f} min{s['p90_wait_min']:>6.0f} min{s['reclaimed']:>10}{s['pauses_cut']:>11}{s['busy_reclaims']:>13}"
            f"{s['jain_gpu_hours']:>6.2f}"
        )
    if args.plot:
        svg([runs[0], runs[1], runs[3]], args.gpus, args.days, args.plot)
        print(f"plot: {args.plot}")
    print("LABSIM_JSON " + json.dumps(result))
    return result


if __name__ == "__main__":
    main()
