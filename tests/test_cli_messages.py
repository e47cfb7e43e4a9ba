"""What the CLI says (issue 22): one line per condition, naming the input; no native chatter;
the right hint (--resume, --bands, --scl-fill); checks before the work, not after it.

Real processes where the point is fd-level output, a kill, or a missing module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from lulc_edge import Segmenter
from lulc_edge.errors import InputError, MissingSCLError
from lulc_edge.journal import journal_path
from lulc_edge.sources import open_source
from lulc_edge.synthetic import BAND_NAMES, SceneSpec, generate

from .conftest import ROOT, run_cli, write_stack
from .test_hardening import _one_line_error, _wait_for_records

SMALL = SceneSpec(width=64, height=64, seed=3)


def _process(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             code: str | None = None) -> subprocess.CompletedProcess:
    """The CLI in a process of its own (``code``: Python run before ``cli.main``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    pre = code + "; " if code else ""
    return subprocess.run([sys.executable, "-c", f"{pre}from lulc_edge.cli import main; main()",
                           *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=600)


def _lines(stderr: str, word: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if word in ln]


def _band_files(folder: Path, bands: np.ndarray) -> Path:
    """The scene as per-band files (B01.tif ... SCL.tif) on one 10 m grid."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, band in zip(BAND_NAMES, bands, strict=True):
        stem = name if name in ("SCL", "B8A") else f"B{int(name[1:]):02d}"
        write_stack(folder / f"{stem}.tif", band[None])
    return folder


def test_negative_values_are_one_warning_not_one_per_band(tmp_path):
    bands, _, _ = generate(SMALL)
    signed = bands.astype(np.int16)
    signed[[i for i, b in enumerate(BAND_NAMES) if b != "SCL"], :4, :4] = -7
    src = write_stack(tmp_path / "i16_neg.tif", signed)
    proc = run_cli("run", src, "-q")
    assert proc.returncode == 0, proc.stderr
    assert _lines(proc.stderr, "taken as 0") == [
        f"lulc-edge: warning: {src}: negative values in all 12 reflectance bands (down to -7); "
        "they are taken as 0"]
    signed[1:, :4, :4] = 5  # only B1 left negative: that band is named
    write_stack(src, signed)
    proc = run_cli("run", src, "-q", "--overwrite")
    assert [ln.split(": ", 2)[2] for ln in _lines(proc.stderr, "taken as 0")] == [
        f"{src}: negative values in band B1 (down to -7); they are taken as 0"]


def test_a_batch_names_each_input_without_georeference(tmp_path):
    bands, _, _ = generate(SMALL)
    srcs = []
    for name in ("a.tif", "b.tif"):
        srcs.append(tmp_path / name)
        with rasterio.open(srcs[-1], "w", driver="GTiff", width=64, height=64, count=13,
                           dtype="uint16") as ds:
            ds.write(bands)
            ds.descriptions = tuple(BAND_NAMES)
    proc = run_cli("run", *srcs, "--out-dir", tmp_path / "maps", "-q")
    assert proc.returncode == 0, proc.stderr
    assert _lines(proc.stderr, ": no georeference") == [
        f"lulc-edge: warning: {s}: no georeference (no CRS or geotransform): output will have "
        "none" for s in srcs]
    assert "NotGeoreferencedWarning" not in proc.stderr


def test_an_unwritable_home_shows_no_onnxruntime_telemetry_line(tmp_path):
    """HOME=/dev/null: a file, so nothing can be made under it (not even by root)."""
    bands, _, _ = generate(SMALL)
    src = write_stack(tmp_path / "s.tif", bands)
    env = {"HOME": "/dev/null", "XDG_CACHE_HOME": "", "LULC_EDGE_CACHE_DIR": ""}
    env = {k: v for k, v in {**os.environ, **env}.items() if v}
    bad = _process("run", src, "-o", tmp_path / "nowhere" / "map.tif", env=env)
    assert bad.stderr == (f"lulc-edge: error: {tmp_path / 'nowhere' / 'map.tif'}: output "
                          f"directory {tmp_path / 'nowhere'} does not exist\n")
    # and a run works (OpenVINO, where installed, without its model cache)
    device = "openvino" if importlib.util.find_spec("openvino") else "cpu"
    good = _process("run", src, "-o", tmp_path / "map.tif", "--device", device,
                    "--precision", "fp32", "-q", env=env)
    assert good.returncode == 0, good.stderr
    assert "\x1b" not in good.stderr and "telemetry" not in good.stderr


def test_a_rerun_after_a_kill_without_resume_keeps_the_work_and_says_resume(make_scene,
                                                                            tmp_path):
    src, _, _ = make_scene(640, 640, name="big.tif")
    out = tmp_path / "out.tif"
    args = (src, "-o", out, "--tile", "64", "--threads", "1", "-q")
    proc = subprocess.Popen([sys.executable, "-m", "lulc_edge.cli", "run", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    _wait_for_records(journal_path(out), 5, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = journal_path(out).read_bytes()
    again = run_cli("run", *args)
    line = _one_line_error(again, "out.tif: an interrupted run", "of 100 tiles finished",
                           "--resume to continue", "--overwrite to start over")
    assert "big.tif" not in line and journal_path(out).read_bytes() == kept
    resumed = run_cli("run", *args, "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert 0 < json.loads(resumed.stdout)["tiles_inferred"] < 100


def test_a_zip_of_a_band_folder_is_read(tmp_path):
    bands, _, _ = generate(SMALL)
    folder = _band_files(tmp_path / "bands", bands)
    nested = tmp_path / "nested.zip"  # zip -r nested.zip bands: the files under bands/
    with zipfile.ZipFile(nested, "w") as zf:
        zf.write(folder, "bands/")
        for f in sorted(folder.iterdir()):
            zf.write(f, f"bands/{f.name}")
    with open_source(nested) as zipped, open_source(folder) as plain:
        np.testing.assert_array_equal(zipped.read(Window(0, 0, 64, 64)),
                                      plain.read(Window(0, 0, 64, 64)))
    proc = run_cli("run", nested, "-q")
    assert proc.returncode == 0 and (tmp_path / "nested.lulc.tif").exists(), proc.stderr
    two = tmp_path / "two.zip"  # two scenes: say so, do not pick one
    with zipfile.ZipFile(two, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"a/{f.name}")
            zf.write(f, f"b/{f.name}")
    _one_line_error(run_cli("run", two), "two.zip: band files in 2 folders (a/, b/)")


def test_a_stack_mapped_by_position_warns_and_a_bad_scl_position_is_refused(tmp_path):
    bands, _, _ = generate(SMALL)
    plain = write_stack(tmp_path / "plain.tif", bands)
    proc = run_cli("run", plain, "-q")
    assert proc.returncode == 0, proc.stderr
    (line,) = _lines(proc.stderr, "position")
    assert str(plain) in line and "--bands" in line and "B8A,B9,SCL,B11" in line
    scl = BAND_NAMES.index("SCL")
    signed = bands.astype(np.int16)
    signed[scl, 30:40] = -1  # negative "classes": another band there
    with pytest.raises(InputError, match=r"SCL has values -1\.\.\d+, but SCL classes are 0..11 "
                                         r"\(bands taken by position"):
        open_source(write_stack(tmp_path / "neg.tif", signed))
    floats = bands.astype(np.float32)
    floats[scl, 30:40] = 4.5
    src = write_stack(tmp_path / "float.tif", floats)
    _one_line_error(run_cli("run", src), "float.tif: the band used as SCL has values that are "
                                         "not whole numbers")
    assert not (tmp_path / "float.lulc.tif").exists()


def test_from_list_takes_inline_comments(make_scene, tmp_path):
    src, _, _ = make_scene(48, 48, name="scene.tif")
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# maps for May\n{src}   # the first one\n")
    proc = run_cli("run", "--from-list", listing, "--out-dir", tmp_path / "maps", "-q")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "maps" / "scene.lulc.tif").exists()


def test_run_preview_without_pillow_fails_before_mapping(make_scene, tmp_path):
    src, _, _ = make_scene(48, 48, name="scene.tif")
    proc = _process("run", src, "--preview", code="import sys; sys.modules['PIL'] = None")
    _one_line_error(proc, "pictures need Pillow")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def test_run_dot_in_a_band_folder_writes_beside_it(tmp_path):
    bands, _, _ = generate(SMALL)
    folder = _band_files(tmp_path / "T33UUP", bands)
    proc = run_cli("run", ".", "-q", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "T33UUP.lulc.tif").exists()


def test_l2a_without_scl_says_which_scl_fill(tmp_path):
    bands, _, _ = generate(SMALL)
    patch = tmp_path / "S2A_MSIL2A_20170613T101031_87_48"  # a BigEarthNet patch: L2A, no SCL
    _band_files(patch, bands)
    (patch / "SCL.tif").unlink()
    line = _one_line_error(run_cli("run", patch), "no usable SCL (L2A): no SCL band file",
                           "--scl-fill 4")
    assert "use L2A input" not in line


def test_segmenter_refuses_an_all_zero_scl_as_the_cli_does(tmp_path):
    bands, _, _ = generate(SMALL)
    scl = BAND_NAMES.index("SCL")
    zero = bands.copy()
    zero[scl] = 0
    seg = Segmenter(device="cpu", threads=1)
    with pytest.raises(MissingSCLError, match="SCL band is 0 on every valid pixel.*scl_fill=4"):
        seg.predict(zero)
    src = write_stack(tmp_path / "zero.tif", zero)
    _one_line_error(run_cli("run", src), "SCL band is 0 on every valid pixel", "--scl-fill 4")
    filled = bands.copy()
    filled[scl] = np.where(np.delete(bands, scl, 0).any(axis=0), 4, 0)
    np.testing.assert_array_equal(seg.predict(zero, scl_fill=4).classes,
                                  seg.predict(filled).classes)
    bad = bands.copy()
    bad[scl] = 3000
    with pytest.raises(InputError, match="SCL classes are 0..11"):
        seg.predict(bad)


def test_readme_preview_example_makes_its_folder(make_scene, tmp_path):
    pytest.importorskip("PIL")
    make_scene(64, 64, name="scene.tif")
    assert run_cli("run", "scene.tif", "-q", cwd=tmp_path).returncode == 0
    # README: lulc-edge preview scene.lulc.tif --scene scene.tif -o pics/ --size 1024 --qml
    proc = run_cli("preview", "scene.lulc.tif", "--scene", "scene.tif", "-o", "pics/",
                   "--size", "1024", "--qml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "pics").iterdir()) == [
        f"scene.lulc.{k}.png" for k in ("annotated", "mask", "overlay", "stats")]
