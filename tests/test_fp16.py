"""tests.test_fp16: the fp16 sibling for CUDA: only the U-Net in float16, its gate, its lookup."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from export.to_fp16 import convert_file
from lulc_edge import Engine, EngineOptions, PrecisionError, bundled_model
from lulc_edge.precisions import variant_path
from lulc_edge.synthetic import SceneSpec, generate

ROOT = Path(__file__).resolve().parents[1]
FP16 = bundled_model("demo-unet-fp16.onnx")
TO_FP16 = [sys.executable, str(ROOT / "export" / "to_fp16.py")]


def _meta(model: onnx.ModelProto) -> dict:
    return {p.key: json.loads(p.value) for p in model.metadata_props}


def _float16_tensors(model: onnx.ModelProto) -> set[str]:
    inferred = onnx.shape_inference.infer_shapes(model)
    return {v.name for v in inferred.graph.value_info
            if v.type.tensor_type.elem_type == TensorProto.FLOAT16}


def test_shipped_fp16_model_has_only_the_unet_in_float16():
    model = onnx.load(FP16)
    casts = [n for n in model.graph.node if n.op_type == "Cast" and n.name.startswith("unet/")]
    # in: the features; out: the probabilities and the logits the argmax reads
    assert sorted(n.name for n in casts) == ["unet/to_fp16_0", "unet/to_fp32_0", "unet/to_fp32_1"]
    half = _float16_tensors(model)
    producers = {o: n.name for n in model.graph.node for o in n.output}
    assert half and all(producers[t].startswith("unet/") for t in half if t in producers)
    convs = {i for n in model.graph.node if n.op_type == "Conv" for i in n.input[1:]}
    for init in model.graph.initializer:
        if init.name in convs:
            assert init.data_type == TensorProto.FLOAT16, init.name
    # inputs and outputs unchanged: uint16 bands in, uint8 class / float probabilities out
    fp32 = onnx.load(bundled_model())
    assert [(i.name, i.type.tensor_type.elem_type) for i in model.graph.input] == \
        [(i.name, i.type.tensor_type.elem_type) for i in fp32.graph.input]
    assert [(o.name, o.type.tensor_type.elem_type) for o in model.graph.output] == \
        [(o.name, o.type.tensor_type.elem_type) for o in fp32.graph.output]


def test_shipped_fp16_metadata_records_its_gate():
    meta = _meta(onnx.load(FP16))
    assert meta["lulc_edge.precision"] == "fp16"
    assert meta["lulc_edge.exporter"]["fp16"]["tool"] == "export/to_fp16.py"
    gate = meta["lulc_edge.fp16_gate"]
    assert gate["passed"] and gate["max_f1_drop"] <= 0.01
    assert meta["lulc_edge.accuracy"]["fp16"]["agreement"] >= 0.99


def test_fp16_agrees_with_fp32_where_onnxruntime_cpu_runs_it():
    """The CPU provider runs the fp16 graph (as the gate does): classes agree, nodata kept."""
    bands, _, _ = generate(SceneSpec(width=192, height=192, seed=11))
    bands[:, :20, :30] = 0
    x = bands[None]
    c32 = ort.InferenceSession(str(bundled_model()), providers=["CPUExecutionProvider"]) \
        .run(["class"], {"bands": x})[0]
    c16 = ort.InferenceSession(str(FP16), providers=["CPUExecutionProvider"]) \
        .run(["class"], {"bands": x})[0]
    assert np.all(c16[0, :20, :30] == 255)
    assert np.mean(c16 == c32) >= 0.99


def test_to_fp16_cli_writes_a_sibling_and_refuses_a_non_fp32_model(tmp_path):
    src = tmp_path / "m.onnx"
    shutil.copy(bundled_model(), src)
    proc = subprocess.run([*TO_FP16, str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m-fp16.onnx").is_file()
    again = subprocess.run([*TO_FP16, str(tmp_path / "m-fp16.onnx"), "-o",
                            str(tmp_path / "x.onnx")], capture_output=True, text=True)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.count("\n") == 1 and "lulc_edge.precision is fp16" in again.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_convert_file_default_name(tmp_path):
    src = tmp_path / "user.onnx"
    shutil.copy(bundled_model(), src)
    dst = convert_file(src, check=False)
    assert dst == tmp_path / "user-fp16.onnx"
    assert "lulc_edge.accuracy" not in _meta(onnx.load(dst))  # ungated: nothing claimed


def test_variant_lookup_for_cuda_fp16(tmp_path):
    user = tmp_path / "m.onnx"
    shutil.copy(bundled_model(), user)
    with pytest.raises(PrecisionError, match="m-fp16.onnx.*export/to_fp16.py"):
        variant_path(user, "fp16", "fp32", False, "cuda")
    assert variant_path(user, "fp16", "fp32", False, "openvino") == user  # a hint, same file
    assert variant_path(bundled_model(), "fp16", "fp32", True, "cuda") == FP16
    assert variant_path(FP16, "fp16", "fp16", True, "cuda") == FP16
    with pytest.raises(PrecisionError, match="fp16 model"):
        variant_path(FP16, "fp32", "fp16", True, "cpu")


def test_auto_reads_the_fp16_siblings_stored_agreement():
    eng = Engine(None, EngineOptions(device="cpu", precision="fp32", threads=1))
    acc = eng._accuracy()
    assert acc["fp16"][0]["agreement"] >= 0.99 and "int8" in acc


def test_fp16_sibling_has_the_canonical_decoder():
    """GPUs ran the Resize/Concat decoder faster in fp16 than the sub-pixel one."""
    ops = [n.op_type for n in onnx.load(FP16).graph.node]
    assert ops.count("Resize") == 2 and "DepthToSpace" not in ops
