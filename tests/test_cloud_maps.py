"""Clouds in class maps: SCL cloud, shadow and cirrus pixels (dilated) become Cloud (254)
everywhere a map says what it holds; --no-cloud-mask and inputs without SCL keep the model's
classes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from lulc_edge import RunOptions, Segmenter, SourceOptions, segment_file
from lulc_edge.clouds import CLOUD_MASK_TAG, CLOUD_VALUE, DEFAULT_BUFFER, CloudMask, cloud_mask
from lulc_edge.contract import MODEL_BANDS
from lulc_edge.errors import LulcEdgeError
from lulc_edge.preview import read_map
from lulc_edge.preview_labels import largest_regions
from lulc_edge.raster import OPTIONS_TAG, confidence_path, probs_path
from lulc_edge.serve_jobs import job_spec, parse_options
from lulc_edge.sources import open_source
from lulc_edge.spec import RunSpec
from lulc_edge.synthetic import SCL_INDEX, SceneSpec, generate
from lulc_edge.uploads import ApiError

from .conftest import SHARED_DATA, needs_shared, run_cli, write_stack

#: Planted SCL regions (rows, cols, SCL class): a cloud across seamless and window tile
#: borders at --tile 64, cirrus, a shadow, and a cloud touching the scene's nodata border.
PLANTED = [((40, 75), (50, 80), 9), ((100, 110), (150, 170), 10), ((60, 70), (120, 126), 3),
           ((2, 14), (20, 40), 8)]


@pytest.fixture()
def cloudy(tmp_path):
    """A clear synthetic scene with planted SCL clouds; (path, bands)."""
    bands, _, _ = generate(SceneSpec(width=203, height=150, seed=5, cloud_fraction=0.0))
    valid = np.delete(bands, SCL_INDEX, axis=0).any(axis=0)
    for (r0, r1), (c0, c1), v in PLANTED:
        bands[SCL_INDEX, r0:r1, c0:c1] = np.where(valid[r0:r1, c0:c1], v, 0)
    return write_stack(tmp_path / "cloudy.tif", bands), bands


def _read(path, band=1):
    with rasterio.open(path) as ds:
        return ds.read(band)


def _map(engine, src, out, **kw):
    res = segment_file(src, out, engine=engine, options=RunOptions(progress=False, **kw))
    return res, _read(out)


def expected_mask(bands: np.ndarray, mask: CloudMask | None = None) -> np.ndarray:
    """The SCL mask of a whole array, computed at once (the runs compute it per tile)."""
    valid = np.delete(bands, SCL_INDEX, axis=0).any(axis=0)
    return cloud_mask(bands[SCL_INDEX], mask or CloudMask(), valid)


@pytest.mark.parametrize("mode", ["seamless", "window"])
def test_masked_pixels_are_the_dilated_scl_region(engine, cloudy, tmp_path, mode):
    src, bands = cloudy
    _, plain = _map(engine, src, tmp_path / "plain.tif", mode=mode, cloud_mask=False)
    want = expected_mask(bands) & (plain != 255)
    assert want.sum() > 1000 and (want & ~np.isin(bands[SCL_INDEX], (3, 8, 9, 10))).any()
    for tile in (64, 512):  # the mask of a tile's core is exact, whatever the tiling
        res, got = _map(engine, src, tmp_path / f"m{tile}.tif", mode=mode, tile=tile)
        assert np.array_equal(got == CLOUD_VALUE, want)
        assert np.array_equal(got[~want], plain[~want])  # the map elsewhere is unchanged
        assert res.class_pixels["Cloud"] == int(want.sum())
        assert res.cloud_percent == pytest.approx(100 * want.sum() / (plain != 255).sum(),
                                                  abs=1e-3)
    _, wide = _map(engine, src, tmp_path / "b3s.tif", mode=mode, cloud_buffer=3, mask_snow=True)
    assert np.array_equal(wide == CLOUD_VALUE,
                          expected_mask(bands, CloudMask(buffer_px=3, snow=True)) & (plain != 255))


def test_cloud_is_named_in_every_output(cloudy, tmp_path):
    src, _ = cloudy
    out = tmp_path / "m.tif"
    res = run_cli("run", src, "-o", out, "--confidence", "--probs", "--qml", "--json",
                  "--device", "cpu", "--threads", "2")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    classes = _read(out)
    cloud = classes == CLOUD_VALUE
    assert doc["class_pixels"]["Cloud"] == int(cloud.sum()) > 0
    assert doc["class_hectares"]["Cloud"] == pytest.approx(cloud.sum() / 100)  # 10 m pixels
    assert doc["cloud_percent"] == pytest.approx(100 * cloud.sum() / (classes != 255).sum(),
                                                 abs=1e-3)
    assert doc["cloud_mask"].startswith(f"SCL 0,1,3,8,9,10 as Cloud (254), dilated "
                                        f"{DEFAULT_BUFFER} px")
    with rasterio.open(out) as ds:
        tags = ds.tags()
        assert ds.colormap(1)[CLOUD_VALUE] == (255, 255, 255, 255)
    assert tags["CLASS_254"] == "Cloud" and tags[CLOUD_MASK_TAG] == doc["cloud_mask"]
    assert json.loads(tags["LULC_EDGE_CLASS_COUNTS"])["254"] == int(cloud.sum())
    aux = out.with_name(out.name + ".aux.xml").read_text()
    assert "<F>254</F><F>Cloud</F><F>255</F><F>255</F><F>255</F>" in aux
    assert 'value="254" color="#ffffff" alpha="255" label="Cloud"' in out.with_suffix(
        ".qml").read_text()
    assert (_read(confidence_path(out))[cloud] == 255).all()  # no confidence, no probabilities
    with rasterio.open(probs_path(out)) as ds:
        assert np.isnan(ds.read()[:, cloud]).all()
    view = read_map(out)  # the pictures' legend and statistics
    assert [c.name for c in view.legend][-2:] == ["Cloud", "Unclassified"]
    assert view.pixels["Cloud"] == int(cloud.sum()) and view.percent["Cloud"] > 0
    regions = {r.cls.name: r.confidence for r in largest_regions(view)}  # annotated labels
    assert regions["Cloud"] is None and all(0 < regions[c.name] <= 1
                                            for c in view.legend[:-2] if c.name in regions)
    table = run_cli("run", src, "-o", tmp_path / "t.tif", "--device", "cpu", "--threads", "2")
    assert table.returncode == 0, table.stderr
    assert "  Cloud  " in table.stdout and "clouds: SCL 0,1,3,8,9,10 as Cloud" in table.stdout
    assert "% of the pixels with data" in table.stdout


def test_no_cloud_mask_gives_the_models_map_bit_for_bit(engine, cloudy, tmp_path):
    src, bands = cloudy
    res, got = _map(engine, src, tmp_path / "n.tif", cloud_mask=False, confidence=True)
    model = Segmenter(engine=engine).predict(bands, clouds=False)
    assert np.array_equal(got, model.classes) and CLOUD_VALUE not in got
    assert "Cloud" not in res.class_pixels and res.cloud_percent is None
    with rasterio.open(tmp_path / "n.tif") as ds:
        tags = ds.tags()
        assert CLOUD_VALUE not in ds.colormap(1)
    assert "CLASS_254" not in tags and tags[CLOUD_MASK_TAG] == "none (--no-cloud-mask)"
    masked = Segmenter(engine=engine).predict(bands)  # the API masks as the CLI does
    assert np.array_equal(masked.classes == CLOUD_VALUE, expected_mask(bands) & (got != 255))


def test_input_without_scl_is_not_masked_and_says_so(engine, cloudy, tmp_path):
    _, bands = cloudy
    l1c = bands.copy()
    l1c[SCL_INDEX] = 0  # no SCL: the run needs --scl-fill
    src = write_stack(tmp_path / "l1c.tif", l1c)
    res = run_cli("run", src, "-o", tmp_path / "f.tif", "--scl-fill", "4", "--device", "cpu",
                  "--threads", "2")
    assert res.returncode == 0, res.stderr
    assert "clouds: none: the input has no SCL (filled with --scl-fill)" in res.stdout
    with rasterio.open(tmp_path / "f.tif") as ds:
        assert "no SCL" in ds.tags()[CLOUD_MASK_TAG] and "CLASS_254" not in ds.tags()
        got = ds.read(1)
    plain = segment_file(src, tmp_path / "p.tif", engine=engine, spec=RunSpec(
        run=RunOptions(progress=False, cloud_mask=False), source=SourceOptions(scl_fill=4)))
    assert "Cloud" not in plain.class_pixels and np.array_equal(got, _read(tmp_path / "p.tif"))
    pred = Segmenter(engine=engine).predict(l1c, scl_fill=4)
    assert CLOUD_VALUE not in pred.classes


def _interrupt_after(n: int):
    """An iterator whose ``n``-th ``next`` raises KeyboardInterrupt (a per-tile callback)."""
    yield from range(n - 1)
    raise KeyboardInterrupt


def test_resumed_run_gives_the_uninterrupted_masked_map(engine, cloudy, tmp_path):
    """The journal keeps masked tiles: a resumed map equals one run through."""
    src, _ = cloudy
    _, whole = _map(engine, src, tmp_path / "whole.tif", tile=64, confidence=True)
    ticks = _interrupt_after(5)
    out = tmp_path / "r.tif"
    with pytest.raises(KeyboardInterrupt):  # as Ctrl-C after 5 tiles
        segment_file(src, out, engine=engine, on_tile=lambda n, px: next(ticks),
                     options=RunOptions(progress=False, tile=64, confidence=True))
    res, got = _map(engine, src, out, tile=64, confidence=True, resume=True)
    assert 0 < res.tiles_inferred < res.tiles_total
    assert np.array_equal(got, whole) and (got == CLOUD_VALUE).any()
    assert np.array_equal(_read(confidence_path(out)),
                          _read(confidence_path(tmp_path / "whole.tif")))
    # other cloud settings: the journal is stale, the run starts over
    ticks = _interrupt_after(5)
    with pytest.raises(KeyboardInterrupt):
        segment_file(src, out, engine=engine, on_tile=lambda n, px: next(ticks),
                     options=RunOptions(progress=False, tile=64, overwrite=True))
    res, got = _map(engine, src, out, tile=64, resume=True, overwrite=True, cloud_mask=False)
    assert res.tiles_inferred == res.tiles_total and any("clouds" in w for w in res.warnings)
    assert CLOUD_VALUE not in got


def test_buffer_beyond_the_modes_context_is_refused(engine, cloudy, tmp_path):
    src, _ = cloudy
    res = run_cli("run", src, "-o", tmp_path / "m.tif", "--cloud-buffer", "30", "--device",
                  "cpu")
    assert res.returncode != 0 and not (tmp_path / "m.tif").exists()
    err = res.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "--cloud-buffer 30: seamless mode reads 24 px" in err and "24 or less" in err
    _, got = _map(engine, src, tmp_path / "w.tif", mode="window", cloud_buffer=30)
    assert (got == CLOUD_VALUE).any()  # window mode reads 32 px around each tile
    with pytest.raises(LulcEdgeError, match="window mode reads 32 px"):
        _map(engine, src, tmp_path / "x.tif", mode="window", cloud_buffer=33)
    with pytest.raises(ValueError, match="seamless mode reads 24 px"):
        Segmenter(engine=engine).predict(np.zeros((13, 8, 8), np.uint16),
                                         clouds=CloudMask(buffer_px=25))


def test_service_jobs_take_the_cloud_options(engine):
    opts = parse_options({"cloud_mask": "false", "cloud_buffer": "5", "mask_snow": "true"},
                         engine)
    assert opts == {"cloud_mask": False, "cloud_buffer": 5, "mask_snow": True}
    run = job_spec(opts, 64).run
    assert (run.cloud_mask, run.cloud_buffer, run.mask_snow) == (False, 5, True)
    for bad, word in [({"cloud_buffer": "-1"}, "option cloud_buffer: expected an integer from "
                       "0 to 256"), ({"cloud_buffer": 30}, "seamless mode reads 24 px"),
                      ({"cloud_mask": "maybe"}, "option cloud_mask: expected true or false")]:
        with pytest.raises(ApiError, match=word):
            parse_options(bad, engine)
    assert parse_options({"cloud_buffer": 30, "mode": "window"}, engine)["cloud_buffer"] == 30
    spec = RunSpec.from_dict({"cloud_buffer": 7, "mask_snow": True})
    assert spec.run.clouds == CloudMask(True, 7, True)
    assert RunSpec.from_dict(spec.to_dict()) == spec


def test_batch_remaps_a_map_made_with_other_cloud_settings(cloudy, tmp_path):
    src, _ = cloudy
    args = ("run", src, "--out-dir", tmp_path / "maps", "--json", "--device", "cpu",
            "--threads", "2")
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    again = run_cli(*args)
    assert json.loads(again.stdout)["skipped"] == 1
    other = run_cli(*args, "--cloud-buffer", "4")
    assert json.loads(other.stdout)["done"] == 1
    off = run_cli(*args, "--no-cloud-mask")
    assert json.loads(off.stdout)["done"] == 1
    with rasterio.open(tmp_path / "maps" / "cloudy.lulc.tif") as ds:
        assert json.loads(ds.tags()[OPTIONS_TAG])["clouds"] is None
        assert CLOUD_VALUE not in ds.read(1)


@needs_shared
def test_real_29rkh_cloud_pixels_are_masked(engine, tmp_path):
    """The shared 29RKH scene: 48,952 pixels whose SCL says cloud or cirrus got a land-cover
    class before; now they (and the dilated ring) are Cloud, and the rest is unchanged."""
    scene = SHARED_DATA / "l2a-29RKH-20200219"
    with open_source(scene, MODEL_BANDS) as s:
        bands = s.read(Window(0, 0, s.width, s.height))
    scl = bands[MODEL_BANDS.index("SCL")]
    valid = np.delete(bands, MODEL_BANDS.index("SCL"), axis=0).any(axis=0)
    assert int((np.isin(scl, (8, 9, 10)) & valid).sum()) == 48952
    res, got = _map(engine, scene, tmp_path / "m.tif")
    _, plain = _map(engine, scene, tmp_path / "p.tif", cloud_mask=False)
    assert ((plain[np.isin(scl, (8, 9, 10)) & valid]) < CLOUD_VALUE).all()  # classes before
    want = expected_mask(bands) & (plain != 255)
    assert np.array_equal(got == CLOUD_VALUE, want)
    assert (got[np.isin(scl, (8, 9, 10)) & valid] == CLOUD_VALUE).all()
    assert np.array_equal(got[~want], plain[~want])
    assert res.class_pixels["Cloud"] == int(want.sum()) > 48952
    assert not math.isnan(res.cloud_percent) and 4 < res.cloud_percent < 100


def test_service_job_and_predict_with_clouds(cloudy, tmp_path):
    """A real server: a job's cloud options reach its run; /predict keeps the original's
    keys, its Cloud pixels counted as Unclassified."""
    from .test_serve import CLASSES, Server, upload

    src, bands = cloudy
    server = Server(tmp_path / "jobs")
    try:
        r = server.post("/jobs", files=upload(src), data={"cloud_buffer": "3"})
        assert r.status_code == 202, r.text
        doc = server.wait(r.json()["id"])
        assert doc["status"] == "done", doc
        assert doc["cloud_mask"].endswith("dilated 3 px (disc)") and doc["cloud_percent"] > 0
        got = tmp_path / "got.tif"
        got.write_bytes(server.get(doc["files"]["map"]).content)
        classes = _read(got)
        want = expected_mask(bands, CloudMask(buffer_px=3)) & (classes != 255)
        assert np.array_equal(classes == CLOUD_VALUE, want)
        assert doc["class_pixels"]["Cloud"] == int(want.sum())
        bad = server.post("/jobs", files=upload(src), data={"cloud_buffer": "25"})
        assert bad.status_code == 400 and "seamless mode reads 24 px" in bad.json()["error"]
        pred = server.post("/predict", files=upload(src)).json()
        assert list(pred["class_stats"]) == CLASSES
        blank = (classes == 255) | expected_mask(bands)  # the default 10 px buffer
        assert pred["class_stats"]["Unclassified"] == round(100 * blank.sum() / blank.size, 2)
    finally:
        server.stop()
