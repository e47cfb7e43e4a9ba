"""Scene -> class map: seamless tiling is exact, window mode covers edges, outputs are complete."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import rasterio

from lulc_edge import RunOptions, RunSpec, SourceOptions, segment_file
from lulc_edge.clouds import CLOUD_VALUE
from lulc_edge.raster import COMPLETE_TAG, confidence_path

from .conftest import write_stack


def _read(path, band=1):
    with rasterio.open(path) as ds:
        return ds.read(band)


def _run(engine, src, dst, **kw):
    return segment_file(src, dst, engine=engine, options=RunOptions(progress=False, **kw))


def test_class_map_does_not_depend_on_tile_size(engine, make_scene, tmp_path):
    src, bands, _ = make_scene(203, 150)  # not a multiple of 4 in either direction
    maps, probs = {}, {}
    for tile in (64, 96, 1024):  # 1024: the whole scene as one tile
        out = tmp_path / f"t{tile}.tif"
        _run(engine, src, out, tile=tile, probs=True)
        maps[tile] = _read(out)
        with rasterio.open(tmp_path / f"t{tile}.probs.tif") as ds:
            probs[tile] = ds.read()
    assert np.array_equal(maps[64], maps[1024]) and np.array_equal(maps[96], maps[1024])
    for tile in (64, 96):  # NaN (nodata) in the same places
        np.testing.assert_allclose(probs[tile], probs[1024], rtol=0, atol=1e-5)


def test_whole_scene_tile_equals_one_graph_run(engine, model_path, make_scene, tmp_path):
    src, bands, _ = make_scene(200, 148)  # multiple of 4: no padding needed
    out = tmp_path / "o.tif"
    _run(engine, src, out, tile=1024, cloud_mask=False)  # the graph masks no cloud
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (direct,) = sess.run(["class"], {"bands": bands[None]})
    assert np.array_equal(_read(out), direct[0])


def test_every_pixel_is_predicted_and_nodata_is_255(engine, make_scene, tmp_path):
    src, bands, labels = make_scene(203, 150)
    for mode in ("seamless", "window"):
        out = tmp_path / f"{mode}.tif"
        _run(engine, src, out, mode=mode)
        got = _read(out)
        empty = ~bands.any(axis=0)
        assert (got[empty] == 255).all()
        assert (got[~empty] != 255).all()  # including the last partial rows and columns
        assert set(np.unique(got[~empty])) <= {0, 1, 2, 3, 4, CLOUD_VALUE}


def test_window_mode_is_tile_independent_and_covers_edges(engine, make_scene, tmp_path):
    src, bands, _ = make_scene(150, 133)
    maps = []
    for tile in (64, 96, 512):
        out = tmp_path / f"w{tile}.tif"
        _run(engine, src, out, mode="window", tile=tile, confidence=True, probs=True)
        maps.append(_read(out))
        with rasterio.open(tmp_path / f"w{tile}.probs.tif") as ds:
            p = ds.read()
        valid = bands.any(axis=0) & (maps[-1] != CLOUD_VALUE)  # Cloud: NaN as nodata
        assert np.allclose(p.sum(axis=0)[valid], 1.0, atol=1e-4)  # an average of softmaxes
    assert all(np.array_equal(m, maps[0]) for m in maps)


def test_window_mode_matches_the_original_apps_average(engine, make_scene, tmp_path):
    """Where the original app predicted, window mode gives its averaged-probability argmax."""
    src, bands, _ = make_scene(160, 128)
    out = tmp_path / "w.tif"
    _run(engine, src, out, mode="window", probs=True, cloud_mask=False)  # as the original's
    h, w = 128, 160
    acc = np.zeros((5, h, w), np.float64)
    cnt = np.zeros((h, w))
    for y in range(0, h - 64 + 1, 32):  # the original loop, one window per call
        for x in range(0, w - 64 + 1, 32):
            (p,) = engine.run(bands[None, :, y:y + 64, x:x + 64], ("probabilities",))
            acc[:, y:y + 64, x:x + 64] += p[0]
            cnt[y:y + 64, x:x + 64] += 1
    with rasterio.open(tmp_path / "w.probs.tif") as ds:
        got = ds.read()
    valid = _read(out) != 255  # NaN (the file's nodata) where the class map is nodata
    assert np.array_equal(~np.isnan(got[0]), valid)
    assert np.abs(got - acc / cnt)[:, valid].max() < 1e-5


@pytest.mark.parametrize("size", [(17, 30), (64, 64), (5, 3)])
def test_scenes_smaller_than_a_tile(engine, tmp_path, size):
    from lulc_edge.synthetic import SceneSpec, generate

    h, w = size
    bands, _, _ = generate(SceneSpec(width=w, height=h, seed=1, nodata_border=0, nodata_holes=0))
    src = write_stack(tmp_path / "small.tif", bands)
    for mode in ("seamless", "window"):
        out = tmp_path / f"{mode}.tif"
        res = _run(engine, src, out, mode=mode)
        got = _read(out)
        assert got.shape == (h, w) and (got != 255).all()
        assert sum(res.class_pixels.values()) == h * w


def test_output_is_a_georeferenced_tagged_class_map(engine, make_scene, tmp_path):
    src, _, _ = make_scene(120, 90)
    out = tmp_path / "map.tif"
    res = _run(engine, src, out, confidence=True)
    with rasterio.open(src) as s, rasterio.open(out) as o:
        assert o.crs == s.crs and o.transform == s.transform
        assert (o.width, o.height, o.count) == (s.width, s.height, 1)
        assert o.dtypes == ("uint8",) and o.nodata == 255
        assert o.profile["tiled"] and o.compression.name.lower() == "deflate"
        cmap = o.colormap(1)
        assert cmap[0][:3] == (0xF4, 0xA4, 0x60) and cmap[4][:3] == (0, 0, 255)
        tags = o.tags()
        assert tags["CLASS_1"] == "Built-up_Area" and tags["CLASS_255"] == "Unclassified"
        assert tags[COMPLETE_TAG] == "1" and "LULC_EDGE_MODEL_SHA256" in tags
        assert o.descriptions == ("class",)
        cls = o.read(1)
    with rasterio.open(confidence_path(out)) as c:  # percent of the chosen class, 255 nodata
        assert c.descriptions == ("confidence",) and c.nodata == 255 and c.units == ("%",)
        conf = c.read(1)
    assert (conf[cls == 255] == 255).all() and 20 <= conf[cls != 255].min()
    assert conf[cls != 255].max() <= 100
    # summary: counts add up, 10 m pixels are 0.01 ha each
    assert sum(res.class_pixels.values()) == 120 * 90
    for name, n in res.class_pixels.items():
        assert res.class_hectares[name] == pytest.approx(n * 0.01)
    assert json.loads(json.dumps(res.as_dict()))["pixels"] == 120 * 90


def test_cog_output(engine, make_scene, tmp_path):
    src, _, _ = make_scene(300, 280)
    out = tmp_path / "cog.tif"
    _run(engine, src, out, cog=True)
    with rasterio.open(out) as o:
        assert o.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert o.colormap(1)[3][:3] == (0, 0x80, 0)
        assert o.tags()[COMPLETE_TAG] == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cog.tif", "cog.tif.aux.xml", "scene.tif"]


def test_file_nodata_value_becomes_class_255(engine, tmp_path):
    from lulc_edge.synthetic import SceneSpec, generate

    bands, _, _ = generate(SceneSpec(width=96, height=80, seed=2, nodata_border=0,
                                     nodata_holes=0))
    bands[:, 10:20, 30:50] = 9999
    src = write_stack(tmp_path / "nd.tif", bands, nodata=9999)
    out = tmp_path / "o.tif"
    _run(engine, src, out)
    got = _read(out)
    assert (got[10:20, 30:50] == 255).all() and (got[:10] != 255).all()


def test_band_descriptions_and_explicit_mapping_reorder_bands(engine, make_scene, tmp_path):
    src, bands, _ = make_scene(96, 96)
    ref = tmp_path / "ref.tif"
    _run(engine, src, ref)
    order = np.random.default_rng(0).permutation(13)
    names = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "SCL", "B11", "B12"]
    shuffled = write_stack(tmp_path / "shuffled.tif", bands[order])
    with rasterio.open(shuffled, "r+") as ds:
        for i, k in enumerate(order, start=1):
            ds.set_band_description(i, names[k])
    out = tmp_path / "desc.tif"
    _run(engine, shuffled, out)
    assert np.array_equal(_read(out), _read(ref))
    plain = write_stack(tmp_path / "plain.tif", bands[order])
    mapping = {names[k]: i for i, k in enumerate(order, start=1)}
    out2 = tmp_path / "mapped.tif"
    segment_file(plain, out2, engine=engine, spec=RunSpec(
        run=RunOptions(progress=False), source=SourceOptions(bands=mapping)))
    assert np.array_equal(_read(out2), _read(ref))


def test_existing_output_is_kept_unless_overwrite(engine, make_scene, tmp_path):
    from lulc_edge import OutputError

    src, _, _ = make_scene(64, 64)
    out = tmp_path / "o.tif"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError):
        _run(engine, src, out)
    assert out.read_bytes() == b"keep me"
    _run(engine, src, out, overwrite=True)
    assert _read(out).shape == (64, 64)


def test_run_defaults_per_device_and_gdal_settings(monkeypatch):
    from lulc_edge.engine import CUDA_BATCH, CUDA_TILE
    from lulc_edge.gdalenv import gdal_settings
    from lulc_edge.modes import DEFAULT_BATCH, DEFAULT_TILE, default_batch, default_tile

    assert default_tile("seamless", "cpu") == DEFAULT_TILE["seamless"]
    assert default_tile("seamless", "cuda") == CUDA_TILE["seamless"]
    assert default_batch("window", "openvino") == DEFAULT_BATCH["window"]
    assert default_batch("window", "cuda") == CUDA_BATCH["window"]
    monkeypatch.delenv("GDAL_NUM_THREADS", raising=False)
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    assert gdal_settings()["GDAL_NUM_THREADS"] == "ALL_CPUS"
    # inputs read in strips: the reader's strips hold the decoded blocks, GDAL's cache less
    assert gdal_settings(strips=True)["GDAL_CACHEMAX"] < gdal_settings()["GDAL_CACHEMAX"]
    monkeypatch.setenv("GDAL_NUM_THREADS", "1")  # the user's setting wins
    assert "GDAL_NUM_THREADS" not in gdal_settings() and "GDAL_CACHEMAX" in gdal_settings()


def test_a_stack_read_in_strips_runs_with_the_smaller_gdal_cache(engine, make_scene, tmp_path,
                                                                monkeypatch):
    """Its strips hold the decoded blocks: GDAL's cache must not double-buffer them."""
    from lulc_edge import gdalenv

    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    src, _, _ = make_scene(96, 96)
    seen = []
    segment_file(src, tmp_path / "map.tif", engine=engine,
                 options=RunOptions(progress=False, tile=64),
                 on_tile=lambda *_: seen.append(rasterio.env.getenv().get("GDAL_CACHEMAX")))
    assert seen and set(seen) == {gdalenv.gdal_settings(strips=True)["GDAL_CACHEMAX"]}
