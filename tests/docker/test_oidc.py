"""A real OpenID Connect login: node-oidc-provider (installed from npm at test time into .cache/)
with users and groups, the hub configured only through the site file (auth.type: oidc), a real
browser going through the provider's login and consent pages."""

import json
import os
import shutil
import subprocess
import time

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from harness.browser import artifacts_on_failure, chromium
from harness.hub import REPO, free_port

from .conftest import ARTIFACTS

OIDC_PROVIDER = "oidc-provider@9.13.3"
CACHE = os.path.join(REPO, ".cache", "oidc-provider")
ACCOUNTS = {
    "ada": {"groups": ["gpu-users"]},  # in auth.admin_users; no uid in the directory
    # admin through her group; her directory entry has bob's uid (a directory mistake)
    "cora": {"groups": ["gpu-users", "gpu-admins"], "uidNumber": 5001},
    "bob": {"groups": ["gpu-users", "vision"], "uidNumber": 5001, "gidNumber": 5000},
    "eve": {"groups": ["other-lab"]},  # not allowed in
}


def install_provider():
    if not os.path.isdir(os.path.join(CACHE, "node_modules", "oidc-provider")):
        os.makedirs(CACHE, exist_ok=True)
        r = subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                CACHE,
                OIDC_PROVIDER,
            ],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, f"npm install {OIDC_PROVIDER} failed: {r.stderr[-2000:]}"
    shutil.copy(
        os.path.join(REPO, "tests", "fixtures", "oidc", "provider.mjs"),
        os.path.join(CACHE, "provider.mjs"),
    )


class Provider:
    def __init__(self, port, redirect_uri, secret, log_path):
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        self.env = dict(
            os.environ,
            OIDC_PORT=str(port),
            OIDC_ACCOUNTS=json.dumps(ACCOUNTS),
            OIDC_CLIENT_ID="gpulab",
            OIDC_CLIENT_SECRET=secret,
            OIDC_REDIRECT_URI=redirect_uri,
            OIDC_COOKIE_KEY=os.urandom(16).hex(),
        )
        self.log_path = log_path
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            ["node", "provider.mjs"],
            cwd=CACHE,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/.well-known/openid-configuration", timeout=2).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.2)
        with open(self.log_path, errors="replace") as f:
            raise AssertionError(f"the OIDC provider did not start:\n{f.read()[-2000:]}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
            self.log.close()


@pytest.fixture(scope="module")
def oidc(make_hub, tmp_path_factory):
    install_provider()
    work = tmp_path_factory.mktemp("oidc")
    secret = os.urandom(16).hex()
    hub = make_hub(start=False, site_auth=True)
    # the lab's uids come from its directory, through the sign-in service; homes on the host
    homes = work / "homes"
    homes.mkdir()
    hub.site["users"] = {"uid_source": "claim", "gid_claim": "gidNumber"}
    hub.site["storage"] = {**hub.site.get("storage", {}), "home": f"{homes}/{{username}}"}
    provider = Provider(
        free_port(), f"{hub.url}/hub/oauth_callback", secret, str(work / "provider.log")
    ).start()
    hub.site["auth"] = {
        "type": "oidc",
        "admin_users": ["ada"],
        "oidc": {
            "client_id": "gpulab",
            "client_secret_env": "GPULAB_TEST_OIDC_SECRET",
            "callback_url": f"{hub.url}/hub/oauth_callback",
            "authorize_url": f"{provider.url}/auth",
            "token_url": f"{provider.url}/token",
            "userdata_url": f"{provider.url}/me",
            "scope": ["openid", "profile", "groups"],
            "allowed_users": ["ada"],
            "allowed_groups": ["gpu-users"],
            "admin_groups": ["gpu-admins"],
        },
    }
    os.environ["GPULAB_TEST_OIDC_SECRET"] = secret  # the hub reads the secret from its environment
    try:
        hub.start()
        hub.homes = homes
        yield hub, provider
    finally:
        provider.stop()
        os.environ.pop("GPULAB_TEST_OIDC_SECRET", None)


def login(driver, hub, name):
    """Through the hub's button and the provider's own login and consent pages."""
    wait = WebDriverWait(driver, 60)
    driver.get(hub.url + "/hub/login")
    driver.delete_all_cookies()  # hub and provider share the host 127.0.0.1: both sessions go
    driver.get(hub.url + "/hub/login")
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "a[href*='oauth_login']"))).click()
    wait.until(EC.presence_of_element_located((By.NAME, "login"))).send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(
        "any password: the provider's development login"
    )
    submit(driver, wait)
    back = hub.url + "/"
    for _ in range(3):  # the consent page ("Continue"), then back to the hub
        wait.until(
            lambda d: (
                d.current_url.startswith(back)
                or d.find_elements(By.CSS_SELECTOR, "button.login-submit")
            )
        )
        if driver.current_url.startswith(back):
            return
        submit(driver, wait)
    wait.until(lambda d: d.current_url.startswith(back))


def submit(driver, wait):
    """Press the provider's button and wait until its page is gone: the next look must not find
    the button of the page being left (a race CI met: a stale consent button, then the hub's page)."""
    button = driver.find_element(By.CSS_SELECTOR, "button.login-submit")
    button.click()
    wait.until(EC.staleness_of(button))


def test_login_groups_admins_and_refusals_through_a_real_provider(oidc):
    hub, provider = oidc
    driver = chromium()
    try:
        with artifacts_on_failure(driver, os.path.join(ARTIFACTS, "browser", hub.name + "-oidc")):
            for name in ("bob", "cora", "ada"):
                login(driver, hub, name)
                WebDriverWait(driver, 30).until(
                    lambda d: "/hub/spawn" in d.current_url or "/hub/home" in d.current_url
                )
                assert name in driver.find_element(By.TAG_NAME, "body").text
            users = {u["name"]: u for u in hub.api("GET", "/users").json()}
            assert users["bob"]["admin"] is False and sorted(users["bob"]["groups"]) == [
                "gpu-users",
                "vision",
            ]
            assert users["cora"]["admin"] is True  # through the provider's gpu-admins group
            assert users["ada"]["admin"] is True  # auth.admin_users
            # eve's groups are not allowed: the hub refuses her after the provider vouched for her
            login(driver, hub, "eve")
            page = driver.find_element(By.TAG_NAME, "body").text
            assert "403" in page and "eve" not in {
                u["name"] for u in hub.api("GET", "/users").json()
            }
    finally:
        driver.quit()


def test_a_uid_from_the_directory_owns_the_home_and_a_missing_or_taken_one_is_refused(oidc):
    """Run after the logins above (the claims are kept at each login)."""
    hub, _ = oidc
    hub.spawn("bob", timeout=180)
    (c,) = [c for c in hub.containers("bob") if c.status == "running"]
    assert c.labels["gpulab.uid"] == "5001"
    home = c.attrs["Config"]["WorkingDir"]
    code, out = c.exec_run(
        ["sh", "-c", f"touch {home}/mine && stat -c '%u %g' {home}/mine"], user="5001"
    )
    assert code == 0 and out.decode().split() == ["5001", "5000"], out
    on_host = os.stat(hub.homes / "bob" / "mine")
    assert (on_host.st_uid, on_host.st_gid) == (5001, 5000), "the lab's own uid, on the host too"
    # cora's directory entry has bob's uid: she would own his files, so she does not start
    r = hub.api("POST", "/users/cora/server", json={})
    assert r.status_code == 400 and "uid 5001" in r.text and "another, older" in r.text, r.text
    # ada's has none: she is told why, and nothing is made
    r = hub.api("POST", "/users/ada/server", json={})
    assert r.status_code == 400 and "gave no uidNumber for ada" in r.text, r.text
    assert not hub.containers("ada") and not hub.containers("cora")
    hub.stop_server("bob")


def test_a_clear_page_when_the_provider_is_down(oidc):
    hub, provider = oidc
    provider.stop()
    # the hub keeps the provider's last answer for a few seconds (gpulab.hub.oidc.CACHE_SECONDS)
    deadline = time.monotonic() + 30
    while True:
        r = requests.get(hub.url + "/hub/oauth_login", allow_redirects=False, timeout=30)
        if r.status_code == 503 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert r.status_code == 503
    assert (
        "sign-in service (127.0.0.1:" in r.text
        and "not answering" in r.text
        and "tell your lab" in r.text
    )
    provider.start()
    # the answer is kept for a few seconds (a crowd pressing "Sign in" asks the provider once)
    deadline = time.monotonic() + 30
    while True:
        r = requests.get(hub.url + "/hub/oauth_login", allow_redirects=False, timeout=30)
        if r.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert r.status_code == 302 and r.headers["Location"].startswith(provider.url + "/auth?")
