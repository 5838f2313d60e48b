"""GPUs: the allocator and its queue, the reclaim policy, the inventory, readings and usage arithmetic."""
