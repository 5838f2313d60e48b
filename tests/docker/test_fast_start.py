"""How a start is admitted and found ready: start waves with the user's place shown, the
spawner's own readiness check (a server that exits is reported at once, with its log), and
gpulab's launcher for the single-user server."""

import concurrent.futures
import datetime
import time

import requests


def _ts(text):
    """Docker's RFC 3339 time (nanoseconds) as a datetime."""
    text = text.rstrip("Z")
    whole, _, frac = text.partition(".")
    return datetime.datetime.fromisoformat(whole).replace(microsecond=int((frac + "000000")[:6]))


def _running_at(container):
    """When the container's Jupyter server said it was running (Docker's log timestamp)."""
    for line in container.logs(timestamps=True).decode(errors="replace").splitlines():
        if "is running at" in line:
            return _ts(line.split(" ", 1)[0])
    raise AssertionError(f"{container.name}: the server never said it was running")


def test_starts_wait_their_turn_and_see_their_place(make_hub):
    h = make_hub(start=False)
    h.site["hub"]["concurrent_starts"] = 1
    h.start()
    names = ["wave1", "wave2", "wave3"]
    for name in names:
        h.create_user(name)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(
            pool.map(lambda n: h.spawn_following_progress(n, {"profile": "small"}), names)
        )
    for name, (status, events) in zip(names, results, strict=True):
        assert status in (201, 202), (name, events)
        assert events[-1].get("ready") is True, (name, events)
    places = [
        e["message"]
        for _, events in results
        for e in events
        if e.get("message", "").startswith("Waiting to start: place")
    ]
    assert places, "nobody was told their place in the start queue"
    assert any("place 2 in the queue (1 server(s) starting now)" in m for m in places), places
    # one at a time: each container was created only after the one before it answered
    containers = sorted((h.containers(n)[0] for n in names), key=lambda c: _ts(c.attrs["Created"]))
    for before, after in zip(containers, containers[1:], strict=False):
        assert _ts(after.attrs["Created"]) >= _running_at(before), (before.name, after.name)
    for name in names:
        h.stop_server(name)


def test_a_server_that_exits_is_reported_at_once_with_its_log(make_hub):
    # the image's start script runs `false` instead of the server: the container exits at once
    h = make_hub(extra_config='\nc.GPUDockerSpawner.cmd = ["gpulab-start", "false"]\n')
    h.create_user("quitter")
    t0 = time.monotonic()
    status, events = h.spawn_following_progress("quitter", {"profile": "small"})
    took = time.monotonic() - t0
    failed = [e for e in events if e.get("failed")]
    assert failed, events
    assert "stopped before it answered (exit status" in failed[-1]["message"], failed
    assert "gpulab-start" in failed[-1]["message"] or "hook" in failed[-1]["message"], (
        "the container's log is shown"
    )
    assert took < 30, f"reported after {took:.0f} s, not at once (hub.start_timeout is 120 s)"
    assert not h.api("GET", "/users/quitter").json()["servers"], "no server left behind"


def test_the_server_runs_through_gpulabs_launcher(hub):
    hub.create_user("swift")
    hub.spawn("swift", {"profile": "small"})
    (c,) = hub.containers("swift")
    ps = c.exec_run(["ps", "-eo", "args"]).output.decode()
    assert "-m gpulab_hooks.singleuser" in ps, ps
    # Jupyter's event logging (jsonschema validation of every event) works without rfc3987_syntax:
    # saving a file emits a validated event
    token = hub.user_token("swift")
    r = requests.put(
        hub.user_url("swift", "api/contents/launcher-check.txt"),
        json={"type": "file", "format": "text", "content": "ok"},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text
    assert (
        c.exec_run(["cat", f"{c.attrs['Config']['WorkingDir']}/launcher-check.txt"]).output == b"ok"
    )
    hub.stop_server("swift")
