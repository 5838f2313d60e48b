"""gpulab's periodic work and pages grow no worse than linearly with the hub (benchmarks/scale.py:
a generated department, gpulab's real allocator, monitor, metrics, pages and form)."""

from benchmarks import scale


def test_four_times_the_users_and_gpus_cost_at_most_about_four_times_as_much():
    scale._quiet()
    # users, GPUs, nodes: 4x, up to 256 GPUs, where a cost per GPU x holder (the allocator's table
    # read GPU by GPU, as it was) shows as 7-11x in the monitor tick and the inventory refresh
    small, large = (250, 64, 4), (1000, 256, 16)
    ratios = scale.growth(small, large, ticks=7)
    assert set(ratios) == set(scale.ITEMS)
    # linear is 4x; a cost per GPU x holder (quadratic) is ~16x: 6x leaves room for noise
    worse = {item: round(r, 1) for item, r in ratios.items() if r > 6}
    assert not worse, f"cost grew more than 6x for 4x the users and GPUs: {worse}"


def test_the_monitor_asks_jupyterhubs_database_nothing_for_loaded_users():
    scale._quiet()
    dep = scale.Department(64, 32, 2, book_on_disk=False)
    try:
        dep.warm_up(every=300)
        for _ in range(3):
            dep.tick()
        assert dep.tick_queries == [0, 0, 0]
        assert dep.gpu_page() > 0 and dep.spawn_form() > 0 and dep.metrics_page() > 0
    finally:
        dep.close()
