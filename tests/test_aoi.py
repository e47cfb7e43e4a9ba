"""Areas of interest (issue 24): an area's map is the same pixels of the whole-scene map, on a
window aligned to the model's grid; outside a polygon nodata; batches, the API, the service."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
import shapely
from pyogrio import raw as ogr
from rasterio.features import geometry_mask
from rasterio.warp import transform_bounds
from rasterio.windows import Window

import lulc_edge.sources.strips as strips
from lulc_edge import Segmenter
from lulc_edge.aoi import Area, AreaMissError, area_window
from lulc_edge.raster import confidence_path
from lulc_edge.runfile import segment_file
from lulc_edge.sources import SourceOptions, open_source
from lulc_edge.spec import RunOptions, RunSpec
from lulc_edge.synthetic import BAND_NAMES, SceneSpec, generate

from .conftest import SHARED_DATA, needs_shared, run_cli, write_stack
from .test_cli_messages import _band_files
from .test_serve import Server

X0, Y0 = 500000.0, 5000000.0  # write_stack's grid: EPSG:32633, 10 m, this origin
UTM = "EPSG:32633"
SPEC = SceneSpec(width=203, height=150, seed=5)
#: a polygon that cuts pixels at odd offsets (scene pixel (col, row) corners)
TRIANGLE = [(31.3, 21.7), (181.2, 43.9), (93.5, 141.1), (31.3, 21.7)]


def _xy(col: float, row: float) -> tuple[float, float]:
    return X0 + 10 * col, Y0 - 10 * row


def _bbox_4326(c0: float, r0: float, c1: float, r1: float) -> tuple[float, ...]:
    """A lon/lat box inside the scene pixels c0..c1, r0..r1."""
    (x0, y1), (x1, y0) = _xy(c0, r0), _xy(c1, r1)
    return transform_bounds(UTM, "EPSG:4326", x0, y0, x1, y1)


def _write_polygon(path: Path, crs: str | None = UTM) -> Path:
    geom = shapely.Polygon([_xy(c, r) for c, r in TRIANGLE])
    driver = "ESRI Shapefile" if path.suffix == ".shp" else "GPKG"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyogrio warns about a file without a CRS
        ogr.write(path, np.array([shapely.to_wkb(geom)], dtype=object), [], [],
                  geometry_type="Polygon", crs=crs, driver=driver)
    return path


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    """The same synthetic scene as a 13-band stack and as a folder of per-band files."""
    d = tmp_path_factory.mktemp("aoi")
    bands, _, _ = generate(SPEC)
    return {"stack": write_stack(d / "scene.tif", bands),
            "folder": _band_files(d / "bands", bands)}


def _offset(area_map: Path, whole_map: Path) -> tuple[np.ndarray, Window, np.ndarray]:
    """The area map, its window in the whole map (integer pixels), and those whole pixels."""
    with rasterio.open(area_map) as a, rasterio.open(whole_map) as w:
        col = (a.transform.c - w.transform.c) / w.transform.a
        row = (a.transform.f - w.transform.f) / w.transform.e
        assert col == int(col) and row == int(row)
        win = Window(int(col), int(row), a.width, a.height)
        return a.read(1), win, w.read(1, window=win)


@pytest.mark.parametrize("mode", ["seamless", "window"])
@pytest.mark.parametrize("kind", ["stack", "folder"])
def test_an_area_map_is_the_whole_scene_map_on_every_pixel(scenes, engine, tmp_path, kind,
                                                           mode):
    src = scenes[kind]
    whole = segment_file(src, tmp_path / "whole.tif", engine=engine,
                         options=RunOptions(mode=mode, tile=64))
    assert whole.width == SPEC.width
    # a lon/lat box: its bounding window, every pixel the whole map's
    res = segment_file(src, tmp_path / "box.tif", engine=engine, options=RunOptions(mode=mode),
                       area=Area.from_bbox(_bbox_4326(37.5, 61.2, 151.3, 130.9)))
    got, win, want = _offset(tmp_path / "box.tif", tmp_path / "whole.tif")
    assert win.col_off % 4 == 0 and win.row_off % 4 == 0  # aligned from the scene's origin
    assert win.col_off <= 37 and win.row_off <= 61 and win.col_off + win.width >= 152
    assert res.width * res.height < SPEC.width * SPEC.height / 2
    np.testing.assert_array_equal(got, want)
    # a polygon in the scene's UTM zone (a GeoPackage): inside the whole map's pixels
    # (centres inside), outside nodata
    res = segment_file(src, tmp_path / "poly.tif", engine=engine,
                       options=RunOptions(mode=mode, confidence=True),
                       area=_write_polygon(tmp_path / "triangle.gpkg"))
    got, win, want = _offset(tmp_path / "poly.tif", tmp_path / "whole.tif")
    with rasterio.open(tmp_path / "poly.tif") as ds:
        inside = geometry_mask([shapely.geometry.mapping(shapely.Polygon(
            [_xy(c, r) for c, r in TRIANGLE]))], ds.shape, ds.transform, invert=True)
        assert ds.tags()["LULC_EDGE_SOURCE_AOI"].endswith("triangle.gpkg")
    assert win.col_off == 28 and win.row_off == 20  # 31.3 and 21.7 snapped down to 4
    assert 0 < inside.sum() < inside.size
    np.testing.assert_array_equal(got[inside], want[inside])
    assert (got[~inside] == engine.contract.nodata.value).all()
    assert res.class_pixels[engine.contract.nodata.name] >= (~inside).sum()
    with rasterio.open(confidence_path(tmp_path / "poly.tif")) as conf:
        assert (conf.read(1)[~inside] == conf.nodata).all()


def test_a_request_off_the_4_px_grid_is_snapped_outward(scenes, engine):
    (x0, y1), (x1, y0) = _xy(37.5, 61.2), _xy(121.0, 99.0)
    area = Area.from_bbox((x0, y0, x1, y1), UTM)
    with open_source(scenes["stack"]) as src:
        win = area_window(area, src, engine.contract.alignment)
    assert win == Window(36, 60, 88, 40)  # 37.5 -> 36, 61.2 -> 60; ends 121 -> 124, 99 -> 100
    # clipped to the scene at its far edges (203 is not a multiple of 4)
    with open_source(scenes["stack"]) as src:
        far = area_window(Area.from_bbox((*_xy(190, 149)[:1], Y0 - 1500, X0 + 3000, Y0 - 1300),
                                         UTM), src, 4)
    assert far.col_off == 188 and far.col_off + far.width == 203


def test_the_api_and_the_spec_carry_an_area(scenes, engine, tmp_path):
    box = _bbox_4326(10, 10, 70, 50)
    res = Segmenter(engine=engine).segment_file(scenes["stack"], tmp_path / "api.tif", aoi=box)
    assert (res.width, res.height) == (64, 44)
    with pytest.raises(AreaMissError, match="does not overlap"):
        segment_file(scenes["stack"], tmp_path / "none.tif", engine=engine, area=(0, 0, 1, 1))
    assert not (tmp_path / "none.tif").exists()
    spec = RunSpec(run=RunOptions(area=Area.from_bbox(box)))
    doc = json.loads(json.dumps(spec.to_dict()))
    assert RunSpec.from_dict(doc) == spec
    assert '"area"' in spec.shaping("x", "fp32") and '"area"' not in \
        RunSpec().shaping("x", "fp32")  # maps of other areas are redone, old ones kept
    poly = RunSpec(run=RunOptions(area=Area.from_file(_write_polygon(tmp_path / "t.gpkg"))))
    assert RunSpec.from_dict(json.loads(json.dumps(poly.to_dict()))) == poly


def test_a_batch_skips_a_scene_that_misses_the_area(tmp_path):
    bands, _, _ = generate(SceneSpec(width=96, height=80, seed=2))
    near = write_stack(tmp_path / "near.tif", bands)
    far = write_stack(tmp_path / "far.tif", bands,
                      transform=rasterio.transform.from_origin(600000, 5000000, 10, 10))
    x0, y1 = _xy(10, 10)
    x1, y0 = _xy(50, 40)
    r = run_cli("run", near, far, "--out-dir", tmp_path / "out", "--bbox",
                f"{x0},{y0},{x1},{y1}", "--bbox-crs", UTM, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["done"], doc["skipped"], doc["failed"]) == (1, 1, 0)
    skipped = next(x for x in doc["results"] if x["status"] == "skipped")
    assert skipped["input"] == str(far)
    assert "does not overlap" in " ".join(skipped["warnings"])
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tif")) == ["near.lulc.tif"]
    with rasterio.open(tmp_path / "out" / "near.lulc.tif") as ds:
        assert ds.shape == (32, 44)


@pytest.mark.parametrize("args, word", [
    (["--bbox", "600000,4000000,600100,4000100", "--bbox-crs", UTM], "does not overlap"),
    (["--bbox", "1,2,3"], "--bbox: expected MINX,MINY,MAXX,MAXY"),
    (["--bbox", "3,2,1,4"], "MINX < MAXX"),
    (["--bbox", "1,2,3,4", "--bbox-crs", "EPSG:0"], "unknown CRS"),
    (["--aoi", "{tmp}/garbage.geojson"], "cannot read as a vector file"),
    (["--aoi", "{tmp}/nocrs.shp"], "has no CRS"),
    (["--aoi", "{tmp}/missing.gpkg"], "no such file"),
    (["--aoi", "{tmp}/nocrs.shp", "--bbox", "1,2,3,4"], "give one"),
])
def test_bad_areas_are_one_line_errors(scenes, tmp_path, args, word):
    (tmp_path / "garbage.geojson").write_text("{not json")
    _write_polygon(tmp_path / "nocrs.shp", crs=None)
    out = tmp_path / "map.tif"
    r = run_cli("run", scenes["stack"], "-o", out, "-q",
                *[a.format(tmp=tmp_path) for a in args])
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lulc-edge: error: ") and word in lines[0], \
        r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_an_area_in_a_folder_reads_fewer_pixels(tmp_path, engine, monkeypatch):
    """Per-band files are read in strips of the block columns and rows the area and its halo
    need (README): a small area in a 600 px scene reads a few blocks, not the scene, and maps
    the whole map's pixels."""
    monkeypatch.setattr(strips, "MIN_STRIP_ROWS", 1)
    size = 600
    bands, _, _ = generate(SceneSpec(width=size, height=size, seed=4))
    folder = tmp_path / "bands"
    folder.mkdir()
    for name, band in zip(BAND_NAMES, bands, strict=True):
        stem = name if name in ("SCL", "B8A") else f"B{int(name[1:]):02d}"
        write_stack(folder / f"{stem}.tif", band[None], tiled=True, blockxsize=64,
                    blockysize=64)
    read = {}
    for label, area in (("whole", None), ("area", Area.from_bbox(
            (*_xy(280, 320)[:1], Y0 - 3200, X0 + 3200, Y0 - 2800), UTM))):
        with open_source(folder, options=SourceOptions()) as src:
            segment_file(src, tmp_path / f"{label}.tif", engine=engine, area=area)
            read[label] = {n: b._strips.pixels_read for n, b in src._bands.items()}
    whole, part = read["whole"]["B2"], read["area"]["B2"]
    assert whole == size * size
    # the checks at open decode the blocks under their 128 px samples: columns 0..127,
    # 192..383 and 448..599 of the first two 64-row strips, and the last corner's (rows and
    # columns 448..599); the area's rows and columns 280..319 and their 24 px halo then read
    # block columns 256..383 of the two strips holding rows 256..343, none read ahead
    samples = (128 + 192 + 152) * 128 + 152 * 152
    assert part == samples + 128 * 128, part
    assert all(n == part for n in read["area"].values())
    got, _, want = _offset(tmp_path / "area.tif", tmp_path / "whole.tif")
    np.testing.assert_array_equal(got, want)


def test_an_area_of_a_stack_reads_only_its_columns(tmp_path, engine, monkeypatch):
    """A stack read in strips decodes only the block columns the area's tiles read (their
    halo included), and maps the whole map's pixels."""
    monkeypatch.setattr(strips, "MIN_STRIP_ROWS", 1)
    bands, _, _ = generate(SceneSpec(width=600, height=600, seed=4))
    stack = write_stack(tmp_path / "s.tif", bands, tiled=True, blockxsize=64, blockysize=64)
    area = Area.from_bbox((X0 + 2800, Y0 - 3200, X0 + 3200, Y0 - 2800), UTM)
    read = {}
    for label, a in (("whole", None), ("area", area)):
        with open_source(stack) as src:
            assert src.in_strips
            segment_file(src, tmp_path / f"{label}.tif", engine=engine, area=a)
            read[label] = src._strips.pixels_read
    assert read["whole"] == 600 * 600
    # rows 280..319, columns 280..319 and a 24 px halo: block columns 256..383 of the two
    # 64-row strips holding rows 256..343 (none read ahead below them)
    assert read["area"] == 2 * 64 * 128, read
    got, _, want = _offset(tmp_path / "area.tif", tmp_path / "whole.tif")
    np.testing.assert_array_equal(got, want)


@needs_shared
def test_an_area_of_a_real_cog_folder_is_the_whole_map(engine, tmp_path):
    """Real L2A COGs, one per band (10, 20 and 60 m bands resampled onto the grid): a lon/lat
    box off the 4 px grid maps the whole map's pixels."""
    folder = SHARED_DATA / "l2a-29RKH-20200219"
    segment_file(folder, tmp_path / "whole.tif", engine=engine)
    with open_source(folder) as src:
        (x0, y1), (x1, y0) = src.transform * (517.3, 402.6), src.transform * (581.0, 455.0)
        box = transform_bounds(src.crs, "EPSG:4326", x0, y0, x1, y1)
    segment_file(folder, tmp_path / "area.tif", engine=engine, area=Area.from_bbox(box))
    got, win, want = _offset(tmp_path / "area.tif", tmp_path / "whole.tif")
    assert (win.col_off, win.row_off) == (516, 400)
    np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def server(tmp_path_factory, scenes):
    s = Server(tmp_path_factory.mktemp("aoi-jobs") / "jobs", "--data-root",
               str(scenes["stack"].parent))
    yield s
    s.stop()


def test_a_service_job_maps_a_bbox(server, scenes, engine, tmp_path):
    (x0, y1), (x1, y0) = _xy(37.5, 61.2), _xy(151.3, 130.9)
    r = server.post("/jobs", json={"path": "scene.tif", "bbox": [x0, y0, x1, y1],
                                   "bbox_crs": UTM})
    assert r.status_code == 202, r.text
    doc = server.wait(r.json()["id"])
    assert doc["status"] == "done", doc
    got = httpx.get(f"{server.url}/jobs/{doc['id']}/map.tif", timeout=60).content
    (tmp_path / "job.tif").write_bytes(got)
    segment_file(scenes["stack"], tmp_path / "cli.tif", engine=engine,
                 area=Area.from_bbox((x0, y0, x1, y1), UTM))
    with rasterio.open(tmp_path / "job.tif") as a, rasterio.open(tmp_path / "cli.tif") as b:
        assert a.transform == b.transform and a.shape == b.shape == (72, 116)
        np.testing.assert_array_equal(a.read(1), b.read(1))
    # a GeoJSON geometry in lon/lat, and the refusals
    poly = {"type": "Polygon", "coordinates": [[list(p) for p in (
        _bbox_ring(_bbox_4326(20, 20, 60, 60)))]]}
    r = server.post("/jobs", json={"path": "scene.tif", "aoi": poly})
    assert r.status_code == 202, r.text
    assert server.wait(r.json()["id"])["status"] == "done"
    for body, word in (({"bbox": [0, 0, 1, 1]}, "does not overlap"),
                       ({"bbox": "1,2"}, "expected MINX"),
                       ({"aoi": {"type": "Point", "coordinates": [1, 2]}}, "Polygon"),
                       ({"bbox": [1, 2, 3, 4], "aoi": poly}, "one of them")):
        r = server.post("/jobs", json={"path": "scene.tif", **body})
        assert r.status_code == 400 and word in r.json()["error"], r.text


def _bbox_ring(box: tuple[float, ...]) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = box
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
