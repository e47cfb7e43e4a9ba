"""Sinks, the run spec and the core, used from outside the package as a new output would."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import rasterio

from lulc_edge import (
    EngineOptions,
    RunOptions,
    RunSpec,
    SourceOptions,
    open_source,
    segment_file,
)
from lulc_edge.raster import sibling_path
from lulc_edge.sinks import SINKS, Sink


class ToySink(Sink):
    """Counts the tiles it is fed and sums class pixels; its product is what it saw."""

    def open(self, ctx):
        self.tiles, self.counts, self.finished = [], np.zeros(256, np.int64), False
        self.size = (ctx.grid.width, ctx.grid.height)

    def add(self, tile, result, bands=None):
        self.tiles.append(tile.index)
        self.counts += np.bincount(result.classes.ravel(), minlength=256)

    def finish(self, tags):
        self.product = {"tiles": self.tiles, "counts": self.counts, "size": self.size,
                        "tagged": "LULC_EDGE_CLASS_COUNTS" in tags}


def test_a_toy_sink_is_fed_every_tile(engine, make_scene, tmp_path, monkeypatch):
    """Registered from outside the package with one line, it sees every tile once, in plan
    order, with the results the class map holds; its product comes back with the result."""
    monkeypatch.setitem(SINKS, "toy", ToySink)
    src, _, _ = make_scene(203, 150)
    out = tmp_path / "map.tif"
    res = segment_file(src, out, engine=engine, options=RunOptions(tile=64, progress=False))
    toy = res.products["toy"]
    assert toy["tiles"] == list(range(res.tiles_total)) and res.tiles_total > 4
    assert toy["size"] == (203, 150) and toy["tagged"]
    with rasterio.open(out) as ds:
        written = np.bincount(ds.read(1).ravel(), minlength=256)
    assert np.array_equal(toy["counts"], written) and toy["counts"].sum() == 203 * 150


def test_an_opened_source_and_an_extra_sink_map_as_a_path_does(engine, make_scene, tmp_path):
    src, _, _ = make_scene(130, 97)
    spec = RunSpec(run=RunOptions(tile=64, progress=False))
    by_path = segment_file(src, tmp_path / "a.tif", engine=engine, spec=spec)
    toy = ToySink()
    with open_source(str(src), engine.contract.bands) as source:
        by_source = segment_file(source, tmp_path / "b.tif", engine=engine, spec=spec,
                                 extra_sinks=[toy])
        assert source.read(source_window := rasterio.windows.Window(0, 0, 4, 4)).shape[1:] == \
            (source_window.height, source_window.width)  # left open: it is the caller's
    assert by_source.class_pixels == by_path.class_pixels
    assert toy.product["counts"].sum() == 130 * 97
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        assert np.array_equal(a.read(1), b.read(1))


class BrokenSink(Sink):
    def add(self, tile, result, bands=None):
        if tile.index == 2:
            raise OSError(28, "No space left on device")


def test_a_failing_sink_leaves_no_output_and_says_why(engine, make_scene, tmp_path,
                                                      monkeypatch):
    monkeypatch.setitem(SINKS, "broken", BrokenSink)
    src, _, _ = make_scene(203, 150)
    out = tmp_path / "map.tif"
    with pytest.raises(Exception, match="map.tif: cannot write output .no space left"):
        segment_file(src, out, engine=engine, options=RunOptions(tile=64, progress=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def test_the_run_spec_round_trips_json_and_pickle_and_is_checked():
    spec = RunSpec.of("m.onnx", EngineOptions(device="cpu", precision="fp16"),
                      RunOptions(mode="window", tile=256, confidence=True, thumbnail=64),
                      SourceOptions(bands={"B2": 2, "B3": 3}, scl_fill=4))
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert spec.replace(overwrite=True, device="cuda") == RunSpec.of(
        "m.onnx", EngineOptions(device="cuda", precision="fp16"),
        RunOptions(mode="window", tile=256, confidence=True, thumbnail=64, overwrite=True),
        SourceOptions(bands={"B2": 2, "B3": 3}, scl_fill=4))
    with pytest.raises(ValueError, match="option tile: expected an integer from 64"):
        RunSpec.from_dict({"tile": 4})  # the service's and the CLI's range
    with pytest.raises(ValueError, match="option mode"):
        RunSpec.from_dict({"mode": "mosaic"})
    with pytest.raises(ValueError, match="unknown option 'tiles'"):
        RunSpec.from_dict({"tiles": 256})
    with pytest.raises(ValueError, match="option qml"):
        RunSpec.from_dict({"qml": "yes please"})


def test_side_files_of_a_tiff_map_drop_the_whole_extension():
    assert sibling_path(Path("m.tiff"), "confidence") == Path("m.confidence.tif")
    assert sibling_path(Path("m.TIF"), "probs") == Path("m.probs.tif")


def test_environment_is_read_when_used(monkeypatch):
    """Set after import, as a notebook or a service would: each variable still takes effect."""
    from lulc_edge import batch, gdalenv, modes

    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    monkeypatch.setenv("LULC_EDGE_TILE", "1024")
    monkeypatch.setenv("LULC_EDGE_GDAL_CACHE_BYTES", str(64 * 2**20))
    monkeypatch.setenv("LULC_EDGE_GDAL_CACHE_BYTES_BANDS", str(8 * 2**20))
    monkeypatch.setenv("LULC_EDGE_CONNECT_TIMEOUT", "3")
    assert modes.default_tile("seamless", "cpu") == 1024
    assert gdalenv.gdal_settings()["GDAL_CACHEMAX"] == 64 * 2**20
    assert gdalenv.gdal_settings(strips=True)["GDAL_CACHEMAX"] == 8 * 2**20
    assert batch.connect_timeout() == 3.0


def test_modes_are_objects_in_a_table(engine, make_scene, tmp_path):
    from lulc_edge.errors import LulcEdgeError
    from lulc_edge.modes import MODES, get_mode

    c = engine.contract
    assert list(MODES) == ["seamless", "window"] and get_mode("window") is MODES["window"]
    assert MODES["seamless"].tile_step(c) == c.alignment
    assert MODES["window"].tile_step(c) == c.window_stride
    src, _, _ = make_scene(64, 64)
    with pytest.raises(LulcEdgeError, match="unknown mode 'mosaic'; choose one of seamless, win"):
        segment_file(src, tmp_path / "m.tif", engine=engine, options=RunOptions(mode="mosaic"))
    assert not (tmp_path / "m.tif").exists()
