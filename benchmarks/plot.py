"""The burst as a picture: when each user's server was ready, stock DockerSpawner vs gpulab."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.stats import pct


def burst(stock_users, gpulab_users, n, path, failed=None):
    """One line per hub: users sorted by their wait, x = users ready, y = seconds from pressing
    Start. Users whose spawn failed are counted in the legend; a hub that failed outright too."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    failed = failed or {}
    for label, users, color in (
        ("stock DockerSpawner", stock_users, "#c0504d"),
        ("gpulab", gpulab_users, "#1f77b4"),
    ):
        if not users:
            reason = next(iter(failed.get(label.split()[0], {}).values()), "not measured")
            ax.plot([], [], color=color, label=f"{label}: failed ({reason[:60]})")
            continue
        ok = sorted(u["seconds"] for u in users if u["seconds"] is not None)
        bad = len(users) - len(ok)
        note = f", {bad} failed" if bad else ""
        median = pct(ok, 50)
        ax.step(
            range(1, len(ok) + 1),
            ok,
            where="post",
            color=color,
            linewidth=2,
            label=f"{label}: {len(ok)}/{len(users)} ready{note}, median {median:.1f} s",
        )
    ax.set_xlabel(f"users whose server is ready (of {n} who pressed Start at once)")
    ax.set_ylabel("seconds since pressing Start")
    ax.set_xlim(0, n + 1)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"{n} users start their servers at once (make bench)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
