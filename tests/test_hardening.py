"""Hostile input, one test per class of defect (issue 16): mixed maps, clobbered devices, two
writers, non-regular inputs, silent bad values, unchecked options, raw messages, durability.

Real files in tmp_path, real subprocesses for kills, locks, FIFOs, signals and fd-level output;
the CLI in this process (CliRunner) elsewhere.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from lulc_edge import RunOptions, RunSpec, segment_file
from lulc_edge.batch import Job, plan_jobs, run_job
from lulc_edge.errors import OutputError
from lulc_edge.files import partial_path
from lulc_edge.journal import journal_path
from lulc_edge.locking import OutputLock, lock_path
from lulc_edge.paths import default_output
from lulc_edge.raster import COUNTS_TAG, FINGERPRINT_TAG, verify_output
from lulc_edge.runfile import check_tiling
from lulc_edge.synthetic import SceneSpec, generate

from .conftest import run_cli, run_cli_process, start_cli, write_stack

BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "SCL", "B11", "B12"]


def _one_line_error(proc, *words):
    assert proc.returncode not in (0, None), proc.stderr
    assert "Traceback" not in proc.stderr and "site-packages" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if "warning" not in ln]
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _start(*args) -> subprocess.Popen:
    return start_cli("run", *args)


def _wait_for_records(journal: Path, n: int, proc: subprocess.Popen) -> None:
    """Until ``n`` tiles have landed in the journal (the run is well under way)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_bytes().count(b"LEJ1") >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"run ended or stalled before {n} tiles (rc {proc.poll()})")


# ------------------------------------------------------------------- 1. input changed on resume


def test_resume_of_a_changed_input_starts_over_instead_of_mixing_scenes(make_scene, tmp_path):
    src, _, _ = make_scene(640, 640, seed=1, name="scene.tif")
    other, _, _ = make_scene(640, 640, seed=9, name="other.tif")  # same grid, another scene
    ref = tmp_path / "ref.tif"
    assert run_cli("run", other, "-o", ref, "--tile", "64", "-q").returncode == 0

    out = tmp_path / "out.tif"
    proc = _start(src, "-o", out, "--tile", "64", "-q")
    _wait_for_records(journal_path(out), 10, proc)
    proc.kill()
    proc.wait()
    assert journal_path(out).exists() and not out.exists()
    os.replace(other, src)  # the input is now another scene on the same grid

    resumed = run_cli("run", src, "-o", out, "--tile", "64", "--resume", "--json", "-q")
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    doc = json.loads(resumed.stdout)
    assert doc["tiles_inferred"] == doc["tiles_total"] == 100  # started over
    assert any("changed since the interrupted run" in w and "starts over" in w
               for w in doc["warnings"]), doc["warnings"]
    assert "starts over" in resumed.stderr
    assert np.array_equal(_read(out), _read(ref))  # no tile of the first scene
    assert _hidden(tmp_path) == []


def test_batch_redoes_an_output_made_from_another_version_of_the_input(make_scene, tmp_path):
    src, _, _ = make_scene(96, 80, seed=1, name="s.tif")
    maps = tmp_path / "maps"
    first = json.loads(run_cli("run", src, "--out-dir", maps, "--json", "-q").stdout)
    assert first["done"] == 1
    with rasterio.open(maps / "s.lulc.tif") as ds:
        assert ds.tags()[FINGERPRINT_TAG] and json.loads(ds.tags()[COUNTS_TAG])
    again = json.loads(run_cli("run", src, "--out-dir", maps, "--json", "-q").stdout)
    assert again["skipped"] == 1
    make_scene(96, 80, seed=4, name="s.tif")  # the input is rewritten: another scene
    redo = json.loads(run_cli("run", src, "--out-dir", maps, "--json", "-q").stdout)
    assert redo["done"] == 1, redo
    assert "another version of the input" in " ".join(redo["results"][0]["warnings"])


def test_input_changing_during_the_run_leaves_no_output(make_scene, tmp_path, engine):
    """Rewritten while being read (a download still landing): refused, nothing written."""
    src, _, _ = make_scene(256, 256, name="s.tif")

    def touch(done, _px):
        if done:
            os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))

    with pytest.raises(Exception, match="changed while it was being read"):
        segment_file(src, tmp_path / "o.tif", engine=engine,
                     options=RunOptions(tile=128, progress=False), on_tile=touch)
    assert not (tmp_path / "o.tif").exists() and _hidden(tmp_path) == []


# ------------------------------------------------------------- 2. what an output may replace


def _refused_untouched(src: Path, path: Path, *words: str) -> None:
    before = os.lstat(path)
    _one_line_error(run_cli("run", src, "-o", path, "--overwrite"), path.name, *words)
    after = os.lstat(path)
    assert (after.st_mode, after.st_rdev, after.st_ino) == (before.st_mode, before.st_rdev,
                                                           before.st_ino)


def test_overwrite_replaces_only_a_regular_file(make_scene, tmp_path):
    src, _, _ = make_scene(64, 64)
    fifo = tmp_path / "fifo.tif"
    os.mkfifo(fifo)
    _refused_untouched(src, fifo, "a FIFO")
    sock_path = tmp_path / "sock.tif"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.close()
    _refused_untouched(src, sock_path, "a socket")
    (tmp_path / "dir.tif").mkdir()
    _refused_untouched(src, tmp_path / "dir.tif", "directory")
    assert _hidden(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="os.mknod of a character device needs root")
def test_a_character_device_output_is_untouched(make_scene, tmp_path):
    src, _, _ = make_scene(64, 64)
    dev = tmp_path / "full.tif"
    os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # /dev/full's numbers
    _refused_untouched(src, dev, "a character device")
    link = tmp_path / "link.tif"  # a symlink to it is refused too, and stays a symlink
    link.symlink_to(dev)
    _refused_untouched(src, link, "a character device")
    assert link.is_symlink() and _hidden(tmp_path) == []


def test_output_inside_a_folder_input_and_bad_output_names(tmp_path, make_scene):
    src, _, _ = make_scene(64, 64)
    folder = tmp_path / "bands"
    folder.mkdir()
    _one_line_error(run_cli("run", folder, "-o", folder / "map.tif"), "inside the input folder")
    _one_line_error(run_cli("run", src, "-o", tmp_path / "map.png"), "map.png", ".tif")
    _one_line_error(run_cli("run", src, "-o", tmp_path / "map"), "extension")
    _one_line_error(run_cli("run", src, "-o", ""), "empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bands", "scene.tif"]


# ------------------------------------------------------------------- 3. one writer per output


def test_a_second_run_on_the_same_output_is_refused_naming_the_first(make_scene, tmp_path):
    src, _, _ = make_scene(1280, 1280, name="big.tif")
    out = tmp_path / "out.tif"
    cpu = ("--device", "cpu", "--precision", "fp32")  # a slow first run, a second with no tuning
    first = _start(src, "-o", out, "--tile", "64", "--threads", "1", *cpu, "-q")
    _wait_for_records(journal_path(out), 3, first)
    second = run_cli("run", src, "-o", out, "--tile", "64", "--overwrite", *cpu)
    _one_line_error(second, "out.tif", f"another lulc-edge run is writing this output "
                                       f"(pid {first.pid})")
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert out.exists() and verify_output(out) is None  # the first run's map, whole
    assert not lock_path(out).exists() and _hidden(tmp_path) == []


def test_a_batch_job_takes_the_same_lock(make_scene, tmp_path, engine):
    src, _, _ = make_scene(64, 64, name="s.tif")
    out = tmp_path / "s.lulc.tif"
    with OutputLock(out):
        rep = run_job(Job(str(src), str(out)), engine, RunSpec.of(run=RunOptions(progress=False)))
    assert rep.status == "failed" and f"(pid {os.getpid()})" in rep.error
    assert not out.exists()
    assert run_job(Job(str(src), str(out)), engine,
                   RunSpec.of(run=RunOptions(progress=False))).status == "done"


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "o.tif"
    code = ("import sys, time; from pathlib import Path; from lulc_edge.locking import OutputLock;"
            f"OutputLock(Path({str(out)!r})).acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(OutputError, match=f"pid {holder.pid}"):
        OutputLock(out).acquire()
    holder.kill()  # a crash: the kernel drops the lock, the file stays
    holder.wait()
    assert lock_path(out).exists()
    lock = OutputLock(out).acquire()
    lock.release()
    assert not lock_path(out).exists()


# ------------------------------------------------------------- 4-7. inputs that must not pass


def test_fifo_input_is_refused_at_once(tmp_path):
    fifo = tmp_path / "scene.tif"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    # processes: opening a FIFO blocks, and a timeout can end a process, not a call
    proc = run_cli_process("run", fifo, timeout=60)
    _one_line_error(proc, "scene.tif", "not a regular file")
    batch = run_cli_process("run", fifo, "--out-dir", tmp_path / "m", timeout=60)
    assert batch.returncode == 1 and "not a regular file" in batch.stderr
    assert time.monotonic() - t0 < 60


def test_scene_without_a_valid_pixel_warns_in_summary_and_json(tmp_path):
    for name, value, dtype in (("zero.tif", 0, "uint16"), ("nan.tif", np.nan, "float32")):
        src = write_stack(tmp_path / name, np.full((13, 40, 48), value, dtype))
        proc = run_cli("run", src, "--json")
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["class_pixels"]["Unclassified"] == 40 * 48
        assert any("no valid pixel" in w for w in doc["warnings"])
        assert "warning" in proc.stderr and "no valid pixel" in proc.stderr
    # a scene with data says nothing of the kind
    bands, _, _ = generate(SceneSpec(width=48, height=40, seed=2))
    ok = run_cli("run", write_stack(tmp_path / "ok.tif", bands), "--json", "-q")
    assert not any("valid pixel" in w for w in json.loads(ok.stdout)["warnings"])


def test_values_beyond_sentinel2_range_are_refused_naming_band_and_value(tmp_path):
    bands, _, _ = generate(SceneSpec(width=64, height=64, seed=2))
    big = bands.astype(np.uint32)
    big[2] = big[2] * 100_000  # B3 up to ~1e9
    line = _one_line_error(run_cli("run", write_stack(tmp_path / "u32.tif", big)), "u32.tif",
                           "B3", "65535")
    assert "e+0" in line or "00000" in line
    neg = bands.astype(np.int32)
    neg[4, :8] = -500
    proc = run_cli("run", write_stack(tmp_path / "neg.tif", neg), "-q")
    assert proc.returncode == 0 and "B5" in proc.stderr and "negative" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "u32.lulc.tif").exists()


def test_duplicate_band_descriptions_are_refused_naming_both(tmp_path):
    bands, _, _ = generate(SceneSpec(width=64, height=64, seed=2))
    src = write_stack(tmp_path / "dup.tif", bands)
    names = list(BANDS)
    names[11] = "B1"  # B11's band says B1 too
    with rasterio.open(src, "r+") as ds:
        for i, n in enumerate(names, start=1):
            ds.set_band_description(i, n)
    _one_line_error(run_cli("run", src), "dup.tif", "bands 1 and 12", "B1")
    # --bands settles it
    assert run_cli("run", src, "-q", "--bands",
                   ",".join(f"{b}={i}" for i, b in enumerate(BANDS, start=1))).returncode == 0


# ------------------------------------------------------------------- 8-9. every option checked


@pytest.mark.parametrize("args, word", [
    (("--tile", "0"), "--tile"), (("--tile", "-5"), "--tile"), (("--tile", "32"), "64<=x"),
    (("--threads", "0"), "--threads"), (("--threads", "-1"), "--threads"),
    (("--batch", "0"), "--batch"), (("--batch", "-3"), "--batch"),
    (("--workers", "0"), "--workers"), (("--scl-fill", "99"), "--scl-fill"),
    (("--scl-fill", "-1"), "--scl-fill"), (("--boa-offset", "1000000000"), "--boa-offset"),
    (("--min-agreement", "2"), "--min-agreement"), (("--tile", "abc"), "--tile"),
])
def test_numeric_options_are_range_checked_at_parse_time(make_scene, tmp_path, args, word):
    src, _, _ = make_scene(32, 32)
    _one_line_error(run_cli("run", src, *args), word)
    assert not (tmp_path / "scene.lulc.tif").exists()


def test_legal_but_bad_values_warn(make_scene, tmp_path):
    src, _, _ = make_scene(64, 64)
    proc = run_cli("run", src, "--threads", "999", "-q")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    [halo] = check_tiling(RunOptions(), 8, 1, 24)  # the CLI's range stops at 64; the API warns
    assert "--tile 8" in halo and "x the pixels" in halo
    assert "--threads 999" in proc.stderr and "CPUs" in proc.stderr
    quiet = run_cli("run", src, "--overwrite", "-q")
    assert "warning" not in quiet.stderr


def test_api_refuses_a_zero_tile(make_scene, tmp_path, engine):
    src, _, _ = make_scene(32, 32)
    with pytest.raises(Exception, match="at least 1"):
        segment_file(src, tmp_path / "o.tif", engine=engine,
                     options=RunOptions(tile=0, progress=False))


@pytest.mark.parametrize("mapping, words", [
    ("B1=1,B1=2", ["B1 is given twice"]),
    ("B1=0", ["indices start at 1"]),
    (",".join(f"{b}={1 if b == 'B2' else i}" for i, b in enumerate(BANDS, start=1)),
     ["band 1", "B1", "B2"]),
    ("B10=1", ["does not use B10"]),
    ("B1=14", ["13 bands"]),
])
def test_bands_option_is_checked(make_scene, mapping, words):
    src, _, _ = make_scene(32, 32)
    _one_line_error(run_cli("run", src, "--bands", mapping), "--bands", *words)


# ----------------------------------------------------------------------------- 10-13. messages


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))


def test_a_full_disk_names_the_output_in_one_line(make_scene, tmp_path):
    """A write that fails half-way (here the file-size limit, EFBIG; ENOSPC goes the same way)."""
    src, _, _ = make_scene(1024, 1024, name="in.tif")
    out = tmp_path / "out" / "map.tif"
    out.parent.mkdir()
    proc = run_cli_process("run", src, "-o", out, timeout=300, preexec_fn=_limit_file_size)
    line = _one_line_error(proc, "map.tif", "cannot write output", "file too large")
    assert "in.tif" not in line and "_tiff" not in proc.stderr
    assert list(out.parent.iterdir()) == []


def test_a_full_filesystem_when_a_tmpfs_can_be_mounted(make_scene, tmp_path):
    src, _, _ = make_scene(1024, 1024, name="in.tif")
    mnt = tmp_path / "small"
    mnt.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mnt)],
                           capture_output=True)
    if mount.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root, or no mount permission)")
    try:  # processes: libtiff writes to fd 2 itself, which only a process's stderr holds
        proc = run_cli_process("run", src, "-o", mnt / "map.tif")
        _one_line_error(proc, "map.tif", "no space left on device")
        assert "_tiff" not in proc.stderr and list(mnt.iterdir()) == []
        verbose = run_cli_process("run", src, "-o", mnt / "map.tif", "-v")  # GDAL's words
        assert verbose.returncode == 1 and "_tiff" in verbose.stderr
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_not_georeferenced_and_truncated_inputs_say_one_line(tmp_path):
    bands, _, _ = generate(SceneSpec(width=64, height=64, seed=2))
    src = tmp_path / "nogeo.tif"
    with rasterio.open(src, "w", driver="GTiff", width=64, height=64, count=13,
                       dtype="uint16") as ds:
        ds.write(bands)
    proc = run_cli("run", src, "-q")
    assert proc.returncode == 0
    warns = [ln for ln in proc.stderr.splitlines() if ": no georeference" in ln]
    assert warns == [f"lulc-edge: warning: {src}: no georeference (no CRS or geotransform): "
                     "output will have none"]
    assert "site-packages" not in proc.stderr and "NotGeoreferencedWarning" not in proc.stderr
    cut = tmp_path / "cut.tif"
    cut.write_bytes(src.read_bytes()[:1024])
    _one_line_error(run_cli("run", cut), "cut.tif")
    assert not (tmp_path / "cut.lulc.tif").exists()


def test_ctrl_c_names_the_scene_says_resume_and_exits_130(make_scene, tmp_path):
    src, _, _ = make_scene(1280, 1280, name="big.tif")
    out = tmp_path / "out.tif"
    proc = _start(src, "-o", out, "--tile", "64", "--threads", "1", "-q")
    _wait_for_records(journal_path(out), 3, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "big.tif" in err and "--resume" in err and "Aborted" not in err
    assert "Traceback" not in err and not out.exists()
    resumed = run_cli("run", src, "-o", out, "--tile", "64", "--threads", "1", "--resume",
                      "--json", "-q")
    doc = json.loads(resumed.stdout)
    assert 0 < doc["tiles_inferred"] < doc["tiles_total"]
    assert verify_output(out) is None and _hidden(tmp_path) == []


def test_ctrl_c_in_a_batch_names_the_scene_and_exits_130(make_scene, tmp_path):
    scenes = [make_scene(1280, 1280, seed=i, name=f"s{i}.tif")[0] for i in range(2)]
    maps = tmp_path / "maps"
    proc = _start(*scenes, "--out-dir", maps, "--tile", "64", "--threads", "1", "-q")
    _wait_for_records(journal_path(maps / "s0.lulc.tif"), 3, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "s0.tif" in err and "0 of 2" in err and "--resume" in err and "Traceback" not in err
    assert not (maps / "s0.lulc.tif").exists()


def test_url_names_are_kept_and_out_dir_is_made_only_when_used(make_scene, tmp_path,
                                                              monkeypatch):
    url = "https://example.invalid/tiles/S2B_X.tif"
    assert default_output(url) == Path("S2B_X.lulc.tif")
    assert plan_jobs([url], str(tmp_path / "m"))[0].output == str(tmp_path / "m" /
                                                                  "S2B_X.lulc.tif")
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "5")
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    _one_line_error(run_cli("run", url, "-o", tmp_path / "u.tif"), url)
    src, _, _ = make_scene(32, 32)
    d = tmp_path / "D"
    _one_line_error(run_cli("run", src, "-o", tmp_path / "x.tif", "--out-dir", d), "--out-dir")
    _one_line_error(run_cli("run", src, src, "--out-dir", d), "would write")
    assert not d.exists() and not (tmp_path / "x.tif").exists()


# ------------------------------------------------------------------------------- 14. durability


def test_batch_verifies_the_class_band_against_its_recorded_counts(make_scene, tmp_path):
    src, _, _ = make_scene(300, 260, name="s.tif")
    maps = tmp_path / "maps"
    assert json.loads(run_cli("run", src, "--out-dir", maps, "--json", "-q").stdout)["done"] == 1
    out = maps / "s.lulc.tif"
    good = _read(out)
    assert verify_output(out) is None
    # what a power cut before the tiles reached the disk looks like: tags there, tiles zero
    with rasterio.open(out, "r+") as ds:
        ds.write(np.zeros((256, 256), np.uint8), 1, window=rasterio.windows.Window(0, 0, 256,
                                                                                    256))
    assert "pixel counts" in verify_output(out)
    redo = json.loads(run_cli("run", src, "--out-dir", maps, "--json", "-q").stdout)
    assert redo["done"] == 1 and "redone" in redo["results"][0]["warnings"][0]
    assert np.array_equal(_read(out), good)


def test_finished_outputs_leave_no_temporaries(make_scene, tmp_path):
    src, _, _ = make_scene(96, 96)
    proc = run_cli("run", src, "-o", tmp_path / "m.tif", "--probs", "--cog", "--confidence", "-q")
    assert proc.returncode == 0, proc.stderr
    assert verify_output(tmp_path / "m.tif") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.confidence.tif", "m.probs.tif", "m.tif", "m.tif.aux.xml", "scene.tif"]
    assert not partial_path(tmp_path / "m.tif").exists()
