"""GPU inventory, allocation and queueing (no Docker, no hub: unit-testable)."""
