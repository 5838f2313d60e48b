"""Log in through the hub's page, fill the spawn form, open TensorBoard from the JupyterLab launcher."""

import os
import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from harness.browser import artifacts_on_failure, chromium

from .conftest import ARTIFACTS
from .test_tensorboard import RUN, WRITE_EVENTS, _as_user, _poll, _reachable

USER = "bria"
RUN_VISIBLE = f"return document.body && document.body.innerText.includes({RUN!r})"


@pytest.fixture
def driver():
    d = chromium()
    yield d
    d.quit()


def _load_ms(driver, url):
    """Navigate, wait until the test run is on screen; (page load event ms, run visible ms)."""
    t0 = time.monotonic()
    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.execute_script(RUN_VISIBLE))
    visible = (time.monotonic() - t0) * 1000
    load = driver.execute_script(
        "const t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd - t.startTime"
    )
    return load, visible


def test_login_spawn_and_open_tensorboard_from_the_launcher(hub, driver):
    wait = WebDriverWait(driver, 120)
    with artifacts_on_failure(driver, os.path.join(ARTIFACTS, "browser", hub.name)):
        driver.get(hub.url + "/hub/login")
        driver.find_element(By.NAME, "username").send_keys(USER)
        driver.find_element(By.NAME, "password").send_keys(hub.password)
        driver.find_element(By.XPATH, "//form//*[@type='submit']").click()

        # the spawn form: pick a profile, no GPU, Start
        wait.until(
            EC.presence_of_element_located((By.CSS_SELECTOR, "input[name=profile][value=small]"))
        ).click()
        gpus = driver.find_element(By.NAME, "gpus")
        gpus.clear()
        gpus.send_keys("0")
        driver.find_element(
            By.XPATH, "//form[.//input[@name='profile']]//*[@type='submit']"
        ).click()

        tile = wait.until(
            EC.element_to_be_clickable(
                (
                    By.XPATH,
                    "//div[contains(@class,'jp-LauncherCard')][starts-with(@title,'TensorBoard')]",
                )
            )
        )
        assert f"/user/{USER}/lab" in driver.current_url
        icon = tile.find_element(
            By.CSS_SELECTOR, ".jp-LauncherCard-icon img, .jp-LauncherCard-icon svg"
        )
        assert icon.is_displayed()
        (c,) = hub.containers(USER)
        assert c.labels["gpulab.profile"] == "small"
        r = _as_user(c, ["python", "-c", WRITE_EVENTS])
        assert r.exit_code == 0, r.output

        lab = driver.current_window_handle
        tile.click()
        wait.until(
            lambda d: len(d.window_handles) > 1
        )  # the launcher opens TensorBoard in a new tab
        driver.switch_to.window(next(h for h in driver.window_handles if h != lab))
        WebDriverWait(driver, 120).until(lambda d: d.execute_script(RUN_VISIBLE))
        assert driver.current_url.startswith(f"{hub.url}/user/{USER}/tensorboard/"), (
            driver.current_url
        )
        assert "TensorBoard" in driver.title
        driver.save_screenshot(os.path.join(_artifact_dir(hub), "tensorboard.png"))

        # measured once: the TensorBoard page through the hub vs straight to the container port
        _as_user(
            c,
            ["bash", "-c", "exec tensorboard --logdir ~/runs --port 6006 --bind_all"],
            detach=True,
        )
        c.reload()
        direct = f"http://{c.attrs['NetworkSettings']['Networks'][hub.name]['IPAddress']}:6006/"
        _poll(lambda: _reachable(direct + "data/runs"))
        hub_load, hub_visible = _load_ms(driver, f"{hub.url}/user/{USER}/tensorboard/")
        direct_load, direct_visible = _load_ms(driver, direct)
        print(
            f"\n[gpulab] TensorBoard in Chromium: via hub load {hub_load:.0f} ms, run shown {hub_visible:.0f} ms; "
            f"direct {direct_load:.0f} ms, run shown {direct_visible:.0f} ms"
        )


def _artifact_dir(hub):
    path = os.path.join(ARTIFACTS, "browser", hub.name)
    os.makedirs(path, exist_ok=True)
    return path
