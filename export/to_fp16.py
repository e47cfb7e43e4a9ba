"""export.to_fp16: the fp16 sibling of an fp32 lulc-edge model, for GPUs (CUDA).

    python export/to_fp16.py MODEL.onnx [-o MODEL-fp16.onnx]

Only the U-Net (nodes ``unet/*``) runs in fp16: its convolution weights and biases are stored
as float16, one Cast to float16 enters it and Casts back to float32 leave it (probabilities,
and the logits the argmax reads). The decoder is the canonical Resize/Concat one
(``export/optimize.py``'s sub-pixel form ran slower in fp16 on a GPU). The feature
recipe stays float32 (its ``1e-8`` epsilon is below float16's smallest subnormal) and so do the
outputs (argmax, confidence, nodata). Inputs and outputs of the file are unchanged, so
``lulc-edge run --device cuda --precision fp16`` swaps it in for ``MODEL.onnx``.

A gate runs the fp16 file on onnxruntime's CPU provider against fp32 before anything is
written (argmax agreement >= 99 % on tiles of the example scene and on a labelled synthetic
scene, no class F1 lower by more than 1 point) and stores its result as ``lulc_edge.accuracy``
``fp16``, which ``--precision auto`` reads. Weights and activations are rounded to float16 as
on a GPU, but a GPU's accumulation order differs: ``benchmarks/parity.py`` measures the GPU
itself. Float16 overflows above 65504; the gate would catch a model whose activations do.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python export/to_fp16.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from export.errors import ExportError, run_tool  # noqa: E402
from lulc_edge.errors import first_line  # noqa: E402

TOOL = "export/to_fp16.py"
UNET_PREFIX = "unet/"


def _boundary(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """Tensors that enter the U-Net from outside it, and tensors it hands to the outputs."""
    inits = {i.name for i in model.graph.initializer}
    unet = [n for n in model.graph.node if n.name.startswith(UNET_PREFIX)]
    if not unet:
        raise ExportError("no unet/* nodes: not a lulc-edge end-to-end model")
    produced = {o for n in unet for o in n.output}
    entering = sorted({i for n in unet for i in n.input
                       if i and i not in produced and i not in inits})
    leaving = sorted({i for n in model.graph.node if not n.name.startswith(UNET_PREFIX)
                      for i in n.input if i in produced})
    return entering, leaving


def convert(model: onnx.ModelProto, check: bool = True) -> onnx.ModelProto:
    """A copy of ``model`` whose U-Net computes in float16, gated against it unless
    ``check`` is false (see the module docstring); ExportError if the gate fails."""
    from export.graph import get_metadata, set_metadata
    from export.optimize import canonical_decoder

    meta = get_metadata(model)
    if meta.get("lulc_edge.precision", "fp32") != "fp32":
        raise ExportError("the model is not fp32 (lulc_edge.precision)")
    # On an H200 the sub-pixel decoder ran fp16 at 81-98 core MP/s against 111-136 for the
    # Resize/Concat one (benchmarks/results/cuda/): GPUs get the canonical decoder.
    out = onnx.ModelProto()
    out.CopyFrom(canonical_decoder(model))
    entering, leaving = _boundary(out)
    conv_params = {i for n in out.graph.node if n.name.startswith(UNET_PREFIX)
                   and n.op_type == "Conv" for i in n.input[1:]}
    for init in out.graph.initializer:
        if init.name in conv_params:
            init.CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(init).astype(np.float16), init.name))
    rename = {name: f"{name}_fp16" for name in (*entering, *leaving)}
    nodes: list[onnx.NodeProto] = []
    for node in out.graph.node:
        if node.name.startswith(UNET_PREFIX):
            for k, name in enumerate(node.input):
                if name in rename:  # entering, or made and also read inside (the logits)
                    node.input[k] = rename[name]
            for k, name in enumerate(node.output):
                if name in leaving:
                    node.output[k] = rename[name]
        nodes.append(node)
    first = next(k for k, n in enumerate(nodes) if n.name.startswith(UNET_PREFIX))
    casts_in = [helper.make_node("Cast", [n], [rename[n]], name=f"unet/to_fp16_{k}",
                                 to=TensorProto.FLOAT16) for k, n in enumerate(entering)]
    nodes[first:first] = casts_in
    last = max(k for k, n in enumerate(nodes) if n.name.startswith(UNET_PREFIX))
    casts_out = [helper.make_node("Cast", [rename[n]], [n], name=f"unet/to_fp32_{k}",
                                  to=TensorProto.FLOAT) for k, n in enumerate(leaving)]
    nodes[last + 1:last + 1] = casts_out
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    del out.graph.value_info[:]
    try:
        onnx.checker.check_model(out, full_check=True)
    except Exception as exc:  # noqa: BLE001 - the checker raises several types
        raise ExportError(f"fp16 graph failed the ONNX checker: {first_line(exc)}") \
            from None
    exporter = dict(meta.get("lulc_edge.exporter", {}))
    exporter["fp16"] = {"tool": TOOL, "onnx": onnx.__version__,
                        "scope": "unet/* in float16; features and outputs float32"}
    entries = {**meta, "lulc_edge.precision": "fp16", "lulc_edge.exporter": exporter}
    entries.pop("lulc_edge.accuracy", None)
    if check:
        from export.quantize import accuracy_entry, check_gate

        result = fp16_gate(model, out)
        check_gate("fp16", result)
        entries["lulc_edge.fp16_gate"] = result
        entries["lulc_edge.accuracy"] = {"fp16": accuracy_entry(
            result, f"{TOOL} gate on onnxruntime's CPU provider (tiles of the example scene "
                    "and a labelled synthetic scene); benchmarks/parity.py measures the GPU")}
    del out.metadata_props[:]
    set_metadata(out, entries)
    return out


def fp16_gate(fp32: onnx.ModelProto, fp16: onnx.ModelProto, tiles: int = 16) -> dict[str, Any]:
    """fp16 vs fp32 with export/quantize.py's gate (its thresholds, its scenes)."""
    from export.quantize import QuantizeOptions, calibration_scenes, calibration_tiles, gate

    options = QuantizeOptions()
    with calibration_scenes([], options.scl_fill) as (scenes, note):
        eval_tiles, _ = calibration_tiles(scenes, tiles, options.tile_size, options.seed + 1)
    result = gate(fp32, fp16, eval_tiles, options, name="fp16")
    result["eval_tiles"]["note"] = note
    return result


def convert_file(src: str | Path, dst: str | Path | None = None, check: bool = True) -> Path:
    """Write the fp16 sibling of ``src`` (default ``NAME-fp16.onnx``); returns its path."""
    from export.quantize import load_fp32
    from export.to_onnx import write_atomic

    src = Path(src)
    dst = Path(dst) if dst else src.with_name(f"{src.stem}-fp16{src.suffix}")
    if dst.exists() and dst.resolve() == src.resolve():
        raise ExportError("output path is the input model")
    model = convert(load_fp32(src), check)
    write_atomic(dst, model.SerializeToString())
    return dst


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    p = argparse.ArgumentParser(
        prog=TOOL, description="Make the fp16 sibling of an fp32 lulc-edge model (U-Net in "
                               "float16, features and outputs float32) for --device cuda "
                               "--precision fp16.")
    p.add_argument("model", type=Path, help="fp32 end-to-end model (export/to_onnx.py output)")
    p.add_argument("-o", "--output", type=Path, help="output path (default NAME-fp16.onnx)")
    p.add_argument("--no-gate", action="store_true", help="skip the fp16 vs fp32 gate")
    args = p.parse_args(argv)

    def work() -> int:
        dst = convert_file(args.model, args.output, check=not args.no_gate)
        print(f"wrote {dst} (fp16 U-Net; benchmarks/parity.py measures it on a GPU)")
        return 0

    return run_tool(work)


if __name__ == "__main__":
    sys.exit(main())
