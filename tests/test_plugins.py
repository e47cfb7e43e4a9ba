"""Extending lulc-edge from outside the package: openers and sinks registered by a caller and
mapped through ``segment_file``; what an input string is, decided by the openers."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.windows import Window

from lulc_edge import RunOptions, segment_file
from lulc_edge.batch import expand_inputs
from lulc_edge.errors import InputError
from lulc_edge.preview import read_true_colour
from lulc_edge.sources import (
    OPENERS,
    Source,
    SourceOptions,
    StackSource,
    check_input,
    is_remote,
    open_source,
    opener_for,
    register_opener,
)
from lulc_edge.sources.fingerprint import file_fingerprint as fingerprint
from lulc_edge.synthetic import BAND_NAMES, SceneSpec, generate_rows, write_scene

SEED = 5


class ToySource(Source):
    """``toy://WxH``: a synthetic scene (lulc_edge.synthetic) made in memory, no file."""

    def __init__(self, path: str, band_names, options: SourceOptions):
        super().__init__(path, band_names, options)
        w, h = (int(v) for v in path.removeprefix("toy://").split("x"))
        spec = SceneSpec(width=w, height=h, seed=SEED)
        self.width, self.height = w, h
        self.crs, self.transform = CRS.from_string(spec.crs), spec.transform
        bands, _ = generate_rows(spec, 0, h)
        self._bands = dict(zip(BAND_NAMES, bands, strict=True))
        self._settle("", None, "synthetic: harmonised digital numbers")

    def _read_raw(self, window: Window, sample: bool = False, hold: bool = True):
        rows, cols = window.toslices()
        return {b: self._bands[b][rows, cols] for b in self.band_names}


@pytest.fixture()
def openers():
    """Registered openers are dropped again after the test."""
    saved = list(OPENERS)
    yield
    OPENERS[:] = saved


def test_a_toy_opener_maps_a_scene(openers, engine, tmp_path):
    """A toy opener from outside the package maps a scene through segment_file to a GeoTIFF,
    the same map as the scene written to a file and read by the stack opener."""
    register_opener("toy", lambda s: s.startswith("toy://"), ToySource, local=False)
    assert opener_for("toy://64x48").name == "toy" and is_remote("toy://64x48")
    check_input("toy://64x48")  # not a local path: not looked for on disk
    res = segment_file("toy://64x48", tmp_path / "toy.tif", engine=engine)
    assert (res.width, res.height) == (64, 48)
    stack = write_scene(tmp_path / "stack.tif", SceneSpec(width=64, height=48, seed=SEED))
    segment_file(stack, tmp_path / "stack.lulc.tif", engine=engine)
    with rasterio.open(tmp_path / "toy.tif") as toy, \
            rasterio.open(tmp_path / "stack.lulc.tif") as ref:
        assert toy.crs == ref.crs and toy.transform == ref.transform
        np.testing.assert_array_equal(toy.read(1), ref.read(1))


def test_a_toy_opener_and_a_toy_sink_map_a_scene_together(openers, engine, tmp_path,
                                                          monkeypatch):
    """The issue's extension test: an input kind and an output, each registered with one line
    from outside the package; the run reads through the one and feeds the other every tile."""
    from lulc_edge.sinks import SINKS
    from tests.test_sinks import ToySink

    register_opener("toy", lambda s: s.startswith("toy://"), ToySource, local=False)
    monkeypatch.setitem(SINKS, "toy", ToySink)
    res = segment_file("toy://150x90", tmp_path / "toy.tif", engine=engine,
                       options=RunOptions(tile=64, progress=False))
    toy = res.products["toy"]
    assert toy["tiles"] == list(range(res.tiles_total)) and res.tiles_total > 2
    assert toy["size"] == (150, 90) and toy["tagged"]
    with rasterio.open(tmp_path / "toy.tif") as ds:
        assert np.array_equal(toy["counts"], np.bincount(ds.read(1).ravel(), minlength=256))


def test_an_opened_source_is_used_as_it_is(tmp_path):
    path = write_scene(tmp_path / "s.tif", SceneSpec(width=40, height=30, seed=SEED))
    with open_source(path) as src:
        assert open_source(src) is src
        assert src.fingerprint() == fingerprint(str(path))  # the resume journal's format
        assert src.band_locations()["B4"] == (str(path), BAND_NAMES.index("B4") + 1)


def test_a_registered_source_says_where_its_true_colour_bands_are(openers, tmp_path):
    """The true-colour picture reads B4/B3/B2 where the source says they are: here an alias
    naming a stack elsewhere (the picture once reread the input string as a file)."""
    path = write_scene(tmp_path / "s.tif", SceneSpec(width=40, height=30, seed=SEED))
    register_opener("alias", lambda s: s.startswith("alias:"),
                    lambda s, bands, opts: StackSource(str(tmp_path / s[6:]), bands, opts),
                    local=False)
    np.testing.assert_array_equal(read_true_colour("alias:s.tif", (15, 20)),
                                  read_true_colour(path, (15, 20)))


def test_a_signed_url_in_a_batch_is_not_taken_for_a_pattern(tmp_path):
    """``?`` starts a URL's query: only local patterns are globbed."""
    url = "https://example.com/scenes/x.tif?sig=abc&se=2026"
    (tmp_path / "a.tif").touch()
    (tmp_path / "b.tif").touch()
    got = expand_inputs([url, str(tmp_path / "?.tif"), "/vsicurl/https://h/y.tif?k=1"])
    assert got == [url, str(tmp_path / "a.tif"), str(tmp_path / "b.tif"),
                   "/vsicurl/https://h/y.tif?k=1"]
    with pytest.raises(InputError, match="pattern matches no file"):
        expand_inputs([str(tmp_path / "*.jp2")])


def test_urls_have_a_fingerprint_of_their_own():
    """A URL is opened by the url opener, whose fingerprint is not the files' stat (the place
    for ETag / Last-Modified); it is empty today, as the journal's was."""
    assert opener_for("https://h/x.tif").name == "url"
    from lulc_edge.sources.remote import RemoteStackSource

    assert RemoteStackSource.fingerprint is not Source.fingerprint
