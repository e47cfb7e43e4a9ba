"""Every real Sentinel-2 input in ../shared/data through `lulc-edge run`, as users would run it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio

from .conftest import SHARED_DATA, needs_shared, run_cli, shared_manifest
from .test_sources import make_safe, zip_dir

pytestmark = needs_shared


def _needs_fill(entry: dict) -> bool:
    return "absent" in entry["scl"] or "zero" in entry["scl"]


def _run_ok(src, out, *extra):
    proc = run_cli("run", src, "-o", out, "--json", "-q", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("entry", shared_manifest(), ids=lambda e: e["path"].strip("/"))
def test_each_manifest_entry_maps(entry, tmp_path):
    src = SHARED_DATA / entry["path"]
    out = tmp_path / "map.tif"
    extra = ("--scl-fill", "4") if _needs_fill(entry) else ()
    if extra:  # refused without the option, with the reason
        proc = run_cli("run", src, "-o", out)
        assert proc.returncode != 0 and "SCL" in proc.stderr and "Traceback" not in proc.stderr
        assert not out.exists()
    doc = _run_ok(src, out, *extra)
    with rasterio.open(out) as ds:
        cls = ds.read(1)
        tags = ds.tags()
        assert ds.crs is not None and ds.count == 1
    valid = cls != 255
    assert valid.mean() > 0.5  # real data: mostly valid pixels
    assert set(np.unique(cls[valid])) <= {0, 1, 2, 3, 4, 254}  # 254: Cloud (SCL)
    assert sum(doc["class_pixels"].values()) == cls.size
    assert "LULC_EDGE_SOURCE_BAND_SOURCES" in tags or "LULC_EDGE_SOURCE_INPUT" in tags
    if extra:
        assert tags.get("LULC_EDGE_SOURCE_SCL_FILL") == "4"
    if entry.get("labels_path"):  # the flood chip: water labels; demo weights, just sanity
        with rasterio.open(SHARED_DATA / entry["labels_path"]) as ds:
            labels = ds.read(1)
        water = labels == 4
        assert water.any() and cls[water].size == water.sum()


def test_band_folder_and_its_stack_give_the_same_map(tmp_path):
    folder = SHARED_DATA / "l1c-18SVG-20160112-crop"
    stack = SHARED_DATA / "l1c-18SVG-20160112-crop.tif"
    a = _run_ok(folder, tmp_path / "folder.tif", "--scl-fill", "4", "--resampling", "bilinear")
    b = _run_ok(stack, tmp_path / "stack.tif", "--scl-fill", "4")
    with rasterio.open(a["output"]) as fa, rasterio.open(b["output"]) as fb:
        assert fa.transform == fb.transform and fa.crs == fb.crs
        ca, cb = fa.read(1), fb.read(1)
        tags = fa.tags()
    assert (ca == cb).mean() >= 0.99
    sources = json.loads(tags["LULC_EDGE_SOURCE_BAND_SOURCES"])
    assert "B8A" in json.dumps(sources) and "bilinear" in tags["LULC_EDGE_SOURCE_RESAMPLING"]


def test_l2a_folder_with_real_scl_and_stac_baseline(tmp_path):
    doc = _run_ok(SHARED_DATA / "l2a-29RKH-20200219", tmp_path / "m.tif")
    with rasterio.open(doc["output"]) as ds:
        tags = ds.tags()
        assert ds.res == (100.0, 100.0)  # the fixture's "10 m" bands are at 100 m
    assert tags["LULC_EDGE_SOURCE_BOA_OFFSET"] == "0"
    assert "02.14" in tags["LULC_EDGE_SOURCE_BOA_OFFSET_SOURCE"]


@pytest.mark.parametrize("as_zip", [False, True])
def test_minimal_safe_product_and_its_zip(tmp_path, as_zip):
    safe = make_safe(tmp_path, SHARED_DATA / "l2a-29RKH-20200219")
    src = zip_dir(safe, tmp_path / (safe.name[:-5] + ".zip")) if as_zip else safe
    doc = _run_ok(src, tmp_path / "m.tif")
    with rasterio.open(doc["output"]) as ds:
        tags = ds.tags()
    assert tags["LULC_EDGE_SOURCE_BOA_OFFSET"] == "-1000"
    # the offset really changes what the model sees: the same bands without it differ
    plain = _run_ok(SHARED_DATA / "l2a-29RKH-20200219", tmp_path / "p.tif")
    assert doc["class_pixels"] != plain["class_pixels"]


def test_default_output_names_for_products(tmp_path):
    safe = make_safe(tmp_path, SHARED_DATA / "l2a-29RKH-20200219")
    z = zip_dir(safe, tmp_path / "S2A_PRODUCT.SAFE.zip")
    proc = run_cli("run", z, "-q")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "S2A_PRODUCT.lulc.tif").exists()
    os.remove(z)


def test_bigearthnet_patch_smaller_than_a_tile(tmp_path):
    patch = next(p for p in sorted((SHARED_DATA / "bigearthnet-l2a").iterdir()) if p.is_dir())
    doc = _run_ok(patch, tmp_path / "b.tif", "--scl-fill", "4", "--mode", "window")
    assert (doc["width"], doc["height"]) == (120, 120)
    assert doc["class_pixels"]["Unclassified"] == 0


def test_l1c_without_scl_fill_leaves_nothing(tmp_path):
    out = tmp_path / "x.tif"
    proc = run_cli("run", SHARED_DATA / "l1c-19UDP-20170729", "-o", out)
    assert proc.returncode != 0 and "--scl-fill" in proc.stderr
    assert list(Path(tmp_path).iterdir()) == []
