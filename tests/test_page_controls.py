"""The page's controls in a real headless Chromium against a real server on 127.0.0.1: the
server picker only with --data-root, listing only what the server can map; a Run button; the
SCL fill control; errors in the page's words (not CLI options) with the progress saying so;
the annotated picture shown; the .qml and .aux.xml downloads."""

from __future__ import annotations

import numpy as np
import rasterio
from rasterio.windows import Window
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.conftest import write_stack
from tests.test_page import _shown, browser, pytestmark  # noqa: F401 - fixture, skip mark
from tests.test_serve import EXAMPLE, Server
from tests.test_sources import make_folder, make_safe, zip_dir


def _ready(driver, url: str) -> None:
    driver.get(url + "/")
    driver.set_script_timeout(60)
    driver.execute_async_script("window.pageReady.then(arguments[arguments.length - 1])")


def _crop(dst, drop_scl: bool = False, size: int = 96):
    """A size x size crop of the example scene, optionally without its SCL band."""
    with rasterio.open(EXAMPLE) as ds:
        keep = [i for i, d in enumerate(ds.descriptions, 1) if not (drop_scl and d == "SCL")]
        w = Window(0, 0, size, size)
        data = ds.read(keep, window=w)
        names = [ds.descriptions[i - 1] for i in keep]
        write_stack(dst, data, crs=ds.crs, transform=ds.window_transform(w))
    with rasterio.open(dst, "r+") as ds:
        for i, n in enumerate(names, 1):
            ds.set_band_description(i, n)
    return dst


def _wait_end(driver) -> str:
    WebDriverWait(driver, 180, 0.2).until(
        lambda d: _shown(d, "result") or _shown(d, "error") and d.find_element(By.ID, "error").text)
    return driver.find_element(By.ID, "progress-text").text


def test_without_data_root_no_picker_and_errors_say_failed(tmp_path, browser):  # noqa: F811
    one = write_stack(tmp_path / "B02.tif", np.ones((1, 32, 32), np.uint16))
    server = Server(tmp_path / "jobs")
    try:
        _ready(browser, server.url)
        assert not browser.find_element(By.ID, "server-pick").is_displayed()
        run = browser.find_element(By.ID, "run")
        assert not run.is_enabled()  # nothing chosen yet
        browser.find_element(By.ID, "file").send_keys(str(one))
        assert server.get("/jobs").json()["jobs"] == []  # choosing a file starts nothing
        run.click()
        assert _wait_end(browser) == "failed"
        error = browser.find_element(By.ID, "error").text
        assert "B02.tif: has 1 bands" in error and "band descriptions naming them" in error
        assert "--" not in error, error  # no CLI option a web user cannot set
        assert run.is_enabled()  # another try is possible
        # the server's other messages that name CLI options, as the page words them
        for msg in ["upload larger than --max-upload-mb (1 MB)",
                    "queue full (8 jobs waiting, --queue 8); retry later",
                    "this server has no --data-root: upload the scene instead",
                    "a.tif: bands 1 and 2 are both described as B2; fix the descriptions or "
                    "name the bands with --bands",
                    "a.tif: band SCL has values up to 99, but SCL classes are 0..11 (a stack "
                    "with B10 in its place? name bands with --bands)",
                    "missing or wrong token (Authorization: Bearer TOKEN)"]:
            shown = browser.execute_script("return forUser(arguments[0])", msg)
            assert "--" not in shown and "Bearer" not in shown, shown
    finally:
        server.stop()


def test_scene_picker_scl_fill_and_downloads(tmp_path, browser):  # noqa: F811
    root = tmp_path / "data"
    root.mkdir()
    _crop(root / "stack.tif")
    _crop(root / "noscl.tif", drop_scl=True)
    write_stack(root / "one.tif", np.ones((1, 32, 32), np.uint16))  # a single band file
    (root / "notes.txt").write_text("not a scene")
    bands = make_folder(root / "tile" / "bands")                   # per-band files
    safe = make_safe(root / "products", bands)
    zip_dir(safe, root / "products" / "product.zip")
    server = Server(tmp_path / "jobs", "--data-root", str(root))
    try:
        listed = server.get("/data").json()
        want = {"noscl.tif": ("stack", False), "stack.tif": ("stack", True),
                "tile/bands/": ("folder", True), f"products/{safe.name}/": ("safe", True),
                "products/product.zip": ("zip", True)}
        assert {d["path"]: (d["kind"], d["scl"]) for d in listed["details"]} == want
        assert listed["scenes"] == sorted(want)  # single band files and their files: not scenes

        _ready(browser, server.url)
        assert browser.find_element(By.ID, "server-pick").is_displayed()
        pick = Select(browser.find_element(By.ID, "scenes"))
        assert [o.get_attribute("value") for o in pick.options] == ["", *sorted(want)]
        assert "no SCL" in pick.options[1].text

        # a scene without SCL and the default "refuse": the error names the page's control
        pick.select_by_value("noscl.tif")
        assert "noscl.tif" in browser.find_element(By.ID, "chosen").text
        browser.find_element(By.ID, "run").click()
        assert _wait_end(browser) == "failed"
        error = browser.find_element(By.ID, "error").text
        assert "no usable SCL" in error and '"SCL missing"' in error, error
        assert "--scl-fill" not in error

        # the control fills SCL: the job carries scl_fill and is done
        Select(browser.find_element(By.ID, "scl-fill")).select_by_value("4")
        browser.find_element(By.ID, "run").click()
        WebDriverWait(browser, 30, 0.1).until(lambda d: not _shown(d, "error"))
        assert "done" in _wait_end(browser)
        assert not _shown(browser, "error")
        job = server.get("/jobs").json()["jobs"][0]
        assert job["options"] == {"confidence": True, "scl_fill": 4}
        warned = browser.find_element(By.ID, "warnings").text
        assert warned.startswith("noscl.tif: SCL filled with 4"), warned
        assert str(root) not in warned  # no server paths
        for img in ("overlay", "mask", "annotated"):  # the annotated picture is on the page
            WebDriverWait(browser, 30, 0.2).until(lambda d, i=img: d.execute_script(
                f"const e = document.getElementById('{i}'); return e.complete && e.naturalWidth"))
            assert browser.find_element(By.ID, img).is_displayed()
        # 96 px scene: pictures enlarged to a readable size
        assert browser.execute_script(
            "return document.getElementById('annotated').naturalWidth") >= 512

        kinds = [a.get_attribute("data-kind")
                 for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a")]
        assert kinds[-2:] == ["qml", "aux"]
        qml = server.get(job["files"]["qml"])
        assert qml.status_code == 200 and 'label="Forest"' in qml.text
        assert 'filename="noscl.lulc.qml"' in qml.headers["content-disposition"]
        aux = server.get(job["files"]["aux"])
        assert aux.status_code == 200 and "<PAMDataset>" in aux.text and "Forest" in aux.text
        assert 'filename="noscl.lulc.tif.aux.xml"' in aux.headers["content-disposition"]
        (server.jobs / job["id"] / "map.qml").unlink()  # a job from before styles were kept
        gone = server.get(job["files"]["qml"])
        assert gone.status_code == 404 and gone.json() == {"error": "map.qml missing"}
    finally:
        server.stop()
