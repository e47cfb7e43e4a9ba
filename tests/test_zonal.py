"""lulc-edge stats: class areas of a map, whole and per zone, against independent numpy
computations (pixel centres in polygons, cell areas integrated on the ellipsoid) and once
against a manual rasterio rasterize of the whole grid."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from rasterio.features import rasterize
from rasterio.warp import transform_geom

from lulc_edge.cli import main
from lulc_edge.zonal import NODATA_ROW, WHOLE, class_areas

from .test_evaluate import NAMES, TR, UTM, apply, write_map


def _map(seed=0, shape=(90, 120)):
    vals = np.random.default_rng(seed).integers(0, 5, shape)
    vals[:3, :7] = 255
    vals[shape[0] // 2, 2:6] = 9   # a value outside the classes (clouds, later)
    return vals


def _zones_file(path, zones, crs="EPSG:32633"):
    """GeoJSON of (name, polygon ring) pairs."""
    feats = [{"type": "Feature", "properties": {"name": n},
              "geometry": {"type": "Polygon", "coordinates": [ring]}} for n, ring in zones]
    crs_urn = f"urn:ogc:def:crs:{crs.replace(':', '::')}"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats,
                                "crs": {"type": "name", "properties": {"name": crs_urn}}}))
    return path


def _ring(c0, r0, c1, r1, tr=TR):
    """A rectangle with corners at (col, row) positions (fractions avoid pixel centres)."""
    (x0, y0), (x1, y1) = tr @ (c0, r0), tr @ (c1, r1)
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def test_whole_map_counts_and_hectares_match_numpy(tmp_path):
    vals = _map()
    write_map(tmp_path / "map.tif", vals)
    res = class_areas(tmp_path / "map.tif", block_rows=13)
    counts = np.bincount(vals.ravel(), minlength=256)
    assert res.classes == NAMES and res.whole.zone == WHOLE
    assert res.whole.pixels == tuple(counts[:5])
    assert res.whole.nodata_pixels == counts[255] + counts[9]
    assert res.whole.hectares == pytest.approx(tuple(counts[:5] * 100 / 10_000))
    assert sum(res.whole.percent) == pytest.approx(100)


def test_zones_match_pixel_centres_in_polygons(tmp_path):
    shapely = pytest.importorskip("shapely")
    vals = _map(1)
    write_map(tmp_path / "map.tif", vals)
    zones = [("north", _ring(10.3, -5.2, 60.7, 30.4)),          # crosses the top edge
             ("core", _ring(40.6, 20.2, 100.1, 70.8)),           # overlaps north
             ("core", _ring(0.2, 80.3, 5.7, 88.6)),              # a second part of core
             ("away", _ring(500.2, 500.2, 510.2, 510.2))]        # outside the map
    _zones_file(tmp_path / "zones.geojson", zones)
    res = class_areas(tmp_path / "map.tif", tmp_path / "zones.geojson", "name", block_rows=16)
    rows, cols = np.mgrid[0:vals.shape[0], 0:vals.shape[1]]
    x, y = apply(TR, cols + 0.5, rows + 0.5)
    assert [z.zone for z in res.zones] == ["north", "core", "away"]
    for z in res.zones:
        polys = shapely.union_all([shapely.Polygon(r) for n, r in zones if n == z.zone])
        inside = shapely.contains_xy(polys, x, y)
        counts = np.bincount(vals[inside], minlength=256)
        assert z.pixels == tuple(counts[:5]), z.zone
        assert z.nodata_pixels == counts[5:].sum()
        assert z.hectares == pytest.approx(tuple(counts[:5] / 100))
    assert res.zones[2].pixels == (0,) * 5 and res.zones[2].percent == (None,) * 5


def test_zones_in_another_crs_equal_a_manual_rasterio_rasterize(tmp_path):
    pytest.importorskip("pyogrio")
    vals = _map(2)
    write_map(tmp_path / "map.tif", vals)
    ring = _ring(12.3, 8.7, 95.2, 61.4)
    ring_ll = transform_geom(UTM, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})
    _zones_file(tmp_path / "zones.geojson", [("a", ring_ll["coordinates"][0])],
                crs="EPSG:4326")
    res = class_areas(tmp_path / "map.tif", tmp_path / "zones.geojson", "name")
    back = transform_geom("EPSG:4326", UTM, ring_ll)
    mask = rasterize([(back, 1)], out_shape=vals.shape, transform=TR, fill=0) > 0
    counts = np.bincount(vals[mask], minlength=256)
    assert res.zones[0].pixels == tuple(counts[:5])


def _cell_area_m2(lat0, lat1, dlon, a=6378137.0, rf=298.257223563):
    """Area of a lat/lon cell on the ellipsoid by numerical integration of
    a^2 (1 - e^2) cos(phi) / (1 - e^2 sin^2(phi))^2 dphi dlambda (independent of areas.py)."""
    e2 = (1 / rf) * (2 - 1 / rf)
    phi = np.linspace(math.radians(lat0), math.radians(lat1), 2001)
    f = a * a * (1 - e2) * np.cos(phi) / (1 - e2 * np.sin(phi) ** 2) ** 2
    return abs(np.trapezoid(f, phi)) * math.radians(dlon)


def test_geographic_map_areas_are_on_the_ellipsoid(tmp_path):
    vals = _map(3, shape=(40, 30))
    tr = Affine(0.01, 0, 10.0, 0, -0.01, 61.0)
    write_map(tmp_path / "map.tif", vals, crs="EPSG:4326", transform=tr)
    res = class_areas(tmp_path / "map.tif", block_rows=7)
    row_m2 = np.array([_cell_area_m2(61.0 - 0.01 * r, 61.0 - 0.01 * (r + 1), 0.01)
                       for r in range(40)])
    expected = [(np.where(vals == k, 1, 0).sum(axis=1) * row_m2).sum() / 10_000
                for k in range(5)]
    assert res.whole.hectares == pytest.approx(expected, rel=1e-7)
    flat = np.bincount(vals.ravel(), minlength=5)[:5] * row_m2.mean() / 10_000
    assert not np.allclose(res.whole.hectares, flat, rtol=1e-4)     # rows differ in area


def test_map_without_crs_has_pixels_and_no_hectares(tmp_path):
    vals = _map(4, shape=(10, 10))
    with rasterio.open(tmp_path / "map.tif", "w", driver="GTiff", width=10, height=10, count=1,
                       dtype="uint8", nodata=255) as ds:
        ds.write(vals.astype("uint8"), 1)
    res = class_areas(tmp_path / "map.tif")       # no tags: the bundled model's class names
    assert res.whole.hectares is None and res.no_area == "the map has no CRS"
    assert res.classes == NAMES
    assert sum(res.whole.percent) == pytest.approx(100)


def test_cli_stats_table_json_and_csv(tmp_path):
    vals = _map(5)
    write_map(tmp_path / "map.tif", vals)
    _zones_file(tmp_path / "zones.geojson", [("z1", _ring(2.2, 2.2, 50.2, 50.2))])
    args = ["stats", str(tmp_path / "map.tif"), "--zones", str(tmp_path / "zones.geojson")]
    runner = CliRunner()
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "| zone | class | pixels | hectares | % |" in res.stdout
    assert f"| z1 | {NODATA_ROW} |" in res.stdout
    doc = json.loads(runner.invoke(main, [*args, "--json"]).stdout)
    assert doc["zones"][0]["zone"] == "z1"
    counts = np.bincount(vals[2:50, 2:50].ravel(), minlength=256)
    assert [doc["zones"][0]["classes"][n]["pixels"] for n in NAMES] == counts[:5].tolist()
    res = runner.invoke(main, [*args, "-o", str(tmp_path / "areas.csv"), "-q"])
    assert res.exit_code == 0 and res.stdout == ""
    rows = list(csv.DictReader(open(tmp_path / "areas.csv")))
    assert len(rows) == 2 * 6 and rows[0]["zone"] == WHOLE
    assert int(rows[6 + 4]["pixels"]) == counts[4]


@pytest.mark.parametrize("args, message", [
    (["missing.tif"], "missing.tif: no such file"),
    (["MAP", "--zones", "zones.geojson", "--field", "district"],
     "zones.geojson: no field 'district' (has name)"),
    (["MAP", "--zones", "nozones.gpkg"], "nozones.gpkg: no such file"),
    (["MAP", "--zones", "bad.geojson"], "bad.geojson: cannot read as a vector file"),
    (["MAP", "-o", "areas.xlsx"], "unknown report format"),
    (["scene.tif"], "scene.tif: not a class map (band 1 is uint16; lulc-edge class maps are "
                    "uint8)"),
])
def test_cli_stats_bad_input_is_one_line(tmp_path, args, message):
    pytest.importorskip("pyogrio")
    write_map(tmp_path / "map.tif", _map(6, shape=(8, 8)))
    _zones_file(tmp_path / "zones.geojson", [("z1", _ring(0.5, 0.5, 4.5, 4.5))])
    (tmp_path / "bad.geojson").write_text("{not json")
    write_map(tmp_path / "scene.tif", _map(6, shape=(8, 8)), dtype="uint16")
    subst = {"MAP": str(tmp_path / "map.tif")}
    res = CliRunner().invoke(main, ["stats", *(subst.get(a, str(tmp_path / a) if "." in a
                                                          else a) for a in args)])
    assert res.exit_code != 0
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lulc-edge: error:"), err
    assert message in err


def test_cloud_pixels_have_a_row_of_their_own(tmp_path):
    """Cloud (254) is not nodata: its own row (pixels, hectares, no percent: percentages are
    of the classified area) in the table, CSV and JSON, for the whole map and each zone."""
    vals = _map()
    vals[40:50, 60:80] = 254
    write_map(tmp_path / "map.tif", vals)
    zones = _zones_file(tmp_path / "z.geojson", [("east", _ring(60.1, 0.1, 119.9, 89.9))])
    res = class_areas(tmp_path / "map.tif", zones)
    counts = np.bincount(vals.ravel(), minlength=256)
    assert res.whole.cloud_pixels == 200 and res.whole.cloud_hectares == pytest.approx(2.0)
    assert res.whole.nodata_pixels == counts[255] + counts[9]
    assert res.zones[0].cloud_pixels == 200
    rows = [r for r in res.rows() if r[1] == "Cloud"]
    assert rows == [(WHOLE, "Cloud", 200, pytest.approx(2.0), None),
                    ("east", "Cloud", 200, pytest.approx(2.0), None)]
    assert res.as_dict()["whole_map"]["cloud_pixels"] == 200
    out = CliRunner().invoke(main, ["stats", str(tmp_path / "map.tif")])
    assert "| (whole map) | Cloud | 200 | 2.00 | – |" in out.output
    vals[vals == 254] = 0  # a map without Cloud has no Cloud row
    write_map(tmp_path / "clear.tif", vals)
    assert not [r for r in class_areas(tmp_path / "clear.tif").rows() if r[1] == "Cloud"]
