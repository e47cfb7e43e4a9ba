"""benchmarks/composite.py at a tiny size: the dates are built from the real bands of
../shared/data/l2a-29RKH-20200219 on one grid with their own planted clouds, and the run writes
the documented JSON and Markdown (no timings are asserted: they depend on the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from benchmarks.composite import CLOUD_SCL, NOTES_MARK

from .conftest import needs_shared

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@needs_shared
def test_composite_benchmark_tiny(tmp_path):
    data, out = tmp_path / "data", tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "composite.py"), "--size", "300x200",
         "--ns", "2", "--keep-n", "2", "--data", str(data), "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]

    # two dates: the same grid, different pixels, each with its own planted clouds
    res = json.loads((out / "composite.json").read_text())
    dates = [Path(p) for p in res["build"]["paths"]]
    assert len(dates) == 2
    arrays = []
    for p in dates:
        with rasterio.open(p) as ds:
            assert (ds.width, ds.height, ds.count) == (300, 200, 13)
            assert ds.descriptions[10] == "SCL"
            arrays.append((ds.transform, ds.read()))
    assert arrays[0][0] == arrays[1][0]
    assert not np.array_equal(arrays[0][1], arrays[1][1])
    clouds = [a[10] == CLOUD_SCL for _, a in arrays]
    assert all(c.any() for c in clouds) and not np.array_equal(*clouds)

    # one block: composite, its keep-the-strips twin, both singles; env and targets recorded
    assert res["schema"] == 1 and res["settings"]["ns"] == [2]
    assert res["env"]["cpu_model"] and {"onnxruntime", "gdal"} <= set(res["env"]["libraries"])
    (block,) = res["blocks"]
    assert block["n"] == 2 and len(block["singles"]) == 2
    for r in (block["composite"], block["composite_keep_cache"], *block["singles"]):
        assert r["wall_seconds"] > 0 and r["cpu_seconds"] > 0 and r["peak_rss_mb"] > 50
        assert r["report"]["strips_decoded"] >= 1
    assert block["composite"]["report"]["tiles"] == block["singles"][0]["report"]["tiles"]
    assert block["wall_ratio"] > 0 and block["cpu_ratio"] > 0
    assert res["strip_cost"]["cpu_s_per_strip"] > 0 and res["strip_cost"]["strips"] >= 3
    extra = block["extra_cpu_s"]
    assert extra["strips_decoded_again"] >= 0 and extra["accumulate"] > 0
    assert set(res["analysis"]["targets"]) == {
        "composite <= 1.1 x sum of singles (wall, worst N)",
        "composite peak RSS within 10 % over N (max/min)"}
    md = (out / "composite.md").read_text()
    assert "| round | N | composite wall s |" in md and "## Targets" in md
    assert "| round | N | extra CPU s | strips decoded again |" in md
    assert md.endswith(NOTES_MARK)
    assert not (data / "out").exists() or not any((data / "out").iterdir())
