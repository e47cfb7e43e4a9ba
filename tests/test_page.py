"""The web page of lulc-edge serve, driven by a real headless Chromium (Debian's chromium and
chromium-driver; skipped when they are not installed). Set LULC_EDGE_PAGE_SCREENSHOT=PATH to
keep the screenshot (docs/serve-page.png was made so)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.test_serve import EXAMPLE, Server

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
    reason="needs Debian's chromium and chromium-driver")


@pytest.fixture()
def browser(tmp_path):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1100", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _shown(driver, element_id: str) -> bool:
    return driver.execute_script(f"return !document.getElementById('{element_id}').hidden")


def _check_result(driver, reference_percent: dict[str, float]) -> None:
    WebDriverWait(driver, 180, 0.2).until(
        lambda d: _shown(d, "result") or _shown(d, "error") and d.find_element(By.ID, "error")
        .text)
    assert not _shown(driver, "error"), driver.find_element(By.ID, "error").text
    assert "done" in driver.find_element(By.ID, "progress-text").text
    for img in ("overlay", "mask", "annotated"):
        WebDriverWait(driver, 30, 0.2).until(lambda d, i=img: d.execute_script(
            f"const e = document.getElementById('{i}'); return e.complete && e.naturalWidth"))
        assert driver.execute_script(f"return document.getElementById('{img}').naturalWidth") \
            >= 512
    rows = driver.find_elements(By.CSS_SELECTOR, "#stats tbody tr")
    shown = {r.find_elements(By.TAG_NAME, "td")[1].text:
             float(r.find_elements(By.TAG_NAME, "td")[2].text) for r in rows}
    assert shown == reference_percent
    ha = [r.find_elements(By.TAG_NAME, "td")[3].text for r in rows]
    assert all(float(h) > 0 for h in ha)
    links = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#downloads a")]
    assert links == ["GeoTIFF", "mask.png", "overlay.png", "annotated.png", "stats.png",
                     "QGIS style (.qml)", "GDAL classes (.aux.xml)"]


def test_page_maps_an_uploaded_scene(tmp_path, browser):
    root = tmp_path / "data"
    root.mkdir()
    shutil.copy(EXAMPLE, root / "example-scene.tif")
    server = Server(tmp_path / "jobs", "--data-root", str(root))
    try:
        browser.get(server.url + "/")
        assert browser.title == "lulc-edge"
        WebDriverWait(browser, 30, 0.1).until(lambda d: _shown(d, "demo"))
        assert "DEMO WEIGHTS" in browser.find_element(By.ID, "demo").text
        # drop the scene on the page: a real File (read by Chromium from disk through a file
        # input the test adds) in a DragEvent's DataTransfer, as a desktop drag delivers it
        browser.execute_script("const i = document.createElement('input'); i.type = 'file';"
                               "i.id = 'test-file'; document.body.appendChild(i);")
        browser.find_element(By.ID, "test-file").send_keys(str(EXAMPLE))
        browser.execute_script(
            "const dt = new DataTransfer();"
            "dt.items.add(document.getElementById('test-file').files[0]);"
            "document.getElementById('drop').dispatchEvent(new DragEvent('drop',"
            "{dataTransfer: dt, bubbles: true, cancelable: true}));")
        assert "example-scene.tif" in browser.find_element(By.ID, "chosen").text
        assert server.get("/jobs").json()["jobs"] == []  # nothing runs before Run
        browser.find_element(By.ID, "run").click()
        job = None
        for _ in range(1200):  # the page polls the job API: progress is the job's own
            jobs = server.get("/jobs").json()["jobs"]
            if jobs:
                job = jobs[0]
                break
            time.sleep(0.05)
        assert job is not None and job["input"] == "example-scene.tif"
        done = server.wait(job["id"])
        _check_result(browser, done["class_percent"])
        shot = tmp_path / "serve-page.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("LULC_EDGE_PAGE_SCREENSHOT"):
            shutil.copy(shot, Path(os.environ["LULC_EDGE_PAGE_SCREENSHOT"]))
        # a scene under --data-root, picked from the list
        Select(browser.find_element(By.ID, "scenes")).select_by_value("example-scene.tif")
        browser.find_element(By.ID, "run").click()
        WebDriverWait(browser, 30, 0.1).until(lambda d: not _shown(d, "result"))
        _check_result(browser, done["class_percent"])
        # and the page's own file picker
        browser.find_element(By.ID, "file").send_keys(str(EXAMPLE))
        browser.find_element(By.ID, "run").click()
        WebDriverWait(browser, 30, 0.1).until(lambda d: not _shown(d, "result"))
        _check_result(browser, done["class_percent"])
        assert len(server.get("/jobs").json()["jobs"]) == 3
    finally:
        server.stop()
