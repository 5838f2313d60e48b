"""A short lab day on a real hub (``make soak`` runs the long one): 8 students for 2.5 minutes
log in, start servers with and without GPUs, run kernels, SSH, TensorBoard, jobs, get reclaimed,
queue, save, back up and stop. Nothing may fail, block the hub or be left behind."""

from docker.constants import DEFAULT_NUM_POOLS

from benchmarks import soak


def test_a_short_lab_day_loses_nothing_and_leaves_nothing(docker_client):
    result = soak.run(users=8, minutes=2.5, seed=3, client=docker_client)
    soak.report(result)
    ops = {row["op"]: row for row in result["ops"]}
    errors = {row["op"]: row["reasons"] for row in result["ops"] if row["errors"]}
    assert not errors, errors
    for op in ("login", "spawn", "kernel", "api (other user)"):
        assert ops.get(op, {}).get("count", 0) >= 4, (op, ops.get(op))
    assert result["end"] == {}, result["end"]  # nothing of a server once all have stopped
    assert result["machine"] == [], result["machine"]  # nothing of the deployment on the machine
    lag = result["worst_lag"]
    assert lag["ticks"] > 500, lag  # the watch ran all along
    assert lag["ticks_over"].get("1", 0) == 0, lag  # the event loop never blocked for a second
    samples = result["samples"]
    assert len(samples) > 60
    # the proxy's routes follow the running servers (a sample may fall between the two reads)
    equal = sum(1 for s in samples if s["routes"] == s["running"])
    assert equal >= 0.8 * len(samples), [(s["routes"], s["running"]) for s in samples]
    # the hub's open files come back down: nothing held per past user. docker-py keeps up to
    # DEFAULT_NUM_POOLS (25) connection pools per client, one per URL it asked, each with an idle
    # connection to the engine's socket; the hub has two clients (the deployment's and
    # DockerSpawner's): up to 50 such sockets stay, whatever the number of users
    first, last = samples[0]["fd_kinds"], samples[-1]["fd_kinds"]
    assert last.get("unix socket", 0) <= first.get("unix socket", 0) + 2 * DEFAULT_NUM_POOLS, (
        first,
        last,
    )

    def others(kinds):
        return sum(n for kind, n in kinds.items() if kind != "unix socket")

    assert others(last) <= others(first) + 10, (first, last)
