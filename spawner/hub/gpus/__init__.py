"""The hub's GPU service: the monitor, its metrics, reclaim in action."""
