"""benchmarks/parity.py --quick: runs end to end and writes the documented JSON and Markdown
(structure only: the figures depend on the model and the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_writes_json_and_markdown(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "parity.py"), "--quick", "--quiet",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "parity.json").read_text())
    md = (out / "parity.md").read_text()
    assert res["schema"] == 1 and res["quick"] is True
    assert res["machine"]["cpu_model"] and res["machine"]["cpu_count"] >= 1
    assert "onnxruntime" in res["machine"]["libraries"]
    assert res["models"]["keras"].startswith("not available")  # no --h5 given
    names = res["variants"]
    for want in ("onnx fp32 seamless (cpu)", "onnx fp32 window 64/32 (cpu)",
                 "onnx fp32 original per-window loop (cpu)", "onnx int8 seamless (cpu)",
                 "onnx int8 window 64/32 (cpu)", "onnx int8 original per-window loop (cpu)"):
        assert want in names, want
        assert want in md
    synthetic = [s for s in res["scenes"] if s["kind"] == "synthetic"]
    assert len(synthetic) >= 2 and all(s["labels"] == "full" for s in synthetic)
    ref = synthetic[0]["results"]["onnx fp32 seamless (cpu)"]
    assert ref["agreement_fp32"] == 1.0 and ref["max_abs_dp"] == 0.0
    assert len(ref["per_class"]) == 5 and 0 <= ref["accuracy"] <= 1
    int8 = synthetic[0]["results"]["onnx int8 seamless (cpu)"]
    assert 0.9 <= int8["agreement_fp32"] <= 1.0
    assert len(int8["delta_f1_vs_fp32"]) == 5
    summary = res["summary"]["onnx int8 seamless (cpu)"]
    assert summary["available"] and "synthetic_worst_f1_drop" in summary
    assert len(summary["synthetic_pooled"]["per_class"]) == 5
    # the window mode reproduces the original per-window loop where every pixel is covered
    win = synthetic[0]["results"]["onnx fp32 window 64/32 (cpu)"]
    loop = synthetic[0]["results"]["onnx fp32 original per-window loop (cpu)"]
    assert win["per_class"] == loop["per_class"] or abs(win["accuracy"] - loop["accuracy"]) < 0.01
    real = [s for s in res["scenes"] if s["kind"] == "real"]
    for s in real:
        for m in s["results"].values():
            assert abs(sum(m["class_fraction"].values()) - 1) < 1e-3
        if s["labels"] == "water":
            w = s["results"]["onnx fp32 seamless (cpu)"]["water"]
            assert set(w) >= {"precision", "recall", "f1"}
    assert "| variant |" in md and "Machine:" in md
