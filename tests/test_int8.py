"""tests.test_int8: the int8 model: only the U-Net quantized, metadata, agreement, runtime use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import rasterio

from export.quantize import (
    QuantizeOptions,
    check_float_boundary,
    quantize_file,
)
from lulc_edge import Segmenter, bundled_model
from lulc_edge.contract import file_sha256
from lulc_edge.synthetic import SceneSpec, generate, write_scene

from .conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
INT8 = bundled_model("demo-unet-int8.onnx")
QUANTIZE = [sys.executable, str(ROOT / "export" / "quantize.py")]
QDQ = ("QuantizeLinear", "DequantizeLinear")


def _meta(model: onnx.ModelProto) -> dict:
    return {p.key: json.loads(p.value) for p in model.metadata_props}


@pytest.fixture(scope="module")
def fp32_model() -> onnx.ModelProto:
    return onnx.load(bundled_model())


@pytest.fixture(scope="module")
def int8_model() -> onnx.ModelProto:
    assert INT8.is_file(), f"{INT8} missing: python export/quantize.py ... (export/INT8.md)"
    return onnx.load(INT8)


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    bands, labels, _ = generate(SceneSpec(width=256, height=256, seed=77, region_scale=40))
    return bands, labels


def _assert_unet_only(q: onnx.ModelProto, fp32: onnx.ModelProto) -> None:
    qdq = [n for n in q.graph.node if n.op_type in QDQ]
    assert any(n.op_type == "QuantizeLinear" for n in qdq), "nothing was quantized"
    assert all(n.name.startswith("unet/") for n in qdq), [n.name for n in qdq][:5]
    check_float_boundary(q)  # no features/* or outputs/* node reads a dequantized tensor
    # the float parts are the fp32 model's nodes, untouched
    for prefix in ("features/", "outputs/"):
        a = sorted((n.name, n.op_type, tuple(n.input), tuple(n.output)) for n in fp32.graph.node
                   if n.name.startswith(prefix))
        b = sorted((n.name, n.op_type, tuple(n.input), tuple(n.output)) for n in q.graph.node
                   if n.name.startswith(prefix))
        assert a == b and a, prefix
    # the head conv and softmax stay float; the convolutions after the first one are quantized
    producers = {o: n for n in q.graph.node for o in n.output}
    head = next(n for n in q.graph.node if n.name == "unet/head_conv")
    inits = {t.name: t for t in q.graph.initializer}
    assert inits[head.input[1]].data_type == onnx.TensorProto.FLOAT  # float head weights
    softmax = [n for n in q.graph.node if n.name.startswith("unet/softmax")]
    assert softmax and all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear"
                           for n in softmax for i in n.input)  # Exp/Sum form, float inputs
    conv2 = next(n for n in q.graph.node if n.name == "unet/enc1_conv2")
    assert producers[conv2.input[0]].op_type == "DequantizeLinear"
    assert producers[conv2.input[1]].op_type == "DequantizeLinear"


def test_shipped_model_quantizes_only_the_unet(int8_model, fp32_model):
    _assert_unet_only(int8_model, fp32_model)


def test_shipped_model_metadata(int8_model, fp32_model):
    m8, m32 = _meta(int8_model), _meta(fp32_model)
    assert m8["lulc_edge.precision"] == "int8"
    for key in m32:
        if key not in ("lulc_edge.precision", "lulc_edge.exporter", "lulc_edge.accuracy"):
            assert m8[key] == m32[key], key  # accuracy: each file stores its own numbers
    assert m8["lulc_edge.calibration"]["fp32_model"]["sha256"] == file_sha256(bundled_model())
    cal = m8["lulc_edge.calibration"]
    for key in ("scenes", "tile_count", "tile_size", "seed", "method", "calibration_method",
                "input_handling", "gate", "fp32_model"):
        assert key in cal, key
    assert cal["calibration_method"] in ("MinMax", "Entropy", "Percentile")
    assert cal["tile_count"] == sum(s["tiles"] for s in cal["scenes"])
    assert all("sha256" in s or "synthetic" in s for s in cal["scenes"])
    assert cal["gate"]["passed"]
    assert cal["fp32_model"]["sha256"]
    assert 0.99 <= m8["lulc_edge.accuracy"]["int8"]["agreement"] <= 1.0


def test_agreement_and_f1_against_fp32(scene):
    bands, labels = scene
    p32 = Segmenter(bundled_model(), device="cpu", threads=2).predict(bands).classes
    p8 = Segmenter(INT8, device="cpu", precision="int8", threads=2).predict(bands).classes
    valid = labels != 255
    assert np.array_equal(p32 == 255, p8 == 255)  # nodata rule is float, identical
    assert np.mean(p32[valid] == p8[valid]) >= 0.99
    for k in range(5):
        f1 = []
        for p in (p32, p8):
            tp = np.sum((p[valid] == k) & (labels[valid] == k))
            f1.append(2 * tp / (np.sum(p[valid] == k) + np.sum(labels[valid] == k)))
        assert f1[0] - f1[1] <= 0.01, (k, f1)


def test_tiled_equals_whole_scene(scene):
    bands = scene[0][:, :200, :236]  # sizes that are not multiples of the tile
    seg = Segmenter(INT8, device="cpu", precision="int8", threads=2)
    whole = seg.predict(bands, tile=256, probabilities=True)
    tiled = seg.predict(bands, tile=64, probabilities=True)
    assert np.array_equal(whole.classes, tiled.classes)
    assert np.array_equal(whole.probabilities, tiled.probabilities, equal_nan=True)  # NaN: Cloud


@pytest.mark.parametrize("mode", ["seamless", "window"])
def test_runtime_cli_runs_int8(tmp_path, mode):
    src = write_scene(tmp_path / "s.tif", SceneSpec(width=160, height=128, seed=3))
    out = tmp_path / f"s.{mode}.tif"
    res = run_cli("run", src, "--model", INT8, "-o", out, "--mode", mode, "--device", "cpu",
                  "--threads", "2", "-q")
    assert res.returncode == 0, res.stderr
    with rasterio.open(out) as ds:
        assert ds.tags()["LULC_EDGE_PRECISION"] == "int8"
        assert set(np.unique(ds.read(1))) <= {0, 1, 2, 3, 4, 255}


def test_quantize_file_from_fp32(tmp_path, fp32_model):
    """Re-quantize the bundled fp32 model quickly: nodes_to_exclude must match node names."""
    calib = write_scene(tmp_path / "calib.tif", SceneSpec(width=192, height=192, seed=9))
    out = tmp_path / "q.onnx"
    report = quantize_file(bundled_model(), out, QuantizeOptions(
        calibration=[calib], tiles=6, tile_size=64, seed=1, quiet=True))
    q = onnx.load(out)
    _assert_unet_only(q, fp32_model)
    cal = _meta(q)["lulc_edge.calibration"]
    assert cal["scenes"][0]["file"] == "calib.tif" and len(cal["scenes"][0]["sha256"]) == 64
    assert (cal["tile_count"], cal["tile_size"], cal["seed"]) == (6, 64, 1)
    assert report.gate["passed"], report.gate


def _quantize_cli(*args: str | os.PathLike) -> subprocess.CompletedProcess:
    return subprocess.run([*QUANTIZE, *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


@pytest.mark.parametrize("case", ["missing", "not-a-raster", "already-int8", "zero-tiles"])
def test_bad_calibration_input_one_line_error(tmp_path, case):
    model, extra = bundled_model(), []
    if case == "missing":
        extra = ["--calibration", tmp_path / "nope.tif"]
    elif case == "not-a-raster":
        bad = tmp_path / "bad.tif"
        bad.write_text("not a raster")
        extra = ["--calibration", bad]
    elif case == "already-int8":
        model = INT8
    else:
        extra = ["--calibration-tiles", "0"]
    out = tmp_path / "q.onnx"
    res = _quantize_cli(model, "-o", out, *extra)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()


@pytest.mark.export
def test_to_onnx_int8_cli(tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    import keras

    from export.keras_model import build_unet

    keras.utils.set_random_seed(3)
    h5 = tmp_path / "m.h5"
    model = build_unet()
    # Random weights put most pixels on a knife edge between classes, where any int8 noise flips
    # the argmax and the gate refuses (rightly). This test is about the CLI path, so the head is
    # made decisive: zero kernel, one bias per class (accuracy is tested on the shipped model).
    head = model.get_layer("head_conv")
    kernel, bias = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.array([3.0, 0, 0, 0, 0], bias.dtype)])
    model.save(h5)
    calib = write_scene(tmp_path / "calib.tif", SceneSpec(width=160, height=160, seed=4))
    out = tmp_path / "m-int8.onnx"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run([sys.executable, str(ROOT / "export" / "to_onnx.py"), str(h5), "-o",
                          str(out), "--int8", "--calibration", str(calib),
                          "--calibration-tiles", "6", "--seed", "2"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    q = onnx.load(out)
    meta = _meta(q)
    assert meta["lulc_edge.precision"] == "int8"
    assert meta["lulc_edge.source"]["file"] == "m.h5"
    assert meta["lulc_edge.parity"]["passed"]  # the fp32 export's Keras parity gate
    assert meta["lulc_edge.calibration"]["seed"] == 2
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)


def test_synthetic_bright_calibration_word_widens_the_ranges(tmp_path, fp32_model):
    """'synthetic-bright' adds a scene brightened x1..x3 (the DNs of clouds and snow)."""
    from export.quantize import _synthetic_scene, resolve_scenes

    scenes, _ = resolve_scenes(["synthetic", "synthetic-bright"], 4)
    assert len(scenes) == 4 and "brighten" in scenes[-1].info["synthetic"]
    plain, bright = _synthetic_scene(211, 384, 48), scenes[-1]
    assert int(bright.array.max()) > 2 * int(plain.array.max())
    assert np.array_equal(bright.array[:, :, 0], plain.array[:, :, 0])  # x1 at the left edge
    assert np.array_equal(bright.array[10], plain.array[10])  # SCL kept
    out = tmp_path / "m-int8.onnx"
    rep = quantize_file(bundled_model(), out, QuantizeOptions(
        calibration=["synthetic-bright"], tiles=8, gate=False, quiet=True))
    assert out.is_file() and rep.calibration["scenes"][0]["synthetic"]["brighten"]
