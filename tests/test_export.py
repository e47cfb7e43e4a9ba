"""tests.test_export: the Keras U-Net -> lulc-edge ONNX export (needs the export extra)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

import keras  # noqa: E402

from export.errors import ExportError  # noqa: E402
from export.graph import BANDS, get_metadata  # noqa: E402
from export.keras_model import EXPECTED_PARAMS, build_unet, flexible_copy  # noqa: E402
from export.reference import features_nhwc, synthetic_bands  # noqa: E402
from export.to_onnx import ExportOptions, convert, to_end_to_end  # noqa: E402

pytestmark = pytest.mark.export

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, str(ROOT / "export" / "to_onnx.py")]
CONTRACT_DOC = ROOT / "docs" / "contract.md"
OPTIONAL_KEYS = {"lulc_edge.calibration", "lulc_edge.accuracy"}  # int8 / benchmarks only


def _run_cli(*args: str | os.PathLike) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def _session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(7)
    m = build_unet()
    rng = np.random.default_rng(7)  # non-zero biases, so the bias path is exported and checked
    m.set_weights([w if w.ndim > 1 else rng.normal(0, 0.05, w.shape).astype(np.float32)
                   for w in m.get_weights()])
    return m


@pytest.fixture(scope="module")
def h5(model: keras.Model, workdir: Path) -> Path:
    path = workdir / "unet.h5"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def exported(h5: Path, workdir: Path) -> tuple[Path, subprocess.CompletedProcess]:
    out = workdir / "unet.onnx"
    proc = _run_cli(h5, "-o", out, "--trained-on", "test: random weights")
    assert proc.returncode == 0, proc.stderr
    return out, proc


@pytest.fixture(scope="module")
def session(exported) -> ort.InferenceSession:
    return _session(exported[0])


def test_parameter_count(model: keras.Model) -> None:
    assert model.count_params() == EXPECTED_PARAMS == 475_429
    assert model.input_shape == (None, 64, 64, 16) and model.output_shape == (None, 64, 64, 5)


def test_cli_export_passes_parity_gate(exported) -> None:
    out, proc = exported
    assert out.is_file()
    assert "max |dp|" in proc.stdout and "argmax agreement" in proc.stdout
    report = json.loads(out.with_name("unet.parity.json").read_text())
    assert report["passed"] is True
    assert report["max_abs_dp"] <= 1e-3 and report["argmax_agreement"] >= 0.9999
    sizes = [tuple(c["shape"]) for c in report["cases"]]
    assert (2, 13, 64, 64) in sizes and any(s[2] >= 256 for s in sizes)
    assert all(c["nodata_pixels"] > 0 and c["nodata_ok"] for c in report["cases"])
    assert not list(out.parent.glob(".*.tmp"))


def test_metadata_round_trip(exported, h5: Path) -> None:
    m = onnx.load(str(exported[0]))
    raw = {p.key: p.value for p in m.metadata_props}
    meta = {k: json.loads(v) for k, v in raw.items()}  # every value is a JSON document
    assert meta == get_metadata(m)
    documented = set(re.findall(r"^\| `(lulc_edge\.[a-z_]+)` \|", CONTRACT_DOC.read_text(),
                                re.MULTILINE))
    assert documented and documented - OPTIONAL_KEYS <= set(meta)
    assert meta["lulc_edge.contract"] == 1
    assert meta["lulc_edge.input"]["bands"] == list(BANDS)
    assert meta["lulc_edge.input"]["dtype"] == "uint16"
    assert meta["lulc_edge.input"]["layout"] == "NCHW"
    assert [c["name"] for c in meta["lulc_edge.classes"]] == [
        "Barren_Land", "Built-up_Area", "Crop", "Forest", "Water"]
    assert meta["lulc_edge.classes"][0]["color"] == "#f4a460"
    assert meta["lulc_edge.nodata"]["value"] == 255
    assert meta["lulc_edge.alignment"] == 4
    rf = meta["lulc_edge.receptive_field"]
    assert meta["lulc_edge.halo"] % 4 == 0 and meta["lulc_edge.halo"] >= rf["radius"]
    assert meta["lulc_edge.halo"] - rf["radius"] < 4
    assert meta["lulc_edge.window"] == {"size": 64, "stride": 32}
    assert meta["lulc_edge.weights"] == {"demo": False, "trained_on": "test: random weights"}
    assert meta["lulc_edge.source"] == {
        "file": "unet.h5", "sha256": hashlib.sha256(h5.read_bytes()).hexdigest()}
    assert meta["lulc_edge.exporter"]["opset"] == 17
    assert {"tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime"} <= set(
        meta["lulc_edge.exporter"]["versions"])
    assert meta["lulc_edge.precision"] == "fp32"
    assert meta["lulc_edge.parity"]["passed"] is True
    assert m.opset_import[0].version == 17


def test_graph_io_names_and_layout(exported) -> None:
    m = onnx.load(str(exported[0]))
    g = m.graph
    assert [i.name for i in g.input] == ["bands"]
    assert g.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT16
    assert [o.name for o in g.output] == ["class", "confidence", "probabilities"]
    types = [o.type.tensor_type.elem_type for o in g.output]
    assert types == [onnx.TensorProto.UINT8, onnx.TensorProto.UINT8, onnx.TensorProto.FLOAT]
    ops = [n.op_type for n in g.node]
    # export/optimize.py: sub-pixel decoder (no Resize, no upsampled tensor), Exp/Sum softmax
    assert "Transpose" not in ops and "Tile" not in ops and "Resize" not in ops
    assert ops.count("DepthToSpace") == 2 and "Softmax" not in ops
    names = [n.name for n in g.node]
    assert all(names) and len(set(names)) == len(names)
    assert all(n.split("/")[0] in ("features", "unet", "outputs") for n in names)
    by_name = {n.name: n for n in g.node}
    assert by_name["unet/head_conv"].op_type == "Conv"
    assert by_name["unet/softmax"].output[0] == "probabilities"
    assert by_name["outputs/argmax"].input[0] == by_name["unet/head_conv"].output[0]  # logits
    assert get_metadata(m)["lulc_edge.exporter"]["optimizations"] == [
        "subpixel-decoder", "softmax-exp-sum, argmax on logits"]


def test_features_follow_metadata_recipe(exported) -> None:
    """Evaluate the graph's feature tensor and compare with the recipe read from the metadata."""
    m = onnx.load(str(exported[0]))
    meta = get_metadata(m)
    m.graph.output.append(onnx.helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT,
                                                             None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    bands = rng.integers(1, 10001, size=(1, 13, 8, 12)).astype(np.uint16)
    bands += (np.arange(13, dtype=np.uint16) * 3)[None, :, None, None]  # every band distinct
    bands[0, :, 0, 0] = 0                                     # nodata: 0/(0+eps) -> 0
    bands[0, :, 0, 1] = 65535                                 # full uint16 range
    bands[0, BANDS.index("B8"), 1, 0] = 0                     # one index term zero
    bands[0, BANDS.index("B4"), 1, 0] = 0
    feats = sess.run(["features"], {"bands": bands})[0]
    eps = np.float32(meta["lulc_edge.features"]["eps"])
    band_names = meta["lulc_edge.input"]["bands"]
    values = {b: bands[:, i].astype(np.float32) for i, b in enumerate(band_names)}
    expected = []
    for ch in meta["lulc_edge.features"]["channels"]:
        if ch in meta["lulc_edge.features"]["formulas"]:
            a, b, a2, b2 = re.fullmatch(r"\((\w+)-(\w+)\)/\((\w+)\+(\w+)\+eps\)",
                                         meta["lulc_edge.features"]["formulas"][ch]).groups()
            assert (a, b) == (a2, b2)
            with np.errstate(invalid="ignore", divide="ignore"):
                v = (values[a] - values[b]) / ((values[a] + values[b]) + eps)
            v[~np.isfinite(v)] = meta["lulc_edge.features"]["nan_inf_to"]
            expected.append(v)
        else:
            expected.append(values[ch])
    expected = np.stack(expected, axis=1)
    assert feats.shape == (1, 16, 8, 12)
    np.testing.assert_array_equal(feats, expected)
    np.testing.assert_array_equal(feats, features_nhwc(bands).transpose(0, 3, 1, 2))


@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 100, 132), (1, 128, 96), (1, 512, 512)])
def test_dynamic_shapes(session, shape) -> None:
    n, h, w = shape
    bands = synthetic_bands(n, h, w, seed=h)
    cls, conf, probs = session.run(None, {"bands": bands})
    assert cls.shape == conf.shape == (n, h, w) and probs.shape == (n, 5, h, w)
    assert cls.dtype == conf.dtype == np.uint8 and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    if n > 1:  # batching does not change any pixel
        single = session.run(None, {"bands": bands[1:2]})
        np.testing.assert_array_equal(single[0][0], cls[1])


def test_non_square_matches_keras(session, model: keras.Model) -> None:
    bands = synthetic_bands(1, 128, 96, seed=5)
    ref = np.asarray(flexible_copy(model)(features_nhwc(bands), training=False))
    cls, conf, probs = session.run(None, {"bands": bands})
    valid = np.any(bands != 0, axis=1)
    assert np.abs(probs - ref.transpose(0, 3, 1, 2)).max() <= 1e-3
    assert np.mean(cls[valid] == ref.argmax(-1)[valid]) >= 0.9999
    expected_conf = np.round(255 * ref.max(-1))
    assert np.abs(conf[valid].astype(int) - expected_conf[valid]).max() <= 1


def test_nodata_pixels(session) -> None:
    bands = np.maximum(synthetic_bands(1, 64, 64, seed=11, nodata_fraction=0.0), 1)
    bands[0, :, 10:20, 30:40] = 0                       # all 13 bands zero -> nodata
    bands[0, :, 50, 50] = 0
    bands[0, BANDS.index("SCL"), 50, 50] = 4            # only SCL set: valid, not nodata
    bands[0, :, 5, 5] = 0
    bands[0, BANDS.index("B2"), 5, 5] = 1               # one tiny band value: valid
    cls, conf, _ = session.run(None, {"bands": bands})
    nodata = ~np.any(bands != 0, axis=1)
    assert nodata.sum() == 100
    assert np.all(cls[nodata] == 255) and np.all(conf[nodata] == 0)
    assert np.all(cls[~nodata] <= 4)
    assert cls[0, 50, 50] != 255 and cls[0, 5, 5] != 255


def test_aligned_tile_with_halo_equals_whole(session, exported) -> None:
    """The metadata halo is enough: an aligned tile's interior equals the whole-scene run."""
    meta = get_metadata(onnx.load(str(exported[0])))
    halo = meta["lulc_edge.halo"]
    bands = synthetic_bands(1, 160, 160, seed=2, nodata_fraction=0.0)
    whole = session.run(["probabilities"], {"bands": bands})[0]
    y0, x0, size = 64, 48, 32                     # interior tile, origin on multiples of 4
    tile = bands[:, :, y0 - halo:y0 + size + halo, x0 - halo:x0 + size + halo]
    part = session.run(["probabilities"], {"bands": np.ascontiguousarray(tile)})[0]
    inner = part[:, :, halo:halo + size, halo:halo + size]
    np.testing.assert_allclose(inner, whole[:, :, y0:y0 + size, x0:x0 + size], rtol=0, atol=1e-6)


def test_receptive_field_radius_is_exact(exported) -> None:
    """Logits at phase 1 (mod 4) see exactly `radius` columns to the left, phase 2 to the right.

    Probabilities saturate to exact 0/1 with random weights at reflectance scale, so the test
    reads the head convolution's logits; whole columns are perturbed so max pooling cannot hide
    the change.
    """
    m = onnx.load(str(exported[0]))
    radius = get_metadata(m)["lulc_edge.receptive_field"]["radius"]
    m.graph.output.append(onnx.helper.make_tensor_value_info("unet/head_conv",
                                                             onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    bands = synthetic_bands(1, 96, 96, seed=9, nodata_fraction=0.0)
    base = sess.run(["unet/head_conv"], {"bands": bands})[0]

    def moved(x: int, column: int) -> bool:
        b = bands.copy()
        b[0, :, :, column] = 10000 - b[0, :, :, column] // 2
        out = sess.run(["unet/head_conv"], {"bands": b})[0]
        return not np.array_equal(out[0, :, 48, x], base[0, :, 48, x])

    assert moved(49, 49 - radius) and not moved(49, 49 - radius - 1)
    assert moved(50, 50 + radius) and not moved(50, 50 + radius + 1)


def test_opset_18_builds(model: keras.Model, session) -> None:
    m18, _ = to_end_to_end(model, opset=18)
    assert m18.opset_import[0].version == 18
    bands = synthetic_bands(1, 64, 64, seed=4)
    s18 = ort.InferenceSession(m18.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(s18.run(["class"], {"bands": bands})[0],
                                  session.run(["class"], {"bands": bands})[0])


def test_failed_parity_gate_leaves_no_model(h5: Path, workdir: Path) -> None:
    out = workdir / "strict.onnx"
    options = ExportOptions(max_abs_dp=0.0, min_agreement=1.1, parity_sizes=((1, 64, 64),))
    with pytest.raises(ExportError, match="parity gate failed"):
        convert(h5, out, options)
    assert not out.exists()
    assert not list(workdir.glob(".strict.onnx.*"))
    assert json.loads((workdir / "strict.parity.json").read_text())["passed"] is False


def _bad_model(workdir: Path, kind: str) -> Path:
    path = workdir / f"{kind}.h5"
    if kind == "missing":
        return path
    if kind == "text":
        path.write_text("this is not a model\n")
    elif kind == "four_classes":
        build_unet(n_classes=4).save(path)
    elif kind == "twelve_channels":
        build_unet(input_shape=(64, 64, 12)).save(path)
    return path


@pytest.mark.parametrize("kind, message", [
    ("missing", "not found"),
    ("text", "not an HDF5 file"),
    ("four_classes", "5"),
    ("twelve_channels", "16"),
    ("no_out_dir", "output directory does not exist"),
])
def test_bad_inputs_fail_cleanly(kind: str, message: str, workdir: Path, h5: Path) -> None:
    src = h5 if kind == "no_out_dir" else _bad_model(workdir, kind)
    out = (workdir / "nowhere" / "x.onnx") if kind == "no_out_dir" else workdir / f"{kind}.onnx"
    proc = _run_cli(src, "-o", out)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_no_optimize_writes_the_canonical_graph_with_the_same_results(h5, workdir,
                                                                       session) -> None:
    out = workdir / "canonical.onnx"
    proc = _run_cli(h5, "-o", out, "--trained-on", "test: random weights", "--no-optimize")
    assert proc.returncode == 0, proc.stderr
    m = onnx.load(str(out))
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("Resize") == 2 and ops.count("Softmax") == 1 and "DepthToSpace" not in ops
    assert get_metadata(m)["lulc_edge.exporter"]["optimizations"] == []
    bands = np.random.default_rng(5).integers(0, 9000, (1, 13, 96, 120)).astype(np.uint16)
    a = session.run(None, {"bands": bands})
    b = _session(out).run(None, {"bands": bands})
    assert np.abs(a[2] - b[2]).max() < 1e-4
    assert np.mean(a[0] == b[0]) >= 0.999
