"""export.optimize: exact graph rewrites that make the fp32 end-to-end model faster.

Two rewrites, each the same function in exact arithmetic (float results move by ~1e-5):

* **Sub-pixel decoder.** ``Conv3x3(Concat(Resize2x(x), skip))`` becomes
  ``DepthToSpace(Concat(four 2x2 convs of x)) + Conv3x3(skip)``. A 3x3 convolution of a nearest
  2x upsampling is, for each of the four output phases, a 2x2 convolution of the low-resolution
  input whose taps are sums of the 3x3 taps (zero padding at the low resolution matches zero
  padding at the high one). The upsampled tensor and the concatenation are never built and the
  upsampled half of the convolution costs 16 instead of 36 multiply-adds per low-res pixel.
* **Softmax as Exp / ReduceSum, argmax on logits.** onnxruntime's Softmax over the channel axis
  of NCHW transposes twice; ``Exp(x - max) / sum`` over axis 1 does not. The class reads the
  logits (softmax is monotonic), so class-only work never needs the probabilities.

Measured (Intel Xeon, 2 threads, onnxruntime 1.32.0, openvino 2026.4.1, one 560 px block):
onnxruntime fp32 0.82 -> 0.96 core MP/s, OpenVINO fp32 0.262 -> 0.212 s. The int8 model keeps
the canonical decoder (:func:`canonical_decoder`): OpenVINO's low-precision transformations
fail on a per-channel dequantization through DepthToSpace, and with the phases kept in float
OpenVINO int8 ran 18 % slower than with Resize/Concat. ``export/LAYOUT.md`` has the numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from export.errors import ExportError
from export.graph import SOFTMAX
from lulc_edge.errors import first_line

DECODERS = ("unet/dec2", "unet/dec1")
ARGMAX = "outputs/argmax"
SUBPIXEL = "subpixel-decoder"
SOFTMAX_EXP = "softmax-exp-sum, argmax on logits"


def _inits(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {i.name: i for i in model.graph.initializer}


def _nodes(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {n.name: n for n in model.graph.node}


def _channel_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Channel count of every 4-D tensor whose channels shape inference can tell."""
    inferred = shape_inference.infer_shapes(model)
    out = {}
    for v in inferred.graph.value_info:
        dims = v.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            out[v.name] = int(dims[1].dim_value)
    return out


def _replace(model: onnx.ModelProto, old: set[str], new: dict[str, list[onnx.NodeProto]]) -> None:
    """Drop nodes ``old``; nodes ``new[name]`` take the place of node ``name``."""
    out: list[onnx.NodeProto] = []
    for n in model.graph.node:
        if n.name in new:
            out += new[n.name]
        elif n.name not in old:
            out.append(n)
    del model.graph.node[:]
    model.graph.node.extend(out)


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    used = {i for n in model.graph.node for i in n.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def _phase_kernel(w: np.ndarray, a: int, b: int) -> np.ndarray:
    """2x2 kernel of output phase (a, b) of ``conv3x3(upsample2x(x))`` from the 3x3 kernel."""
    rows = [w[:, :, 0], w[:, :, 1] + w[:, :, 2]] if a == 0 else [w[:, :, 0] + w[:, :, 1],
                                                                w[:, :, 2]]
    r = np.stack(rows, axis=2)
    cols = [r[..., 0], r[..., 1] + r[..., 2]] if b == 0 else [r[..., 0] + r[..., 1], r[..., 2]]
    return np.stack(cols, axis=3).astype(np.float32)


def _check_decoder(nodes: dict[str, onnx.NodeProto], prefix: str) -> tuple[Any, Any, Any]:
    up, cat, conv = (nodes.get(f"{prefix}_{s}") for s in ("up", "concat", "conv1"))
    if up is None or cat is None or conv is None:
        raise ExportError(f"{prefix}: expected {prefix}_up/_concat/_conv1 (canonical decoder)")
    mode = next((helper.get_attribute_value(a) for a in up.attribute if a.name == "mode"),
                b"nearest")
    coord = next((helper.get_attribute_value(a) for a in up.attribute
                  if a.name == "coordinate_transformation_mode"), b"half_pixel")
    if up.op_type != "Resize" or mode != b"nearest" or cat.input[0] != up.output[0] \
            or conv.input[0] != cat.output[0] or len(cat.input) != 2 \
            or coord in (b"align_corners", b"tf_crop_and_resize"):
        raise ExportError(f"{prefix}: not a nearest Resize -> Concat -> Conv decoder step")
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    if list(attrs.get("kernel_shape", [])) != [3, 3] or list(attrs.get("pads", [])) != [1] * 4 \
            or list(attrs.get("strides", [1, 1])) != [1, 1] or attrs.get("group", 1) != 1:
        raise ExportError(f"{prefix}_conv1: expected a 3x3 'same' convolution")
    return up, cat, conv


def subpixel_decoder(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with each decoder step in sub-pixel form (module docstring)."""
    from export.graph import _resize_scales

    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes, inits = _nodes(out), _inits(out)
    scales = _resize_scales(out)
    channels = _channel_counts(out)
    old: set[str] = set()
    new: dict[str, list[onnx.NodeProto]] = {}
    for prefix in DECODERS:
        up, cat, conv = _check_decoder(nodes, prefix)
        if scales.get(up.name) != (1, 1, 2, 2):
            raise ExportError(f"{up.name}: expected a 2x upsampling, got {scales.get(up.name)}")
        low, skip = up.input[0], cat.input[1]
        if low not in channels:
            raise ExportError(f"cannot infer the channel count of {low!r}")
        c_up = channels[low]
        w = numpy_helper.to_array(inits[conv.input[1]])
        w_up, w_skip = w[:, :c_up], w[:, c_up:]
        bias = conv.input[2] if len(conv.input) > 2 else ""
        steps = [helper.make_node("Conv", [skip, f"{prefix}_w_skip"] + ([bias] if bias else []),
                                  [f"{prefix}_skip_out"], name=f"{prefix}_conv1_skip",
                                  kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
        out.graph.initializer.append(numpy_helper.from_array(
            np.ascontiguousarray(w_skip), f"{prefix}_w_skip"))
        phases = []
        for a in (0, 1):
            for b in (0, 1):
                name = f"{prefix}_up{a}{b}"
                out.graph.initializer.append(numpy_helper.from_array(
                    _phase_kernel(w_up, a, b), f"{name}_w"))
                # phase a=0 reads low-res rows {-1, 0}, a=1 rows {0, +1}: pads top/bottom
                steps.append(helper.make_node("Conv", [low, f"{name}_w"], [name],
                                              name=f"{prefix}_conv1_up{a}{b}",
                                              kernel_shape=[2, 2], pads=[1 - a, 1 - b, a, b]))
                phases.append(name)
        steps += [
            helper.make_node("Concat", phases, [f"{prefix}_phases"], name=f"{prefix}_phases",
                             axis=1),
            helper.make_node("DepthToSpace", [f"{prefix}_phases"], [f"{prefix}_up_out"],
                             name=f"{prefix}_d2s", blocksize=2, mode="DCR"),
            helper.make_node("Add", [f"{prefix}_up_out", f"{prefix}_skip_out"],
                             [conv.output[0]], name=f"{prefix}_conv1"),
        ]
        old |= {up.name, cat.name}
        new[conv.name] = steps
    _replace(out, old, new)
    _drop_unused_initializers(out)
    return out


def canonical_decoder(model: onnx.ModelProto) -> onnx.ModelProto:
    """Undo :func:`subpixel_decoder` (the 3x3 kernel is recovered from the phase kernels; it
    matches the original to rounding); a model without sub-pixel steps is returned as is."""
    nodes, inits = _nodes(model), _inits(model)
    if f"{DECODERS[0]}_d2s" not in nodes:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    old: set[str] = set()
    new: dict[str, list[onnx.NodeProto]] = {}
    for prefix in DECODERS:
        skip_conv, add = nodes[f"{prefix}_conv1_skip"], nodes[f"{prefix}_conv1"]
        k = {(a, b): numpy_helper.to_array(inits[f"{prefix}_up{a}{b}_w"])
             for a in (0, 1) for b in (0, 1)}
        # rows/cols of phase (0,0) are [w0, w1+w2], of phase (1,1) [w0+w1, w2]
        w_up = np.empty(k[0, 0].shape[:2] + (3, 3), np.float32)
        for r in range(3):
            for c in range(3):
                a, i = (0, 0) if r == 0 else ((1, 1) if r == 2 else (1, 0))
                b, j = (0, 0) if c == 0 else ((1, 1) if c == 2 else (1, 0))
                tap = k[a, b][:, :, i, j]
                if r == 1:
                    tap = tap - k[0, b][:, :, 0, j]
                if c == 1:
                    tap = tap - k[a, 0][:, :, i, 0]
                if r == 1 and c == 1:
                    tap = tap + k[0, 0][:, :, 0, 0]
                w_up[:, :, r, c] = tap
        w_skip = numpy_helper.to_array(inits[skip_conv.input[1]])
        w = np.concatenate([w_up, w_skip], axis=1)
        low = nodes[f"{prefix}_conv1_up00"].input[0]
        skip = skip_conv.input[0]
        scales = f"{prefix}_up/scales"
        out.graph.initializer.extend([
            numpy_helper.from_array(w, f"{prefix}_conv1/weight"),
            numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), scales)])
        steps = [
            helper.make_node("Resize", [low, "", scales], [f"{prefix}_up"], name=f"{prefix}_up",
                             mode="nearest", coordinate_transformation_mode="asymmetric",
                             nearest_mode="floor"),
            helper.make_node("Concat", [f"{prefix}_up", skip], [f"{prefix}_concat"],
                             name=f"{prefix}_concat", axis=1),
            helper.make_node("Conv", [f"{prefix}_concat", f"{prefix}_conv1/weight",
                                      *skip_conv.input[2:]], [add.output[0]],
                             name=f"{prefix}_conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        ]
        old |= {n.name for n in nodes.values() if n.name.startswith(f"{prefix}_conv1_up")
                or n.name in (f"{prefix}_phases", f"{prefix}_d2s", skip_conv.name)}
        new[add.name] = steps
    _replace(out, old, new)
    _drop_unused_initializers(out)
    return out


def softmax_exp_sum(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with ``unet/softmax`` as Exp/ReduceSum over axis 1 and the argmax on the logits."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = _nodes(out)
    sm, argmax = nodes.get(SOFTMAX), nodes.get(ARGMAX)
    if sm is None or sm.op_type != "Softmax" or argmax is None:
        raise ExportError(f"expected a Softmax {SOFTMAX!r} and an ArgMax {ARGMAX!r}")
    axis = next((helper.get_attribute_value(a) for a in sm.attribute if a.name == "axis"), -1)
    if axis != 1:
        raise ExportError(f"{SOFTMAX}: expected axis 1, got {axis}")
    x, y = sm.input[0], sm.output[0]
    opset = next(o.version for o in out.opset_import if o.domain in ("", "ai.onnx"))
    out.graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64),
                                                         f"{SOFTMAX}_axes"))
    if opset >= 18:
        rmax = helper.make_node("ReduceMax", [x, f"{SOFTMAX}_axes"], [f"{SOFTMAX}_max"],
                                name=f"{SOFTMAX}_max", keepdims=1)
    else:
        rmax = helper.make_node("ReduceMax", [x], [f"{SOFTMAX}_max"], name=f"{SOFTMAX}_max",
                                axes=[1], keepdims=1)
    steps = [
        rmax,
        helper.make_node("Sub", [x, f"{SOFTMAX}_max"], [f"{SOFTMAX}_shift"],
                         name=f"{SOFTMAX}_shift"),
        helper.make_node("Exp", [f"{SOFTMAX}_shift"], [f"{SOFTMAX}_exp"], name=f"{SOFTMAX}_exp"),
        helper.make_node("ReduceSum", [f"{SOFTMAX}_exp", f"{SOFTMAX}_axes"], [f"{SOFTMAX}_sum"],
                         name=f"{SOFTMAX}_sum", keepdims=1),
        helper.make_node("Div", [f"{SOFTMAX}_exp", f"{SOFTMAX}_sum"], [y], name=SOFTMAX),
    ]
    _replace(out, {SOFTMAX}, {SOFTMAX: steps})
    for n in out.graph.node:
        if n.name == ARGMAX:
            n.input[0] = x
    return out


def optimize(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Both rewrites, checked by the ONNX checker; returns the model and their names."""
    out = softmax_exp_sum(subpixel_decoder(model))
    try:
        onnx.checker.check_model(out, full_check=True)
    except Exception as exc:  # noqa: BLE001 - the checker raises several types
        raise ExportError(f"the optimised graph is invalid: {first_line(exc)}") \
            from None
    return out, [SUBPIXEL, SOFTMAX_EXP]
