"""Timing spawns through the hub's REST API, the same way for every hub the benchmark compares.

A spawn is timed from the POST to the moment the hub's progress stream says the server is
ready (the event JupyterHub's own spawn page waits for): no polling interval rounds the time,
and forty waiting users cost the hub forty open streams rather than a flood of requests.
"""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests


class SpawnFailed(Exception):
    pass


def _quoted(name):
    return requests.utils.quote(name, safe="")


def spawn_and_wait(hub, name, options=None, timeout=300):
    """Seconds from POST to ready; SpawnFailed with the hub's reason otherwise."""
    headers = {"Authorization": f"token {hub.token}"}
    url = f"{hub.url}/hub/api/users/{_quoted(name)}/server"
    t0 = time.monotonic()
    try:
        r = requests.post(url, json=options or {}, headers=headers, timeout=timeout)
    except requests.RequestException as e:
        raise SpawnFailed(f"POST did not complete: {type(e).__name__}") from None
    if r.status_code not in (201, 202):
        raise SpawnFailed(f"POST answered {r.status_code}: {r.text[:200]}")
    remaining = max(1.0, timeout - (time.monotonic() - t0))
    try:
        with requests.get(
            url + "/progress", headers=headers, stream=True, timeout=(30, remaining)
        ) as s:
            if s.status_code != 200:
                raise SpawnFailed(f"progress answered {s.status_code}: {s.text[:200]}")
            for line in s.iter_lines():
                if not line.startswith(b"data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("ready"):
                    return time.monotonic() - t0
                if event.get("failed"):
                    raise SpawnFailed(event.get("message", "failed"))
    except requests.RequestException as e:
        raise SpawnFailed(f"progress stream broke: {type(e).__name__}") from None
    raise SpawnFailed("progress stream ended without ready")


def spawn_many(hub, names, options=None, timeout=300):
    """Everyone presses Start at once. Returns (wall, [{"user", "seconds" or None, "error"}]);
    wall runs from the first POST until the last server is ready (or failed)."""
    results = {}
    lock = threading.Lock()
    t0 = time.monotonic()

    def one(name):
        try:
            seconds, error = spawn_and_wait(hub, name, options, timeout), None
        except SpawnFailed as e:
            seconds, error = None, str(e)
        with lock:
            results[name] = {
                "user": name,
                "seconds": seconds,
                "error": error,
                "done": time.monotonic() - t0,
            }

    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(one, names))
    wall = max(r["done"] for r in results.values())
    return wall, [results[n] for n in names]


class Bystander:
    """A user who is not starting anything asks the hub a trivial API question (who am I) every
    ``every`` seconds while a burst runs: what the rest of the lab feels during a class start.
    Records each answer's latency, and each failure with its reason."""

    def __init__(self, hub, name="bystander", every=0.1):
        hub.create_user(name)
        self.url = f"{hub.url}/hub/api/user"
        self.headers = {"Authorization": f"token {hub.user_token(name)}"}
        self.every, self.times, self.errors = every, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        session = requests.Session()
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                r = session.get(self.url, headers=self.headers, timeout=30)
                if r.status_code == 200:
                    self.times.append(time.monotonic() - t0)
                else:
                    self.errors.append(f"answered {r.status_code}")
            except requests.RequestException as e:
                self.errors.append(type(e).__name__)
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def stop_all(hub, names, timeout=180):
    """Stop every named server; returns the names that did not stop (the hub may be wedged)."""

    def stop(name):
        try:
            hub.stop_server(name, timeout=timeout)
            return None
        except Exception:
            return name

    with ThreadPoolExecutor(8) as pool:
        return [n for n in pool.map(stop, names) if n]
