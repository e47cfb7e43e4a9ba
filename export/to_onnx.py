"""export.to_onnx: Keras .h5 U-Net -> lulc-edge ONNX contract model, behind a parity gate."""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python export/to_onnx.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from export.errors import ExportError, run_tool  # noqa: E402
from lulc_edge.contract import file_sha256  # noqa: E402
from lulc_edge.errors import first_line  # noqa: E402

MIN_OPSET, MAX_OPSET = 13, 18  # tf2onnx 1.17 failed from opset 19 (shared/MEASURED.md)
DEFAULT_PARITY_SIZES = ((2, 64, 64), (2, 256, 256))  # (batch, H, W) of the parity cases
PARITY_MAX_ABS_DP = 1e-3
PARITY_MIN_AGREEMENT = 0.9999
PARITY_MAX_CONFIDENCE_DIFF = 1
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
TOOL = "export/to_onnx.py"


@dataclass
class ExportOptions:
    """Options of one export."""

    opset: int = 17
    trained_on: str | None = None  # provenance text; default "unknown: converted from <file>"
    demo: bool = False             # the weights are demo weights (export/train_demo.py)
    parity: bool = True            # run the parity gate
    optimize: bool = True          # exact graph rewrites of export/optimize.py
    parity_sizes: tuple[tuple[int, int, int], ...] = DEFAULT_PARITY_SIZES
    parity_seed: int = 0
    max_abs_dp: float = PARITY_MAX_ABS_DP
    min_agreement: float = PARITY_MIN_AGREEMENT
    threads: int = 2               # onnxruntime intra-op threads in the gate
    extra_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExportReport:
    """What an export produced."""

    onnx_path: Path
    parity_path: Path | None
    source_sha256: str
    opset: int
    halo: int
    receptive_field_radius: int
    parity: dict[str, Any]
    metadata: dict[str, Any]


def check_paths(h5_path: Path, out_path: Path) -> None:
    """Cheap checks before TensorFlow is imported; raise ExportError with a one-line message."""
    if not h5_path.is_file():
        raise ExportError(f"model file not found: {h5_path}")
    with open(h5_path, "rb") as fh:
        if fh.read(8) != HDF5_MAGIC:
            raise ExportError(f"not an HDF5 file (expected a Keras .h5 model): {h5_path}")
    dest = out_path.parent if str(out_path.parent) else Path(".")
    if not dest.is_dir():
        raise ExportError(f"output directory does not exist: {dest}")
    if not os.access(dest, os.W_OK | os.X_OK):
        raise ExportError(f"output directory is not writable: {dest}")
    if out_path.exists() and out_path.resolve() == h5_path.resolve():
        raise ExportError("output path is the input model")
    if out_path.is_dir():
        raise ExportError(f"output path is a directory: {out_path}")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shaped the export."""
    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "tf2onnx": tf2onnx.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__}


def to_end_to_end(model: Any, opset: int = 17) -> tuple[Any, Any]:
    """Keras U-Net -> (end-to-end onnx.ModelProto without metadata, ReceptiveField).

    tf2onnx converts a size-flexible copy whose UpSampling2D layers are tf.image.resize
    (one Resize each) with inputs_as_nchw/outputs_as_nchw, which leaves no Transpose;
    export.graph then names the nodes, fixes the Resize form and adds features and outputs.
    """
    import tensorflow as tf
    import tf2onnx

    from export.graph import build_end_to_end
    from export.keras_model import check_model, conversion_copy

    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported (use {MIN_OPSET}..{MAX_OPSET})")
    check_model(model)
    copy = conversion_copy(model)
    out_names = getattr(copy, "output_names", None) or [
        t.name.split("/")[0] for t in copy.outputs]
    spec = (tf.TensorSpec((None, None, None, copy.input_shape[-1]), tf.float32,
                          name="features"),)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    try:
        converted, _ = tf2onnx.convert.from_keras(
            copy, input_signature=spec, opset=opset, inputs_as_nchw=["features"],
            outputs_as_nchw=list(out_names))
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"tf2onnx failed: {first_line(exc)}") from exc
    return build_end_to_end(converted, opset=opset, n_classes=int(model.output_shape[-1]))


def parity_gate(model: Any, onnx_bytes: bytes, options: ExportOptions) -> dict[str, Any]:
    """Keras (flexible copy, numpy features) vs onnxruntime CPU (raw uint16 bands)."""
    import onnxruntime as ort

    from export.keras_model import flexible_copy
    from export.reference import features_nhwc, nodata_mask, synthetic_bands

    flexible = flexible_copy(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    cases = []
    for k, (n, h, w) in enumerate(options.parity_sizes):
        bands = synthetic_bands(n, h, w, seed=options.parity_seed + k)
        ref = np.asarray(flexible(features_nhwc(bands), training=False), dtype=np.float32)
        cls, conf, probs = sess.run(["class", "confidence", "probabilities"], {"bands": bands})
        ref = ref.transpose(0, 3, 1, 2)
        nodata = nodata_mask(bands)
        valid = ~nodata
        ref_cls = np.argmax(ref, axis=1)
        ref_conf = np.round(255.0 * ref.max(axis=1))
        cases.append({
            "shape": [n, 13, h, w],
            "max_abs_dp": float(np.abs(probs - ref).max()),
            "argmax_agreement": float(np.mean(cls[valid] == ref_cls[valid])),
            "valid_pixels": int(valid.sum()),
            "nodata_pixels": int(nodata.sum()),
            "nodata_ok": bool(np.all(cls[nodata] == 255) and np.all(conf[nodata] == 0)),
            "max_confidence_diff": int(np.abs(conf[valid].astype(np.int32)
                                              - ref_conf[valid]).max()),
        })
    max_dp = max(c["max_abs_dp"] for c in cases)
    agreement = min(c["argmax_agreement"] for c in cases)
    passed = (max_dp <= options.max_abs_dp and agreement >= options.min_agreement
              and all(c["nodata_ok"] for c in cases)
              and all(c["max_confidence_diff"] <= PARITY_MAX_CONFIDENCE_DIFF for c in cases))
    return {
        "passed": bool(passed),
        "max_abs_dp": max_dp,
        "argmax_agreement": agreement,
        "thresholds": {"max_abs_dp": options.max_abs_dp, "min_agreement": options.min_agreement,
                       "max_confidence_diff": PARITY_MAX_CONFIDENCE_DIFF},
        "reference": "Keras (flexible-size copy of the .h5) on export/reference.py features",
        "candidate": f"onnxruntime {ort.__version__} CPUExecutionProvider on raw uint16 bands",
        "input": "export.reference.synthetic_bands: DN 0..10000, SCL 0..11, all-zero nodata "
                 "block and scattered pixels",
        "seed": options.parity_seed,
        "cases": cases,
    }


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name beside ``path``, fsync, rename: never a partial file
    under the final name; an OSError becomes ExportError("cannot write ...")."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


def parity_path_for(out_path: Path) -> Path:
    """``model.onnx`` -> ``model.parity.json`` beside it."""
    return out_path.with_name(out_path.stem + ".parity.json")


def convert(h5_path: str | os.PathLike, out_path: str | os.PathLike,
            options: ExportOptions | None = None) -> ExportReport:
    """Export ``h5_path`` to ``out_path``; raise ExportError (and leave no .onnx) on failure."""
    options = options or ExportOptions()
    h5_path, out_path = Path(h5_path), Path(out_path)
    check_paths(h5_path, out_path)

    from export.graph import contract_metadata, get_metadata, set_metadata
    from export.keras_model import load_h5

    model = load_h5(h5_path)
    onnx_model, rf = to_end_to_end(model, opset=options.opset)
    optimizations: list[str] = []
    if options.optimize:
        from export.optimize import optimize

        onnx_model, optimizations = optimize(onnx_model)
    digest = file_sha256(h5_path)
    metadata: dict[str, Any] = contract_metadata(rf)
    metadata.update({
        "lulc_edge.weights": {
            "demo": bool(options.demo),
            "trained_on": options.trained_on or f"unknown: converted from {h5_path.name}",
        },
        "lulc_edge.source": {"file": h5_path.name, "sha256": digest},
        "lulc_edge.exporter": {"tool": TOOL, "opset": options.opset,
                               "optimizations": optimizations,
                               "versions": library_versions()},
        "lulc_edge.precision": "fp32",
    })
    metadata.update(options.extra_metadata)
    onnx_model.doc_string = ("lulc-edge land-cover U-Net: uint16 Sentinel-2 L2A bands (N,13,H,W) "
                             "-> class, confidence, probabilities. See metadata lulc_edge.*")
    set_metadata(onnx_model, metadata)

    parity_file = None
    if options.parity:
        parity = parity_gate(model, onnx_model.SerializeToString(), options)
        parity_file = parity_path_for(out_path)
        _write_parity(parity_file, parity)
        if not parity["passed"]:
            raise ExportError(
                f"parity gate failed: max |dp| {parity['max_abs_dp']:.3g} "
                f"(limit {options.max_abs_dp:g}), argmax agreement "
                f"{100 * parity['argmax_agreement']:.4f}% (min {100 * options.min_agreement:g}%)"
                f"; report in {parity_file}")
    else:
        parity = {"skipped": True}
    set_metadata(onnx_model, {"lulc_edge.parity": parity})
    write_atomic(out_path, onnx_model.SerializeToString())
    return ExportReport(onnx_path=out_path, parity_path=parity_file, source_sha256=digest,
                        opset=options.opset, halo=rf.halo(), receptive_field_radius=rf.radius,
                        parity=parity, metadata=get_metadata(onnx_model))


def _write_parity(path: Path, parity: dict[str, Any]) -> None:
    write_atomic(path, (json.dumps(parity, indent=2) + "\n").encode())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="export/to_onnx.py",
        description="Convert the Keras .h5 land-cover U-Net into the lulc-edge ONNX model "
                    "(raw uint16 bands in, class map out), checked by a parity gate.")
    p.add_argument("model", type=Path, help="Keras .h5 model (input (H, W, 16), 5 classes)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .onnx path")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (13..18, default 17)")
    p.add_argument("--trained-on", default=None,
                   help="provenance of the weights (default: 'unknown: converted from <file>')")
    p.add_argument("--demo", action="store_true", help="mark the weights as demo weights")
    p.add_argument("--no-parity", action="store_true", help="skip the parity gate")
    p.add_argument("--no-optimize", action="store_true",
                   help="write the canonical graph (Resize/Concat decoder, Softmax node) instead "
                        "of the faster equivalent one (export/optimize.py)")
    g = p.add_argument_group("int8 (export/quantize.py)")
    g.add_argument("--int8", action="store_true",
                   help="write an int8 model (U-Net quantized, features/outputs float)")
    from export.quantize import add_cli_options

    add_cli_options(g)
    return p


def _import_quietly() -> None:
    """Import TensorFlow & co. with fd 2 muted: their C++ start-up banners are not errors."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            try:
                import keras  # noqa: F401
                import onnxruntime  # noqa: F401
                import tensorflow  # noqa: F401
                import tf2onnx  # noqa: F401
                import tf2onnx.tf_loader  # noqa: F401
            finally:
                os.dup2(saved, 2)
    except ImportError as exc:
        raise ExportError(f"the export extra is not installed ({exc}); "
                          "pip install 'lulc-edge[export]'") from exc
    finally:
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    options = ExportOptions(opset=args.opset, trained_on=args.trained_on, demo=args.demo,
                            parity=not args.no_parity, optimize=not args.no_optimize)
    return run_tool(lambda: _export(args, options))


def _export(args: argparse.Namespace, options: ExportOptions) -> int:
    """Check the paths, export (fp32, or fp32 then int8 with --int8) and print the outcome."""
    check_paths(args.model, args.output)
    _import_quietly()
    if args.int8:
        return _main_int8(args, options)
    report = convert(args.model, args.output, options)
    if options.parity:
        for case in report.parity["cases"]:
            print(f"parity {'x'.join(map(str, case['shape']))}: max |dp| "
                  f"{case['max_abs_dp']:.2e}, argmax agreement "
                  f"{100 * case['argmax_agreement']:.4f}% of {case['valid_pixels']} valid px")
    else:
        print("parity gate skipped (--no-parity)")
    print(f"wrote {report.onnx_path} (opset {report.opset}, halo {report.halo} px, "
          f"receptive-field radius {report.receptive_field_radius} px)")
    return 0


def _main_int8(args: argparse.Namespace, options: ExportOptions) -> int:
    """--int8: export fp32 to a temporary file (parity-gated), then quantize it to -o."""
    from export.quantize import (
        check_calibration,
        options_from_args,
        print_summary,
        quantize_file,
    )

    qopts = options_from_args(args)
    check_calibration(qopts)  # before the (slow) fp32 export
    with tempfile.TemporaryDirectory(prefix="lulc-export-") as tmp:
        fp32 = Path(tmp) / (args.output.stem + ".fp32.onnx")
        report = convert(args.model, fp32, options)
        if report.parity_path is not None:
            _write_parity(parity_path_for(args.output), report.parity)
        qreport = quantize_file(fp32, args.output, qopts,
                                fp32_label=f"fp32 export of {args.model.name} (not kept)")
    print_summary(qreport)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["ExportOptions", "ExportReport", "convert", "to_end_to_end", "parity_gate",
           "check_paths", "library_versions", "main"]
