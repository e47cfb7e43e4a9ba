"""tests.test_optimize: export/optimize.py's rewrites compute what the canonical graph does."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from export.errors import ExportError
from export.optimize import canonical_decoder, optimize, softmax_exp_sum, subpixel_decoder
from lulc_edge import bundled_model
from lulc_edge.synthetic import SceneSpec, generate


def _run(model: onnx.ModelProto, bands: np.ndarray) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"]).run(None, {"bands": bands})


@pytest.fixture(scope="module")
def shipped() -> onnx.ModelProto:
    return onnx.load(bundled_model())


@pytest.fixture(scope="module")
def bands() -> np.ndarray:
    x, _, _ = generate(SceneSpec(width=204, height=148, seed=12))  # not multiples of 8
    x[:, :7, :11] = 0
    return x[None]


def test_shipped_fp32_is_optimised_and_int8_keeps_the_canonical_decoder():
    fp32 = [n.op_type for n in onnx.load(bundled_model()).graph.node]
    int8 = [n.op_type for n in onnx.load(bundled_model("demo-unet-int8.onnx")).graph.node]
    assert fp32.count("DepthToSpace") == 2 and "Resize" not in fp32 and "Softmax" not in fp32
    assert int8.count("Resize") == 2 and "DepthToSpace" not in int8 and "Softmax" not in int8


def test_canonical_round_trip_recovers_the_3x3_kernels(shipped, bands):
    canon = canonical_decoder(shipped)
    ops = [n.op_type for n in canon.graph.node]
    assert ops.count("Resize") == 2 and ops.count("Concat") == 3 and "DepthToSpace" not in ops
    again = subpixel_decoder(canon)
    a = {i.name: numpy_helper.to_array(i) for i in shipped.graph.initializer}
    b = {i.name: numpy_helper.to_array(i) for i in again.graph.initializer}
    assert a.keys() == b.keys()
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-6
    ref, got = _run(shipped, bands), _run(canon, bands)
    assert np.array_equal(ref[0], got[0]) and np.abs(ref[2] - got[2]).max() < 1e-4
    assert canonical_decoder(canon) is canon  # nothing to undo


def _with_softmax_node(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph as export/graph.py builds it: one Softmax, the argmax on probabilities."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = []
    for n in out.graph.node:
        if n.name.startswith("unet/softmax_"):
            continue
        if n.name == "unet/softmax":
            n = onnx.helper.make_node("Softmax", ["unet/head_conv"], ["probabilities"],
                                      name="unet/softmax", axis=1)
        if n.name == "outputs/argmax":
            n.input[0] = "probabilities"
        nodes.append(n)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def test_each_rewrite_and_both_keep_the_outputs(shipped, bands):
    canon = _with_softmax_node(canonical_decoder(shipped))
    assert [n.op_type for n in canon.graph.node].count("Softmax") == 1
    ref = _run(canon, bands)
    for rewrite in (subpixel_decoder, softmax_exp_sum, lambda m: optimize(m)[0]):
        out = _run(rewrite(canon), bands)
        assert np.mean(out[0] == ref[0]) >= 0.9999
        assert np.abs(out[2] - ref[2]).max() < 1e-4
        assert np.all(out[0][0, :7, :11] == 255) and np.all(out[1][0, :7, :11] == 0)


def test_rewrites_refuse_graphs_they_do_not_know(shipped):
    with pytest.raises(ExportError, match="canonical decoder"):
        subpixel_decoder(shipped)  # already rewritten: no unet/dec2_up
    with pytest.raises(ExportError, match="Softmax"):
        softmax_exp_sum(shipped)   # already Exp/Sum
