"""TensorBoard and any user port through the hub proxy, with the user's server auth."""

import json
import time

import pytest
import requests

from harness.jupyter_ws import kernel_run, ws_echo, ws_status
from harness.tensorboard import RUN, WRITE_EVENTS

OWNER, OTHER = "tina", "otto"
# a user's own web app on 8050: a page and a websocket echo (tornado is in the image)
DEMO_APP = """
import asyncio, tornado.web, tornado.websocket
class Page(tornado.web.RequestHandler):
    def get(self): self.write("hello from 8050")
class Echo(tornado.websocket.WebSocketHandler):
    def on_message(self, m): self.write_message("echo:" + m)
async def main():
    tornado.web.Application([(r"/", Page), (r"/ws", Echo)]).listen(8050, "127.0.0.1")
    await asyncio.Event().wait()
asyncio.run(main())
"""


def _as_user(container, cmd, detach=False):
    return container.exec_run(cmd, user=container.labels["gpulab.uid"], detach=detach)


def _poll(fn, timeout=60, interval=0.5):
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out; last result {last!r}")


def _get(url, token=None, **kw):
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.get(url, headers=headers, timeout=30, **kw)


def _reachable(url):
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _runs(url, token):
    r = _get(url + "tensorboard/data/runs", token)
    return r.status_code == 200 and RUN in r.json() and r.json()


def _assert_owner_only(hub, url, owner_token, other_token, ws_path):
    anon = _get(url)
    assert anon.history and anon.history[0].status_code == 302, anon.status_code
    assert anon.url.startswith(hub.url + "/hub/login"), anon.url
    assert _get(url, other_token, allow_redirects=False).status_code == 403
    assert ws_status(ws_path, other_token) == 403
    assert ws_status(ws_path) in (302, 401, 403)


@pytest.fixture(scope="module")
def owner(hub):
    """OWNER's running server with a test run in ~/runs; OTHER exists (no server)."""
    hub.create_user(OWNER)
    hub.create_user(OTHER)
    hub.spawn(OWNER)
    (c,) = hub.containers(OWNER)
    r = _as_user(c, ["python", "-c", WRITE_EVENTS])
    assert r.exit_code == 0, r.output
    return c, hub.user_url(OWNER), hub.user_token(OWNER), hub.user_token(OTHER)


def test_tensorboard_serves_the_users_run_through_the_hub(hub, owner):
    c, url, token, other = owner

    t0 = time.monotonic()
    runs = _poll(lambda: _runs(url, token), timeout=90)
    print(
        f"\n[gpulab] TensorBoard first request (on-demand start) to run listed: {time.monotonic() - t0:.1f}s; runs={runs}"
    )
    tags = _get(url + "tensorboard/data/plugin/scalars/tags", token).json()
    assert "loss" in tags[RUN], tags
    page = _get(url + "tensorboard/", token)
    assert (
        page.status_code == 200 and "<tb-webapp>" in page.text and "tb-relative-root" in page.text
    )

    _assert_owner_only(hub, url + "tensorboard/", token, other, url + "tensorboard/")
    assert _get(url + "tensorboard/data/runs", other).status_code == 403

    # restarted if it died
    pid = _as_user(c, ["pgrep", "-f", "-o", "tensorboard --logdir"]).output.decode().split()[0]
    assert c.exec_run(["kill", "-9", pid]).exit_code == 0
    _poll(lambda: _runs(url, token), timeout=60)
    new_pid = _as_user(c, ["pgrep", "-f", "-o", "tensorboard --logdir"]).output.decode().split()[0]
    assert new_pid != pid


def test_tensorboard_magic_frames_load_through_the_hub(hub, owner):
    _, url, token, _ = owner
    prefix = hub.api("GET", f"/users/{OWNER}").json()["servers"][""]["url"]
    frame_url = prefix + "proxy/6011/"

    def check(out, html):
        assert out.split()[0] == prefix + "proxy/%PORT%/"
        assert any(json.dumps(frame_url) in h for h in html), html  # the iframe's src
        runs = _poll(
            lambda: (
                (r := _get(hub.url + frame_url + "data/runs", token)).status_code == 200
                and r.json()
            )
        )
        assert RUN in runs

    code = "import os; print(os.environ['TENSORBOARD_PROXY_URL'])\n%load_ext tensorboard\n%tensorboard --logdir /home/tina/runs --port 6011"
    kernel_run(url, token, code, while_alive=check)


def test_any_user_port_is_proxied_with_auth(hub, owner):
    c, url, token, other = owner
    _as_user(c, ["python", "-c", DEMO_APP], detach=True)
    page = _poll(lambda: (r := _get(url + "proxy/8050/", token)).status_code == 200 and r.text)
    assert page == "hello from 8050"
    assert ws_echo(url + "proxy/8050/ws", token, "hi") == "echo:hi"
    _assert_owner_only(hub, url + "proxy/8050/", token, other, url + "proxy/8050/ws")


def test_page_load_through_hub_vs_direct(hub, owner):
    """Measured once, printed: TensorBoard's page and its app bundle, hub proxy vs container port."""
    c, _, token, _ = owner
    c.reload()
    ip = c.attrs["NetworkSettings"]["Networks"][hub.name]["IPAddress"]
    _as_user(
        c, ["bash", "-c", "exec tensorboard --logdir ~/runs --port 6006 --bind_all"], detach=True
    )
    direct = f"http://{ip}:6006/"
    via_hub = hub.user_url(OWNER, "tensorboard/")
    _poll(lambda: _runs(hub.user_url(OWNER), token))
    _poll(lambda: _reachable(direct + "data/runs"))

    def load(base, tok):
        t0 = time.monotonic()
        page = _get(base, tok)
        bundle = _get(base + "index.js", tok)
        runs = _get(base + "data/runs", tok)
        assert page.status_code == bundle.status_code == runs.status_code == 200
        return time.monotonic() - t0, len(page.content) + len(bundle.content)

    hub_s, size = load(via_hub, token)
    direct_s, _ = load(direct, None)
    print(
        f"\n[gpulab] TensorBoard page+bundle+runs ({size / 1e6:.1f} MB): via hub {hub_s * 1000:.0f} ms, direct {direct_s * 1000:.0f} ms"
    )
