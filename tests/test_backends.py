"""Backends and precisions: errors, int8 variants, auto's choice and cache, fallback, OpenVINO.

Tests that need OpenVINO (its runtime, or onnxruntime-openvino's provider) are marked
``openvino`` and skip where it is not installed; ``.ci/openvino.sh`` runs them in the provider's
own environment. CUDA tests are marked ``gpu`` and skip without onnxruntime-gpu and a GPU.
"""

from __future__ import annotations

import json
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import rasterio

from lulc_edge import (
    BackendError,
    Engine,
    EngineOptions,
    PrecisionError,
    Segmenter,
    autotune_cache,
)
from lulc_edge.devices import available_devices, cpu_supports, openvino_capabilities
from lulc_edge.errors import LulcEdgeWarning
from lulc_edge.synthetic import SceneSpec, generate, write_scene

from .conftest import run_cli

HAVE = set(available_devices())
needs_ov_runtime = pytest.mark.skipif("openvino" not in HAVE,
                                      reason="OpenVINO runtime (pip install openvino) missing")
needs_ov_ep = pytest.mark.skipif("openvino-ep" not in HAVE,
                                 reason="onnxruntime-openvino's provider missing (.ci/openvino.sh)")
needs_cuda = pytest.mark.skipif("cuda" not in HAVE, reason="no CUDA provider (onnxruntime-gpu)")


def _bf16_ok(device: str) -> bool:
    if device == "openvino":
        return "BF16" in openvino_capabilities("CPU")
    return cpu_supports("bf16")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    """Each test gets its own auto cache (and OpenVINO model cache)."""
    d = tmp_path / "cache"
    monkeypatch.setenv("LULC_EDGE_CACHE_DIR", str(d))
    return d


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A synthetic 256x256 scene with nodata pixels, as (1, 13, H, W)."""
    bands, _, _ = generate(SceneSpec(width=256, height=256, seed=7))
    bands[:, :9, :13] = 0  # a nodata corner
    return bands[None]


@pytest.fixture(scope="module")
def reference(scene, model_path) -> list[np.ndarray]:
    eng = Engine(model_path, EngineOptions(device="cpu", precision="fp32", threads=2))
    return eng.run(scene, ("class", "confidence", "probabilities"))


def _with_metadata(src: Path, dst: Path, **entries: object) -> Path:
    """Copy a model, setting ``lulc_edge.<key>`` metadata entries (JSON values)."""
    m = onnx.load(str(src))
    keep = [p for p in m.metadata_props if p.key.removeprefix("lulc_edge.") not in entries]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    for k, v in entries.items():
        m.metadata_props.add(key=f"lulc_edge.{k}", value=json.dumps(v))
    onnx.save(m, str(dst))
    return dst


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())


def _check_contract(outs: list[np.ndarray], ref: list[np.ndarray], scene: np.ndarray) -> None:
    cls, conf, probs = outs
    assert cls.dtype == np.uint8 and conf.dtype == np.uint8 and probs.dtype == np.float32
    assert cls.shape == ref[0].shape and probs.shape == ref[2].shape
    nodata = ~scene.any(axis=1)
    assert (cls[nodata] == 255).all() and (conf[nodata] == 0).all()
    assert (cls[~nodata] < 5).all()


# --------------------------------------------------------------------------- precision errors
def test_cpu_provider_refuses_bf16_and_fp16(model_path):
    for prec in ("bf16", "fp16"):
        with pytest.raises(PrecisionError, match=prec):
            Engine(model_path, EngineOptions(device="cpu", precision=prec))


def test_unknown_precision_and_device(model_path):
    with pytest.raises(PrecisionError, match="fp8"):
        Engine(model_path, EngineOptions(device="cpu", precision="fp8"))
    with pytest.raises(BackendError, match="tpu"):
        Engine(model_path, EngineOptions(device="tpu"))


def test_int8_without_quantized_model_is_refused(model_path, tmp_path):
    user = tmp_path / "mine.onnx"
    shutil.copy(model_path, user)
    with pytest.raises(PrecisionError, match="mine-int8.onnx"):
        Engine(user, EngineOptions(device="cpu", precision="int8"))


def test_int8_uses_the_sibling_model(model_path, tmp_path):
    """``NAME.onnx --precision int8`` runs ``NAME-int8.onnx`` (here a stand-in copy)."""
    user = tmp_path / "mine.onnx"
    shutil.copy(model_path, user)
    _with_metadata(model_path, tmp_path / "mine-int8.onnx", precision="int8")
    eng = Engine(user, EngineOptions(device="cpu", precision="int8"))
    assert eng.path == tmp_path / "mine-int8.onnx" and eng.precision == "int8"
    assert eng.contract.precision == "int8"
    # a quantized model serves int8 only
    with pytest.raises(PrecisionError, match="quantized"):
        Engine(tmp_path / "mine-int8.onnx", EngineOptions(device="cpu", precision="fp32"))


def test_bundled_int8(model_path):
    int8 = model_path.with_name("demo-unet-int8.onnx")
    if not int8.is_file():
        with pytest.raises(PrecisionError, match="int8"):
            Engine(None, EngineOptions(device="cpu", precision="int8"))
        pytest.skip("bundled int8 model not built yet")
    eng = Engine(None, EngineOptions(device="cpu", precision="int8"))
    assert eng.path == int8 and eng.contract.precision == "int8"


@pytest.mark.skipif(cpu_supports("bf16"), reason="this CPU has bf16")
def test_bf16_refused_without_cpu_support(model_path):
    for dev in HAVE & {"openvino", "openvino-ep"}:
        with pytest.raises(PrecisionError, match="bf16"):
            Engine(model_path, EngineOptions(device=dev, precision="bf16"))


# --------------------------------------------------------------------------- CLI
@pytest.mark.skipif("cuda" in HAVE, reason="the CUDA provider is installed here")
def test_cli_missing_provider_is_one_line(make_scene):
    src, _, _ = make_scene(64, 64)
    proc = run_cli("run", src, "--device", "cuda", "-q")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "cuda" in lines[0] and "available: cpu" in lines[0]
    assert not (src.parent / "scene.lulc.tif").exists()


def test_cli_precision_error_is_one_line(make_scene):
    src, _, _ = make_scene(64, 64)
    proc = run_cli("run", src, "--device", "cpu", "--precision", "bf16", "-q")
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "bf16" in proc.stderr


def test_cli_auto_runs_and_reports_precision(make_scene, model_path, tmp_path):
    src, _, _ = make_scene(64, 64)
    proc = run_cli("run", src, "--device", "auto", "--precision", "auto", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["device"] in HAVE and doc["precision"] in ("fp32", "bf16", "fp16", "int8")
    # a user model with no stored accuracy and no int8 sibling runs fp32
    user = tmp_path / "user.onnx"
    m = onnx.load(str(model_path))
    keep = [p for p in m.metadata_props if p.key != "lulc_edge.accuracy"]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    onnx.save(m, str(user))
    proc = run_cli("run", src, "--model", user, "-o", tmp_path / "u.tif", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["precision"] == "fp32"


def test_info_shows_the_auto_table():
    proc = run_cli("info")
    assert proc.returncode == 0, proc.stderr
    assert "auto         chose" in proc.stdout and "cpu/fp32" in proc.stdout
    doc = json.loads(run_cli("info", "--json").stdout)
    assert doc["auto"]["chosen"].split("/")[0] in HAVE
    assert {c["device"] for c in doc["auto"]["candidates"]} == HAVE


# --------------------------------------------------------------------------- auto
#: an int8 entry within the default budget on synthetic and real scenes
WITHIN = {"agreement": 0.997, "agreement_real_min": 0.997}


def _cpu_int8_model(model_path: Path, tmp_path: Path, **accuracy: object) -> Path:
    """A user model with stored accuracy and a stand-in int8 sibling (cpu/fp32 vs cpu/int8)
    that stores none of its own."""
    user = _with_metadata(model_path, tmp_path / "m.onnx", accuracy=accuracy)
    _with_metadata(model_path, tmp_path / "m-int8.onnx", precision="int8", accuracy={})
    return user


def test_auto_excludes_precisions_without_stored_accuracy(model_path, tmp_path):
    user = _with_metadata(model_path, tmp_path / "m.onnx", accuracy={"int8": {"agreement": 1}})
    eng = Engine(user, EngineOptions(device="auto", precision="auto"))
    assert eng.precision == "fp32"
    notes = {c.key: c for c in eng.selection.candidates}
    for dev in HAVE:
        assert notes[f"{dev}/int8"].status == "excluded"  # no m-int8.onnx
        assert notes[f"{dev}/fp32"].status in ("measured", "chosen")


def test_auto_reads_int8_accuracy_from_the_quantized_model(model_path, tmp_path):
    """export/quantize.py stores its gate result in the int8 file; auto reads it when the fp32
    model stores none."""
    int8 = model_path.with_name("demo-unet-int8.onnx")
    if not int8.is_file():
        pytest.skip("bundled int8 model not built yet")
    m = onnx.load(str(model_path))
    keep = [p for p in m.metadata_props if p.key != "lulc_edge.accuracy"]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    onnx.save(m, str(tmp_path / "user.onnx"))
    shutil.copy(int8, tmp_path / "user-int8.onnx")
    q = {p.key: p.value for p in onnx.load(str(int8)).metadata_props}
    gate = json.loads(q["lulc_edge.accuracy"])["int8"]["agreement"]
    eng = Engine(tmp_path / "user.onnx", EngineOptions(device="cpu", precision="auto", threads=2))
    cand = {c.key: c for c in eng.selection.candidates}["cpu/int8"]
    assert cand.agreement == cand.synthetic == pytest.approx(gate)
    # its gate measured synthetic scenes only: no real-scene agreement keeps int8 out of auto
    assert cand.status == "excluded" and "real scenes" in cand.note


def test_auto_budget_and_cache(model_path, tmp_path, cache_dir):
    user = _cpu_int8_model(model_path, tmp_path, int8=WITHIN)
    opts = EngineOptions(device="cpu", precision="auto", threads=2)
    eng = Engine(user, opts)
    sel = eng.selection
    assert not sel.cached and {c.key for c in sel.candidates if c.mps} == {"cpu/fp32", "cpu/int8"}
    doc = json.loads((cache_dir / "auto.json").read_text())
    assert set(doc["entries"][sel.key]["pairs"]) == {"cpu/fp32", "cpu/int8"}
    # measured once: the next engine reads the cache
    again = Engine(user, opts).selection
    assert again.cached and again.chosen.key == sel.chosen.key
    # a stricter budget excludes int8 without measuring anything
    strict = Engine(user, EngineOptions(device="cpu", precision="auto", threads=2,
                                        min_agreement=0.999))
    assert strict.precision == "fp32" and strict.selection is not None
    assert "budget" in {c.key: c for c in strict.selection.candidates}["cpu/int8"].note


def test_auto_chooses_from_the_cached_timings(model_path, tmp_path, cache_dir):
    """The choice follows the timings: faster reduced precision wins only by >= 10 %."""
    user = _cpu_int8_model(model_path, tmp_path, int8=WITHIN)
    opts = EngineOptions(device="cpu", precision="auto", threads=2)
    sha = Engine(user, EngineOptions(device="cpu")).contract.sha256
    key = autotune_cache.cache_key(sha, 2, opts)

    def plant(fp32: float, int8: float) -> str:
        doc = {"version": autotune_cache.CACHE_VERSION,
               "entries": {key: {"pairs": {"cpu/fp32": {"mps": fp32}, "cpu/int8": {"mps": int8}}}}}
        (cache_dir / "auto.json").write_text(json.dumps(doc))
        eng = Engine(user, opts)
        assert eng.selection.cached
        return eng.precision

    cache_dir.mkdir(exist_ok=True)
    assert plant(1.0, 3.0) == "int8"
    assert plant(1.0, 1.05) == "fp32"
    assert plant(3.0, 1.0) == "fp32"


def test_corrupt_or_foreign_cache_is_rebuilt(model_path, tmp_path, cache_dir):
    user = _cpu_int8_model(model_path, tmp_path, int8=WITHIN)
    opts = EngineOptions(device="cpu", precision="auto", threads=2)
    cache_dir.mkdir()
    cache = cache_dir / "auto.json"
    for bad in ("{not json", json.dumps([1, 2]), json.dumps({"version": 99, "entries": {}}),
                json.dumps({"version": autotune_cache.CACHE_VERSION, "entries": {"k": "x"}})):
        cache.write_text(bad)
        sel = Engine(user, opts).selection
        assert not sel.cached
        doc = json.loads(cache.read_text())
        assert doc["version"] == autotune_cache.CACHE_VERSION and sel.key in doc["entries"]
    # another machine's entry (another key) is not used: this one measures its own
    foreign = {"version": autotune_cache.CACHE_VERSION,
               "entries": {"0" * 32: {"pairs": {"cpu/fp32": {"mps": 999.0}}}}}
    cache.write_text(json.dumps(foreign))
    sel = Engine(user, opts).selection
    assert not sel.cached and all(c.mps != 999.0 for c in sel.candidates)
    assert set(json.loads(cache.read_text())["entries"]) == {"0" * 32, sel.key}


def test_explicit_device_and_precision_override_auto(model_path, tmp_path):
    user = _cpu_int8_model(model_path, tmp_path, int8={"agreement": 0.5})
    eng = Engine(user, EngineOptions(device="cpu", precision="int8"))
    assert eng.precision == "int8" and eng.selection is None


# --------------------------------------------------------------------------- fallback
def _failing_openvino() -> str:
    """A concrete OpenVINO backend here (skip if none): asked for a device that is absent."""
    for dev in ("openvino", "openvino-ep"):
        if dev in HAVE:
            return dev
    pytest.skip("no OpenVINO backend installed")


@pytest.mark.openvino
def test_failing_backend_falls_back_under_auto_only(model_path):
    dev = _failing_openvino()
    bad = dict(openvino_device_type="NPU.99")  # no such device: compiling fails for real
    with pytest.raises(BackendError, match="NPU"):
        Engine(model_path, EngineOptions(device=dev, precision="fp32", **bad))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eng = Engine(model_path, EngineOptions(device="auto", precision="fp32", **bad))
    assert eng.device != dev
    msgs = [str(w.message) for w in caught if issubclass(w.category, LulcEdgeWarning)]
    assert any(f"{dev}/fp32" in m and "skipped" in m for m in msgs), msgs


# --------------------------------------------------------------------------- OpenVINO runtime
@pytest.mark.openvino
@needs_ov_runtime
def test_openvino_runtime_parity(model_path, scene, reference, record_property):
    eng = Engine(model_path, EngineOptions(device="openvino", precision="fp32", threads=2))
    assert eng.device == "openvino" and eng.session is None
    outs = eng.run(scene, ("class", "confidence", "probabilities"))
    _check_contract(outs, reference, scene)
    agree = _agreement(outs[0], reference[0])
    record_property("openvino_fp32_agreement", agree)
    assert agree >= 0.999
    assert np.abs(outs[2] - reference[2]).max() < 1e-3
    if _bf16_ok("openvino"):
        bf = Engine(model_path, EngineOptions(device="openvino", precision="bf16", threads=2))
        assert bf._backend.hint == "bf16"
        outs = bf.run(scene, ("class", "confidence", "probabilities"))
        _check_contract(outs, reference, scene)
        agree = _agreement(outs[0], reference[0])
        record_property("openvino_bf16_agreement", agree)
        print(f"openvino bf16 argmax agreement with fp32: {agree:.5f}")
        assert agree >= 0.99


@pytest.mark.openvino
@needs_ov_runtime
def test_openvino_runtime_shapes_threads_and_cache(model_path, scene, reference, cache_dir):
    eng = Engine(model_path, EngineOptions(device="openvino", precision="fp32", threads=2))
    # dynamic N, H, W: a batch of two odd-sized (aligned) tiles, then the full tile
    part = np.concatenate([scene[:, :, :60, :100], scene[:, :, 60:120, :100]])
    (cls,) = eng.run(part, ("class",))
    direct = reference[0]
    assert cls.shape == (2, 60, 100)
    inner = slice(24, 36), slice(24, 76)  # away from the tile borders: same pixels
    assert _agreement(cls[0][inner], direct[0, :60, :100][inner]) >= 0.999
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: eng.run(scene, ("class",))[0], range(8)))
    assert all(np.array_equal(o, outs[0]) for o in outs)
    assert any((cache_dir / "openvino").iterdir()), "compiled-model cache left empty"


@pytest.mark.openvino
@needs_ov_runtime
def test_segmenter_on_openvino(scene, reference):
    seg = Segmenter(device="openvino", precision="fp32", threads=2)
    assert seg.device == "openvino" and seg.precision == "fp32"
    pred = seg.predict(scene[0], confidence=True, clouds=False)  # as the graph's reference
    assert pred.classes.shape == (256, 256)
    assert _agreement(pred.classes, reference[0][0]) >= 0.999


# --------------------------------------------------------------------------- OpenVINO EP
@pytest.mark.openvino
@needs_ov_ep
def test_openvino_ep_parity_and_bf16(model_path, scene, reference, record_property,
                                     cache_dir):
    eng = Engine(model_path, EngineOptions(device="openvino-ep", precision="fp32", threads=2))
    assert eng.device == "openvino-ep"
    assert eng.session.get_providers()[0] == "OpenVINOExecutionProvider"
    opts = eng._backend.provider_options
    assert opts["device_type"] == "CPU" and opts["num_of_threads"] == "2"
    assert opts["cache_dir"] == str(cache_dir / "openvino")
    outs = eng.run(scene, ("class", "confidence", "probabilities"))
    _check_contract(outs, reference, scene)
    agree = _agreement(outs[0], reference[0])
    record_property("openvino_ep_fp32_agreement", agree)
    assert agree >= 0.999
    if _bf16_ok("openvino-ep"):
        bf = Engine(model_path, EngineOptions(device="openvino-ep", precision="bf16", threads=2))
        outs = bf.run(scene, ("class", "confidence", "probabilities"))
        _check_contract(outs, reference, scene)
        agree = _agreement(outs[0], reference[0])
        record_property("openvino_ep_bf16_agreement", agree)
        print(f"openvino-ep bf16 argmax agreement with fp32: {agree:.5f}")
        assert agree >= 0.99
        # bf16 really ran: the probabilities moved more than fp32 rounding does
        assert np.abs(outs[2] - reference[2]).max() > 1e-3


@pytest.mark.openvino
@needs_ov_ep
def test_device_openvino_uses_the_ep_without_the_runtime(make_scene):
    if "openvino" in HAVE:
        pytest.skip("the OpenVINO runtime is installed: --device openvino uses it")
    src, _, _ = make_scene(96, 80)
    proc = run_cli("run", src, "--device", "openvino", "--precision", "fp32", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["device"] == "openvino-ep"


# --------------------------------------------------------------------------- CUDA
@pytest.mark.gpu
@needs_cuda
def test_cuda_parity(model_path, scene, reference):
    eng = Engine(model_path, EngineOptions(device="cuda", precision="fp32"))
    assert eng.session.get_providers()[0] == "CUDAExecutionProvider"
    outs = eng.run(np.concatenate([scene] * 4), ("class", "confidence", "probabilities"))
    assert _agreement(outs[0][:1], reference[0]) >= 0.999
    with pytest.raises(PrecisionError, match="bf16"):
        Engine(model_path, EngineOptions(device="cuda", precision="bf16"))


@pytest.mark.gpu
@needs_cuda
def test_cuda_fp16_runs_the_fp16_sibling(model_path, scene, reference, tmp_path):
    eng = Engine(None, EngineOptions(device="cuda", precision="fp16"))
    assert eng.path.name == "demo-unet-fp16.onnx" and eng.precision == "fp16"
    assert eng.session.get_providers()[0] == "CUDAExecutionProvider"
    cls = eng.run(scene, ("class",))[0]
    assert _agreement(cls, reference[0]) >= 0.99
    assert np.all(cls[0, :9, :13] == 255)
    user = tmp_path / "m.onnx"
    shutil.copy(model_path, user)
    with pytest.raises(PrecisionError, match="m-fp16.onnx"):
        Engine(user, EngineOptions(device="cuda", precision="fp16"))


@pytest.mark.gpu
@needs_cuda
def test_cuda_auto_picks_a_cuda_pair_and_the_cli_map_matches_cpu(tmp_path):
    eng = Engine(None, EngineOptions(device="auto", precision="auto"))
    assert eng.device == "cuda", eng.selection.as_dict()
    src = tmp_path / "s.tif"
    write_scene(src, SceneSpec(width=300, height=260, seed=4))
    outs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.tif"
        proc = run_cli("run", str(src), "-o", str(out), "--device", device, "--precision",
                       "fp32", "-q")
        assert proc.returncode == 0, proc.stderr
        with rasterio.open(out) as ds:
            outs[device] = ds.read(1)
    assert np.mean(outs["cpu"] == outs["cuda"]) >= 0.999


def test_providers_listed_match_onnxruntime():
    have = set(ort.get_available_providers())
    assert ("cuda" in HAVE) == ("CUDAExecutionProvider" in have)
    assert ("openvino-ep" in HAVE) == ("OpenVINOExecutionProvider" in have)
    assert "cpu" in HAVE


def test_fp16_on_a_cpu_without_amx_fp16_is_refused_not_faked():
    """OpenVINO's CPU plugin takes the f16 hint but computes fp32 there: refuse it."""
    from lulc_edge.devices import cpu_info, openvino_runtime_available

    if not openvino_runtime_available() or "amx_fp16" in cpu_info()["flags"]:
        pytest.skip("needs OpenVINO's runtime on a CPU without AMX-FP16")
    with pytest.raises(PrecisionError, match="fp16"):
        Engine(None, EngineOptions(device="openvino", precision="fp16", threads=2))


def test_auto_lock_held_by_a_hung_process_is_waited_for_a_bounded_time(tmp_path, monkeypatch):
    """A process stuck while measuring (it holds the lock) must not block every later run."""
    import subprocess
    import sys
    import time

    cache = tmp_path / "auto.json"
    lock = tmp_path / ".auto.json.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], "
         "os.O_CREAT | os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); "
         "time.sleep(60)", str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("LULC_EDGE_AUTO_LOCK_WAIT", "0.5")
        t0 = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with autotune_cache.locked(cache):
                waited = time.monotonic() - t0
        assert 0.5 <= waited < 10
        assert any("without waiting" in str(w.message) for w in caught)
        holder.kill()
        holder.wait()
        with autotune_cache.locked(cache):  # released by the kernel with the process: at once
            pass
    finally:
        holder.kill()
        holder.wait()


def test_auto_lock_wait_is_read_when_used(monkeypatch):
    """LULC_EDGE_AUTO_LOCK_WAIT is read at each lock, not frozen at import; a bad value is a
    one-line BackendError, not a traceback on `import lulc_edge`."""
    monkeypatch.setenv("LULC_EDGE_AUTO_LOCK_WAIT", "2.5")
    assert autotune_cache.lock_wait() == 2.5
    monkeypatch.delenv("LULC_EDGE_AUTO_LOCK_WAIT")
    assert autotune_cache.lock_wait() == autotune_cache.DEFAULT_LOCK_WAIT
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("LULC_EDGE_AUTO_LOCK_WAIT", bad)
        with pytest.raises(BackendError, match="LULC_EDGE_AUTO_LOCK_WAIT"):
            autotune_cache.lock_wait()
