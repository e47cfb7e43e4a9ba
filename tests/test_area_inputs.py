"""Areas of interest on every input kind (issue 24): a per-band COG folder, a JPEG 2000 folder,
a ``.SAFE`` and its ``.zip``, a STAC item on local files and one served over HTTP, a single
13-band COG URL. On each the map of an area is the crop of the whole-scene map on every pixel
(window offsets from the AOI_WINDOW tag), for a lon/lat box and a lon/lat GeoJSON polygon
(outside it nodata), at the scene's edges, smaller than a tile, given in another UTM zone,
in window mode and with other resampling; an area off the scene (a box, or a polygon whose
bounding box overlaps it) is one line naming the input. Batches (files, an ItemCollection)
skip a scene the area misses; a STAC search by polygon, the API and the service's jobs map
the area too.

The scene is synthetic (lulc_edge.synthetic), 298 x 302 px at 10 m, its 20 and 60 m bands
on their own grids (the 60 m grid overhangs the 10 m one), built into the forms users
download by benchmarks/products.py; the server is tests/httpserver.py on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.features import geometry_mask
from rasterio.transform import Affine
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window

from benchmarks.products import BANDS, EPSG, ORIGIN, build, grid_size
from lulc_edge import Area, Segmenter
from lulc_edge.synthetic import BAND_NAMES, SceneSpec, generate

from .conftest import run_cli, write_stack
from .httpserver import FileServer
from .test_serve import Server

SIZE = (298, 302)  # width, height: not multiples of 4 or 6
UTM = f"EPSG:{EPSG}"
NODATA = 255
#: Input kinds: how each is named on the command line, from the built product and the server.
KINDS = ("cog_folder", "jp2_folder", "safe", "zip", "item", "item_url", "cog_url")
#: A triangle in scene pixels (col, row), its corners off the 4 px grid.
TRIANGLE = [(61.3, 47.7), (231.2, 83.9), (113.5, 251.1)]


def _xy(col: float, row: float) -> tuple[float, float]:
    return ORIGIN[0] + 10 * col, ORIGIN[1] - 10 * row


def _box(c0: float, r0: float, c1: float, r1: float, crs: str = "EPSG:4326") -> str:
    """``--bbox`` text of scene pixels c0..c1, r0..r1 in ``crs``."""
    (x0, y1), (x1, y0) = _xy(c0, r0), _xy(c1, r1)
    return ",".join(f"{v:.9f}" for v in transform_bounds(UTM, crs, x0, y0, x1, y1))


def _native_bands(folder: Path) -> Path:
    """The synthetic scene's bands as B01.tif ... SCL.tif, each on its native grid (what
    benchmarks/products.py builds from: mirrored to SIZE, which here is exactly their size)."""
    bands, _, _ = generate(SceneSpec(width=300, height=306, seed=11))
    folder.mkdir()
    for name, band in zip(BAND_NAMES, bands, strict=True):
        stem = name if name in ("SCL", "B8A") else f"B{int(name[1:]):02d}"
        step = BANDS[stem] // 10
        w, h = grid_size(SIZE, BANDS[stem])
        write_stack(folder / f"{stem}.tif", band[None, ::step, ::step][:, :h, :w])
    return folder


@pytest.fixture(scope="module")
def product(tmp_path_factory) -> dict[str, Path]:
    """The scene as a .SAFE (JPEG 2000, MTD with offset -1000), its .zip, a per-band COG
    folder with a STAC item.json (relative hrefs), a flat folder of the SAFE's JPEG 2000
    files and a 13-band stack; ``www`` is what the server serves."""
    d = tmp_path_factory.mktemp("area-inputs")
    paths = build(d / "data", SIZE, _native_bands(d / "native"))["paths"]
    out = {k: Path(paths[k]) for k in ("safe", "zip", "cog", "stack")}
    jp2 = d / "jp2"
    jp2.mkdir()
    for f in out["safe"].rglob("*.jp2"):
        shutil.copy(f, jp2 / f.name)
    out["jp2"] = jp2
    www = out["www"] = d / "www"
    shutil.copytree(out["cog"], www / "cog")
    rasterio.shutil.copy(out["stack"], www / "stack.tif", driver="COG", BLOCKSIZE="128",
                         COMPRESS="DEFLATE")
    # the same scene 100 km east, as a stack and as band files: no area here overlaps it
    far = out["far_bands"] = d / "far"
    far.mkdir()
    for f in [out["stack"], *out["cog"].glob("*.tif")]:
        with rasterio.open(f) as ds:
            write_stack(www / "far.tif" if f == out["stack"] else far / f.name, ds.read(),
                        crs=ds.crs, transform=Affine.translation(100000, 0) @ ds.transform)
    return out


@pytest.fixture(scope="module")
def server(product):
    with pytest.MonkeyPatch.context() as mp, FileServer(product["www"]) as srv:
        # a bound on a request GDAL would make holding the GIL this in-process server needs
        # (a URL opened without the remote settings lists its "folder": it hung, not failed)
        mp.setenv("GDAL_HTTP_TIMEOUT", "30")
        item = json.loads((product["www"] / "cog" / "item.json").read_text())
        for asset in item["assets"].values():
            asset["href"] = srv.url("cog/" + asset["href"].rsplit("/", 1)[1])
        (product["www"] / "item.json").write_text(json.dumps(item))
        yield srv


@pytest.fixture(scope="module")
def inputs(product, server) -> dict[str, str]:
    return {"cog_folder": str(product["cog"]), "jp2_folder": str(product["jp2"]),
            "safe": str(product["safe"]), "zip": str(product["zip"]),
            "item": str(product["cog"] / "item.json"), "item_url": server.url("item.json"),
            "cog_url": server.url("stack.tif")}


@pytest.fixture(scope="module")
def whole(inputs, tmp_path_factory):
    """whole(kind, *options): the whole-scene map of that input (made once)."""
    d, made = tmp_path_factory.mktemp("whole"), {}

    def get(kind: str, *options: str) -> Path:
        key = (kind, *options)
        if key not in made:
            out = d / f"{'-'.join(key)}.tif"
            res = run_cli("run", inputs[kind], "-o", out, "-q", *options)
            assert res.returncode == 0, res.stderr
            made[key] = out
        return made[key]

    return get


def _area_map(path: Path, whole_map: Path) -> tuple[np.ndarray, np.ndarray, Window]:
    """The area map, the whole map's pixels under it (its AOI_WINDOW) and that window."""
    with rasterio.open(path) as a, rasterio.open(whole_map) as w:
        c, r, width, height = map(int, a.tags()["LULC_EDGE_SOURCE_AOI_WINDOW"].split())
        win = Window(c, r, width, height)
        assert a.shape == (height, width) and a.crs == w.crs
        assert a.transform == w.transform @ Affine.translation(c, r)
        return a.read(1), w.read(1, window=win), win


def _polygon(corners: list[tuple[float, float]]) -> dict:
    """A GeoJSON polygon in lon/lat of scene pixel corners (col, row)."""
    ring = [_xy(*p) for p in [*corners, corners[0]]]
    return transform_geom(UTM, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})


def _triangle() -> dict:
    return _polygon(TRIANGLE)


def _triangle_file(folder: Path) -> Path:
    """A GeoJSON FeatureCollection of the triangle (no "crs": lon/lat, RFC 7946)."""
    path = folder / "triangle.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": _triangle()}]}))
    return path


def _check_triangle(area_map: Path, whole_map: Path) -> None:
    """The triangle's map: its window; inside (pixel centres) the whole map's pixels,
    outside nodata."""
    got, want, win = _area_map(area_map, whole_map)
    assert (win.col_off, win.row_off) == (60, 44) and _covers(win, 61.3, 47.7, 231.2, 251.1)
    with rasterio.open(area_map) as ds:
        inside = geometry_mask([transform_geom("EPSG:4326", UTM, _triangle())], ds.shape,
                               ds.transform, invert=True)
    assert 0 < inside.sum() < inside.size
    np.testing.assert_array_equal(got[inside], want[inside])
    assert (got[~inside] == NODATA).all()


def _covers(win: Window, c0: float, r0: float, c1: float, r1: float) -> bool:
    """Whether ``win`` holds scene pixels c0..c1, r0..r1 and starts on the 4 px grid."""
    return win.col_off % 4 == 0 and win.row_off % 4 == 0 and win.col_off <= c0 and \
        win.row_off <= r0 and win.col_off + win.width >= c1 and win.row_off + win.height >= r1


def _run_area(tmp_path: Path, src: str, *args: str) -> Path:
    out = tmp_path / "area.tif"
    res = run_cli("run", src, "-o", out, "-q", *args)
    assert res.returncode == 0, res.stderr
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_a_box_and_a_polygon_map_the_whole_maps_pixels(kind, inputs, whole, tmp_path):
    src, full = inputs[kind], whole(kind)
    with rasterio.open(full) as ds:
        assert (ds.width, ds.height) == SIZE
    # a lon/lat box off the 4 px grid: its bounding window, snapped outward
    got, want, win = _area_map(_run_area(tmp_path, src, "--bbox", _box(101.3, 87.6, 203.2,
                                                                       190.1)), full)
    assert _covers(win, 101.3, 87.6, 203.2, 190.1)
    np.testing.assert_array_equal(got, want)
    # a lon/lat GeoJSON polygon: inside (pixel centres) the whole map's pixels, outside nodata
    out = tmp_path / "poly.tif"
    res = run_cli("run", src, "-o", out, "-q", "--aoi", _triangle_file(tmp_path))
    assert res.returncode == 0, res.stderr
    _check_triangle(out, full)
    with rasterio.open(out) as ds:
        assert ds.tags()["LULC_EDGE_SOURCE_AOI"].endswith("triangle.geojson")


@pytest.mark.parametrize("kind, options", [
    ("zip", ("--mode", "window")), ("item_url", ("--mode", "window")),
    ("zip", ("--resampling", "cubic")), ("item", ("--resampling", "average")),
    ("cog_url", ("--mode", "window"))])
def test_an_area_with_other_options_maps_the_whole_maps_pixels(kind, options, inputs, whole,
                                                               tmp_path):
    """Window mode (64 px windows at stride 32) and the 20/60 m bands resampled otherwise."""
    out = _run_area(tmp_path, inputs[kind], *options, "--bbox", _box(37.5, 61.2, 151.3, 130.9))
    got, want, win = _area_map(out, whole(kind, *options))
    assert _covers(win, 37.5, 61.2, 151.3, 130.9)
    np.testing.assert_array_equal(got, want)


#: (bbox, its CRS, the window it must give or None to check coverage only)
EDGE_CASES = {
    # across the scene's top left corner, and its right and bottom edges (298 x 302 px):
    # clipped to the scene
    "scene_corner": ((-20.0, -15.5, 29.5, 25.0), "EPSG:4326", None),
    "scene_edge": ((250.5, 270.5, 340.0, 350.0), UTM, Window(248, 268, 50, 34)),
    # 1.5 x 1.7 px: smaller than a tile, its window 4 x 4 px
    "tiny": ((150.2, 150.2, 151.7, 151.9), "EPSG:4326", Window(148, 148, 4, 4)),
    # given in the next UTM zone west (EPSG:32628): its box there, brought back, covers it
    "other_zone": ((40.0, 60.0, 120.0, 99.0), "EPSG:32628", None),
}


@pytest.mark.parametrize("case", list(EDGE_CASES))
@pytest.mark.parametrize("kind", KINDS)
def test_edge_cases_map_the_whole_maps_pixels(kind, case, inputs, whole, tmp_path):
    (c0, r0, c1, r1), crs, expected = EDGE_CASES[case]
    out = _run_area(tmp_path, inputs[kind], "--bbox", _box(c0, r0, c1, r1, crs),
                    "--bbox-crs", crs)
    got, want, win = _area_map(out, whole(kind))
    if expected is not None:
        assert win == expected
    elif case == "scene_corner":
        assert (win.col_off, win.row_off) == (0, 0) and _covers(win, 0, 0, c1, r1)
    else:  # the other zone's box is rotated here: its bounding window is larger
        assert _covers(win, c0, r0, c1, r1)
        assert win.width * win.height < 2 * (c1 - c0) * (r1 - r0)
    np.testing.assert_array_equal(got, want)


#: A triangle beside the scene's top left corner: its bounding box overlaps the scene, the
#: triangle does not (x + y < -10 px).
BESIDE = [(-40.0, 30.0), (-40.0, -40.0), (30.0, -40.0)]


@pytest.mark.parametrize("area", ["box", "polygon_beside"])
@pytest.mark.parametrize("kind", KINDS)
def test_an_area_off_the_scene_is_one_line_naming_the_input(kind, area, inputs, tmp_path):
    out_dir = tmp_path / "maps"
    out_dir.mkdir()
    if area == "box":
        args = ["--bbox", _box(400, 400, 420, 420)]
    else:
        (tmp_path / "beside.geojson").write_text(json.dumps(_polygon(BESIDE)))
        args = ["--aoi", str(tmp_path / "beside.geojson")]
    res = run_cli("run", inputs[kind], "-o", out_dir / "map.tif", *args)
    assert res.returncode == 1, res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lulc-edge: error: {inputs[kind]}: ") \
        and "does not overlap" in lines[0], res.stderr
    assert "Traceback" not in res.stderr and list(out_dir.iterdir()) == []


def _collection(product: dict[str, Path], path: Path) -> Path:
    """An ItemCollection: the served item (band files over HTTP) and one of the far scene's
    local band files."""
    near = json.loads((product["www"] / "item.json").read_text())
    far = json.loads(json.dumps(near))
    far["id"] = "far"
    for asset in far["assets"].values():
        asset["href"] = str(product["far_bands"] / asset["href"].rsplit("/", 1)[1])
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [near, far]}))
    return path


@pytest.mark.parametrize("batch", ["zip_and_url", "item_collection"])
def test_a_batch_maps_the_area_of_one_scene_and_skips_the_other(batch, product, inputs, whole,
                                                                 server, tmp_path):
    if batch == "zip_and_url":
        args, near, far = [inputs["zip"], server.url("far.tif")], "zip", server.url("far.tif")
    else:
        collection = _collection(product, tmp_path / "collection.json")
        args, near, far = [collection], "item_url", f"{collection}#far"
    out = tmp_path / "maps"
    res = run_cli("run", *args, "--out-dir", out, "--json",
                  "--bbox", _box(20.5, 30.5, 90.0, 70.0))
    assert res.returncode == 0, res.stderr  # a skipped scene is no failure (README)
    doc = json.loads(res.stdout)
    assert (doc["done"], doc["skipped"], doc["failed"]) == (1, 1, 0)
    skipped = next(r for r in doc["results"] if r["status"] == "skipped")
    assert skipped["input"] == far
    assert any("does not overlap" in w and "no map written" in w for w in skipped["warnings"])
    [made] = out.glob("*.tif")
    got, want, win = _area_map(made, whole(near))
    assert _covers(win, 20.5, 30.5, 90.0, 70.0)
    np.testing.assert_array_equal(got, want)


def test_the_api_maps_an_area_given_in_another_zone(inputs, whole, engine, tmp_path):
    """``Segmenter.segment_file(..., aoi=)`` on a remote item: the triangle as a GeoJSON
    geometry in the next UTM zone west (EPSG:32628), and a lon/lat box as 4 numbers."""
    zone28 = transform_geom("EPSG:4326", "EPSG:32628", _triangle())
    seg = Segmenter(engine=engine)
    seg.segment_file(inputs["item_url"], tmp_path / "poly.tif",
                     aoi=Area.from_geojson(zone28, "EPSG:32628"))
    _check_triangle(tmp_path / "poly.tif", whole("item_url"))
    box = [float(v) for v in _box(10.5, 20.5, 60.0, 50.0).split(",")]
    res = seg.segment_file(inputs["item_url"], tmp_path / "box.tif", aoi=box)
    got, want, win = _area_map(tmp_path / "box.tif", whole("item_url"))
    assert _covers(win, 10.5, 20.5, 60.0, 50.0)
    assert (res.width, res.height) == (win.width, win.height)
    np.testing.assert_array_equal(got, want)


def test_a_search_by_polygon_maps_each_item_found_inside_it(server, whole, tmp_path):
    """``--stac-api`` with ``--aoi``: the search's bbox is the polygon's bounds in lon/lat, and
    each item's map is the polygon's."""
    item = json.loads((server.root / "item.json").read_text())
    bodies = []

    def answer(_method: str, _query: str, body: bytes) -> dict:
        bodies.append(json.loads(body))
        return {"type": "FeatureCollection", "features": [item], "links": []}

    server.json_route("/search", answer)
    server.json_route(f"/collections/sentinel-2-l2a/items/{item['id']}", lambda *_: item)
    out = tmp_path / "maps"
    res = run_cli("run", "--stac-api", server.base, "--collection", "sentinel-2-l2a",
                  "--aoi", _triangle_file(tmp_path), "--out-dir", out, "-q")
    assert res.returncode == 0, res.stderr
    lons, lats = zip(*_triangle()["coordinates"][0], strict=True)
    np.testing.assert_allclose(bodies[0]["bbox"], [min(lons), min(lats), max(lons), max(lats)])
    _check_triangle(out / f"{item['id']}.lulc.tif", whole("item_url"))


def test_a_cog_url_is_read_with_the_remote_settings(product, server, tmp_path, monkeypatch):
    """A single 13-band COG URL opens as a STAC item's band files do (lulc_edge.remote): only
    the file is requested (no listing of its "folder", no sidecar files), 503s are retried,
    a 403 is one line naming the URL. Its area's map is the local stack's."""
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.1")
    for name in ("retried.tif", "forbidden.tif"):  # files GDAL has not cached
        shutil.copy(product["www"] / "stack.tif", product["www"] / name)
    url, box = server.url("retried.tif"), _box(101.3, 87.6, 203.2, 190.1)
    first = len(server.log.requests)
    server.fail("retried.tif", "503", times=2)
    got = _run_area(tmp_path, url, "--bbox", box)
    (tmp_path / "local").mkdir()
    want = _run_area(tmp_path / "local", str(product["stack"]), "--bbox", box)
    with rasterio.open(got) as a, rasterio.open(want) as b:
        assert a.transform == b.transform
        np.testing.assert_array_equal(a.read(1), b.read(1))
    seen = server.log.requests[first:]
    assert {p for _m, p, _r, _s in seen} == {"/retried.tif"}, seen
    assert server.log.statuses("/retried.tif")[503] == 2
    url = server.url("forbidden.tif")
    server.fail("forbidden.tif", "403", times=20)
    out = tmp_path / "forbidden.tif"
    res = run_cli("run", url, "-o", out, "--bbox", box)
    server.clear_faults()
    assert res.returncode == 1 and not out.exists()
    [line] = res.stderr.strip().splitlines()
    assert line.startswith(f"lulc-edge: error: {url}: HTTP 403") and "credentials" in line, line


def test_service_jobs_map_an_area_of_a_product(product, whole, tmp_path):
    """Jobs on a .zip, a .SAFE folder and a STAC item.json under --data-root: a lon/lat box
    and (the .zip) a lon/lat polygon; an area off the scene is refused at submit."""
    root = product["zip"].parent
    box = [float(v) for v in _box(101.3, 87.6, 203.2, 190.1).split(",")]
    jobs = (("zip", product["zip"], {"bbox": box}), ("safe", product["safe"], {"bbox": box}),
            ("item", product["cog"] / "item.json", {"bbox": box}),
            ("zip", product["zip"], {"aoi": _triangle()}))
    with Server(tmp_path / "jobs", "--data-root", str(root)) as service:
        for kind, path, body in jobs:
            r = service.post("/jobs", json={"path": str(path.relative_to(root)), **body})
            assert r.status_code == 202, r.text
            doc = service.wait(r.json()["id"])
            assert doc["status"] == "done", doc
            job_map = tmp_path / f"{doc['id']}.tif"
            job_map.write_bytes(service.get(f"/jobs/{doc['id']}/map.tif").content)
            if "aoi" in body:
                _check_triangle(job_map, whole(kind))
            else:
                got, want, win = _area_map(job_map, whole(kind))
                assert _covers(win, 101.3, 87.6, 203.2, 190.1)
                np.testing.assert_array_equal(got, want)
        far = [float(v) for v in _box(400, 400, 420, 420).split(",")]
        r = service.post("/jobs", json={"path": product["zip"].name, "bbox": far})
        assert r.status_code == 400 and "does not overlap" in r.json()["error"], r.text
