"""GPUs come back when idle, for real: a hub with reclaim on, readings pushed through the hub's
readings API (what `gpulab collect` does on a GPU server; the test is the GPUs here), real
containers, the real queue, JupyterLab's notification in a real browser, and the usage book."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from harness import gpuhost
from harness.browser import artifacts_on_failure, chromium

from .conftest import ARTIFACTS
from .test_tensorboard import _as_user, _poll

GPULAB = os.path.join(os.path.dirname(sys.executable), "gpulab")
GPUS = gpuhost.devices()
if len(GPUS) < 3:
    pytest.skip(
        f"these tests need 3 GPUs; this host's real runtime has {len(GPUS)}",
        allow_module_level=True,
    )
UUIDS = [g["uuid"] for g in GPUS]
IDLE_S, GRACE_S = 6, 30
SITE = {
    "gpus": {
        "devices": GPUS,
        "readings": "push",
        "wait_timeout": 300,
        "quota": {"default": 2},
        "reclaim": {
            "enabled": True,
            "interval": 1,
            "idle_percent": 5,
            "idle_minutes": IDLE_S / 60,
            "grace_minutes": GRACE_S / 60,
        },
    },
    "profiles": [
        {
            "name": "gpu",
            "image": "localhost/gpulab/base:latest",
            "gpus": 1,
            "max_gpus": 2,
            "mem_limit": "1G",
            "shm_size": "64M",
        },
        {
            "name": "cpu",
            "image": "localhost/gpulab/base:latest",
            "gpus": 0,
            "max_gpus": 0,
            "mem_limit": "1G",
            "shm_size": "64M",
        },
    ],
}


class Collector:
    """Pushes readings every half second, as each GPU server's collector would."""

    def __init__(self, hub, token):
        self.hub, self.token = hub, token
        self.util = dict.fromkeys(UUIDS, 90.0)  # busy until a test says otherwise
        self.answers = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def body(self):
        return {
            "node": "",
            "gpus": [
                {
                    "uuid": u,
                    "utilization": v,
                    "memory_used": 1 << 30,
                    "memory_total": 16 << 30,
                    "processes": [],
                }
                for u, v in self.util.items()
            ],
        }

    def _run(self):
        while not self._stop.is_set():
            r = requests.post(
                f"{self.hub.url}/hub/api/gpulab/readings",
                json=self.body(),
                headers={"Authorization": f"token {self.token}"},
                timeout=10,
            )
            self.answers.append(r.status_code)
            self._stop.wait(0.5)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def admin_token(hub, scopes):
    """A token of the admin user with only ``scopes`` (what an admin makes for a collector)."""
    r = hub.api("POST", "/users/admin/tokens", json={"note": "collector", "scopes": scopes})
    assert r.status_code == 201, r.text
    return r.json()["token"]


@pytest.fixture(scope="module")
def hub(make_hub):
    h = make_hub(SITE, extra_config="\nc.Spawner.poll_interval = 2\n")
    h.create_user("admin")
    return h


@pytest.fixture(scope="module")
def lab_collector(hub):
    with Collector(hub, admin_token(hub, ["custom:gpulab:readings"])) as c:
        yield c


@pytest.fixture
def collector(lab_collector):
    lab_collector.util.update(dict.fromkeys(UUIDS, 90.0))  # every test starts with busy GPUs
    return lab_collector


def gpu_of(hub, name):
    (c,) = [c for c in hub.containers(name) if c.status == "running"]
    return c.labels["gpulab.gpus"]


def browser_session(hub, name):
    """A logged-in session, as a user's browser has (hub pages take cookies, not tokens)."""
    s = requests.Session()
    s.get(f"{hub.url}/hub/login", timeout=30)
    r = s.post(
        f"{hub.url}/hub/login",
        data={"username": name, "password": hub.password, "_xsrf": s.cookies.get("_xsrf")},
        timeout=30,
    )
    assert r.ok and not r.url.endswith("/hub/login"), r.text[-500:]
    return s


def post_quietly(hub, path, body):
    """A spawn POST from a thread (the hub may answer late, or be gone at teardown)."""
    try:
        hub.api("POST", path, json=body)
    except requests.RequestException:
        pass


def notices(hub, name, token):
    r = requests.get(
        f"{hub.url}/hub/api/gpulab/users/{name}/notices",
        headers={"Authorization": f"token {token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()


def running(hub, name):
    return bool(hub.api("GET", f"/users/{name}").json().get("servers", {}).get(""))


def test_readings_api_checks_scope_and_input(hub, collector):
    assert set(collector.answers) <= {200}, collector.answers
    user_token = hub.user_token(hub.create_user("nosy")["name"])
    r = requests.post(
        f"{hub.url}/hub/api/gpulab/readings",
        json=collector.body(),
        headers={"Authorization": f"token {user_token}"},
        timeout=10,
    )
    assert r.status_code == 403
    for bad, what in (
        ({"gpus": "x"}, "readings"),
        ({"gpus": [{"uuid": "x"}]}, "gpus"),
        ({"gpus": [{**collector.body()["gpus"][0], "utilization": 300}]}, "utilization"),
    ):
        r = requests.post(
            f"{hub.url}/hub/api/gpulab/readings",
            json=bad,
            headers={"Authorization": f"token {collector.token}"},
            timeout=10,
        )
        assert r.status_code == 400 and what in r.json()["message"], r.text


def test_an_idle_gpu_is_warned_then_reclaimed_and_goes_to_the_next_in_the_queue(hub, collector):
    for n in ("alice", "bob", "carol"):
        hub.create_user(n)
    tokens = {n: hub.user_token(n) for n in ("alice", "bob", "carol")}
    hub.spawn("alice", {"profile": "gpu", "gpus": 1})
    hub.spawn("bob", {"profile": "gpu", "gpus": 2})
    a_gpu = gpu_of(hub, "alice")
    (a,) = hub.containers("alice")
    assert _as_user(a, ["sh", "-c", "echo kept > /home/alice/thesis.txt"]).exit_code == 0
    # carol waits: every GPU is held
    carol = threading.Thread(
        target=post_quietly, args=(hub, "/users/carol/server", {"profile": "gpu", "gpus": 1})
    )
    carol.start()
    _poll(
        lambda: (
            hub.api("GET", "/users/carol").json().get("servers", {}).get("", {}).get("pending")
            == "spawn"
        ),
        20,
    )
    assert notices(hub, "alice", tokens["alice"])["servers"] == {}
    collector.util[a_gpu] = 0.0  # alice went home; bob trains
    t_idle = time.monotonic()

    warned = _poll(lambda: notices(hub, "alice", tokens["alice"])["servers"].get(""), IDLE_S + 10)
    assert (
        warned["reason"] == "idle"
        and "under 5% utilisation" in warned["text"]
        and warned["gpus"] == [a_gpu]
    )
    assert time.monotonic() - t_idle >= IDLE_S - 1
    # where alice sees it: the hub's pages, and her own server (the container relays the hub's word)
    alice_browser = browser_session(hub, "alice")
    home = alice_browser.get(f"{hub.url}/hub/home", timeout=10)
    assert "gpulab-reclaim-warning" in home.text and "will be stopped at" in home.text
    relay = requests.get(
        hub.user_url("alice", "gpulab/notices"),
        headers={"Authorization": f"token {tokens['alice']}"},
        timeout=10,
    )
    assert (
        relay.status_code == 200
        and relay.json()["notice"]["reason"] == "idle"
        and "will be stopped" in relay.json()["message"]
    )
    # a user's token answers for that user only
    r = requests.get(
        f"{hub.url}/hub/api/gpulab/users/alice/notices",
        headers={"Authorization": f"token {tokens['bob']}"},
        timeout=10,
    )
    assert r.status_code in (403, 404)
    assert notices(hub, "bob", tokens["bob"])["servers"] == {}

    _poll(lambda: not running(hub, "alice"), GRACE_S + 15)
    assert time.monotonic() - t_idle >= IDLE_S + GRACE_S - 2
    assert "gpulab reclaim: stopping alice" in hub.log_tail(400)
    carol.join(60)
    hub.wait_ready("carol", 90)
    assert gpu_of(hub, "carol") == a_gpu  # the reclaimed GPU went to the first in the queue
    assert (
        running(hub, "bob") and notices(hub, "bob", tokens["bob"])["servers"] == {}
    )  # busy: never touched

    gone = notices(hub, "alice", tokens["alice"])["reclaimed"]
    assert [(r["user"], r["gpus"]) for r in gone] == [("alice", [a_gpu])] and "under 5%" in gone[0][
        "reason"
    ]
    home = alice_browser.get(f"{hub.url}/hub/home", timeout=10)
    assert "gpulab-reclaimed" in home.text and "Your files are kept" in home.text
    # alice's files are intact
    hub.spawn("alice", {"profile": "cpu"})
    (a,) = [c for c in hub.containers("alice") if c.status == "running"]
    assert _as_user(a, ["cat", "/home/alice/thesis.txt"]).output.strip() == b"kept"
    hub.stop_server("alice")

    # the usage book: bob held 2 busy GPUs; alice 1, busy for seconds, then idle until reclaimed
    env = dict(os.environ, GPULAB_CONFIG=hub.site_path)
    out = subprocess.run(
        [GPULAB, "usage", "--format", "json"],
        env=env,
        cwd=hub.workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = {r["user"]: r for r in json.loads(out.stdout)}
    assert (
        rows["alice"]["held_hours"] > 0
        and rows["alice"]["used_hours"] < 0.5 * rows["alice"]["held_hours"]
    )
    assert rows["bob"]["used_hours"] > 0.8 * rows["bob"]["held_hours"] > 0
    table = subprocess.run(
        [GPULAB, "usage"], env=env, cwd=hub.workdir, capture_output=True, text=True, timeout=60
    ).stdout
    assert "GPU-h held" in table and "bob" in table
    hub.stop_server("carol")
    hub.stop_server("bob")


def server_token(hub, name):
    """The API token a user's running server holds (what a script in the container could use)."""
    (c,) = [c for c in hub.containers(name) if c.status == "running"]
    env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
    return env["JUPYTERHUB_API_TOKEN"]


def test_keep_in_jupyterlab_resets_the_clock_and_the_gpu_page(hub, collector):
    """The warning as JupyterLab shows it, "Keep my GPUs" clicked there, then the GPU page."""
    hub.create_user("erin")
    token = hub.user_token("erin")
    hub.spawn("erin", {"profile": "gpu", "gpus": 1})
    gpu = gpu_of(hub, "erin")
    driver = chromium()
    out = os.path.join(ARTIFACTS, "browser", hub.name + "-reclaim")
    try:
        with artifacts_on_failure(driver, out):
            wait = WebDriverWait(driver, 90)
            driver.get(hub.url + "/hub/login")
            driver.find_element(By.NAME, "username").send_keys("erin")
            driver.find_element(By.NAME, "password").send_keys(hub.password)
            driver.find_element(By.XPATH, "//form//*[@type='submit']").click()
            driver.get(hub.user_url("erin", "lab"))
            wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-LauncherCard")))
            collector.util[gpu] = 0.0
            warned = _poll(lambda: notices(hub, "erin", token)["servers"].get(""), IDLE_S + 10)
            # JupyterLab's own notification, with gpulab's action
            keep = WebDriverWait(driver, 25).until(
                EC.element_to_be_clickable(
                    (By.XPATH, "//button[.//text()[contains(., 'Keep my GPUs')]]")
                )
            )
            toast = driver.execute_script("return document.body.innerText")
            assert "will be stopped at" in toast and "its GPUs given back" in toast
            # keeping is erin's own act on the hub's GPU page, which the button opens: the
            # server's token cannot keep (a script in the container could keep its GPUs forever)
            r = requests.post(
                f"{hub.url}/hub/api/gpulab/users/erin/keep",
                json={"server": ""},
                headers={"Authorization": f"token {server_token(hub, 'erin')}"},
                timeout=30,
            )
            assert r.status_code == 403 and "custom:gpulab:keep" in r.text, r.text
            tabs = set(driver.window_handles)
            keep.click()
            WebDriverWait(driver, 15).until(lambda d: set(d.window_handles) - tabs)
            driver.switch_to.window((set(driver.window_handles) - tabs).pop())
            wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, ".gpulab-keep"))).click()
            _poll(lambda: not notices(hub, "erin", token)["servers"], 10)
            r = requests.post(
                f"{hub.url}/hub/api/gpulab/users/erin/keep",
                json={"server": ""},
                headers={"Authorization": f"token {token}"},
                timeout=30,
            )
            assert r.status_code == 409, "no warning any more: nothing to keep ahead of time"
            collector.util[gpu] = 80.0  # erin works again
            time.sleep(max(0.0, warned["stop_at"] - time.time()) + 3)
            assert running(hub, "erin"), "kept server was stopped"
            assert not notices(hub, "erin", token)["servers"]

            # the GPU page, as erin (read-only) and as an admin would see it
            driver.get(hub.url + "/hub/gpus")
            table = wait.until(
                EC.presence_of_element_located((By.CSS_SELECTOR, "table.gpulab-gpu-table"))
            )
            row = table.find_element(By.CSS_SELECTOR, f"tr[data-gpu-uuid='{gpu}']")
            assert "erin" in row.text and "80%" in row.text
            assert not driver.find_elements(By.CSS_SELECTOR, ".gpulab-stop")  # not an admin
            assert "erin" in driver.find_element(By.CSS_SELECTOR, "table.gpulab-usage").text
            os.makedirs(ARTIFACTS, exist_ok=True)
            shot = os.path.join(
                ARTIFACTS, "gpu-page.png"
            )  # kept after every run: what the page looks like
            driver.save_screenshot(shot)
            assert os.path.getsize(shot) > 10_000
    finally:
        driver.quit()
    hub.stop_server("erin")


def test_gpu_page_admin_stop_and_outside_use(hub, collector):
    hub.create_user("frank")
    hub.spawn("frank", {"profile": "gpu", "gpus": 1})
    gpu = gpu_of(hub, "frank")
    # a process on a GPU no gpulab server holds: "used outside gpulab"
    other = next(u for u in UUIDS if u != gpu)
    body = collector.body()
    for g in body["gpus"]:
        if g["uuid"] == other:
            g["processes"] = [{"pid": 4242, "memory_used": 1 << 30}]
    assert requests.post(
        f"{hub.url}/hub/api/gpulab/readings",
        json=body,
        headers={"Authorization": f"token {collector.token}"},
        timeout=10,
    ).ok
    admin = browser_session(hub, "admin")
    page = admin.get(f"{hub.url}/hub/gpus", timeout=30)
    assert page.status_code == 200 and "gpulab-stop" in page.text and "Stop frank" in page.text
    xsrf = admin.cookies.get("_xsrf")
    r = admin.post(
        f"{hub.url}/hub/gpus",
        data={"action": "stop", "user": "frank", "server": "", "_xsrf": xsrf},
        timeout=60,
    )
    assert r.status_code == 200 and "Stopped frank" in r.text, r.text[-2000:]
    _poll(lambda: not running(hub, "frank"), 30)
    # a user cannot stop others
    user = browser_session(hub, "nosy")
    r = user.post(
        f"{hub.url}/hub/gpus",
        data={"action": "stop", "user": "bob", "server": "", "_xsrf": user.cookies.get("_xsrf")},
        timeout=30,
    )
    assert r.status_code == 403


def test_metrics_scraped_by_a_real_prometheus(hub, collector, tmp_path):
    from harness.prometheus import Prometheus

    hub.create_user("gina")
    hub.spawn("gina", {"profile": "gpu", "gpus": 2})
    token = admin_token(hub, ["read:metrics"])
    with Prometheus(tmp_path, target=hub.url, metrics_path="/hub/metrics", token=token) as prom:
        held = _poll(lambda: prom.value('sum(gpulab_gpus_held{node=""})') == 2.0, 60)
        assert held
        assert prom.value("sum(gpulab_gpus)") == 3.0
        assert prom.value('gpulab_user_gpus_held{user="gina"}') == 2.0
        assert prom.value("gpulab_reclaims_total") is not None
        assert prom.value("sum(gpulab_spawn_duration_seconds_count)") >= 1
        assert prom.value("max(gpulab_gpu_utilization_percent)") is not None
    hub.stop_server("gina")
