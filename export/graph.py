"""export.graph: the end-to-end ONNX graph: uint16 bands -> features -> U-Net -> class map."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

from export.errors import ExportError
from lulc_edge.contract import MODEL_BANDS

OPSET = 17
CONTRACT_VERSION = 1

BANDS = MODEL_BANDS
FEATURE_CHANNELS = ("NDVI", "NDBI", "NDWI") + BANDS
EPS = 1e-8
# index name -> (numerator minuend, numerator subtrahend); denominator is their sum + eps
INDICES = {"NDVI": ("B8", "B4"), "NDBI": ("B11", "B8"), "NDWI": ("B3", "B11")}
FORMULAS = {name: f"({a}-{b})/({a}+{b}+eps)" for name, (a, b) in INDICES.items()}
CLASSES = (
    {"value": 0, "name": "Barren_Land", "color": "#f4a460"},
    {"value": 1, "name": "Built-up_Area", "color": "#dc143c"},
    {"value": 2, "name": "Crop", "color": "#ffff00"},
    {"value": 3, "name": "Forest", "color": "#008000"},
    {"value": 4, "name": "Water", "color": "#0000ff"},
)
NODATA = {"value": 255, "name": "Unclassified", "color": "#000000",
          "rule": "all 13 input bands == 0"}
ALIGNMENT = 4
WINDOW = {"size": 64, "stride": 32}

INPUT_NAME = "bands"
FEATURES_NAME = "features"
OUTPUT_CLASS, OUTPUT_CONFIDENCE, OUTPUT_PROBS = "class", "confidence", "probabilities"
HEAD_CONV, SOFTMAX = "unet/head_conv", "unet/softmax"

# Role names given to the U-Net's nodes, in topological order, when the counts match the contract.
_ROLES = {
    "Conv": ("enc1_conv1", "enc1_conv2", "enc2_conv1", "enc2_conv2", "bottleneck_conv1",
             "bottleneck_conv2", "dec2_conv1", "dec2_conv2", "dec1_conv1", "dec1_conv2"),
    "MaxPool": ("enc1_pool", "enc2_pool"),
    "Resize": ("dec2_up", "dec1_up"),
    "Concat": ("dec2_concat", "dec1_concat"),
}
_PROBE_HW = (32, 48)  # concrete size used to infer the upsampling factors of the converted graph
_POINTWISE = {"Relu", "Identity", "Add", "Mul", "Sub", "Div", "Sigmoid", "Clip", "Softmax",
              "Concat", "BatchNormalization"}


@dataclass(frozen=True)
class ReceptiveField:
    """Spatial reach of one output pixel into the input, worst case over pixel phases."""

    radius: int          # max over positions of pixels needed on either side
    aligned_radius: int  # context needed beyond a tile whose origin/size are multiples of alignment
    alignment: int

    def halo(self) -> int:
        """Smallest multiple of the alignment that is >= the radius."""
        return -(-self.radius // self.alignment) * self.alignment


# ---------------------------------------------------------------- U-Net canonicalisation

def _topo_sort(nodes: list[onnx.NodeProto], known: set[str]) -> list[onnx.NodeProto]:
    known = set(known) | {""}
    pending, ordered = list(nodes), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise ExportError("converted graph has a cycle or an undefined input")
        for n in ready:
            ordered.append(n)
            known.update(n.output)
        pending = [n for n in pending if n not in ready]
    return ordered


def _prune(nodes: list[onnx.NodeProto], outputs: Iterable[str]) -> list[onnx.NodeProto]:
    needed, kept = set(outputs), []
    for n in reversed(nodes):
        if any(o in needed for o in n.output):
            kept.append(n)
            needed.update(i for i in n.input if i)
    return kept[::-1]


def _resize_scales(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Integer scale per axis of every Resize node, found by shape inference at a probe size."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.value_info[:]
    dims = probe.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, (1, None, *_PROBE_HW), strict=True):
        if v is not None:
            d.Clear()
            d.dim_value = v
    for o in probe.graph.output:
        o.type.tensor_type.shape.Clear()
    try:
        inferred = shape_inference.infer_shapes(probe, data_prop=True)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"shape inference of the converted U-Net failed: {exc}") from exc
    shapes = {}
    for v in inferred.graph.value_info:
        dims = v.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = tuple(d.dim_value for d in dims)
    scales = {}
    for n in inferred.graph.node:
        if n.op_type != "Resize":
            continue
        src, dst = shapes.get(n.input[0]), shapes.get(n.output[0])
        if src is None or dst is None or len(src) != 4 or len(dst) != 4:
            raise ExportError(f"cannot infer the scale of Resize node {n.name!r}")
        if any(b % a for a, b in zip(src, dst, strict=True)):
            raise ExportError(f"Resize node {n.name!r} has a non-integer scale {src} -> {dst}")
        scales[n.name] = tuple(b // a for a, b in zip(src, dst, strict=True))
    return scales


def canonical_unet(converted: onnx.ModelProto) -> tuple[list[onnx.NodeProto],
                                                         list[onnx.TensorProto]]:
    """Rewrite a band-first tf2onnx U-Net into named nodes ``features`` -> ``probabilities``.

    The converted graph must take (N, 16, H, W) and return (N, C, H, W) (tf2onnx with
    inputs_as_nchw / outputs_as_nchw) and contain no Transpose. Every Resize is replaced by a
    nearest, asymmetric/floor Resize with constant scales (out[i] = in[i // s], which is Keras
    UpSampling2D); the shape arithmetic that fed it is dropped. Conv auto_pad SAME becomes explicit
    pads. Nodes get role names ``unet/enc1_conv1`` ... ``unet/head_conv``, ``unet/softmax``.
    """
    g = converted.graph
    if len(g.input) != 1 or len(g.output) != 1:
        raise ExportError("converted U-Net must have exactly one input and one output")
    transposes = [n.name for n in g.node if n.op_type == "Transpose"]
    if transposes:
        raise ExportError(f"converted U-Net still has {len(transposes)} Transpose node(s): "
                          "expected a band-first graph from tf2onnx inputs_as_nchw/outputs_as_nchw")
    in_name, out_name = g.input[0].name, g.output[0].name
    inits = {t.name: t for t in g.initializer}
    scales = _resize_scales(converted)

    nodes = []
    for n in g.node:
        if n.op_type == "Resize":
            new = helper.make_node("Resize", [n.input[0], "", f"{n.name}__scales"], list(n.output),
                                   name=n.name, mode="nearest",
                                   coordinate_transformation_mode="asymmetric",
                                   nearest_mode="floor")
            inits[f"{n.name}__scales"] = numpy_helper.from_array(
                np.array(scales[n.name], dtype=np.float32), f"{n.name}__scales")
            nodes.append(new)
        else:
            nodes.append(n)
    nodes = _prune(_topo_sort(nodes, {in_name} | set(inits)), [out_name])

    softmax = [n for n in nodes if n.op_type == "Softmax"]
    if len(softmax) != 1 or softmax[0].output[0] != out_name:
        raise ExportError("converted U-Net must end in one Softmax over the classes")
    producers = {o: n for n in nodes for o in n.output}
    head = producers.get(softmax[0].input[0])
    if head is None or head.op_type != "Conv":
        raise ExportError("the Softmax of the converted U-Net is not fed by a convolution")
    axis = next((a.i for a in softmax[0].attribute if a.name == "axis"), -1)
    if axis != 1:
        raise ExportError(f"the Softmax runs over axis {axis}, expected the channel axis 1")

    by_op: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        if n is not head:
            by_op.setdefault(n.op_type, []).append(n)
    names: dict[int, str] = {id(head): HEAD_CONV, id(softmax[0]): SOFTMAX}
    for op, group in by_op.items():
        if op in ("Softmax", "Relu"):  # the softmax is named above, each ReLU after its producer
            continue
        roles = _ROLES.get(op)
        for i, n in enumerate(group):
            role = roles[i] if roles and len(roles) == len(group) else f"{op.lower()}{i + 1}"
            names[id(n)] = f"unet/{role}"
    for i, n in enumerate(by_op.get("Relu", [])):
        src = producers.get(n.input[0])
        base = names.get(id(src)) if src is not None else None
        names[id(n)] = f"{base}_relu" if base else f"unet/relu{i + 1}"

    tensor_names = {in_name: FEATURES_NAME, out_name: OUTPUT_PROBS, "": ""}
    for n in nodes:
        for j, o in enumerate(n.output):
            if o not in tensor_names:
                tensor_names[o] = names[id(n)] + ("" if j == 0 else f":{j}")
    new_inits: dict[str, onnx.TensorProto] = {}
    for n in nodes:
        for k, i in enumerate(n.input):
            if i in inits and i not in tensor_names:
                if n.op_type == "Conv":
                    suffix = ("weight", "bias")[k - 1] if k in (1, 2) else f"const{k}"
                elif n.op_type == "Resize":
                    suffix = "scales"
                else:
                    suffix = f"const{k}"
                tensor_names[i] = f"{names[id(n)]}/{suffix}"
            if i in inits and tensor_names[i] not in new_inits:
                t = onnx.TensorProto()
                t.CopyFrom(inits[i])
                t.name = tensor_names[i]
                new_inits[t.name] = t

    out_nodes = []
    for n in nodes:
        attrs = [a for a in n.attribute]
        if n.op_type == "Conv":
            attrs = _explicit_pads(n, new_inits[tensor_names[n.input[1]]])
        new = helper.make_node(n.op_type, [tensor_names[i] for i in n.input],
                               [tensor_names[o] for o in n.output], name=names[id(n)],
                               domain=n.domain or None)
        new.attribute.extend(attrs)
        out_nodes.append(new)
    return out_nodes, list(new_inits.values())


def _explicit_pads(node: onnx.NodeProto, weight: onnx.TensorProto) -> list[onnx.AttributeProto]:
    attrs = {a.name: a for a in node.attribute}
    auto = attrs.get("auto_pad")
    if auto is None or auto.s in (b"NOTSET", b"VALID"):
        return list(attrs.values())
    strides = list(attrs["strides"].ints) if "strides" in attrs else [1, 1]
    if strides != [1, 1]:
        return list(attrs.values())
    dil = list(attrs["dilations"].ints) if "dilations" in attrs else [1, 1]
    kernel = list(weight.dims[2:])
    total = [(k - 1) * d for k, d in zip(kernel, dil, strict=True)]
    begin = [t // 2 if auto.s == b"SAME_UPPER" else t - t // 2 for t in total]
    end = [t - b for t, b in zip(total, begin, strict=True)]
    kept = [a for name, a in attrs.items() if name != "auto_pad"]
    return kept + [helper.make_attribute("pads", begin + end)]


# ---------------------------------------------------------------- receptive field

def receptive_field(nodes: list[onnx.NodeProto], inits: Iterable[onnx.TensorProto],
                    alignment: int = ALIGNMENT) -> ReceptiveField:
    """Receptive field of the canonical U-Net along one spatial axis (H; W is the same here).

    Propagates, for one output pixel, the interval of positions each tensor must provide, back to
    ``features``; worst case over the ``alignment`` pixel phases (pooling makes it phase
    dependent). ``aligned_radius`` is what a tile with aligned origin and size needs beyond its
    edges (its left edge pixel has phase 0, its right edge pixel phase alignment-1).
    """
    dims = {t.name: list(t.dims) for t in inits}
    left = right = aligned_left = aligned_right = 0
    base = 1000 * alignment  # far from any border
    for phase in range(alignment):
        x = base + phase
        need: dict[str, tuple[int, int]] = {OUTPUT_PROBS: (x, x)}
        for n in reversed(nodes):
            spans = [need[o] for o in n.output if o in need]
            if not spans:
                continue
            lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            if n.op_type in ("Conv", "MaxPool"):
                kernel = (dims[n.input[1]][2] if n.op_type == "Conv"
                          else attrs["kernel_shape"][0])
                stride = attrs.get("strides", [1, 1])[0]
                dil = attrs.get("dilations", [1, 1])[0]
                pad = attrs.get("pads", [0, 0, 0, 0])[0]
                if "auto_pad" in attrs and attrs["auto_pad"] not in (b"NOTSET", b"VALID"):
                    raise ExportError(f"receptive field: {n.name} has auto_pad")
                lo, hi = lo * stride - pad, hi * stride - pad + (kernel - 1) * dil
                srcs = [n.input[0]]
            elif n.op_type == "Resize":
                s = int(numpy_helper.to_array(_find(inits, n.input[2]))[2])
                lo, hi, srcs = lo // s, hi // s, [n.input[0]]
            elif n.op_type in _POINTWISE:
                srcs = [i for i in n.input if i and i not in dims]
            else:
                raise ExportError(f"receptive field: unsupported op {n.op_type} ({n.name})")
            for src in srcs:
                old = need.get(src)
                need[src] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
        lo, hi = need[FEATURES_NAME]
        left, right = max(left, x - lo), max(right, hi - x)
        aligned_left = max(aligned_left, x - lo - phase)
        aligned_right = max(aligned_right, hi - x - (alignment - 1 - phase))
    return ReceptiveField(radius=max(left, right),
                          aligned_radius=max(aligned_left, aligned_right), alignment=alignment)


def _find(inits: Iterable[onnx.TensorProto], name: str) -> onnx.TensorProto:
    for t in inits:
        if t.name == name:
            return t
    raise ExportError(f"initializer {name!r} not found")


# ---------------------------------------------------------------- features and outputs

def _const(name: str, value: Any, dtype: Any) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def feature_nodes() -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes turning ``bands`` (uint16, N,13,H,W) into ``features`` (float32, N,16,H,W)."""
    mk = helper.make_node
    nodes = [mk("Cast", [INPUT_NAME], ["features/bands_f32"], name="features/cast",
                to=TensorProto.FLOAT)]
    inits = [_const("features/eps", EPS, np.float32), _const("features/zero", 0.0, np.float32),
             _const("features/axes", [1], np.int64)]
    used = sorted({b for pair in INDICES.values() for b in pair}, key=BANDS.index)
    for b in used:
        i = BANDS.index(b)
        inits += [_const(f"features/start_{b}", [i], np.int64),
                  _const(f"features/end_{b}", [i + 1], np.int64)]
        nodes.append(mk("Slice", ["features/bands_f32", f"features/start_{b}",
                                  f"features/end_{b}", "features/axes"],
                        [f"features/{b}"], name=f"features/slice_{b}"))
    for name, (a, b) in INDICES.items():
        p = f"features/{name}"
        nodes += [
            mk("Sub", [f"features/{a}", f"features/{b}"], [f"{p}_num"], name=f"{p}_num"),
            mk("Add", [f"features/{a}", f"features/{b}"], [f"{p}_sum"], name=f"{p}_sum"),
            mk("Add", [f"{p}_sum", "features/eps"], [f"{p}_den"], name=f"{p}_den"),
            mk("Div", [f"{p}_num", f"{p}_den"], [f"{p}_ratio"], name=f"{p}_ratio"),
            mk("IsNaN", [f"{p}_ratio"], [f"{p}_isnan"], name=f"{p}_isnan"),
            mk("IsInf", [f"{p}_ratio"], [f"{p}_isinf"], name=f"{p}_isinf"),
            mk("Or", [f"{p}_isnan", f"{p}_isinf"], [f"{p}_bad"], name=f"{p}_bad"),
            mk("Where", [f"{p}_bad", "features/zero", f"{p}_ratio"], [p], name=p),
        ]
    nodes.append(mk("Concat", [f"features/{n}" for n in INDICES] + ["features/bands_f32"],
                    [FEATURES_NAME], name="features/concat", axis=1))
    return nodes, inits


def output_nodes(opset: int = OPSET) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes turning ``probabilities`` into ``class`` and ``confidence`` with the nodata rule."""
    mk = helper.make_node

    def reduce_max(src: str, dst: str) -> onnx.NodeProto:
        if opset >= 18:  # axes became an input in opset 18
            return mk("ReduceMax", [src, "outputs/axes"], [dst], name=dst, keepdims=0)
        return mk("ReduceMax", [src], [dst], name=dst, axes=[1], keepdims=0)

    inits = [_const("outputs/axes", [1], np.int64)] if opset >= 18 else []
    inits += [_const("outputs/zero_f32", 0.0, np.float32),
             _const("outputs/scale_255", 255.0, np.float32),
             _const("outputs/nodata_class", NODATA["value"], np.uint8),
             _const("outputs/nodata_confidence", 0, np.uint8)]
    nodes = [
        reduce_max("features/bands_f32", "outputs/band_max"),
        mk("Equal", ["outputs/band_max", "outputs/zero_f32"], ["outputs/nodata"],
           name="outputs/nodata"),
        mk("ArgMax", [OUTPUT_PROBS], ["outputs/argmax"], name="outputs/argmax", axis=1,
           keepdims=0),
        mk("Cast", ["outputs/argmax"], ["outputs/argmax_u8"], name="outputs/argmax_u8",
           to=TensorProto.UINT8),
        mk("Where", ["outputs/nodata", "outputs/nodata_class", "outputs/argmax_u8"],
           [OUTPUT_CLASS], name="outputs/class"),
        reduce_max(OUTPUT_PROBS, "outputs/top_prob"),
        mk("Mul", ["outputs/top_prob", "outputs/scale_255"], ["outputs/top_prob_255"],
           name="outputs/top_prob_255"),
        mk("Round", ["outputs/top_prob_255"], ["outputs/top_prob_round"],
           name="outputs/top_prob_round"),
        mk("Clip", ["outputs/top_prob_round", "outputs/zero_f32", "outputs/scale_255"],
           ["outputs/top_prob_clip"], name="outputs/top_prob_clip"),
        mk("Cast", ["outputs/top_prob_clip"], ["outputs/confidence_u8"],
           name="outputs/confidence_u8", to=TensorProto.UINT8),
        mk("Where", ["outputs/nodata", "outputs/nodata_confidence", "outputs/confidence_u8"],
           [OUTPUT_CONFIDENCE], name="outputs/confidence"),
    ]
    return nodes, inits


def build_end_to_end(converted_unet: onnx.ModelProto, opset: int = OPSET,
                     n_classes: int = len(CLASSES)) -> tuple[onnx.ModelProto, ReceptiveField]:
    """The contract graph: ``bands`` -> features -> band-first U-Net -> class/confidence/probs."""
    unet_nodes, unet_inits = canonical_unet(converted_unet)
    rf = receptive_field(unet_nodes, unet_inits)
    f_nodes, f_inits = feature_nodes()
    o_nodes, o_inits = output_nodes(opset)
    graph = helper.make_graph(
        f_nodes + unet_nodes + o_nodes, "lulc_edge",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT16,
                                       ["N", len(BANDS), "H", "W"])],
        [helper.make_tensor_value_info(OUTPUT_CLASS, TensorProto.UINT8, ["N", "H", "W"]),
         helper.make_tensor_value_info(OUTPUT_CONFIDENCE, TensorProto.UINT8, ["N", "H", "W"]),
         helper.make_tensor_value_info(OUTPUT_PROBS, TensorProto.FLOAT,
                                       ["N", n_classes, "H", "W"])],
        initializer=f_inits + unet_inits + o_inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="lulc-edge export/to_onnx.py")
    model.ir_version = min(model.ir_version, 8)  # readable by onnxruntime >= 1.14
    names = [n.name for n in model.graph.node]
    if len(set(names)) != len(names) or not all(names):
        raise ExportError("internal error: node names are not unique and non-empty")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"the end-to-end graph is invalid: {exc}") from exc
    return model, rf


# ---------------------------------------------------------------- metadata

def contract_metadata(rf: ReceptiveField) -> dict[str, Any]:
    """Metadata entries fixed by the graph itself (docs/contract.md)."""
    return {
        "lulc_edge.contract": CONTRACT_VERSION,
        "lulc_edge.input": {
            "name": INPUT_NAME, "dtype": "uint16", "layout": "NCHW", "bands": list(BANDS),
            "scale": "Sentinel-2 L2A digital numbers, harmonised (reflectance * 10000, "
                     "no BOA offset); SCL as class codes 0..11",
            "boa_offset": 0,
        },
        "lulc_edge.features": {
            "channels": list(FEATURE_CHANNELS), "formulas": FORMULAS, "eps": EPS,
            "nan_inf_to": 0, "dtype": "float32",
        },
        "lulc_edge.classes": [dict(c) for c in CLASSES],
        "lulc_edge.nodata": dict(NODATA),
        "lulc_edge.outputs": {
            OUTPUT_CLASS: "uint8 (N,H,W), argmax class 0..4; 255 where all 13 input bands are 0",
            OUTPUT_CONFIDENCE: "uint8, round(255*max probability); 0 where nodata",
            OUTPUT_PROBS: "float32 (N,5,H,W), softmax probabilities of the U-Net",
        },
        "lulc_edge.alignment": rf.alignment,
        "lulc_edge.halo": rf.halo(),
        "lulc_edge.receptive_field": {
            "radius": rf.radius, "aligned_radius": rf.aligned_radius,
            "alignment": rf.alignment,
            "note": "radius: worst case over pixel phases; aligned_radius: context needed "
                    "beyond a tile whose origin and size are multiples of alignment",
        },
        "lulc_edge.window": dict(WINDOW),
    }


def set_metadata(model: onnx.ModelProto, entries: Mapping[str, Any]) -> None:
    """Set (replace) metadata_props, each value stored as a JSON document."""
    current = {p.key: p.value for p in model.metadata_props}
    current.update({k: json.dumps(v) for k, v in entries.items()})
    del model.metadata_props[:]
    for k, v in current.items():
        model.metadata_props.add(key=k, value=v)


def get_metadata(model: onnx.ModelProto) -> dict[str, Any]:
    """All metadata_props, JSON-decoded."""
    return {p.key: json.loads(p.value) for p in model.metadata_props}
