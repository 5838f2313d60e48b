"""`gpulab status` against a real hub: one screen of what runs, exit 0; the hub gone, exit 1 and
why (docs/admin.md, Status at a glance)."""

import json
import os
import subprocess
import sys
import time

from harness import gpuhost
from harness.hub import BASE_IMAGE

GPULAB = os.path.join(os.path.dirname(sys.executable), "gpulab")


def status(hub, *extra):
    return subprocess.run(
        [GPULAB, "--site", hub.site_path, "status", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env=hub.env(),
    )


def test_one_screen_of_the_lab_and_a_failing_exit_when_the_hub_is_gone(make_hub):
    hub = make_hub(
        {
            "gpus": {"devices": gpuhost.devices()[:2]},
            "profiles": [{"name": "base", "image": BASE_IMAGE, "max_gpus": 1}],
        }
    )
    hub.create_user("alice")
    hub.spawn("alice", {"profile": "base", "gpus": 1})
    deadline = time.monotonic() + 30
    while True:  # the hub writes its status every 10 s
        r = status(hub, "--json")
        doc = json.loads(r.stdout)
        if any(g["holders"] for g in doc.get("gpus", [])) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert r.returncode == 0 and doc["problems"] == [], r.stdout
    held = [g for g in doc["gpus"] if g["holders"]]
    assert len(doc["gpus"]) == 2 and [g["holders"] for g in held] == [["alice"]], doc["gpus"]
    text = status(hub)
    assert text.returncode == 0, text.stdout + text.stderr
    out = text.stdout
    assert "hub and proxy  answering" in out and "1 of 2 held" in out and "alice" in out, out
    assert "queue  0 waiting" in out and out.rstrip().endswith("all good"), out
    hub.stop_server("alice")
    hub.stop()
    gone = status(hub)
    assert gone.returncode == 1, gone.stdout
    assert "needs attention" in gone.stdout and "does not answer" in gone.stdout, gone.stdout
