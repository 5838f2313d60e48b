"""The hub's event-loop watch: a blocking call is measured and named (a real loop, real time)."""

import asyncio
import logging
import time

from prometheus_client import CollectorRegistry

from gpulab.hub.gpus.metrics import Metrics
from gpulab.hub.looplag import LoopWatch


def a_blocking_call():
    time.sleep(0.8)  # what a synchronous Docker or file call on the loop does


async def test_a_blocked_loop_is_measured_and_its_cause_named(caplog):
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    log = logging.getLogger("test-looplag")
    watch = LoopWatch(metrics, log)
    with caplog.at_level(logging.WARNING, logger="test-looplag"):
        watch.start()
        try:
            await asyncio.sleep(0.5)  # a calm loop: small lags only
            calm = watch.worst
            a_blocking_call()
            await asyncio.sleep(0.3)
        finally:
            watch.close()
    assert calm < 0.2, calm
    assert 0.7 <= watch.worst < 2, watch.worst
    assert "a_blocking_call" in watch.worst_where, watch.worst_where
    blocked = registry.get_sample_value("gpulab_event_loop_lag_seconds_bucket", {"le": "0.5"})
    total = registry.get_sample_value("gpulab_event_loop_lag_seconds_count")
    assert total - blocked == 1, (total, blocked)  # exactly one tick later than 0.5 s
    assert registry.get_sample_value("gpulab_event_loop_lag_max_seconds") >= 0.7
    text = caplog.text
    assert "has been blocked" in text and "a_blocking_call" in text, text
    assert "was blocked for 0.8" in text or "was blocked for 0.9" in text, text
