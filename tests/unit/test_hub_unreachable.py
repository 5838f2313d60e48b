"""The soak's explanation of a 503 from the proxy (harness.hub.Hub.why_unreachable): a hub that
died says how, with its API's address tried directly and the proxy's first failure."""

import subprocess

from harness.hub import Hub


def test_a_dead_hub_says_how_it_ended_and_what_the_proxy_saw(tmp_path):
    hub = object.__new__(Hub)  # no engine needed: only the process and the log are read
    hub.log_path = str(tmp_path / "hub.log")
    (tmp_path / "hub.log").write_text(
        "[I app:3913] Hub API listening on http://127.0.0.1:9/hub/\n"
        "2026 [ConfigProxy] error: 503 GET /hub/api/x connect ECONNREFUSED 127.0.0.1:9\n"
    )
    hub.proc = subprocess.Popen(["sh", "-c", "kill -9 $$"])
    hub.proc.wait()
    why = hub.why_unreachable()
    assert f"the hub process {hub.proc.pid} has exited: signal 9" in why
    assert "its API at http://127.0.0.1:9 does not answer directly" in why
    assert "the proxy's first 503: 2026 [ConfigProxy] error: 503 GET /hub/api/x" in why
    assert why.endswith("ECONNREFUSED 127.0.0.1:9\n")


def test_a_hub_never_started_says_so(tmp_path):
    hub = object.__new__(Hub)
    hub.log_path = str(tmp_path / "missing.log")
    hub.proc = None
    assert hub.why_unreachable().startswith("the hub was never started")
