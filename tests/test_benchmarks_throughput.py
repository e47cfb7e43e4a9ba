"""benchmarks/throughput.py --quick: runs end to end and writes the documented JSON (no timings
are asserted: the numbers depend on the machine and its load)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_writes_json_and_markdown(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--quick", "--batch",
         "--keras-windows", "2", "--out", str(out), "--tmp", str(tmp_path), "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "throughput.json").read_text())
    md = (out / "throughput.md").read_text()
    assert res["schema"] == 1 and res["quick"] is True
    env = res["env"]
    assert env["cpu_model"] and env["cpus_available"] >= 1
    assert "onnxruntime" in env["libraries"] and "numpy" in env["libraries"]
    assert res["settings"]["threads"] >= 1

    keras = res["keras"]
    assert keras is not None
    if "skipped" not in keras:  # TensorFlow installed: the original method was timed
        assert "error" not in keras, keras
        assert keras["windows_timed"] == 2 and keras["mp_s"] > 0
        assert keras["weights"].startswith("random")

    rows = res["configs"]
    assert {r["mode"] for r in rows} == {"seamless", "window"}
    for r in rows:
        assert r["precision"] in ("fp32", "int8") and r["device"] == "cpu"
        assert r["tile"] > 0 and r["batch"] > 0
        assert r["pure"]["mp_s"] > 0 and r["pure"]["runs"] == 1
        assert "error" not in r["e2e"], r["e2e"]
        assert r["e2e"]["mp_s"] > 0 and r["e2e"]["peak_rss_mb"] > 0
        assert r["e2e_over_pure"] > 0 and r["s2_tile_minutes"] > 0
        if r["mode"] == "seamless":
            assert r["interior"]["mp_s"] > 0
        if "mp_s" in keras:
            assert r["speedup_e2e"] > 0
    assert "fp32" in {r["precision"] for r in rows}

    feats = res["features"]
    for k in ("end_to_end_graph", "end_to_end_graph_probabilities_out", "float_feature_graph"):
        assert feats[k]["mp_s"] > 0
    assert feats["float_feature_graph"]["numpy_features_seconds"] > 0
    assert feats["bytes_per_pixel"]["graph_in"] == 26 and feats["bytes_per_pixel"]["float_in"] == 64

    runs = res["batch"]["runs"]
    assert {"sequential", "workers"} <= set(runs)
    for v in runs.values():
        assert "error" not in v, v
        assert v["scenes_per_hour"] > 0 and v["mp_s"] > 0

    assert "| fp32 | cpu | seamless |" in md and "issue 10" in md and "issue 9" in md
