"""The embedding API: Segmenter on arrays, thread safety, no TensorFlow, no feature code."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import lulc_edge
from lulc_edge import InputError, Segmenter
from lulc_edge.synthetic import SceneSpec, generate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seg():
    return Segmenter(device="cpu", threads=2)


@pytest.fixture(scope="module")
def scene():
    bands, labels, _ = generate(SceneSpec(width=150, height=130, seed=11))
    return bands, labels


def test_predict_matches_the_graph_and_marks_nodata(seg, scene, model_path):
    bands, _ = scene
    pred = seg.predict(bands, confidence=True, probabilities=True, clouds=False)
    assert pred.classes.shape == (130, 150) and pred.classes.dtype == np.uint8
    assert pred.confidence.dtype == np.uint8 and pred.probabilities.shape == (5, 130, 150)
    assert ((pred.classes == 255) == ~bands.any(axis=0)).all()
    # seamless tiles reproduce one run of the graph on the zero-padded scene
    padded = np.zeros((13, 132, 152), np.uint16)
    padded[:, :130, :150] = bands
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (direct,) = sess.run(["class"], {"bands": padded[None]})
    assert np.array_equal(pred.classes, direct[0, :130, :150])


def test_predict_accepts_integer_arrays_and_refuses_others(seg, scene):
    bands, _ = scene
    a = seg.predict(bands.astype(np.int32)).classes
    assert np.array_equal(a, seg.predict(bands).classes)
    with pytest.raises(InputError):
        seg.predict(bands.astype(np.float32) / 10000)
    with pytest.raises(InputError):
        seg.predict(bands[:12])


def test_one_segmenter_shared_by_threads(seg, scene):
    bands, _ = scene
    ref = seg.predict(bands).classes
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: seg.predict(bands, tile=64).classes, range(8)))
    assert all(np.array_equal(o, ref) for o in outs)


def test_contract_comes_from_the_file(seg):
    c = seg.contract
    assert [k.name for k in c.classes] == ["Barren_Land", "Built-up_Area", "Crop", "Forest",
                                           "Water"]
    assert c.nodata.value == 255 and c.alignment == 4 and c.halo >= 22
    assert c.bands[10] == "SCL" and len(c.bands) == 13


def test_runtime_follows_the_graph_recipe(model_path, scene, tmp_path):
    """The runtime has no feature code: change the recipe in the graph and its output follows."""
    bands, _ = scene
    m = onnx.load(str(model_path))
    for init in m.graph.initializer:
        if init.name == "features/eps":
            init.CopyFrom(numpy_helper.from_array(np.asarray(5000.0, np.float32), init.name))
            break
    else:
        pytest.fail("no features/eps constant in the graph")
    doctored = tmp_path / "doctored.onnx"
    onnx.save(m, str(doctored))
    a = Segmenter(model_path, device="cpu").predict(bands, probabilities=True,
                                                    clouds=False).probabilities
    b = Segmenter(doctored, device="cpu").predict(bands, probabilities=True,
                                                  clouds=False).probabilities
    assert np.abs(a - b).max() > 1e-3


def test_runtime_sources_hold_no_feature_recipe():
    """The indices exist once, in the exporter's graph builder; lulc_edge never spells them."""
    for py in Path(lulc_edge.__file__).parent.glob("*.py"):
        if py.name == "synthetic.py":  # the test-scene generator describes spectra, not features
            continue
        text = py.read_text()
        for word in ("NDVI", "NDBI", "NDWI", "1e-8"):
            assert word not in text, f"{py.name} mentions {word}"


BLOCK_TF = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'tf_keras'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import numpy as np
import lulc_edge
from lulc_edge.synthetic import SceneSpec, generate
from lulc_edge.cli import main
bands, _, _ = generate(SceneSpec(width=70, height=66, seed=1))
pred = lulc_edge.Segmenter(device='cpu').predict(bands)
assert pred.classes.shape == (66, 70)
bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx')]
assert not bad, bad
print('ok')
"""


def test_runtime_works_without_tensorflow():
    proc = subprocess.run([sys.executable, "-c", BLOCK_TF], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_package_never_imports_tensorflow():
    for py in Path(lulc_edge.__file__).parent.rglob("*.py"):
        for line in py.read_text().splitlines():
            s = line.strip()
            for mod in ("tensorflow", "keras", "tf2onnx"):
                assert not s.startswith((f"import {mod}", f"from {mod}")), f"{py}: {s}"


def test_wrong_dtype_or_band_count_reaching_the_graph_names_the_file(engine, model_path):
    from lulc_edge import ModelError

    for bad in (np.zeros((1, 13, 64, 64), np.float32), np.zeros((1, 12, 64, 64), np.uint16)):
        with pytest.raises(ModelError) as info:
            engine.run(bad)
        msg = str(info.value)
        assert str(model_path) in msg and "\n" not in msg
