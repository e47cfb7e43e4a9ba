"""export.quantize: static int8 of the U-Net inside an end-to-end lulc-edge ONNX model.

    python export/quantize.py FP32.onnx -o INT8.onnx [--calibration SCENE ...] [--tiles 32]

Only the U-Net (nodes ``unet/*``) is quantized: QDQ format, weights int8 per output channel,
activations uint8 (U8S8), calibrated with onnxruntime.quantization on tiles sampled from the
valid pixels of the calibration scenes. The feature subgraph (``features/*``) and the outputs
subgraph (``outputs/*``) stay float, and so do the last 1x1 convolution and the softmax.

The U-Net input is unnormalised (reflectance DN up to ~10000 beside indices in [-1, 1] and SCL
0..11): one uint8 scale for the whole tensor wipes out the index channels. Two ways around it
are implemented: keep the first convolution in float (the default: the input is never
quantized, only the first conv's output is), or a float ``Mul`` by a per-channel scale
(1 / max |x_c| over the calibration pixels) in front of the first convolution, whose weights are
divided by the same scale (``input_handling="channel-scale"``). ``export/INT8.md`` has the
numbers behind the choice.

A gate compares int8 with fp32 before anything is written: argmax agreement on held-out tiles of
the calibration scenes and on a labelled synthetic scene, and per-class F1 against the labels.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python export/quantize.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

from export.errors import ExportError, run_tool  # noqa: E402
from export.graph import HEAD_CONV, SOFTMAX, _find  # noqa: E402
from lulc_edge.errors import first_line  # noqa: E402

TOOL = "export/quantize.py"
DEFAULT_EXAMPLE_SCENE = Path(__file__).resolve().parents[1] / "examples/data/example-scene.tif"
#: Synthetic calibration scenes used when no scene is given and the example scene is absent:
#: (seed, size, region scale). Seeds differ from the demo training scenes (1..8) and the
#: held-out scene (100) of export/train_demo.py.
SYNTHETIC_SCENES = ((201, 384, 32), (202, 384, 48), (203, 384, 64))
BRIGHT_SCENE = (211, 384, 48, 3.0)  # (seed, size, region scale, brightening): real DN range
#: The labelled synthetic scene of the gate (F1 against ground truth).
GATE_SCENE = (301, 512, 48)
SYNTHETIC_WORD = "synthetic"
BRIGHT_WORD = "synthetic-bright"
METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
INPUT_HANDLING = ("float-first-conv", "channel-scale", "none")
FIRST_CONV = "unet/enc1_conv1"
SCALE_NODE, SCALED_INPUT = "unet/input_scale", "unet/input_scaled"
MIN_AGREEMENT = 0.99
MAX_F1_DROP = 0.01  # 1.0 point
MIN_VALID_FRACTION = 0.95  # of a calibration tile


@dataclass
class QuantizeOptions:
    """How to calibrate and quantize; the defaults are the measured choice (export/INT8.md)."""

    calibration: Sequence[str | os.PathLike] = ()  # scenes; () -> example scene or synthetic
    tiles: int = 32
    tile_size: int = 128
    seed: int = 0
    method: str = "minmax"                  # minmax | entropy | percentile
    input_handling: str = "float-first-conv"  # float-first-conv | channel-scale | none
    float_head: bool = True                 # keep unet/head_conv and unet/softmax in float
    scope: str = "unet"                     # "unet"; "graph" (features too) only for INT8.md
    keep_float: tuple[str, ...] = ()        # further unet/ nodes to leave in float
    scl_fill: int | None = 4                # SCL for scenes without one (L1C, BigEarthNet)
    gate: bool = True
    min_agreement: float = MIN_AGREEMENT
    max_f1_drop: float = MAX_F1_DROP
    threads: int = 2
    quiet: bool = False


@dataclass
class QuantizeReport:
    """What a quantization produced."""

    onnx_path: Path | None
    calibration: dict[str, Any]
    gate: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


def _say(options: QuantizeOptions, msg: str) -> None:
    if not options.quiet:
        print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- calibration tiles

@dataclass
class _Scene:
    """One calibration scene: a reader of windows and its description for the metadata."""

    label: str
    width: int
    height: int
    info: dict[str, Any]
    array: np.ndarray | None = None  # in-memory synthetic scene
    source: Any = None               # an open lulc_edge Source

    def read(self, r: int, c: int, size: int) -> np.ndarray:
        """(13, size, size) uint16 at (r, c); pixels outside the scene are 0 (nodata)."""
        if self.array is not None:
            out = np.zeros((self.array.shape[0], size, size), np.uint16)
            part = self.array[:, r: r + size, c: c + size]
            out[:, : part.shape[1], : part.shape[2]] = part
            return out
        from rasterio.windows import Window

        from lulc_edge.errors import LulcEdgeError

        try:
            return self.source.read(Window(c, r, size, size))
        except LulcEdgeError as exc:
            raise ExportError(f"calibration scene {exc}") from None

    def close(self) -> None:
        if self.source is not None:
            self.source.close()


def _open_scene(path: str, scl_fill: int | None):  # noqa: ANN202 - lulc_edge Source
    from lulc_edge.errors import LulcEdgeError
    from lulc_edge.sources import SourceOptions, open_source

    if not os.path.exists(path):
        raise ExportError(f"calibration scene not found: {path}")
    try:
        return open_source(str(path), options=SourceOptions(scl_fill=scl_fill))
    except LulcEdgeError as exc:
        raise ExportError(f"calibration scene {exc}") from None


def _synthetic_scene(seed: int, size: int, scale: float, brighten: float = 1.0) -> _Scene:
    """A synthetic scene; ``brighten`` > 1 scales its reflectance bands (not SCL) from x1 at the
    left edge to x``brighten`` at the right: synthetic DNs stop near 5400, real scenes reach
    13000-16000 on clouds, snow and bright soil (export/INT8.md)."""
    from lulc_edge.synthetic import SCL_INDEX, SceneSpec, generate

    spec = SceneSpec(width=size, height=size, seed=seed, region_scale=scale)
    bands, _, _ = generate(spec)
    info: dict[str, Any] = {"generator": "lulc_edge.synthetic", "seed": seed, "size": size,
                            "region_scale": scale}
    if brighten != 1.0:
        ramp = np.linspace(1.0, brighten, size, dtype=np.float32)[None, None, :]
        refl = [i for i in range(bands.shape[0]) if i != SCL_INDEX]
        bands[refl] = np.clip(bands[refl] * ramp, 0, 65535).astype(np.uint16)
        info["brighten"] = f"reflectance bands x1 -> x{brighten:g} from left to right"
    return _Scene(label=f"synthetic seed {seed}", width=size, height=size, array=bands,
                  info={"synthetic": info})


def _file_scene(path: str, scl_fill: int | None) -> _Scene:
    from lulc_edge.contract import file_sha256

    p = Path(path)
    src = _open_scene(path, scl_fill)
    if p.is_file():
        digest = file_sha256(p)
    else:  # a band folder: hash of its files' names and hashes
        import hashlib

        h = hashlib.sha256()
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(f"{f.relative_to(p)}:{file_sha256(f)}\n".encode())
        digest = h.hexdigest()
    info: dict[str, Any] = {"file": p.name, "sha256": digest, "width": src.width,
                            "height": src.height}
    tags = src.tags()
    if "SCL_FILL" in tags:
        info["scl_fill"] = int(tags["SCL_FILL"])
    return _Scene(label=p.name, width=src.width, height=src.height, info=info, source=src)


def resolve_scenes(calibration: Sequence[str | os.PathLike], scl_fill: int | None
                   ) -> tuple[list[_Scene], str]:
    """The calibration scenes and a note on where they came from."""
    items = [str(c) for c in calibration]
    note = "scenes given with --calibration"
    if not items:
        if DEFAULT_EXAMPLE_SCENE.is_file():
            items = [str(DEFAULT_EXAMPLE_SCENE)]
            note = ("no --calibration given: calibrated on the bundled example scene "
                    f"{DEFAULT_EXAMPLE_SCENE.name}")
        else:
            items = [SYNTHETIC_WORD]
            note = ("no --calibration given and examples/data/example-scene.tif absent: "
                    "calibrated on synthetic scenes from lulc_edge.synthetic")
    scenes: list[_Scene] = []
    for item in items:
        if item == SYNTHETIC_WORD:
            scenes += [_synthetic_scene(*s) for s in SYNTHETIC_SCENES]
        elif item == BRIGHT_WORD:
            scenes.append(_synthetic_scene(*BRIGHT_SCENE))
        else:
            scenes.append(_file_scene(item, scl_fill))
    return scenes, note


@contextmanager
def calibration_scenes(calibration: Sequence[str | os.PathLike], scl_fill: int | None
                       ) -> Iterator[tuple[list[_Scene], str]]:
    """:func:`resolve_scenes`, closing the scenes' sources on the way out."""
    scenes, note = resolve_scenes(calibration, scl_fill)
    try:
        yield scenes, note
    finally:
        for scene in scenes:
            scene.close()


def validate_options(options: QuantizeOptions) -> None:
    """One-line ExportError for options that cannot work (before any slow step)."""
    if options.tiles < 1:
        raise ExportError(f"--calibration-tiles must be >= 1, got {options.tiles}")
    if options.tile_size < 32 or options.tile_size % 4:
        raise ExportError("--calibration-tile-size must be a multiple of 4 >= 32, "
                          f"got {options.tile_size}")
    if options.method not in METHODS:
        raise ExportError(f"unknown calibration method {options.method!r}; "
                          f"choose one of {', '.join(METHODS)}")
    if options.input_handling not in INPUT_HANDLING:
        raise ExportError(f"unknown input handling {options.input_handling!r}; "
                          f"choose one of {', '.join(INPUT_HANDLING)}")


def check_calibration(options: QuantizeOptions) -> None:
    """Open each calibration scene file once and close it (one-line ExportError if one is
    unusable), before a slow step; hashing and tile sampling wait for the quantization."""
    validate_options(options)
    for item in map(str, options.calibration):
        if item not in (SYNTHETIC_WORD, BRIGHT_WORD):
            _open_scene(item, options.scl_fill).close()


def _tile_origins(scene: _Scene, size: int, rng: np.random.Generator) -> Iterator[tuple[int, int]]:
    """Random tile origins on multiples of 4 (tiles of small scenes reach past their edge)."""
    rmax, cmax = max(scene.height - size, 0), max(scene.width - size, 0)
    while True:
        yield int(rng.integers(0, rmax // 4 + 1) * 4), int(rng.integers(0, cmax // 4 + 1) * 4)


def calibration_tiles(scenes: Sequence[_Scene], n_tiles: int, size: int, seed: int,
                      ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """``n_tiles`` tiles (N, 13, size, size) uint16, spread round-robin over the scenes.

    A tile is kept when at least 95% of its pixels are valid (not all-zero); after 20 tries a
    scene gives its best candidates instead (small or ragged scenes). A scene without any valid
    pixel in its candidates is an error.
    """
    if n_tiles < 1:
        raise ExportError(f"--calibration-tiles must be >= 1, got {n_tiles}")
    if size < 32 or size % 4:
        raise ExportError(f"calibration tile size must be a multiple of 4 >= 32, got {size}")
    rng = np.random.default_rng(seed)
    share = [n_tiles // len(scenes) + (i < n_tiles % len(scenes)) for i in range(len(scenes))]
    tiles, used = [], []
    for scene, want in zip(scenes, share, strict=True):
        if want == 0:
            continue
        origins = _tile_origins(scene, size, rng)
        kept: list[tuple[float, tuple[int, int], np.ndarray]] = []
        candidates: list[tuple[float, tuple[int, int], np.ndarray]] = []
        for _ in range(20 * want):
            r, c = next(origins)
            tile = scene.read(r, c, size)
            frac = float(np.any(tile != 0, axis=0).mean())
            if frac >= MIN_VALID_FRACTION:
                kept.append((frac, (r, c), tile))
                if len(kept) == want:
                    break
            else:
                candidates.append((frac, (r, c), tile))
        if len(kept) < want:
            candidates.sort(key=lambda t: -t[0])
            kept += [t for t in candidates if t[0] > 0][: want - len(kept)]
        if not kept:
            raise ExportError(f"calibration scene {scene.label}: no valid pixels found "
                              "(all 13 bands 0 everywhere sampled)")
        tiles += [t[2] for t in kept]
        used.append({**scene.info, "tiles": len(kept),
                     "valid_fraction": round(float(np.mean([t[0] for t in kept])), 4)})
    return np.stack(tiles), used


# ---------------------------------------------------------------- graph surgery

def _node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    for n in model.graph.node:
        if n.name == name:
            return n
    raise ExportError(f"node {name!r} not found: not a lulc-edge end-to-end model")


def input_channel_scales(tiles: np.ndarray) -> np.ndarray:
    """Per feature channel 1 / max |x_c| over the valid pixels of the tiles (float32)."""
    from export.reference import features_nhwc, nodata_mask

    feats = features_nhwc(tiles)
    valid = ~nodata_mask(tiles)
    peak = np.abs(feats[valid]).max(axis=0) if valid.any() else np.ones(feats.shape[-1])
    return (1.0 / np.maximum(peak, 1e-3)).astype(np.float32)


def fold_input_scale(model: onnx.ModelProto, scales: np.ndarray) -> onnx.ModelProto:
    """Insert ``unet/input_scale`` (x * s per channel) before the first conv; W[:, c] /= s_c.

    The float math is unchanged up to rounding; the first conv's input becomes comparable in
    range across channels, so one uint8 scale fits it.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    conv = _node(out, FIRST_CONV)
    src = conv.input[0]
    w_init = _find(out.graph.initializer, conv.input[1])
    w = numpy_helper.to_array(w_init).astype(np.float32)
    if w.shape[1] != scales.size:
        raise ExportError(f"{FIRST_CONV} has {w.shape[1]} input channels, scales {scales.size}")
    w_init.CopyFrom(numpy_helper.from_array(w / scales[None, :, None, None], w_init.name))
    s_name = f"{SCALE_NODE}/scale"
    out.graph.initializer.append(numpy_helper.from_array(
        scales.reshape(1, -1, 1, 1).astype(np.float32), s_name))
    mul = helper.make_node("Mul", [src, s_name], [SCALED_INPUT], name=SCALE_NODE)
    conv.input[0] = SCALED_INPUT
    nodes = list(out.graph.node)
    idx = next(i for i, n in enumerate(nodes) if n.name == FIRST_CONV)
    nodes.insert(idx, mul)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def excluded_nodes(model: onnx.ModelProto, options: QuantizeOptions) -> list[str]:
    """Names of the nodes that stay float: everything outside unet/ and the chosen exceptions."""
    keep_float = {SCALE_NODE, *options.keep_float}
    if options.float_head:
        keep_float |= {HEAD_CONV, SOFTMAX}
    if options.input_handling == "float-first-conv":
        keep_float.add(FIRST_CONV)
    return [n.name for n in model.graph.node
            if (options.scope == "unet" and not n.name.startswith("unet/"))
            or n.name in keep_float
            or (options.float_head and n.name.startswith(f"{SOFTMAX}_"))]  # its Exp/Sum form


class _Reader:
    """onnxruntime CalibrationDataReader over the tiles, a few tiles per run."""

    def __init__(self, tiles: np.ndarray, batch: int) -> None:
        self.tiles, self.batch, self.pos = tiles, batch, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.pos >= len(self.tiles):
            return None
        x = self.tiles[self.pos: self.pos + self.batch]
        self.pos += self.batch
        return {"bands": np.ascontiguousarray(x)}

    def rewind(self) -> None:
        self.pos = 0


def quantize_graph(fp32: onnx.ModelProto, tiles: np.ndarray, options: QuantizeOptions
                   ) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The quantized model (no metadata changes) and facts about the quantization."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if options.method not in METHODS:
        raise ExportError(f"unknown calibration method {options.method!r}; "
                          f"choose one of {', '.join(METHODS)}")
    if options.input_handling not in INPUT_HANDLING:
        raise ExportError(f"unknown input handling {options.input_handling!r}")
    facts: dict[str, Any] = {}
    model = fp32
    if options.input_handling == "channel-scale":
        scales = input_channel_scales(tiles)
        model = fold_input_scale(fp32, scales)
        facts["input_scale"] = [float(f"{s:.6g}") for s in scales]
    with tempfile.TemporaryDirectory(prefix="lulc-int8-") as tmp:
        src, pre, dst = (Path(tmp) / n for n in ("in.onnx", "pre.onnx", "out.onnx"))
        onnx.save(model, src)
        # shape inference only: skip_symbolic_shape (fails on this graph, shared/MEASURED.md);
        # skip_optimization keeps the float parts exactly as exported (its constant dedup would
        # merge features/* and outputs/* initializers)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True, skip_optimization=True)
        pre_model = onnx.load(pre)
        missing = {n.name for n in model.graph.node} - {n.name for n in pre_model.graph.node}
        if missing:
            raise ExportError(f"pre-processing renamed or removed nodes: {sorted(missing)[:5]}")
        exclude = excluded_nodes(pre_model, options)
        histogram = options.method != "minmax"
        extra = {"ActivationSymmetric": False, "WeightSymmetric": True,
                 "CalibTensorRangeSymmetric": False}
        if histogram:
            extra["CalibMaxIntermediateOutputs"] = 4
            if options.method == "percentile":
                extra["CalibPercentile"] = 99.999
        quantize_static(
            str(pre), str(dst), _Reader(tiles, 1 if histogram else 4),
            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            calibrate_method=getattr(CalibrationMethod, METHODS[options.method]),
            extra_options=extra)
        quantized = onnx.load(dst)
    if options.scope == "unet":
        _prefix_qdq_names(quantized)
        check_float_boundary(quantized, options.float_head)
    qnodes = [n.name for n in quantized.graph.node if n.op_type == "QuantizeLinear"]
    if not qnodes:
        raise ExportError("quantization produced no QuantizeLinear node (node names not matched?)")
    facts["quantize_linear_nodes"] = len(qnodes)
    facts["float_nodes_in_unet"] = sorted(n for n in exclude if n.startswith("unet/"))
    return quantized, facts


def _prefix_qdq_names(model: onnx.ModelProto) -> None:
    """Q/DQ nodes are named after their tensor (``features_QuantizeLinear``): put them in unet/."""
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and not n.name.startswith("unet/"):
            n.name = f"unet/{n.name}"


def check_float_boundary(model: onnx.ModelProto, float_head: bool = True) -> None:
    """features/* and outputs/* see no quantized tensor; Q/DQ nodes all sit in unet/.

    No node outside unet/ may consume a DequantizeLinear output (with a float head the U-Net's
    probabilities come from the float softmax), and no Q/DQ node may be named outside unet/.
    """
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            if not n.name.startswith("unet/"):
                raise ExportError(f"QDQ node outside unet/: {n.name}")
        elif not n.name.startswith("unet/") and float_head:
            bad = [i for i in n.input if i in dq_out]
            if bad:
                raise ExportError(f"{n.name} consumes a dequantized tensor {bad[0]}: the float "
                                  "part of the graph would see int8 values")


# ---------------------------------------------------------------- gate

def _session(model: onnx.ModelProto | bytes | str, threads: int):  # noqa: ANN202
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def per_class_f1(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> list[float | None]:
    """F1 of each class (None where the class is absent from both)."""
    out: list[float | None] = []
    for k in range(n_classes):
        tp = int(np.sum((pred == k) & (truth == k)))
        fp = int(np.sum((pred == k) & (truth != k)))
        fn = int(np.sum((pred != k) & (truth == k)))
        out.append(None if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
    return out


def _classes(sess: Any, bands: np.ndarray, batch: int = 4) -> np.ndarray:
    return np.concatenate([sess.run(["class"], {"bands": bands[i: i + batch]})[0]
                           for i in range(0, len(bands), batch)])


def gate(fp32: onnx.ModelProto, int8: onnx.ModelProto, eval_tiles: np.ndarray,
         options: QuantizeOptions, name: str = "int8") -> dict[str, Any]:
    """A reduced-precision model (``name``: int8, fp16) vs fp32 on the CPU provider: argmax
    agreement on held-out tiles and on a labelled synthetic scene, per-class F1 drop."""
    from lulc_edge.synthetic import SceneSpec, generate

    s32, s8 = _session(fp32, options.threads), _session(int8, options.threads)
    c32, c8 = _classes(s32, eval_tiles), _classes(s8, eval_tiles)
    valid = c32 != 255
    tiles_agree = float(np.mean(c32[valid] == c8[valid]))
    seed, size, scale = GATE_SCENE
    bands, labels, _ = generate(SceneSpec(width=size, height=size, seed=seed,
                                          region_scale=scale))
    g32 = s32.run(["class"], {"bands": bands[None]})[0][0]
    g8 = s8.run(["class"], {"bands": bands[None]})[0][0]
    lab = labels != 255
    scene_agree = float(np.mean(g32[lab] == g8[lab]))
    n_classes = int(s32.get_outputs()[2].shape[1] or 5) if len(s32.get_outputs()) > 2 else 5
    f32 = per_class_f1(g32[lab], labels[lab], n_classes)
    f8 = per_class_f1(g8[lab], labels[lab], n_classes)
    drops = [a - b for a, b in zip(f32, f8, strict=True) if a is not None and b is not None]
    worst = max(drops) if drops else 0.0
    passed = (tiles_agree >= options.min_agreement and scene_agree >= options.min_agreement
              and worst <= options.max_f1_drop)
    return {
        "passed": bool(passed),
        "argmax_agreement_eval_tiles": tiles_agree,
        "eval_tiles": {"count": int(len(eval_tiles)), "size": int(eval_tiles.shape[-1]),
                       "valid_pixels": int(valid.sum()),
                       "note": "held-out tiles of the calibration scenes (seed + 1)"},
        "argmax_agreement_synthetic": scene_agree,
        "synthetic_scene": {"seed": seed, "size": size, "region_scale": scale},
        "f1_fp32": f32, f"f1_{name}": f8, "max_f1_drop": worst,
        "thresholds": {"min_agreement": options.min_agreement,
                       "max_f1_drop": options.max_f1_drop},
    }


def check_gate(name: str, result: dict[str, Any]) -> None:
    """ExportError with the gate's numbers and limits when a ``name`` (int8, fp16) gate failed."""
    if result["passed"]:
        return
    limits = result["thresholds"]
    raise ExportError(
        f"{name} gate failed: argmax agreement {100 * result['argmax_agreement_eval_tiles']:.2f}%"
        f" (tiles) / {100 * result['argmax_agreement_synthetic']:.2f}% (synthetic), "
        f"worst F1 drop {100 * result['max_f1_drop']:.2f} points "
        f"(limits {100 * limits['min_agreement']:g}%, {100 * limits['max_f1_drop']:g} points)")


def accuracy_entry(result: dict[str, Any], measured_by: str) -> dict[str, Any]:
    """A gate result as stored in ``lulc_edge.accuracy`` (what ``--precision auto`` reads)."""
    return {"agreement": min(result["argmax_agreement_eval_tiles"],
                             result["argmax_agreement_synthetic"]),
            "max_f1_drop": result["max_f1_drop"], "measured_by": measured_by}


# ---------------------------------------------------------------- end to end

def load_fp32(path: str | os.PathLike) -> onnx.ModelProto:
    """Load an fp32 end-to-end lulc-edge model; ExportError with one line if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise ExportError(f"model file not found: {p}")
    try:
        model = onnx.load(p)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types
        raise ExportError(f"not an ONNX model: {p} ({first_line(exc)})") from None
    meta = {m.key: m.value for m in model.metadata_props}
    if "lulc_edge.contract" not in meta:
        raise ExportError(f"{p}: no lulc_edge metadata (not a lulc-edge end-to-end model)")
    precision = json.loads(meta.get("lulc_edge.precision", '"fp32"'))
    if precision != "fp32":
        raise ExportError(f"{p}: not an fp32 model (lulc_edge.precision is {precision}); "
                          "start from the fp32 model it came from")
    _node(model, FIRST_CONV)
    _node(model, HEAD_CONV)
    return model


def quantize_model(fp32: onnx.ModelProto, options: QuantizeOptions,
                   fp32_info: dict[str, Any] | None = None
                   ) -> tuple[onnx.ModelProto, dict[str, Any], dict[str, Any]]:
    """Calibrate, quantize and gate; returns (int8 model, calibration metadata, gate)."""
    from export.graph import get_metadata, set_metadata
    from export.optimize import SUBPIXEL

    t0 = time.monotonic()
    validate_options(options)
    with calibration_scenes(options.calibration, options.scl_fill) as (scenes, note):
        if not options.calibration:
            _say(options, f"note: {note}")
        tiles, used = calibration_tiles(scenes, options.tiles, options.tile_size, options.seed)
        eval_tiles, _ = calibration_tiles(scenes, max(8, options.tiles // 2), options.tile_size,
                                          options.seed + 1)
    # OpenVINO's int8 path needs the Resize/Concat decoder (export/optimize.py)
    from export.optimize import canonical_decoder

    int8, facts = quantize_graph(canonical_decoder(fp32), tiles, options)
    result = gate(fp32, int8, eval_tiles, options) if options.gate else {"skipped": True}
    calibration = {
        "scenes": used,
        "source": note,
        "tile_count": int(len(tiles)),
        "tile_size": options.tile_size,
        "seed": options.seed,
        "tile_rule": f"random tiles on multiples of 4, >= {MIN_VALID_FRACTION:.0%} valid pixels",
        "method": "onnxruntime.quantization.quantize_static, QDQ, per-channel int8 weights, "
                  "uint8 activations (U8S8), U-Net only (features/outputs float)",
        "calibration_method": METHODS[options.method],
        "input_handling": options.input_handling,
        "float_head": options.float_head,
        "scl_fill": options.scl_fill,
        **facts,
        "gate": result,
        "fp32_model": fp32_info or {},
        "seconds": round(time.monotonic() - t0, 1),
    }
    meta = get_metadata(fp32)
    import onnxruntime

    exporter = dict(meta.get("lulc_edge.exporter", {}))
    exporter["quantizer"] = {"tool": TOOL, "onnxruntime": onnxruntime.__version__,
                             "onnx": onnx.__version__}
    if "optimizations" in exporter:  # quantized from the canonical decoder (see above)
        exporter["optimizations"] = [o for o in exporter["optimizations"] if o != SUBPIXEL]
    entries = {**meta, "lulc_edge.precision": "int8", "lulc_edge.calibration": calibration,
               "lulc_edge.exporter": exporter}
    if not result.get("skipped"):
        # what `--precision auto` reads: this file's agreement with the fp32 model it came from
        entries["lulc_edge.accuracy"] = {"int8": accuracy_entry(
            result, f"{TOOL} gate (held-out calibration tiles and a labelled synthetic scene); "
                    "benchmarks/parity.py measures more scenes")}
    del int8.metadata_props[:]
    set_metadata(int8, entries)
    int8.doc_string = fp32.doc_string + " (int8 U-Net, see lulc_edge.calibration)"
    return int8, calibration, result


def quantize_file(fp32_path: str | os.PathLike, out_path: str | os.PathLike,
                  options: QuantizeOptions | None = None,
                  fp32_label: str | None = None) -> QuantizeReport:
    """Quantize an fp32 end-to-end ONNX file; raises ExportError (no file written) on failure."""
    from export.graph import get_metadata
    from export.to_onnx import write_atomic
    from lulc_edge.contract import file_sha256

    options = options or QuantizeOptions()
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    fp32 = load_fp32(fp32_path)
    if out_path.exists() and out_path.resolve() == fp32_path.resolve():
        raise ExportError("output path is the input model")
    if not (out_path.parent if str(out_path.parent) else Path(".")).is_dir():
        raise ExportError(f"output directory does not exist: {out_path.parent}")
    info = {"file": fp32_label or fp32_path.name, "sha256": file_sha256(fp32_path)}
    int8, calibration, result = quantize_model(fp32, options, info)
    if options.gate:
        check_gate("int8", result)
    write_atomic(out_path, int8.SerializeToString())
    return QuantizeReport(out_path, calibration, result, get_metadata(int8))


def add_cli_options(p: argparse.ArgumentParser) -> None:
    """The calibration flags shared by this CLI and export/to_onnx.py --int8."""
    p.add_argument("--calibration", nargs="+", default=[], metavar="SCENE",
                   help="scenes (13-band stacks, band folders, products) to calibrate on; "
                        f"the word '{SYNTHETIC_WORD}' adds synthetic scenes, "
                        f"'{BRIGHT_WORD}' one brightened to the DN range of clouds and snow "
                        "(default: the example scene, else synthetic scenes; export/INT8.md)")
    p.add_argument("--calibration-tiles", type=int, default=32, metavar="N",
                   help="calibration tiles (default 32)")
    p.add_argument("--calibration-tile-size", type=int, default=128, metavar="PX",
                   help="calibration tile edge in px (default 128)")
    p.add_argument("--calibration-method", choices=sorted(METHODS), default="minmax",
                   help="range estimation (default minmax)")
    p.add_argument("--seed", type=int, default=0, help="tile sampling seed (default 0)")
    p.add_argument("--scl-fill", type=int, default=4,
                   help="SCL class for calibration scenes without SCL (default 4)")


def options_from_args(args: argparse.Namespace) -> QuantizeOptions:
    """QuantizeOptions from the parsed flags of :func:`add_cli_options`."""
    return QuantizeOptions(calibration=list(args.calibration), tiles=args.calibration_tiles,
                           tile_size=args.calibration_tile_size, seed=args.seed,
                           method=args.calibration_method, scl_fill=args.scl_fill)


def print_summary(report: QuantizeReport) -> None:
    """One line per gate figure and the output path (stdout)."""
    g = report.gate
    if not g.get("skipped"):
        f1 = ", ".join("-" if a is None else f"{100 * a:.2f}/{100 * b:.2f}"
                       for a, b in zip(g["f1_fp32"], g["f1_int8"], strict=True))
        print(f"int8 gate: argmax agreement {100 * g['argmax_agreement_eval_tiles']:.2f}% "
              f"(held-out tiles), {100 * g['argmax_agreement_synthetic']:.2f}% (synthetic scene); "
              f"F1 fp32/int8 per class: {f1}")
    c = report.calibration
    print(f"wrote {report.onnx_path} (int8, {c['calibration_method']} calibration on "
          f"{c['tile_count']} tiles of {c['tile_size']} px from {len(c['scenes'])} scene(s))")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=TOOL, description="Quantize the U-Net of an fp32 lulc-edge ONNX model to int8 "
                               "(features and outputs stay float), behind an agreement gate.")
    p.add_argument("model", type=Path, help="fp32 end-to-end model (export/to_onnx.py output)")
    p.add_argument("-o", "--output", type=Path, required=True, help="int8 .onnx path")
    add_cli_options(p)
    p.add_argument("--input-handling", choices=INPUT_HANDLING, default=INPUT_HANDLING[0],
                   help="how the unnormalised U-Net input is kept apart from int8 "
                        "(default float-first-conv; see export/INT8.md)")
    p.add_argument("--no-gate", action="store_true", help="skip the int8 vs fp32 gate")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    options = options_from_args(args)
    options.gate = not args.no_gate
    options.input_handling = args.input_handling

    def work() -> int:
        print_summary(quantize_file(args.model, args.output, options))
        return 0

    return run_tool(work)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["QuantizeOptions", "QuantizeReport", "quantize_file", "quantize_model",
           "quantize_graph", "calibration_tiles", "fold_input_scale", "input_channel_scales",
           "gate", "per_class_f1", "add_cli_options", "options_from_args", "main"]
