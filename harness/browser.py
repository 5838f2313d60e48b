"""A real Chromium (Debian's chromium + chromium-driver) driven by Selenium.

Both paths are explicit, so Selenium Manager never looks for (or downloads) a browser.
``artifacts_on_failure`` saves a screenshot and the page source of every open tab.
"""

import contextlib
import os
import shutil
import tempfile

CHROMIUM = os.environ.get("GPULAB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("GPULAB_CHROMEDRIVER", "/usr/bin/chromedriver")


def chromium():
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never reach the network
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            raise AssertionError(
                f"{path} is missing: apt-get install chromium chromium-driver (scripts/setup-host.sh does)"
            )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
    ):
        options.add_argument(arg)
    # Chromium's own temporary files (with --disable-dev-shm-usage its shared memory too) in a
    # folder of this driver's, removed when it quits: a run leaves none behind in /tmp
    tmp = tempfile.mkdtemp(prefix="gpulab-chromium-")
    service = Service(executable_path=CHROMEDRIVER, env={**os.environ, "TMPDIR": tmp})
    try:
        driver = webdriver.Chrome(options=options, service=service)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    quit_driver = driver.quit

    def quit_and_clean():
        try:
            quit_driver()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    driver.quit = quit_and_clean
    driver.set_page_load_timeout(90)
    return driver


@contextlib.contextmanager
def artifacts_on_failure(driver, out_dir):
    try:
        yield
    except BaseException:
        os.makedirs(out_dir, exist_ok=True)
        for i, handle in enumerate(driver.window_handles):
            with contextlib.suppress(Exception):
                driver.switch_to.window(handle)
                driver.save_screenshot(os.path.join(out_dir, f"tab{i}.png"))
                with open(os.path.join(out_dir, f"tab{i}.html"), "w", encoding="utf-8") as f:
                    f.write(f"<!-- {driver.current_url} -->\n" + driver.page_source)
                # also where the run's log is kept (CI's clone, and its artifacts, go away)
                text = driver.find_element("tag name", "body").text
                print(f"\n[gpulab] tab {i}: {driver.current_url}\n{text[:800]}")
        print(f"\n[gpulab] browser screenshots and page sources saved in {out_dir}")
        raise
