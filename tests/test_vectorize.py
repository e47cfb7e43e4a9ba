"""lulc-edge vectorize: polygons independent of the row chunks, one per 4-connected region,
areas summing to pixel counts x pixel area (on the ellipsoid for geographic maps), sieving."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner

from lulc_edge.cli import main
from lulc_edge.vectorize import vectorize
from lulc_edge.vectors import VECTOR_HINT
from lulc_edge.zonal import class_areas

from .test_evaluate import NAMES, write_map

pyogrio = pytest.importorskip("pyogrio")
shapely = pytest.importorskip("shapely")
ndimage = pytest.importorskip("scipy.ndimage")


def blocky(seed, shape=(60, 70), cell=4, nodata=True):
    """Class regions of a few pixels, some touching only at corners, a nodata corner."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 5, (shape[0] // cell + 1, shape[1] // cell + 1))
    vals = np.kron(coarse, np.ones((cell, cell), int))[:shape[0], :shape[1]]
    vals = np.where(rng.random(shape) < 0.05, rng.integers(0, 5, shape), vals)
    if nodata:
        vals[:6, :9] = 255
    return vals


def read_back(path, transform):
    """(class_id, area_ha, polygon in pixel coordinates) of each feature of a written file."""
    _, _, wkb, (names, ids, area, *_) = pyogrio.raw.read(path)
    inv = ~transform
    polys = [shapely.affinity.affine_transform(g, [inv.a, inv.b, inv.d, inv.e, inv.c, inv.f])
             for g in shapely.from_wkb(wkb)]
    assert [NAMES[i] for i in ids] == list(names)
    return ids, area, polys


def components(vals, k):
    """4-connected regions of class k (independent of rasterio/GDAL)."""
    return ndimage.label(vals == k)[1]


def test_polygons_do_not_depend_on_chunks_and_match_the_regions(tmp_path):
    vals = blocky(0)
    tr = Affine(10, 0, 500000, 0, -10, 5000000)
    write_map(tmp_path / "map.tif", vals)
    whole = vectorize(tmp_path / "map.tif", tmp_path / "whole.gpkg", chunk_rows=10_000)
    chunked = vectorize(tmp_path / "map.tif", tmp_path / "chunked.gpkg", chunk_rows=5)
    assert whole.polygons == chunked.polygons
    assert whole.polygons == tuple(components(vals, k) for k in range(5))
    counts = np.bincount(vals.ravel(), minlength=256)[:5]
    assert chunked.hectares == pytest.approx(tuple(counts * 100 / 10_000), rel=1e-12)
    sets = []
    for name in ("whole.gpkg", "chunked.gpkg"):
        ids, area, polys = read_back(tmp_path / name, tr)
        assert np.bincount(ids, weights=area, minlength=5) == pytest.approx(counts / 100)
        assert all(p.area == pytest.approx(a * 100) for p, a in zip(polys, area, strict=True))
        sets.append(sorted((int(i), shapely.normalize(p).wkt) for i, p in zip(ids, polys,
                                                                               strict=True)))
    assert sets[0] == sets[1]


def test_geographic_areas_equal_the_pixel_areas_on_the_ellipsoid(tmp_path):
    vals = blocky(1, shape=(50, 40))
    tr = Affine(0.001, 0, 10.0, 0, -0.001, 65.0)
    write_map(tmp_path / "map.tif", vals, crs="EPSG:4326", transform=tr)
    res = vectorize(tmp_path / "map.tif", tmp_path / "map.gpkg", chunk_rows=7)
    expected = class_areas(tmp_path / "map.tif").whole.hectares
    assert res.hectares == pytest.approx(expected, rel=1e-9)
    ids, area, _ = read_back(tmp_path / "map.gpkg", tr)
    assert np.bincount(ids, weights=area, minlength=5) == pytest.approx(expected, rel=1e-9)


def test_sieve_keeps_no_region_below_the_minimum_and_conserves_area(tmp_path):
    vals = blocky(2, shape=(64, 64), nodata=False)
    tr = Affine(10, 0, 500000, 0, -10, 5000000)
    write_map(tmp_path / "map.tif", vals)
    for chunk in (8, 10_000):
        out = tmp_path / f"sieved-{chunk}.gpkg"
        res = vectorize(tmp_path / "map.tif", out, min_area_ha=0.2, chunk_rows=chunk)
        assert res.sieved_pixels > 0
        ids, area, polys = read_back(out, tr)
        assert min(p.area for p in polys) >= 20 - 1e-6           # 0.2 ha = 20 px of 100 m2
        assert sum(area) == pytest.approx(64 * 64 / 100)
        assert sum(res.polygons) < sum(components(vals, k) for k in range(5))


def test_cli_vectorize_default_name_fields_and_refusals(tmp_path):
    vals = blocky(3, shape=(20, 20))
    write_map(tmp_path / "scene.lulc.tif", vals)
    runner = CliRunner()
    res = runner.invoke(main, ["vectorize", str(tmp_path / "scene.lulc.tif"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["output"] == str(tmp_path / "scene.lulc.gpkg")
    info = pyogrio.read_info(tmp_path / "scene.lulc.gpkg")
    assert list(info["fields"]) == ["class", "class_id", "area_ha"]
    assert info["crs"] == "EPSG:32633"
    res = runner.invoke(main, ["vectorize", str(tmp_path / "scene.lulc.tif")])
    assert res.exit_code == 1
    assert res.stderr.strip() == (f"lulc-edge: error: {tmp_path / 'scene.lulc.gpkg'}: exists "
                                  "(use --overwrite)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.lulc.gpkg", "scene.lulc.tif"]


def test_cli_vectorize_without_the_extra_says_how_to_install(tmp_path, monkeypatch):
    write_map(tmp_path / "map.tif", blocky(4, shape=(8, 8)))
    monkeypatch.setitem(sys.modules, "shapely", None)
    res = CliRunner().invoke(main, ["vectorize", str(tmp_path / "map.tif")])
    assert res.exit_code == 1
    assert res.stderr.strip() == ("lulc-edge: error: vectorize needs the vector extra "
                                  f"(shapely missing): {VECTOR_HINT}")
    assert not (tmp_path / "map.gpkg").exists()


def write_confidence(path, pct):
    """A MAP.confidence.tif as run --confidence writes it: uint8 percent, nodata 255."""
    import rasterio

    with rasterio.open(path, "w", driver="GTiff", width=pct.shape[1], height=pct.shape[0],
                       count=1, dtype="uint8", crs="EPSG:32633",
                       transform=Affine(10, 0, 500000, 0, -10, 5000000), nodata=255) as ds:
        ds.write(pct.astype("uint8"), 1)


def test_confidence_is_the_mean_of_each_polygons_pixels_across_chunks(tmp_path):
    vals = blocky(5)
    rng = np.random.default_rng(5)
    pct = np.where(rng.random(vals.shape) < 0.1, 255, rng.integers(0, 101, vals.shape))
    tr = Affine(10, 0, 500000, 0, -10, 5000000)
    write_map(tmp_path / "map.tif", vals)
    write_confidence(tmp_path / "map.confidence.tif", pct)
    res = vectorize(tmp_path / "map.tif", tmp_path / "map.gpkg", chunk_rows=6)
    assert res.confidence
    assert list(pyogrio.read_info(tmp_path / "map.gpkg")["fields"]) == [
        "class", "class_id", "area_ha", "confidence"]
    _, _, wkb, (_, ids, _, conf) = pyogrio.raw.read(tmp_path / "map.gpkg")
    inv = ~tr
    rows, cols = np.mgrid[:vals.shape[0], :vals.shape[1]] + 0.5
    merged = 0
    for g, got in zip(shapely.from_wkb(wkb), conf, strict=True):
        p = shapely.affinity.affine_transform(g, [inv.a, inv.b, inv.d, inv.e, inv.c, inv.f])
        inside = shapely.contains_xy(p, cols, rows) & (pct != 255)
        merged += p.bounds[3] - p.bounds[1] > 6
        if inside.any():
            assert got == pytest.approx(pct[inside].mean(), rel=1e-12)
        else:
            assert np.isnan(got)
    assert merged > 5       # polygons spanning chunks are checked too
    assert sum(res.polygons) == len(ids)


def test_confidence_of_another_size_is_refused(tmp_path):
    write_map(tmp_path / "map.tif", blocky(6, shape=(20, 20)))
    write_confidence(tmp_path / "map.confidence.tif", np.zeros((10, 20)))
    res = CliRunner().invoke(main, ["vectorize", str(tmp_path / "map.tif")])
    assert res.exit_code == 1
    assert res.stderr.strip() == (f"lulc-edge: error: {tmp_path / 'map.confidence.tif'}: "
                                  "20 x 10 px, the map is 20 x 20")
    assert not (tmp_path / "map.gpkg").exists()


def coverage_checks(polys, reference_union):
    """No overlaps (areas add up to the union's), no gaps against the reference union."""
    assert all(shapely.is_valid(polys))
    union = shapely.union_all(polys)
    assert sum(shapely.area(polys)) == pytest.approx(union.area, rel=1e-9)
    return shapely.symmetric_difference(union, reference_union).area


def rings(shape=(64, 72), nodata=True):
    """Curved class boundaries (pixel staircases) around two centres, a nodata corner."""
    r, c = np.mgrid[:shape[0], :shape[1]]
    vals = ((np.hypot(r - 20, c - 25) // 9 + np.hypot(r - 50, c - 60) // 13) % 5).astype(int)
    if nodata:
        vals[:6, :9] = 255
    return vals


@pytest.mark.parametrize("nodata", [False, True])
def test_simplify_keeps_neighbours_meeting_and_areas_of_the_pixels(tmp_path, nodata):
    vals = rings(nodata=nodata)
    tr = Affine(10, 0, 500000, 0, -10, 5000000)
    write_map(tmp_path / "map.tif", vals)
    exact = vectorize(tmp_path / "map.tif", tmp_path / "exact.gpkg", chunk_rows=9)
    simple = vectorize(tmp_path / "map.tif", tmp_path / "simple.gpkg", chunk_rows=9,
                       simplify_m=15)
    assert simple.polygons == exact.polygons        # one polygon per region still
    assert simple.hectares == exact.hectares        # the pixels' areas
    assert simple.vertices < 0.7 * exact.vertices
    ids0, _, polys0 = read_back(tmp_path / "exact.gpkg", tr)
    ids1, _, polys1 = read_back(tmp_path / "simple.gpkg", tr)
    gap = coverage_checks(np.array(polys1), shapely.union_all(polys0))
    if nodata:       # the nodata corner's edge is simplified too: a little area moves
        assert gap < 20
    else:            # the map's rectangle exactly
        assert gap == pytest.approx(0, abs=1e-6)
    for k in range(5):          # each class's drawn area stays near its pixels
        a0 = sum(p.area for p, i in zip(polys0, ids0, strict=True) if i == k)
        a1 = sum(p.area for p, i in zip(polys1, ids1, strict=True) if i == k)
        assert a1 == pytest.approx(a0, rel=0.05)


@pytest.mark.parametrize("ext", [".gpkg", ".fgb", ".geojson"])
def test_each_format_is_written_and_reads_back(tmp_path, ext):
    vals = blocky(8, shape=(30, 40))
    tr = Affine(10, 0, 500000, 0, -10, 5000000)
    write_map(tmp_path / "map.tif", vals)
    write_confidence(tmp_path / "map.confidence.tif", np.full(vals.shape, 80))
    res = vectorize(tmp_path / "map.tif", tmp_path / f"out{ext}", chunk_rows=7)
    info = pyogrio.read_info(tmp_path / f"out{ext}")
    assert info["features"] == sum(res.polygons)
    assert list(info["fields"]) == ["class", "class_id", "area_ha", "confidence"]
    assert "32633" in str(info["crs"])
    ids, area, polys = read_back(tmp_path / f"out{ext}", tr)
    assert np.bincount(ids, weights=area, minlength=5) == pytest.approx(res.hectares)
    assert sum(p.area for p in polys) == pytest.approx(sum(res.hectares) * 100)
    _, _, _, fields = pyogrio.raw.read(tmp_path / f"out{ext}")
    assert np.all(fields[3] == 80)
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


def test_geoparquet_or_an_unknown_extension_is_refused_in_one_line(tmp_path):
    write_map(tmp_path / "map.tif", blocky(9, shape=(10, 10)))
    runner = CliRunner()
    out = tmp_path / "map.parquet"
    res = runner.invoke(main, ["vectorize", str(tmp_path / "map.tif"), "-o", str(out)])
    if "Parquet" in pyogrio.list_drivers(write=True):
        assert res.exit_code == 0, res.output
        assert pyogrio.read_info(out)["features"] > 0
    else:
        assert res.exit_code == 1
        assert res.stderr.strip() == (
            f"lulc-edge: error: {out}: this GDAL ({pyogrio.__gdal_version_string__}) has no "
            "Parquet driver; write .gpkg or .fgb instead")
    res = runner.invoke(main, ["vectorize", str(tmp_path / "map.tif"), "-o",
                               str(tmp_path / "map.xyz")])
    assert res.exit_code == 1
    assert res.stderr.strip() == (f"lulc-edge: error: {tmp_path / 'map.xyz'}: unknown vector "
                                  "format '.xyz' (use .fgb, .geojson, .geoparquet, .gpkg, "
                                  ".json, .parquet)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif"]


def test_counts_and_areas_agree_with_polygonizing_the_whole_map_by_hand(tmp_path):
    """The manual way (rasterio.features.shapes over the whole map, i.e. gdal_polygonize with
    4-connectivity) gives the same polygons per class and the same areas."""
    from rasterio.features import shapes

    vals = blocky(10, shape=(90, 75))
    tr = Affine(10, 0, 500000, 0, -10, 5000000)
    write_map(tmp_path / "map.tif", vals)
    res = vectorize(tmp_path / "map.tif", tmp_path / "map.gpkg", chunk_rows=8)
    counts, area = np.zeros(5, int), np.zeros(5)
    for geom, value in shapes(vals.astype("uint8"), mask=vals < 5, transform=tr):
        counts[int(value)] += 1
        area[int(value)] += shapely.geometry.shape(geom).area / 10_000
    assert res.polygons == tuple(counts)
    assert res.hectares == pytest.approx(tuple(area), rel=1e-12)
