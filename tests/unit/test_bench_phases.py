"""The spawn phases the benchmark reports, from Docker's timestamps."""

import pytest

from benchmarks import phases


def test_docker_timestamps_keep_their_fraction():
    assert phases.stamp("2026-12-02T18:00:00Z") == pytest.approx(1796234400.0)
    assert phases.stamp("2026-12-02T18:00:00.123456789Z") == pytest.approx(1796234400.123456789)


def test_one_host_and_swarm_phases_add_up_to_the_spawn():
    posted = phases.stamp("2026-12-02T18:00:00Z")
    attrs = {
        "Created": "2026-12-02T18:00:00.250Z",
        "State": {"StartedAt": "2026-12-02T18:00:00.400Z"},
    }
    host = phases.one_host(posted, 1.5, attrs)
    assert host == pytest.approx({"hub": 0.25, "create": 0.15, "ready": 1.1})
    assert sum(host.values()) == pytest.approx(1.5)
    service = {"CreatedAt": "2026-12-02T18:00:00.100Z"}
    swarm = phases.swarm(posted, 1.5, service, attrs)
    assert swarm == pytest.approx({"hub": 0.1, "swarm": 0.15, "create": 0.15, "ready": 1.1})
    assert sum(swarm.values()) == pytest.approx(1.5)


def test_rows_compare_each_phase_and_show_swarms_own_step_without_a_ratio():
    host = [{"hub": 0.2, "create": 0.1, "ready": 1.0}, {"hub": 0.4, "create": 0.1, "ready": 1.2}]
    swarm = [{"hub": 0.3, "swarm": 0.5, "create": 0.2, "ready": 1.1}]
    rows = {r["metric"].split(": ", 1)[1]: r for r in phases.rows(host, swarm)}
    hub = rows[phases.TITLES["hub"] + " (median)"]
    assert (hub["stock"], hub["gpulab"]) == pytest.approx((0.3, 0.3)) and hub[
        "ratio"
    ] == pytest.approx(1.0)
    own = rows[phases.TITLES["swarm"] + " (median)"]
    assert own["stock"] == 0.0 and own["gpulab"] == 0.5 and own["ratio"] is None
    assert phases.rows([], []) == []
