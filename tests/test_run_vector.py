"""run --vector: the map's polygons made right after the map, in single runs and batches (the
skip check makes missing or outdated ones again), the map kept when they fail."""

from __future__ import annotations

import json
import resource
import signal

import numpy as np
import pytest
import rasterio

from lulc_edge.journal import journal_path
from lulc_edge.raster import verify_output

from .conftest import interrupt_after, run_cli, run_cli_process

pyogrio = pytest.importorskip("pyogrio")
shapely = pytest.importorskip("shapely")

CPU = ("--device", "cpu", "--precision", "fp32")


def _features(path):
    """(class_id, area_ha, confidence or None, geometries) of a polygons file."""
    meta, _, wkb, fields = pyogrio.raw.read(path)
    names = list(meta["fields"])
    conf = fields[names.index("confidence")] if "confidence" in names else None
    return fields[names.index("class_id")], fields[names.index("area_ha")], conf, \
        shapely.from_wkb(wkb)


def _class_pixels(map_path):
    """Pixels per class value of a map (classes only: nodata and Cloud are not polygons)."""
    with rasterio.open(map_path) as ds:
        k = sum(1 for t in ds.tags() if t.startswith("CLASS_") and int(t[6:]) < 250)
        return np.bincount(ds.read(1).ravel(), minlength=256)[:k]


def _hidden(folder):
    return sorted(p.name for p in folder.rglob(".*"))


def test_run_vector_writes_the_maps_polygons_with_pixel_exact_areas(make_scene, tmp_path):
    src, _, _ = make_scene(150, 120)
    res = run_cli("run", src, "--vector", tmp_path / "poly.gpkg", "--confidence", "--json",
                  "-q", *CPU)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    ids, area, conf, geoms = _features(tmp_path / "poly.gpkg")
    assert doc["vector"]["output"] == str(tmp_path / "poly.gpkg")
    assert doc["vector"]["features"] == len(ids) > 0 and doc["vector"]["confidence"]
    assert shapely.is_valid(geoms).all()
    px = _class_pixels(tmp_path / "scene.lulc.tif")
    summed = np.bincount(ids, weights=area, minlength=len(px))
    np.testing.assert_allclose(summed, px * 0.01, rtol=1e-9)  # 10 m pixels: 0.01 ha each
    np.testing.assert_allclose(shapely.area(geoms).sum(), px.sum() * 100.0, rtol=1e-9)
    assert conf is not None and np.nanmin(conf) >= 0 and np.nanmax(conf) <= 100
    for name, c in doc["vector"]["classes"].items():
        assert c["hectares"] == pytest.approx(doc["class_hectares"][name])
    table = run_cli("run", src, "--vector", tmp_path / "poly.gpkg", "--overwrite", *CPU)
    assert f"polygons: {tmp_path / 'poly.gpkg'} ({len(ids)} features)" in table.stdout


def test_run_vector_options_and_the_batch_rule(make_scene, tmp_path):
    a, _, _ = make_scene(96, 80, seed=1, name="a.tif")
    b, _, _ = make_scene(88, 72, seed=2, name="b.tif")
    one = run_cli("run", a, b, "--vector", tmp_path / "all.gpkg", *CPU)
    assert one.returncode == 1
    assert one.stderr == (f"lulc-edge: error: {tmp_path / 'all.gpkg'}: --vector FILE names one "
                          "file, but 2 inputs were given; give an extension instead (--vector "
                          ".gpkg writes NAME.gpkg beside each map)\n")
    alone = run_cli("run", a, "--min-area", "0.5", *CPU)
    assert alone.returncode == 1 and "give --vector too" in alone.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "b.tif"]
    res = run_cli("run", a, b, "--out-dir", tmp_path / "maps", "--vector", ".fgb",
                  "--min-area", "0.05", "--json", "-q", *CPU)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    for r, name in zip(doc["results"], ("a", "b"), strict=True):
        path = tmp_path / "maps" / f"{name}.lulc.fgb"
        assert r["vector"]["output"] == str(path) and r["vector"]["features"] > 0
        assert pyogrio.read_info(path)["features"] == r["vector"]["features"]
        assert r["vector"]["sieved_pixels"] > 0  # 0.05 ha: regions under 5 px


def test_a_failing_vector_step_keeps_the_map_and_leaves_no_partial_file(make_scene, tmp_path):
    src, _, _ = make_scene(120, 100)
    gone = run_cli("run", src, "--vector", tmp_path / "no" / "poly.gpkg", *CPU)
    assert gone.returncode == 1
    assert gone.stderr == (f"lulc-edge: error: {tmp_path / 'no' / 'poly.gpkg'}: vector output "
                           f"directory {tmp_path / 'no'} does not exist\n")
    assert not (tmp_path / "scene.lulc.tif").exists()  # refused before anything was mapped

    def limit_file_size():  # the map (~10 kB) fits, a GeoPackage (>= 100 kB) does not
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli_process("run", src, "-o", out / "map.tif", "--vector", out / "poly.gpkg",
                           *CPU, preexec_fn=limit_file_size)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lulc-edge: error: {out / 'poly.gpkg'}: "
                                                   "cannot write (")
    assert lines[0].endswith(f"; the map {out / 'map.tif'} is complete (lulc-edge vectorize "
                             f"{out / 'map.tif'} -o {out / 'poly.gpkg'} makes its polygons)")
    assert sorted(p.name for p in out.iterdir()) == ["map.tif", "map.tif.aux.xml"]
    assert verify_output(out / "map.tif") is None


def test_a_batch_remakes_missing_or_outdated_polygons_from_the_map(make_scene, tmp_path):
    for i in range(2):
        make_scene(96, 80, seed=i, name=f"s{i}.tif")
    maps = tmp_path / "maps"
    args = ("run", tmp_path / "s0.tif", tmp_path / "s1.tif", "--out-dir", maps, "--vector",
            ".gpkg", "--json", "-q", *CPU)
    assert run_cli(*args).returncode == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in maps.glob("*.tif")}
    (maps / "s1.lulc.gpkg").unlink()
    again = run_cli(*args)
    doc = json.loads(again.stdout)
    assert [r["status"] for r in doc["results"]] == ["skipped", "skipped"]
    assert doc["results"][0]["warnings"] == []
    assert doc["results"][1]["warnings"] == [f"{maps / 's1.lulc.gpkg'} is missing: made again "
                                             "from the existing map"]
    assert pyogrio.read_info(maps / "s1.lulc.gpkg")["features"] > 0
    assert {p.name: p.stat().st_mtime_ns for p in maps.glob("*.tif")} == stamps  # not remapped
    sieved = run_cli(*args, "--min-area", "0.05")
    doc = json.loads(sieved.stdout)
    assert [r["status"] for r in doc["results"]] == ["skipped", "skipped"]
    assert all("was made with other options" in r["warnings"][0] for r in doc["results"])
    for name in ("s0", "s1"):
        ids, area, _, _ = _features(maps / f"{name}.lulc.gpkg")
        assert area.min() >= 0.05 - 1e-9
    assert json.loads(run_cli(*args, "--min-area", "0.05").stdout)["results"][0]["warnings"] \
        == []
    assert _hidden(tmp_path) == []


def test_resume_finishes_the_map_then_writes_its_polygons(engine, make_scene, tmp_path):
    from lulc_edge import RunOptions, RunSpec, segment_file

    src, _, _ = make_scene(256, 192)
    out, poly = tmp_path / "map.tif", tmp_path / "map.fgb"
    spec = RunSpec(run=RunOptions(tile=64, progress=False, vector=str(poly)))
    with pytest.raises(KeyboardInterrupt):
        segment_file(src, out, engine=engine, spec=spec, on_tile=interrupt_after(4))
    assert journal_path(out).is_file() and not out.exists() and not poly.exists()
    res = run_cli("run", src, "-o", out, "--tile", "64", "--vector", poly, "--resume",
                  "--json", "-q", *CPU)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert 0 < doc["tiles_inferred"] < doc["tiles_total"]
    ids, area, _, _ = _features(poly)
    np.testing.assert_allclose(np.bincount(ids, weights=area, minlength=5)[:5],
                               _class_pixels(out)[:5] * 0.01, rtol=1e-9)
    assert doc["vector"]["features"] == len(ids) and _hidden(tmp_path) == []
