"""``lulc-edge run`` on STAC items, ItemCollections and searches, read from a real HTTP server
on 127.0.0.1 (tests/httpserver.py): the map from the catalogue equals the local folder's map
on every pixel, and every fault ends in that map or one clear line, never another map."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds

from lulc_edge import RunOptions, segment_file
from lulc_edge.sources import fingerprint_of as input_fingerprint
from lulc_edge.sources import open_source
from tests.conftest import SHARED_DATA, needs_shared, run_cli
from tests.httpserver import FileServer
from tests.test_sources import FILE_NAMES, make_folder

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
RKH = SHARED_DATA / "l2a-29RKH-20200219"


def item(item_id: str, base: str, when: str = "2024-07-15T11:06:19Z",
         baseline: str = "05.09") -> dict:
    """A Planetary Computer style item (assets B01 ... B12, B8A, SCL) on files under ``base``."""
    assets = {key: {"href": f"{base}/{key}.tif", "type": COG} for key in FILE_NAMES.values()}
    return {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "geometry": None,
            "bbox": [14.0, 45.0, 14.1, 45.1], "links": [], "assets": assets,
            "properties": {"datetime": when, "s2:processing_baseline": baseline,
                           "eo:cloud_cover": 3.0}}


def read_map(path: Path) -> tuple[np.ndarray, dict]:
    """The class band and the source's tags (without their LULC_EDGE_SOURCE_ prefix)."""
    with rasterio.open(path) as ds:
        pre = "LULC_EDGE_SOURCE_"
        return ds.read(1), {k[len(pre):]: v for k, v in ds.tags().items() if k.startswith(pre)}


@pytest.fixture()
def served(tmp_path):
    """A server of tmp_path/www holding a per-band folder www/scene (L2A with SCL)."""
    root = tmp_path / "www"
    make_folder(root / "scene", size=96)
    with FileServer(root) as srv:
        yield srv


@pytest.fixture()
def folder_map(served, tmp_path):
    """The local folder's map with the offset an item of baseline 05.09 states (-1000)."""
    out = tmp_path / "folder.tif"
    res = run_cli("run", served.root / "scene", "-o", out, "--boa-offset", "-1000", "-q")
    assert res.returncode == 0, res.stderr
    return read_map(out)[0]


def write_item(tmp_path: Path, served: FileServer, name: str = "item.json", **kw) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(item(kw.pop("item_id", "S2B_T33_20240715"),
                                    served.url("scene"), **kw)))
    return path


def test_item_json_map_equals_folder_map_and_records_radiometry(served, folder_map, tmp_path):
    src = write_item(tmp_path, served)
    res = run_cli("run", src, "-q", cwd=tmp_path)  # default name: <item id>.lulc.tif here
    assert res.returncode == 0, res.stderr
    got, tags = read_map(tmp_path / "S2B_T33_20240715.lulc.tif")
    assert np.array_equal(got, folder_map), (got != folder_map).sum()
    assert tags["STAC_ITEM"] == "S2B_T33_20240715" and tags["BOA_OFFSET"] == "-1000"
    assert tags["BOA_OFFSET_SOURCE"].startswith("s2:processing_baseline 05.09 >= 04.00 -> -1000")
    assert served.url("scene/B02.tif") in tags["BAND_SOURCES"]
    assert served.log.count("/scene/B02.tif", "GET") >= 1

    # --boa-offset wins over the item, and says so
    out = tmp_path / "zero.tif"
    assert run_cli("run", src, "-o", out, "--boa-offset", "0", "-q").returncode == 0
    plain = tmp_path / "plain.tif"
    assert run_cli("run", served.root / "scene", "-o", plain, "-q").returncode == 0
    got, tags = read_map(out)
    assert np.array_equal(got, read_map(plain)[0])
    assert tags["BOA_OFFSET"] == "0" and "--boa-offset" in tags["BOA_OFFSET_SOURCE"]


def test_warped_resampling_reads_remote_bands(served, tmp_path):
    """--resampling cubic goes through GDAL's warper, which takes the remote dataset."""
    src = write_item(tmp_path, served)
    for name, what in (("item.tif", src), ("folder.tif", served.root / "scene")):
        res = run_cli("run", what, "-o", tmp_path / name, "-q", "--resampling", "cubic",
                      "--boa-offset", "-1000")
        assert res.returncode == 0, res.stderr
    got, tags = read_map(tmp_path / "item.tif")
    assert np.array_equal(got, read_map(tmp_path / "folder.tif")[0])
    assert "warped" in tags["RESAMPLING"]


def test_item_url_and_stac_prefix(served, folder_map, tmp_path):
    served.json_route("/items/S2B_T33_20240715", lambda *_: item("S2B_T33_20240715",
                                                                 served.url("scene")))
    out = tmp_path / "maps"
    res = run_cli("run", "stac:" + served.url("items/S2B_T33_20240715"), "--out-dir", out, "-q")
    assert res.returncode == 0, res.stderr
    assert np.array_equal(read_map(out / "S2B_T33_20240715.lulc.tif")[0], folder_map)


@needs_shared
def test_shared_earth_search_item_over_http_equals_local_folder(tmp_path):
    """The real 29RKH Earth Search item, its hrefs rewritten to the loopback server."""
    doc = json.loads((RKH / "item.json").read_text())
    with FileServer(RKH) as srv:
        for asset in doc["assets"].values():
            asset["href"] = srv.url(asset["href"].rsplit("/", 1)[1])
        src = tmp_path / "29RKH.json"
        src.write_text(json.dumps(doc))
        res = run_cli("run", src, "-o", tmp_path / "item.tif", "-q")
        assert res.returncode == 0, res.stderr
    res = run_cli("run", RKH, "-o", tmp_path / "folder.tif", "-q")
    assert res.returncode == 0, res.stderr
    got, tags = read_map(tmp_path / "item.tif")
    want, _ = read_map(tmp_path / "folder.tif")
    assert np.array_equal(got, want), (got != want).sum()
    assert tags["BOA_OFFSET"] == "0" and tags["STAC_ITEM"] == doc["id"]


def collection(served: FileServer) -> dict:
    return {"type": "FeatureCollection", "features": [
        item("older", served.url("scene"), when="2024-06-01T10:00:00Z"),
        item("newer", served.url("scene"), when="2024-08-01T10:00:00Z")]}


def test_item_collection_is_a_batch_most_recent_first(served, folder_map, tmp_path):
    src = tmp_path / "collection.json"
    src.write_text(json.dumps(collection(served)))
    out = tmp_path / "maps"
    res = run_cli("run", src, "--out-dir", out)
    assert res.returncode == 0, res.stderr
    lines = [ln.split()[-1] for ln in res.stderr.splitlines() if ln.startswith("done")]
    assert lines == [str(out / "newer.lulc.tif"), str(out / "older.lulc.tif")]
    for name in ("newer", "older"):
        assert np.array_equal(read_map(out / f"{name}.lulc.tif")[0], folder_map)
    # one item of it, addressed
    res = run_cli("run", f"{src}#older", "-o", tmp_path / "one.tif", "-q")
    assert res.returncode == 0, res.stderr
    res = run_cli("run", f"{src}#nope", "-o", tmp_path / "none.tif", "-q")
    assert res.returncode == 1 and "no item 'nope'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "none.tif").exists()


def test_search_maps_every_item_found_most_recent_first(served, folder_map, tmp_path):
    bodies = []
    feats = collection(served)["features"]

    def answer(method: str, _query: str, body: bytes) -> dict:
        bodies.append(json.loads(body))
        return {"type": "FeatureCollection", "features": feats, "links": []}

    served.json_route("/search", answer)
    for f in feats:
        served.json_route(f"/collections/sentinel-2-l2a/items/{f['id']}", lambda *_, f=f: f)
    out = tmp_path / "maps"
    with rasterio.open(served.root / "scene" / "B02.tif") as ds:  # the search's area: the
        box = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)  # scene, so its whole map
    bbox = ",".join(f"{v:.6f}" for v in (box[0] - 0.01, box[1] - 0.01, box[2] + 0.01,
                                           box[3] + 0.01))
    args = ("run", "--stac-api", served.base, "--collection", "sentinel-2-l2a",
            "--bbox", bbox, "--datetime", "2024-06-01/2024-08-31",
            "--max-cloud", "20", "--out-dir", out)
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr
    lines = [ln.split()[-1] for ln in res.stderr.splitlines() if ln.startswith("done")]
    assert lines == [str(out / "newer.lulc.tif"), str(out / "older.lulc.tif")]
    assert np.allclose(bodies[0]["bbox"], [float(v) for v in bbox.split(",")], atol=1e-3)
    assert bodies[0]["collections"] == [
        "sentinel-2-l2a"] and bodies[0]["query"] == {"eo:cloud_cover": {"lte": 20.0}}
    for name in ("newer", "older"):
        assert np.array_equal(read_map(out / f"{name}.lulc.tif")[0], folder_map)
    res = run_cli(*args)  # a rerun finds the same outputs and skips them
    assert res.returncode == 0 and "0 done, 2 skipped" in res.stdout, res.stdout + res.stderr

    res = run_cli("run", "--stac-api", served.base, "--collection", "sentinel-2-l2a")
    assert res.returncode == 2 and "--out-dir" in res.stderr
    res = run_cli("run", "--bbox", "1,2,3", "x.tif")
    assert res.returncode == 1 and "MINX,MINY,MAXX,MAXY" in res.stderr


@pytest.mark.parametrize("fault", ["503", "429", "drop"])
def test_faults_end_in_the_same_map(served, folder_map, tmp_path, fault):
    src = write_item(tmp_path, served)
    served.fail("scene/B02.tif", fault)
    served.fail("scene/SCL.tif", fault)
    out = tmp_path / "out.tif"
    res = run_cli("run", src, "-o", out, "-q")
    assert res.returncode == 0, res.stderr
    assert fault.isdigit() is False or int(fault) in served.log.statuses("/scene/B02.tif")
    assert np.array_equal(read_map(out)[0], folder_map)


def test_forbidden_band_is_one_line_naming_the_url(served, tmp_path):
    src = write_item(tmp_path, served)
    served.fail("scene/B03.tif", "403", times=20)
    out = tmp_path / "out.tif"
    res = run_cli("run", src, "-o", out)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and served.url("scene/B03.tif") in lines[0] and "403" in lines[0], \
        res.stderr
    assert "Traceback" not in res.stderr and not out.exists()


def test_private_server_with_gdal_headers(served, folder_map, tmp_path, monkeypatch):
    """Private access by GDAL's conventions: GDAL_HTTP_HEADERS reaches the item request and
    every band read; without it, one line naming the item URL and the settings to use."""
    served.json_route("/item.json", lambda *_: item("private", served.url("scene")))
    served.require = ("Authorization", "Bearer t0ken")
    out = tmp_path / "private.tif"
    res = run_cli("run", served.url("item.json"), "-o", out)
    assert res.returncode == 1 and not out.exists()
    [line] = res.stderr.strip().splitlines()
    assert served.url("item.json") in line and "401" in line and "GDAL_HTTP_HEADERS" in line
    monkeypatch.setenv("GDAL_HTTP_HEADERS", "Authorization: Bearer t0ken")
    res = run_cli("run", served.url("item.json"), "-o", out, "-q")
    assert res.returncode == 0, res.stderr
    assert np.array_equal(read_map(out)[0], folder_map)


def test_sign_hook_signs_every_band_request_in_every_worker(served, folder_map, tmp_path,
                                                            monkeypatch):
    from lulc_edge import urlio

    (tmp_path / "x1_signer.py").write_text(
        "def sign(url):\n    return url + ('&' if '?' in url else '?') + 'sig=ok'\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers get sys.path too
    monkeypatch.setenv(urlio.SIGN_ENV, "")  # --sign sets it: restored after the test
    src = tmp_path / "collection.json"
    src.write_text(json.dumps(collection(served)))
    out = tmp_path / "maps"
    res = run_cli("run", src, "--out-dir", out, "-q", "--workers", "2",
                  "--sign", "x1_signer:sign")
    assert res.returncode == 0, res.stderr
    assert np.array_equal(read_map(out / "newer.lulc.tif")[0], folder_map)
    band_gets = [t for t in served.log.targets if t.startswith("/scene/")]
    assert band_gets and all(t.endswith("sig=ok") for t in band_gets)
    res = run_cli("run", src, "-o", tmp_path / "x.tif", "--sign", "no_such_module:sign")
    assert res.returncode == 1 and "no_such_module:sign" in res.stderr


def test_band_changed_between_interrupted_run_and_resume_starts_over(served, engine, tmp_path):
    src = str(write_item(tmp_path, served))
    before = input_fingerprint(src)
    with open_source(src) as source:
        assert source.fingerprint() == before
    out, ticks = tmp_path / "resumed.tif", itertools.count(1)

    def ctrl_c_at_second_tile(_n: int, _px: int) -> None:
        if next(ticks) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # the journal is kept for --resume
        segment_file(src, out, engine=engine, on_tile=ctrl_c_at_second_tile,
                     options=RunOptions(progress=False, tile=32))
    b02 = served.root / "scene" / "B02.tif"
    with rasterio.open(b02) as ds:
        profile, data = ds.profile, ds.read()
    changed = tmp_path / "B02.tif"
    with rasterio.open(changed, "w", **profile) as ds:
        ds.write(data // 2)
    served.replace("scene/B02.tif", changed.read_bytes())
    after = input_fingerprint(src)
    assert after != before and after[served.url("scene/B02.tif")] != \
        before[served.url("scene/B02.tif")]

    res = segment_file(src, out, engine=engine,
                       options=RunOptions(progress=False, tile=32, resume=True))
    assert res.tiles_inferred == res.tiles_total  # started over, nothing mixed
    assert any("--resume starts over" in w for w in res.warnings), res.warnings
    fresh = tmp_path / "fresh.tif"
    segment_file(src, fresh, engine=engine, options=RunOptions(progress=False, tile=32))
    assert np.array_equal(read_map(out)[0], read_map(fresh)[0])


def test_batch_redoes_an_item_whose_band_file_changed(served, tmp_path):
    """A batch's skip check compares the input's fingerprint: for an item, the ETag /
    Last-Modified of its band files (sources.fingerprint_of)."""
    src = tmp_path / "collection.json"
    src.write_text(json.dumps(collection(served)))
    out = tmp_path / "maps"
    assert run_cli("run", src, "--out-dir", out, "-q").returncode == 0
    res = run_cli("run", src, "--out-dir", out)
    assert "0 done, 2 skipped" in res.stdout, res.stdout + res.stderr
    served.replace("scene/B04.tif", (served.root / "scene" / "B04.tif").read_bytes())
    res = run_cli("run", src, "--out-dir", out)
    assert res.returncode == 0 and "2 done, 0 skipped" in res.stdout, res.stdout + res.stderr
    assert "made from another version of the input" in res.stderr
