"""Many scenes: batch runs, idempotence, per-input failures, resume after SIGKILL.

The CLI runs in this process (CliRunner) except where a process is the point: a kill, worker
processes, a Dask client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import rasterio

from lulc_edge.files import partial_path
from lulc_edge.journal import journal_path
from lulc_edge.raster import COMPLETE_TAG

from .conftest import interrupt_after, run_cli, run_cli_process, start_cli


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


@pytest.fixture()
def three_scenes(make_scene, tmp_path):
    paths = [make_scene(96 + 8 * i, 80, seed=i, name=f"s{i}.tif")[0] for i in range(3)]
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 50)
    return paths, bad


def test_batch_maps_each_input_and_reports_failures(three_scenes, tmp_path):
    paths, bad = three_scenes
    out = tmp_path / "maps"
    proc = run_cli("run", *paths, bad, "--out-dir", out, "--json", "-q")
    assert proc.returncode == 1  # one input failed
    doc = json.loads(proc.stdout)
    assert (doc["inputs"], doc["done"], doc["failed"]) == (4, 3, 1)
    by_input = {r["input"]: r for r in doc["results"]}
    assert by_input[str(bad)]["status"] == "failed" and "corrupt.tif" in by_input[str(bad)]["error"]
    for p in paths:
        r = by_input[str(p)]
        assert r["status"] == "done" and r["pixels"] > 0 and r["class_hectares"]
        assert (out / f"{p.stem}.lulc.tif").exists()
    assert "corrupt.tif" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(x.name for x in out.iterdir()) == sorted(
        f"s{i}.lulc.tif{ext}" for i in range(3) for ext in ("", ".aux.xml"))


def test_batch_is_idempotent_and_judges_completeness_by_the_tag(three_scenes, tmp_path):
    paths, _ = three_scenes
    out = tmp_path / "maps"
    listing = tmp_path / "list.txt"
    listing.write_text("# today's scenes\n" + "\n".join(map(str, paths)) + "\n")
    first = json.loads(run_cli("run", "--from-list", listing, "--out-dir", out, "--json").stdout)
    assert first["done"] == 3
    # an output that exists but lacks the completeness tag is redone, complete ones skipped
    victim = out / "s1.lulc.tif"
    with rasterio.open(victim, "r+") as ds:
        ds.update_tags(**{COMPLETE_TAG: "0"})
    again = json.loads(run_cli("run", "--from-list", listing, "--out-dir", out, "--json").stdout)
    status = {r["input"]: r["status"] for r in again["results"]}
    assert status == {str(paths[0]): "skipped", str(paths[1]): "done", str(paths[2]): "skipped"}
    forced = json.loads(run_cli("run", *paths, "--out-dir", out, "--json", "--overwrite").stdout)
    assert forced["done"] == 3


def test_globs_and_parallel_workers_give_the_same_maps(three_scenes, tmp_path):
    paths, _ = three_scenes
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli("run", str(tmp_path / "s*.tif"), "--out-dir", a, "-q").returncode == 0
    assert run_cli_process("run", *paths, "--out-dir", b, "--workers", "2", "-q").returncode == 0
    for p in paths:
        name = f"{p.stem}.lulc.tif"
        assert np.array_equal(_read(a / name), _read(b / name))


def test_batch_bad_input_lists(tmp_path, make_scene):
    src, _, _ = make_scene(64, 64)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    for args, word in [
        (("--from-list", empty, "--out-dir", tmp_path / "o"), "no inputs"),
        ((str(tmp_path / "nothing*.tif"), "--out-dir", tmp_path / "o"), "matches no file"),
        ((src, src, "--out-dir", tmp_path / "o"), "would write"),
        ((src, "--out-dir", tmp_path / "scene.tif" / "sub"), "cannot create"),
        ((src, src, "-o", tmp_path / "x.tif"), "--out-dir"),
    ]:
        proc = run_cli("run", *args)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert word in proc.stderr, proc.stderr


def test_unreachable_scheduler_fails_fast(make_scene, tmp_path):
    pytest.importorskip("distributed")
    src, _, _ = make_scene(64, 64)
    t0 = time.monotonic()
    proc = run_cli_process("run", src, "--out-dir", tmp_path / "o", "--scheduler",
                           "tcp://127.0.0.1:9", timeout=120,
                           env={**os.environ, "LULC_EDGE_CONNECT_TIMEOUT": "3"})
    assert proc.returncode != 0 and "scheduler" in proc.stderr and "Traceback" not in proc.stderr
    assert time.monotonic() - t0 < 60


def test_resume_after_sigkill_gives_the_same_map(make_scene, tmp_path):
    src, _, _ = make_scene(640, 640, name="big.tif")
    ref = tmp_path / "ref.tif"
    full = json.loads(run_cli("run", src, "-o", ref, "--tile", "64", "--json", "-q").stdout)
    assert full["tiles_inferred"] == full["tiles_total"] == 100

    out = tmp_path / "out.tif"
    journal = journal_path(out)
    proc = start_cli("run", src, "-o", out, "--tile", "64", "-q", stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until some tiles have landed, then pull the plug
        if journal.exists() and journal.read_bytes().count(b"LEJ1") >= 10:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and journal.exists() and partial_path(out).exists()

    resumed = run_cli("run", src, "-o", out, "--tile", "64", "--resume", "--json", "-q")
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads(resumed.stdout)
    assert 0 < doc["tiles_inferred"] < doc["tiles_total"] == 100
    assert np.array_equal(_read(out), _read(ref))
    assert doc["class_pixels"] == full["class_pixels"]
    assert not journal.exists() and not partial_path(out).exists()


def test_batch_reports_carry_the_thumbnail_for_previews(three_scenes, tmp_path):
    """With RunOptions.thumbnail each report brings its scene's thumbnail back, also from worker
    processes, so a batch's previews need no second read of the scene; the JSON leaves it out.
    The workers are started from this process, which already holds inference thread pools (a
    forked worker inherited their locks and hung)."""
    from lulc_edge.batch import plan_jobs, report_dict, run_local
    from lulc_edge.engine import EngineOptions
    from lulc_edge.spec import RunOptions, RunSpec

    paths, _ = three_scenes
    jobs = plan_jobs([str(p) for p in paths], str(tmp_path / "maps"))
    spec = RunSpec(engine=EngineOptions(device="cpu", precision="fp32", threads=1),
                   run=RunOptions(thumbnail=40, progress=False))
    reps = run_local(jobs, spec, workers=2)  # the spec travels to the worker processes
    for p, rep in zip(paths, reps, strict=True):
        assert rep.status == "done", rep.error
        with rasterio.open(p) as ds:
            w, h = ds.width, ds.height
        bands, th, tw = rep.true_colour.shape  # B4, B3, B2 samples
        assert bands == 3 and max(th, tw) == 40 and abs(th / tw - h / w) < 0.05
        assert rep.true_colour.any()
    doc = json.loads(json.dumps(report_dict(reps, 1.0)))
    assert doc["done"] == 3 and all("true_colour" not in r for r in doc["results"])
    # worker processes hand the reports (thumbnail included) back: pictures and JSON
    out = tmp_path / "w2"
    proc = run_cli_process("run", *paths, "--out-dir", out, "--workers", "2", "--preview",
                           "--json", "--device", "cpu", "--precision", "fp32")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["done"] == 3
    assert all((out / f"{p.stem}.lulc.overlay.png").stat().st_size > 0 for p in paths)


def test_a_batch_continues_a_scene_an_interruption_left_half_done(engine, make_scene, tmp_path):
    """Rerunning a batch resumes it: a scene whose run was interrupted (a power cut, a killed
    Dask worker whose task is retried) continues from its journal instead of being refused or
    started over, and its map equals an uninterrupted one."""
    from lulc_edge import RunOptions, RunSpec, segment_file
    from lulc_edge.batch import Job, run_job

    src, _, _ = make_scene(256, 192)
    spec = RunSpec(run=RunOptions(tile=64, progress=False))
    whole = segment_file(src, tmp_path / "whole.tif", engine=engine, spec=spec)
    out = tmp_path / "maps" / "scene.lulc.tif"
    out.parent.mkdir()
    with pytest.raises(KeyboardInterrupt):
        segment_file(src, out, engine=engine, spec=spec, on_tile=interrupt_after(4))
    assert journal_path(out).is_file() and not out.exists()
    rep = run_job(Job(str(src), str(out)), engine, spec)
    assert rep.status == "done", rep.error
    assert 0 < rep.result.tiles_inferred < whole.tiles_total
    with rasterio.open(out) as got, rasterio.open(tmp_path / "whole.tif") as ref:
        assert np.array_equal(got.read(1), ref.read(1))
