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
    _, _, wkb, (names, ids, area) = pyogrio.raw.read(path)
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
