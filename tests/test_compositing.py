"""``lulc-edge composite`` end to end: files in, composite map and counts out, checked against an
independent numpy reference built from per-date ``--probs`` runs, against single-scene maps,
across grids, after a SIGKILL, and on a Dask cluster with a worker killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject

from lulc_edge.compositing import CompositeOptions, composite_file
from lulc_edge.engine import EngineOptions
from lulc_edge.journal import journal_path
from lulc_edge.raster import confidence_path, probs_path
from lulc_edge.runfile import segment_file
from lulc_edge.sinks.counts import counts_path
from lulc_edge.spec import RunSpec
from lulc_edge.synthetic import SCL_INDEX, SceneSpec, generate

from .conftest import run_cli, start_cli, write_stack
from .test_composite import noisy_date, plant_cloud

SPEC = RunSpec.of(engine=EngineOptions(device="cpu", precision="fp32", threads=1)).replace(
    progress=False, tile=64)


def _read(path, band=1):
    with rasterio.open(path) as ds:
        return ds.read(band) if band else ds.read()


@pytest.fixture()
def dates(tmp_path):
    """Three dates of the same synthetic ground (own noise each), a thick cloud planted in the
    second; returns (paths, labels, data mask, cloud box)."""
    spec = SceneSpec(width=160, height=144, seed=11, cloud_fraction=0.0, nodata_holes=0,
                     region_scale=24)
    base, labels, _ = generate(spec)
    data = np.any(np.delete(base, SCL_INDEX, axis=0) != 0, axis=0)
    rng = np.random.default_rng(0)
    box = (slice(30, 100), slice(40, 110))
    paths = []
    for d in range(3):
        bands = noisy_date(base, data, rng)
        if d == 1:
            plant_cloud(bands, *box)
        paths.append(str(write_stack(tmp_path / f"d{d}.tif", bands)))
    return paths, labels, data, box


def _singles(paths, tmp_path, spec=SPEC):
    """Each date's own map with its probabilities: (classes, probs) per date."""
    out = []
    for i, p in enumerate(paths):
        dst = tmp_path / f"single{i}.tif"
        segment_file(p, dst, spec=spec.replace(probs=True))
        out.append((_read(dst), _read(probs_path(dst), None)))
    return out


@pytest.mark.parametrize("rule", ["mean", "mode"])
def test_composite_equals_a_numpy_reference_of_the_per_date_runs(dates, tmp_path, rule):
    paths, labels, data, box = dates
    singles = _singles(paths, tmp_path)
    res = composite_file(paths, tmp_path / "c.tif", spec=SPEC.replace(confidence=True),
                         options=CompositeOptions(rule))
    classes, conf = _read(tmp_path / "c.tif"), _read(confidence_path(tmp_path / "c.tif"))
    counts = _read(counts_path(tmp_path / "c.tif"), None)

    # the reference, from the definition: per-date probabilities where the date's own map
    # has a class (not nodata 255, not Cloud 254), averaged; votes of the per-date classes
    valid = np.stack([(c != 255) & (c != 254) for c, _ in singles])
    n_valid = valid.sum(axis=0)
    total = sum(np.where(v, np.nan_to_num(p), 0.0) for v, (_, p) in zip(valid, singles,
                                                                          strict=True))
    mean = np.where(n_valid > 0, total / np.maximum(n_valid, 1), -1)
    if rule == "mean":
        ref = np.argmax(mean, axis=0)
    else:
        votes = np.stack([sum(v & (c == k) for v, (c, _) in zip(valid, singles, strict=True))
                          for k in range(5)])
        ref = np.argmax(np.where(votes == votes.max(axis=0), mean, -2), axis=0)
    ref = np.where(n_valid > 0, ref, 255)
    np.testing.assert_array_equal(classes, ref)
    top = np.take_along_axis(mean, np.where(ref == 255, 0, ref)[None], 0)[0]
    want = np.where(ref == 255, 255, np.floor(np.clip(top, 0, 1) * 100 + 0.5))
    assert np.abs(conf.astype(int) - want.astype(int)).max() <= 1
    # the counts: n_valid exact, n_total the dates with data
    np.testing.assert_array_equal(counts[0], n_valid)
    np.testing.assert_array_equal(counts[1], np.stack([c != 255 for c, _ in singles]).sum(0))
    with rasterio.open(counts_path(tmp_path / "c.tif")) as ds:
        assert ds.descriptions == ("n_valid", "n_total")
    # the planted cloud is masked on date 2 and the labels under it come from the clear dates
    under = np.zeros(labels.shape, bool)
    under[box] = True
    under &= data
    assert (counts[0][under] <= 2).all() and (counts[0][under] == 2).mean() > 0.9
    cloudy = float((singles[1][0][under] == labels[under]).mean())
    clear = min(float((c[under] == labels[under]).mean()) for c, _ in (singles[0], singles[2]))
    assert cloudy < 0.2 < 0.8 < clear  # date 2 alone has Cloud there
    assert float((classes[under] == labels[under]).mean()) >= clear - 0.01
    assert res.scenes == paths and res.no_observation == int((ref == 255).sum())


def test_identical_scenes_make_the_single_scene_map(make_scene, tmp_path):
    src, _, _ = make_scene(150, 130, seed=3, name="a.tif")
    twin = tmp_path / "b.tif"
    twin.write_bytes(src.read_bytes())
    spec = SPEC.replace(confidence=True, cloud_mask=False)
    segment_file(src, tmp_path / "one.tif", spec=spec)
    composite_file([src, twin], tmp_path / "two.tif", spec=spec)
    np.testing.assert_array_equal(_read(tmp_path / "two.tif"), _read(tmp_path / "one.tif"))
    np.testing.assert_array_equal(_read(confidence_path(tmp_path / "two.tif")),
                                  _read(confidence_path(tmp_path / "one.tif")))


def test_adjacent_tiles_on_two_grids_make_one_map(tmp_path):
    """Two overlapping halves of one scene (the right one also in the next UTM zone): one
    map on the first scene's grid, equal to the whole scene's map where the grids coincide."""
    bands, _, _ = generate(SceneSpec(width=256, height=128, seed=4, cloud_fraction=0.0,
                                    nodata_border=0, nodata_holes=0))
    whole = write_stack(tmp_path / "whole.tif", bands)
    x0 = 500000
    left = write_stack(tmp_path / "left.tif", bands[:, :, :152])
    right = write_stack(tmp_path / "right.tif", bands[:, :, 104:], transform=rasterio.transform.
                        from_origin(x0 + 1040, 5000000, 10, 10))
    spec = SPEC.replace(cloud_mask=False)
    segment_file(whole, tmp_path / "whole.lulc.tif", spec=spec)
    ref = _read(tmp_path / "whole.lulc.tif")
    res = composite_file([left, right], tmp_path / "mosaic.tif", spec=spec)
    got = _read(tmp_path / "mosaic.tif")
    assert (res.width, res.height) == (256, 128) and got.shape == ref.shape
    halo = 48  # away from the cut edges each half sees the whole scene's context
    np.testing.assert_array_equal(got[:, :152 - halo], ref[:, :152 - halo])
    np.testing.assert_array_equal(got[:, 104 + halo:], ref[:, 104 + halo:])
    counts = _read(counts_path(tmp_path / "mosaic.tif"), None)
    assert (counts[1][:, 104:152] == 2).all() and (counts[1][:, :104] == 1).all()

    # the right half in UTM zone 34: resampled onto zone 33's grid, nothing left uncovered
    with rasterio.open(right) as ds:
        tf, w, h = calculate_default_transform(ds.crs, "EPSG:32634", ds.width, ds.height,
                                               *ds.bounds, resolution=10)
        moved = np.zeros((ds.count, h, w), np.uint16)
        reproject(ds.read(), moved, src_transform=ds.transform, src_crs=ds.crs,
                  dst_transform=tf, dst_crs="EPSG:32634", resampling=Resampling.nearest)
    other = write_stack(tmp_path / "zone34.tif", moved, crs="EPSG:32634", transform=tf)
    res = composite_file([left, other], tmp_path / "zones.tif", spec=spec)
    # the grid: zone 33's, from the left scene's origin, grown to the zone-34 scene's footprint
    left_x, top_y = res.grid["transform"][2], res.grid["transform"][5]
    assert res.grid["crs"] == "EPSG:32633" and left_x == x0 and (top_y - 5000000) % 40 == 0
    r0 = int(top_y - 5000000) // 10
    assert res.width >= 256 and res.height >= 128 + r0
    got = _read(tmp_path / "zones.tif")[r0:r0 + 128, :256]
    # rows near the scene's top and bottom see zeros (the grid grew) where the whole scene's
    # tiles saw the model's own padding: equal away from them
    np.testing.assert_array_equal(got[halo:-halo, :104 - halo], ref[halo:-halo, :104 - halo])
    assert float((got != 255).mean()) > 0.99
    assert float((got == ref).mean()) > 0.9
    with rasterio.open(tmp_path / "zones.tif") as ds:
        regrid = json.loads(ds.tags()["LULC_EDGE_COMPOSITE_REGRID"])
    assert regrid == {str(left): "none (the scene's own grid)", str(other): "nearest"}


def test_polygon_area_and_a_scene_that_misses_it(make_scene, tmp_path):
    a, _, _ = make_scene(160, 160, seed=1, name="a.tif")
    far = write_stack(tmp_path / "far.tif", generate(SceneSpec(width=64, height=64))[0],
                      transform=rasterio.transform.from_origin(900000, 4000000, 10, 10))
    aoi = tmp_path / "aoi.geojson"
    ring = [[400300, 4999700], [401200, 4999500], [400700, 4998700], [400300, 4999700]]
    aoi.write_text(json.dumps({"type": "FeatureCollection", "crs": {
        "type": "name", "properties": {"name": "EPSG:32633"}}, "features": [{
            "type": "Feature", "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    out = tmp_path / "area.tif"
    r = run_cli("composite", a, far, "-o", out, "--aoi", aoi, "--tile", "64", "--json",
                "--device", "cpu")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["scenes"] == [str(a)] and "far.tif: has no pixel" in r.stderr
    assert doc["grid"]["crs"] == "EPSG:32633"
    got = _read(out)
    counts = _read(counts_path(out), None)
    assert (got == 255).any() and (got != 255).any()
    assert ((counts[0] == 0) == (got == 255)).all()  # nodata: no clear observation
    assert counts[1][0, 0] == 0 and got[0, 0] == 255  # outside the polygon


def test_command_line_errors_are_one_line(make_scene, tmp_path):
    a, _, _ = make_scene(64, 64, name="a.tif")
    cases = [
        (["composite", a], "-o FILE.tif"),
        (["composite", a, tmp_path / "nope.tif", "-o", tmp_path / "x.tif"], "nope.tif"),
        (["composite", a, "-o", tmp_path / "x.tif", "--bbox", "10,10,10.1,10.1"],
         "none of the scenes"),
        (["composite", a, "-o", tmp_path / "x.tif", "--rule", "median"], "median"),
    ]
    for args, words in cases:
        r = run_cli(*args)
        assert r.returncode != 0 and words in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / "x.tif").exists()


def test_resume_after_sigkill_gives_the_same_composite(make_scene, tmp_path):
    paths = [str(make_scene(384, 384, seed=s, name=f"s{s}.tif")[0]) for s in (1, 2)]
    ref = tmp_path / "ref.tif"
    assert run_cli("composite", *paths, "-o", ref, "--tile", "64", "-q").returncode == 0
    out = tmp_path / "out.tif"
    journal = journal_path(out)
    proc = start_cli("composite", *paths, "-o", out, "--tile", "64", "-q",
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # some rows landed: pull the plug
        if journal.exists() and journal.read_bytes().count(b"LEJ1") >= 8:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and journal.exists()
    refused = run_cli("composite", *paths, "-o", out, "--tile", "64")
    assert refused.returncode != 0 and "--resume" in refused.stderr
    resumed = run_cli("composite", *paths, "-o", out, "--tile", "64", "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads(resumed.stdout)
    assert 0 < doc["tiles_inferred"] < doc["tiles_total"] == 36
    np.testing.assert_array_equal(_read(out), _read(ref))
    np.testing.assert_array_equal(_read(counts_path(out), None), _read(counts_path(ref), None))
    assert not journal.exists()


def test_changed_input_starts_the_composite_over(make_scene, tmp_path):
    paths = [str(make_scene(256, 256, seed=s, name=f"s{s}.tif")[0]) for s in (1, 2)]
    out = tmp_path / "out.tif"
    proc = start_cli("composite", *paths, "-o", out, "--tile", "64", "-q",
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = journal_path(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
            journal.exists() and journal.read_bytes().count(b"LEJ1") >= 4):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    make_scene(256, 256, seed=7, name="s2.tif")  # the second date replaced
    r = run_cli("composite", *paths, "-o", out, "--tile", "64", "--resume", "--json")
    assert r.returncode == 0 and "changed" in r.stderr and "starts over" in r.stderr, r.stderr
    assert json.loads(r.stdout)["tiles_inferred"] == 16
    fresh = tmp_path / "fresh.tif"
    assert run_cli("composite", *paths, "-o", fresh, "--tile", "64", "-q").returncode == 0
    np.testing.assert_array_equal(_read(out), _read(fresh))


def test_readme_season_example(tmp_path):
    """The README's example: three cloudy dates of the example scene, each cloud filled from the
    two other dates (n_valid 2 there), the summary printed."""
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "examples" / "season_dates.py"
    sys_argv = sys.argv
    try:
        sys.argv = [str(script), str(tmp_path / "season")]
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = sys_argv
    dates = sorted((tmp_path / "season").glob("date-*.tif"))
    assert len(dates) == 3
    out = tmp_path / "season" / "summer.tif"
    r = run_cli("composite", *dates, "-o", out, "--device", "cpu", "--precision", "fp32",
                "--vector", ".gpkg")  # and the composite's polygons, as run makes them
    assert r.returncode == 0, r.stderr
    assert "3 scenes, rule mean" in r.stdout and "no clear observation" in r.stdout
    assert f"polygons: {out.with_suffix('.gpkg')}" in r.stdout
    assert "DEMO weights" in r.stderr  # said as run says it
    counts = _read(counts_path(out), None)
    assert (counts[0][80:200, 320:450] == 2).all()  # under date 1's cloud
    assert (counts[1][80:200, 320:450] == 3).all()


def test_stac_search_composite(tmp_path):
    """``composite --stac-api``: the items a search finds composited (two dates of one scene
    served on 127.0.0.1), clouds left nodata, the interior as the folder's own map."""
    from rasterio.warp import transform_bounds

    from tests.httpserver import FileServer
    from tests.test_sources import make_folder
    from tests.test_stac_run import collection

    root = tmp_path / "www"
    make_folder(root / "scene", size=96)
    with FileServer(root) as served:
        feats = collection(served)["features"]
        served.json_route("/search", lambda *_: {"type": "FeatureCollection",
                                                  "features": feats, "links": []})
        for f in feats:
            served.json_route(f"/collections/sentinel-2-l2a/items/{f['id']}",
                              lambda *_, f=f: f)
        with rasterio.open(root / "scene" / "B02.tif") as ds:
            box = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        bbox = ",".join(f"{v:.6f}" for v in box)
        out = tmp_path / "season.tif"
        r = run_cli("composite", "--stac-api", served.base, "--collection", "sentinel-2-l2a",
                    "--bbox", bbox, "--datetime", "2024-06-01/2024-08-31", "-o", out,
                    "--json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert [s.rsplit("/", 1)[-1] for s in doc["scenes"]] == ["newer", "older"]
        folder = tmp_path / "folder.tif"
        assert run_cli("run", root / "scene", "-o", folder, "--boa-offset", "-1000",
                       "-q").returncode == 0
    got, ref = _read(out), _read(folder)
    counts = _read(counts_path(out), None)
    assert counts[1].max() == 2
    with rasterio.open(out) as a, rasterio.open(folder) as b:
        dx = round((b.transform.c - a.transform.c) / 10)
        dy = round((a.transform.f - b.transform.f) / 10)
    inner = got[dy + 24: dy + 72, dx + 24: dx + 72]
    np.testing.assert_array_equal(inner, np.where(ref == 254, 255, ref)[24:72, 24:72])


def test_a_geographic_grid_gets_about_10_m_pixels(make_scene, tmp_path):
    """--crs EPSG:4326 without --res: pixels of 10 m of latitude in degrees, not 10 degrees;
    hectares on the ellipsoid still close to the scene's."""
    a, _, _ = make_scene(128, 128, seed=2, name="a.tif")
    spec = SPEC.replace(cloud_mask=False)
    utm = composite_file([a], tmp_path / "utm.tif", spec=spec)
    geo = composite_file([a], tmp_path / "geo.tif", spec=spec,
                         options=CompositeOptions(crs="EPSG:4326"))
    assert geo.grid["crs"] == "EPSG:4326" and geo.grid["transform"][0] == pytest.approx(
        10 / 111_320)
    assert 100 < geo.height < 160 and 100 < geo.width < 260
    land = sum(v for k, v in utm.class_hectares.items() if k != "Unclassified")
    moved = sum(v for k, v in geo.class_hectares.items() if k != "Unclassified")
    assert moved == pytest.approx(land, rel=0.05)


def test_cog_applies_to_the_counts_file_too(make_scene, tmp_path):
    paths = [str(make_scene(96, 96, seed=s, name=f"s{s}.tif")[0]) for s in (1, 2)]
    out = tmp_path / "c.tif"
    composite_file(paths, out, spec=SPEC.replace(cog=True))
    for path in (out, counts_path(out)):
        with rasterio.open(path) as ds:
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG", path
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
