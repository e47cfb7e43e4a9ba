"""Outputs as a GIS analyst opens them (issue 22): what GDAL reads back from each file a run
writes (band count, colour interpretation, colour table, nodata, units), reprojection with GDAL's
warper, class areas of maps in EPSG:4326, the QGIS style, and batch reruns with other options."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.enums import ColorInterp
from rasterio.rio.main import main_group as rio
from rasterio.transform import from_origin

from lulc_edge.cli import main
from lulc_edge.clouds import CLOUD_VALUE
from lulc_edge.raster import CONFIDENCE_NODATA, OPTIONS_TAG, confidence_path, probs_path

from .conftest import SHARED_DATA, write_stack

#: Options that make every run here fast and identical (no auto timing).
FAST = ("--device", "cpu", "--precision", "fp32", "-q")


def cli(*args: object) -> tuple[int, str, str]:
    """``lulc-edge ARGS`` in-process: exit code, stdout, stderr."""
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def _files(out: Path) -> list[Path]:
    return [out, confidence_path(out), probs_path(out)]


@pytest.fixture()
def scene(make_scene):
    """A synthetic UTM scene with a nodata border and holes."""
    return make_scene(200, 150)[0]


@pytest.mark.parametrize("cog", [False, True])
def test_every_file_keeps_one_meaning_per_band_and_no_alpha(scene, tmp_path, cog):
    out = tmp_path / "m.tif"
    code, _, err = cli("run", scene, "-o", out, "--confidence", "--probs", *FAST,
                       *(["--cog"] if cog else []))
    assert code == 0, err
    with rasterio.open(out) as ds:  # the class map: one paletted band, legend in every variant
        assert ds.count == 1 and ds.colorinterp == (ColorInterp.palette,)
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == ("COG" if cog else None)
    for path in _files(out):
        with rasterio.open(path) as ds:
            assert ColorInterp.alpha not in ds.colorinterp, path.name
            assert ds.nodata is not None, path.name


def test_confidence_nodata_is_never_a_confidence(scene, tmp_path):
    out = tmp_path / "m.tif"
    assert cli("run", scene, "-o", out, "--confidence", *FAST)[0] == 0
    with rasterio.open(out) as ds:
        classes = ds.read(1)
    with rasterio.open(confidence_path(out)) as ds:
        conf = ds.read(1)
        assert ds.nodata == CONFIDENCE_NODATA == 255
        assert ds.descriptions == ("confidence",) and ds.units == ("%",)
        assert "percent" in ds.tags()["LULC_EDGE_CONFIDENCE"]
        masked = ds.read(1, masked=True)
    nodata = (classes == 255) | (classes == CLOUD_VALUE)    # Cloud has no confidence either
    assert nodata.any() and (~nodata).any()
    assert (conf[nodata] == 255).all()                       # real nodata reads as nodata
    assert conf[~nodata].max() <= 100 and conf[~nodata].min() >= 20  # 5 classes: p >= 1/5
    assert masked.count() == int((~nodata).sum())            # every valid pixel is valid


def test_probabilities_declare_nan_nodata_where_the_map_has_none(scene, tmp_path):
    out = tmp_path / "m.tif"
    assert cli("run", scene, "-o", out, "--probs", *FAST)[0] == 0
    with rasterio.open(out) as ds:
        nodata = np.isin(ds.read(1), (255, CLOUD_VALUE))  # Cloud has no probabilities either
    with rasterio.open(probs_path(out)) as ds:
        assert all(math.isnan(v) for v in ds.nodatavals)
        probs = ds.read()
    assert np.isnan(probs[:, nodata]).all() and not np.isnan(probs[:, ~nodata]).any()
    assert np.allclose(probs[:, ~nodata].sum(axis=0), 1.0, atol=1e-4)


def test_colour_table_lists_the_classes_only(scene, tmp_path):
    out = tmp_path / "m.tif"
    assert cli("run", scene, "-o", out, "--no-cloud-mask", *FAST)[0] == 0  # Cloud: test_cloud_maps
    colours = [(0xF4, 0xA4, 0x60), (0xDC, 0x14, 0x3C), (0xFF, 0xFF, 0), (0, 0x80, 0), (0, 0, 0xFF)]
    with rasterio.open(out) as ds:  # GDAL prefers the .aux.xml table: what QGIS lists
        cmap = ds.colormap(1)
    assert sorted(cmap) == [0, 1, 2, 3, 4] and [cmap[v][:3] for v in range(5)] == colours
    out.with_name(out.name + ".aux.xml").unlink()
    with rasterio.open(out) as ds:  # the file alone stays paletted (TIFF stores 256 entries)
        assert ds.colorinterp == (ColorInterp.palette,)
        assert [ds.colormap(1)[v][:3] for v in range(5)] == colours


def test_reprojection_with_gdal_keeps_nodata(scene, tmp_path):
    out = tmp_path / "m.tif"
    assert cli("run", scene, "-o", out, "--confidence", "--cog", *FAST)[0] == 0
    warped = tmp_path / "w.tif"
    res = CliRunner().invoke(rio, ["warp", str(out), str(warped), "--dst-crs", "EPSG:4326",
                                   "--resampling", "nearest"])
    assert res.exit_code == 0, res.output
    with rasterio.open(warped) as ds:
        got = ds.read(1)
        assert ds.nodata == 255 and ds.count == 1
        grid = dict(dst_transform=ds.transform, dst_crs=ds.crs)
    with rasterio.open(out) as src:  # where the map's footprint lands on the new grid
        inside = np.zeros(got.shape, np.uint8)
        rasterio.warp.reproject(np.ones((src.height, src.width), np.uint8), inside,
                                src_transform=src.transform, src_crs=src.crs,
                                resampling=rasterio.enums.Resampling.nearest, **grid)
    outside = inside == 0
    assert outside.any() and (got[outside] == 255).all()  # no false class 0 at the border


def test_map_in_epsg_4326_has_class_areas_on_the_ellipsoid(make_scene, tmp_path):
    src = make_scene(120, 100, crs="EPSG:4326", origin_x=-9.5, origin_y=31.0,
                     pixel_size=0.0001)[0]
    out = tmp_path / "m.tif"
    code, stdout, err = cli("run", src, "-o", out, "--json", *FAST)
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["area_note"] is None and doc["class_hectares"] is not None
    # a 0.0001 degree pixel near 31 N is about 9.54 x 11.09 m (WGS84)
    lat = math.radians(31.0 - 0.005)
    px_m2 = (math.pi / 180 * 0.0001 * 6378137 * math.cos(lat) / math.sqrt(
        1 - 0.00669438 * math.sin(lat) ** 2)) * (0.0001 * 110_860)
    total = sum(doc["class_hectares"].values())
    assert total == pytest.approx(120 * 100 * px_m2 / 1e4, rel=2e-3)
    for name, n in doc["class_pixels"].items():
        assert doc["class_hectares"][name] == pytest.approx(n * px_m2 / 1e4, rel=2e-3)


def test_map_without_crs_says_why_it_has_no_areas(tmp_path, make_scene):
    _, bands, _ = make_scene(64, 64)
    src = write_stack(tmp_path / "nocrs.tif", bands, crs=None, transform=from_origin(0, 64, 1, 1))
    code, stdout, err = cli("run", src, "-o", tmp_path / "m.tif", "--json", *FAST)
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["class_hectares"] is None and "no CRS" in doc["area_note"]
    code, stdout, _ = cli("run", src, "-o", tmp_path / "m2.tif", "--device", "cpu",
                          "--precision", "fp32")
    assert code == 0 and "no class areas: the map has no CRS" in stdout


def test_run_writes_the_qgis_style_beside_single_and_batch_maps(scene, make_scene, tmp_path):
    out = tmp_path / "m.tif"
    assert cli("run", scene, "-o", out, "--qml", *FAST)[0] == 0
    style = (tmp_path / "m.qml").read_text()
    assert 'type="paletted"' in style and 'label="Forest"' in style
    assert 'value="255"' in style and 'label="Unclassified"' in style
    other = make_scene(64, 64, seed=3, name="b.tif")[0]
    maps = tmp_path / "maps"
    assert cli("run", scene, other, "--out-dir", maps, *FAST)[0] == 0
    assert not list(maps.glob("*.qml"))
    assert cli("run", scene, other, "--out-dir", maps, "--qml", *FAST)[0] == 0  # skipped maps
    assert sorted(p.name for p in maps.glob("*.qml")) == ["b.lulc.qml", "scene.lulc.qml"]


def test_batch_redoes_outputs_made_with_other_options(scene, tmp_path):
    maps = tmp_path / "maps"
    base = ("run", scene, "--out-dir", maps, "--json", *FAST)

    def statuses(*extra: str) -> tuple[str, list[str]]:
        code, stdout, err = cli(*base, *extra)
        assert code == 0, err
        (rep,) = json.loads(stdout)["results"]
        return rep["status"], rep["warnings"]

    assert statuses()[0] == "done"
    assert statuses()[0] == "skipped"
    for extra, word in ((["--confidence"], "confidence"), (["--mode", "window"], "mode"),
                        (["--scl-fill", "5"], "scl_fill"), (["--probs"], "probs")):
        status, warns = statuses(*extra)
        assert status == "done" and any("other options" in w and word in w for w in warns), warns
        assert statuses(*extra)[0] == "skipped", extra
    out = maps / "scene.lulc.tif"
    with rasterio.open(out) as ds:
        assert json.loads(ds.tags()[OPTIONS_TAG])["probs"] is True
    probs_path(out).unlink()  # a side file that went missing is redone too
    status, warns = statuses("--probs")
    assert status == "done" and any("probs.tif is missing" in w for w in warns)
    assert statuses("--probs", "--tile", "64")[0] == "skipped"  # the tile does not shape maps
    assert statuses()[0] == "done"  # back to the map alone: no stale side file is left
    assert sorted(p.name for p in maps.iterdir()) == ["scene.lulc.tif", "scene.lulc.tif.aux.xml"]


def test_preview_on_a_finished_batch_draws_the_missing_pictures(scene, tmp_path):
    pytest.importorskip("PIL")
    maps = tmp_path / "maps"
    assert cli("run", scene, "--out-dir", maps, *FAST)[0] == 0
    assert not list(maps.glob("*.png"))
    code, _, err = cli("run", scene, "--out-dir", maps, "--preview", *FAST)
    assert code == 0, err
    assert sorted(p.name for p in maps.glob("*.png")) == [
        f"scene.lulc.{k}.png" for k in ("annotated", "mask", "overlay", "stats")]


def test_real_l2a_tile_confidence_is_valid_wherever_the_map_is(tmp_path):
    """29RKH (1098 x 1098 px, all valid): before, 99.5 % of its confidence read as nodata."""
    scene = SHARED_DATA / "l2a-29RKH-20200219"
    if not scene.is_dir():
        pytest.skip(f"{scene} not here")
    out = tmp_path / "m.tif"
    code, _, err = cli("run", scene, "-o", out, "--confidence", "--cog", *FAST)
    assert code == 0, err
    with rasterio.open(out) as ds:
        assert ds.colorinterp == (ColorInterp.palette,)
        valid = int((~np.isin(ds.read(1), (255, CLOUD_VALUE))).sum())
    with rasterio.open(confidence_path(out)) as ds:
        assert ds.read(1, masked=True).count() == valid > 0
