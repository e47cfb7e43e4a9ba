"""Tests of lulc_edge.synthetic: determinism, structure, spectra, block-wise writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from lulc_edge import synthetic, synthetic_fields
from lulc_edge.synthetic import (
    BAND_NAMES,
    CLASS_SCL,
    NODATA_LABEL,
    SceneSpec,
    generate,
    generate_rows,
    write_scene,
)

B3, B4, B8, SCL, B11 = (BAND_NAMES.index(b) for b in ("B3", "B4", "B8", "SCL", "B11"))
SPEC = SceneSpec(width=256, height=256, seed=0)


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray, dict]:
    return generate(SPEC)


def _index(bands: np.ndarray, a: int, b: int) -> np.ndarray:
    x, y = bands[a].astype(np.float64), bands[b].astype(np.float64)
    return (x - y) / (x + y + 1e-8)


def _pure(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood is all one class (no boundary mixing)."""
    pure = np.zeros(labels.shape, dtype=bool)
    h, w = labels.shape
    core = labels[1:-1, 1:-1]
    ok = core != NODATA_LABEL
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ok &= labels[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] == core
    pure[1:-1, 1:-1] = ok
    return pure


def test_deterministic_for_a_seed(scene) -> None:
    bands, labels, _ = scene
    synthetic_fields.scene_plan.cache_clear()
    again_bands, again_labels, _ = generate(SceneSpec(width=256, height=256, seed=0))
    np.testing.assert_array_equal(bands, again_bands)
    np.testing.assert_array_equal(labels, again_labels)
    other_bands, _, _ = generate(SceneSpec(width=256, height=256, seed=1))
    assert not np.array_equal(bands, other_bands)


def test_shapes_and_dtypes(scene) -> None:
    bands, labels, meta = scene
    assert bands.shape == (13, 256, 256) and bands.dtype == np.uint16
    assert labels.shape == (256, 256) and labels.dtype == np.uint8
    assert meta["band_names"] == BAND_NAMES and meta["profile"]["count"] == 13
    rect_bands, rect_labels, _ = generate(SceneSpec(width=90, height=40, seed=2))
    assert rect_bands.shape == (13, 40, 90) and rect_labels.shape == (40, 90)


def test_all_classes_present(scene) -> None:
    counts = np.bincount(scene[1].ravel(), minlength=256)
    assert (counts[:5] > 0.03 * scene[1].size).all(), counts[:5]


def test_nodata_border_and_rule(scene) -> None:
    bands, labels, _ = scene
    b = SPEC.nodata_border
    border = np.ones(labels.shape, dtype=bool)
    border[b:-b, b:-b] = False
    assert (bands[:, border] == 0).all() and (labels[border] == NODATA_LABEL).all()
    # Everywhere (border and holes): label 255 exactly where all 13 bands are 0.
    np.testing.assert_array_equal((bands == 0).all(axis=0), labels == NODATA_LABEL)
    assert (labels == NODATA_LABEL).sum() > border.sum()  # the holes


def test_scl_consistent_with_class_on_pure_pixels(scene) -> None:
    bands, labels, _ = scene
    scl = bands[SCL]
    clear = _pure(labels) & ~np.isin(scl, (3, 8, 9, 10))
    assert clear.sum() > 0.5 * labels.size
    np.testing.assert_array_equal(scl[clear], np.asarray(CLASS_SCL)[labels[clear]])
    cloudless, _, _ = generate(SceneSpec(width=128, height=128, seed=0, cloud_fraction=0.0))
    assert set(np.unique(cloudless[SCL])) <= {0, 4, 5, 6}


def test_clouds_and_shadows_change_the_spectra() -> None:
    bands, labels, _ = generate(SceneSpec(width=256, height=256, seed=4, cloud_fraction=0.15))
    scl = bands[SCL]
    cloud, shadow = scl == 9, scl == 3
    assert cloud.mean() > 0.02 and shadow.mean() > 0.01
    clear = np.isin(scl, (4, 5, 6))
    assert np.median(bands[B3][cloud]) > 2 * np.median(bands[B3][clear])
    assert np.median(bands[B8][shadow]) < np.median(bands[B8][clear])


def test_spectral_indices_order(scene) -> None:
    bands, labels, _ = scene
    pure = _pure(labels) & np.isin(bands[SCL], (4, 5, 6))
    ndvi, ndwi = _index(bands, B8, B4), _index(bands, B3, B11)
    med = {c: np.median(ndvi[pure & (labels == c)]) for c in range(5)}
    barren, built, crop, forest, water = range(5)
    assert min(med[forest], med[crop]) > max(med[water], med[built], med[barren])
    assert med[forest] > 0.6 and med[water] < 0
    assert np.median(ndwi[pure & (labels == water)]) > 0.5
    assert np.median(ndwi[pure & (labels == forest)]) < 0


def test_blockwise_write_matches_one_shot(tmp_path: Path) -> None:
    spec = SceneSpec(width=70, height=53, seed=7, nodata_border=3, region_scale=12)
    bands, labels, _ = generate(spec)
    top, _ = generate_rows(spec, 0, 20)
    np.testing.assert_array_equal(top, bands[:, :20])
    out = write_scene(tmp_path / "s.tif", spec, tmp_path / "l.tif", block_rows=7)
    with rasterio.open(out) as src:
        np.testing.assert_array_equal(src.read(), bands)
    with rasterio.open(tmp_path / "l.tif") as src:
        np.testing.assert_array_equal(src.read(1), labels)


def test_written_file_metadata(tmp_path: Path) -> None:
    spec = SceneSpec(width=300, height=64, seed=3)
    out = write_scene(tmp_path / "scene.tif", spec, labels_path=tmp_path / "labels.tif")
    with rasterio.open(out) as src:
        assert src.count == 13 and src.dtypes[0] == "uint16"
        assert src.crs.to_epsg() == 32633
        assert src.transform == spec.transform
        assert src.transform.a == 10.0 and src.transform.c == spec.origin_x
        assert src.descriptions == BAND_NAMES
        assert src.nodata is None
        assert src.block_shapes[0] == (256, 256)
        assert src.compression.name.lower() == "deflate"
    with rasterio.open(tmp_path / "labels.tif") as lab:
        assert lab.count == 1 and lab.dtypes[0] == "uint8" and lab.nodata == NODATA_LABEL
        assert lab.crs.to_epsg() == 32633 and lab.transform == spec.transform


def test_cli_entry(tmp_path: Path) -> None:
    synthetic._main([str(tmp_path / "c.tif"), "--size", "48", "--labels", str(tmp_path / "l.tif")])
    with rasterio.open(tmp_path / "c.tif") as src:
        assert src.shape == (48, 48) and src.count == 13
    assert (tmp_path / "l.tif").exists()


@pytest.mark.parametrize(
    "kwargs",
    [{"width": 0}, {"seed": -1}, {"region_scale": 1}, {"cloud_fraction": 0.7}, {"dtype": "f4"}],
)
def test_invalid_spec(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SceneSpec(**kwargs)
