"""The command line: the main job, help, and bad input (one line, non-zero exit, no file)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import rasterio
from onnx import TensorProto, helper

from lulc_edge import bundled_model

from .conftest import run_cli, write_stack


def _assert_one_line_error(proc, *words):
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in err.splitlines() if "warning" not in ln]
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]


def _no_outputs(folder, keep):
    left = {p.name for p in folder.iterdir()} - set(keep)
    assert not left, left


def test_run_writes_default_output_and_summary(make_scene, tmp_path):
    src, _, _ = make_scene(100, 90)
    proc = run_cli("run", src, "--quiet", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    out = tmp_path / "scene.lulc.tif"
    assert doc["output"] == str(out) and out.exists()
    assert sum(doc["class_pixels"].values()) == 100 * 90
    assert set(doc["class_pixels"]) == {"Barren_Land", "Built-up_Area", "Crop", "Forest",
                                        "Water", "Cloud", "Unclassified"}
    # without --json: a human summary with areas
    proc = run_cli("run", src, "-o", tmp_path / "b.tif", "-q")
    assert proc.returncode == 0 and proc.stdout == ""
    proc = run_cli("run", src, "-o", tmp_path / "c.tif")
    assert "Forest" in proc.stdout and "ha" in proc.stdout


def test_help_teaches():
    proc = run_cli("run", "--help")
    assert proc.returncode == 0
    for opt in ("--model", "--mode", "--tile", "--batch", "--device", "--threads",
                "--confidence", "--probs", "--cog", "--json", "--overwrite", "--quiet",
                "Examples"):
        assert opt in proc.stdout


def test_info_says_demo_weights(model_path):
    proc = run_cli("info")
    assert proc.returncode == 0, proc.stderr
    assert "DEMO" in proc.stdout and "synthetic" in proc.stdout.lower()
    doc = json.loads(run_cli("info", "--json").stdout)
    assert doc["demo_weights"] is True and doc["halo"] >= 22
    assert "cpu" in doc["devices_available"]


def test_info_describes_quantized_and_fp16_files_too():
    """info reads the contract without a backend: an int8 or fp16 file is described, not refused."""
    for name, precision in (("demo-unet-int8.onnx", "int8"), ("demo-unet-fp16.onnx", "fp16")):
        proc = run_cli("info", bundled_model(name), "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["precision"] == precision


def test_missing_input(tmp_path):
    proc = run_cli("run", tmp_path / "nope.tif")
    _assert_one_line_error(proc, "nope.tif")


def test_not_a_raster(tmp_path):
    bad = tmp_path / "notes.tif"
    bad.write_text("this is not a GeoTIFF\n")
    _assert_one_line_error(run_cli("run", bad), "notes.tif")
    _no_outputs(tmp_path, ["notes.tif"])


def test_truncated_tiff(make_scene, tmp_path):
    src, _, _ = make_scene(300, 300)
    data = src.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    _assert_one_line_error(run_cli("run", cut), "cut.tif")
    _no_outputs(tmp_path, ["scene.tif", "cut.tif"])


def test_wrong_band_count(tmp_path):
    src = write_stack(tmp_path / "five.tif", np.ones((5, 32, 32), np.uint16))
    _assert_one_line_error(run_cli("run", src), "five.tif", "5")
    _no_outputs(tmp_path, ["five.tif"])


def test_unsupported_dtype(tmp_path):
    src = write_stack(tmp_path / "c.tif", np.ones((13, 32, 32), np.complex64))
    _assert_one_line_error(run_cli("run", src), "c.tif")
    _no_outputs(tmp_path, ["c.tif"])


def test_no_crs_works_with_a_warning(tmp_path):
    from lulc_edge.synthetic import SceneSpec, generate

    bands, _, _ = generate(SceneSpec(width=64, height=64, seed=3))
    src = write_stack(tmp_path / "nocrs.tif", bands, crs=None)
    proc = run_cli("run", src, "-q")
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stderr and "CRS" in proc.stderr
    with rasterio.open(tmp_path / "nocrs.lulc.tif") as ds:
        assert ds.crs is None


def test_model_missing_or_corrupt(make_scene, tmp_path):
    src, _, _ = make_scene(64, 64)
    _assert_one_line_error(run_cli("run", src, "--model", tmp_path / "none.onnx"), "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage" * 100)
    _assert_one_line_error(run_cli("run", src, "--model", bad), "bad.onnx")
    _no_outputs(tmp_path, ["scene.tif", "bad.onnx"])


def test_model_not_matching_the_recipe(make_scene, tmp_path):
    """A 16-channel float graph (e.g. exported by another tool) is refused with a hint."""
    src, _, _ = make_scene(64, 64)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 16, "H", "W"])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 16, "H", "W"])
    g = helper.make_graph([helper.make_node("Relu", ["input"], ["probs"])], "other", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    other = tmp_path / "other.onnx"
    onnx.save(m, other)
    _assert_one_line_error(run_cli("run", src, "--model", other), "other.onnx", "bands",
                           "to_onnx.py")
    _no_outputs(tmp_path, ["scene.tif", "other.onnx"])


def test_unwritable_output_directory(make_scene, tmp_path):
    src, _, _ = make_scene(64, 64)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _assert_one_line_error(run_cli("run", src, "-o", blocker / "out.tif"), "out.tif")
    _assert_one_line_error(run_cli("run", src, "-o", tmp_path / "no" / "dir" / "o.tif"),
                           "o.tif")


def test_output_equal_to_input(make_scene, tmp_path):
    src, _, _ = make_scene(64, 64)
    before = src.read_bytes()
    _assert_one_line_error(run_cli("run", src, "-o", src, "--overwrite"), "input")
    assert src.read_bytes() == before


def test_existing_output_needs_overwrite(make_scene, tmp_path):
    src, _, _ = make_scene(64, 64)
    out = tmp_path / "o.tif"
    out.write_text("old")
    _assert_one_line_error(run_cli("run", src, "-o", out), "--overwrite")
    assert out.read_text() == "old"


def test_failure_midway_leaves_no_output(make_scene, tmp_path, monkeypatch):
    """A read error after some tiles were written removes the temporaries."""
    from lulc_edge import Engine, InputError, RunOptions, segment_file, sources

    src, _, _ = make_scene(256, 256)
    calls = {"n": 0}
    real = sources.StackSource.read

    def flaky(self, window):
        calls["n"] += 1
        if calls["n"] > 3:
            raise InputError(f"{self.path}: disk went away")
        return real(self, window)

    monkeypatch.setattr(sources.StackSource, "read", flaky)
    with pytest.raises(InputError):
        segment_file(src, tmp_path / "o.tif", engine=Engine(),
                     options=RunOptions(tile=64, progress=False))
    _no_outputs(tmp_path, ["scene.tif"])


def test_copy_of_bundled_model_works(make_scene, model_path, tmp_path):
    src, _, _ = make_scene(64, 64)
    m = tmp_path / "copy.onnx"
    shutil.copy(model_path, m)
    proc = run_cli("run", src, "--model", m, "-q", "--json")
    assert proc.returncode == 0, proc.stderr


def test_run_says_when_weights_are_demo_weights(make_scene):
    src, _, _ = make_scene(64, 64)
    proc = run_cli("run", src)
    assert proc.returncode == 0 and "DEMO weights" in proc.stderr
    assert "DEMO" not in run_cli("run", src, "--overwrite", "-q").stderr


def test_in_process_runner_answers_as_a_process(tmp_path):
    """tests.conftest.run_cli (CliRunner, this process) gives what a real process gives: exit
    status, stdout, stderr; warnings shown again on each call, as each process shows them once."""
    import re

    from lulc_edge.synthetic import SceneSpec, generate

    from .conftest import run_cli_process

    bands, _, _ = generate(SceneSpec(width=48, height=40, seed=3))
    nocrs = tmp_path / "nogeo.tif"  # rasterio warns (NotGeoreferencedWarning): shown each run
    with rasterio.open(nocrs, "w", driver="GTiff", width=48, height=40, count=13,
                       dtype="uint16") as ds:
        ds.write(bands)
    cases = [("run", tmp_path / "nope.tif"), ("run", nocrs, "--tile", "0"),
             ("run", nocrs, "-o", "OUT", "--json"), ("run", nocrs, "-o", "OUT", "-q")]

    def answer(run, args, out):
        proc = run(*(out if a == "OUT" else a for a in args))
        text = (proc.stdout + proc.stderr).replace(str(out), "OUT")
        text = re.sub(r'"seconds": [0-9.e-]+|[0-9.]+ (MP/)?s\b', "T", text)
        return proc.returncode, text.replace("python -m lulc_edge.cli", "lulc-edge")

    for i, args in enumerate(cases):
        mine = answer(run_cli, args, tmp_path / f"a{i}.tif")
        again = answer(run_cli, args, tmp_path / f"b{i}.tif")
        real = answer(run_cli_process, args, tmp_path / f"c{i}.tif")
        assert mine == again == real, args
