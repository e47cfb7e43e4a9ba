"""benchmarks.store_accuracy: write parity results into a model's ``lulc_edge.accuracy`` metadata.

``--precision auto`` only picks a reduced precision whose agreement with fp32 is stored in the
model; this records what ``benchmarks/parity.py`` measured (per precision: the lowest agreement
over the synthetic scenes and backends, the lowest on real scenes, the worst class-F1 drop).

    python benchmarks/store_accuracy.py [--parity benchmarks/results/parity.json] [--model M.onnx]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from export.graph import get_metadata, set_metadata  # noqa: E402
from export.to_onnx import write_atomic  # noqa: E402

PRECISIONS = ("bf16", "fp16", "int8")


def accuracy_entries(parity: dict) -> dict[str, dict]:
    """Per precision, the most pessimistic seamless-mode numbers over every backend measured."""
    out: dict[str, dict] = {}
    for variant, s in parity["summary"].items():
        if not s.get("available", True) or "seamless" not in variant:
            continue
        prec = next((p for p in PRECISIONS if f" {p} " in f" {variant} "), None)
        if prec is None:
            continue
        agree = s["min_agreement_fp32_synthetic"]
        entry = out.setdefault(prec, {
            "agreement": agree, "agreement_real_min": s.get("min_agreement_fp32_real"),
            "max_f1_drop": s.get("synthetic_worst_f1_drop"), "variants": [],
            "measured_by": "benchmarks/parity.py (synthetic scenes with labels; real scenes "
                           "of shared/data); agreement = lowest argmax agreement with fp32 "
                           "seamless over synthetic scenes and backends",
        })
        entry["agreement"] = min(entry["agreement"], agree)
        if s.get("min_agreement_fp32_real") is not None:
            entry["agreement_real_min"] = min(entry["agreement_real_min"] or 1.0,
                                              s["min_agreement_fp32_real"])
        entry["max_f1_drop"] = max(entry["max_f1_drop"] or 0.0,
                                   s.get("synthetic_worst_f1_drop") or 0.0)
        entry["variants"].append(variant)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parity", type=Path, default=ROOT / "benchmarks/results/parity.json")
    ap.add_argument("--model", type=Path, default=ROOT / "lulc_edge/models/demo-unet.onnx")
    ap.add_argument("--int8", type=Path, default=ROOT / "lulc_edge/models/demo-unet-int8.onnx",
                    help="int8 sibling whose calibration record names the fp32 file's sha256")
    args = ap.parse_args(argv)
    parity = json.loads(args.parity.read_text())
    if parity.get("quick"):
        print(f"error: {args.parity} is a --quick run; store full runs only", file=sys.stderr)
        return 1
    entries = accuracy_entries(parity)
    model = onnx.load(str(args.model))
    acc = get_metadata(model).get("lulc_edge.accuracy") or {}
    acc.update(entries)
    set_metadata(model, {"lulc_edge.accuracy": acc})
    data = model.SerializeToString()
    write_atomic(args.model, data)
    sha = hashlib.sha256(data).hexdigest()
    if args.int8.exists():  # keep the int8 file's provenance pointing at the fp32 file
        q = onnx.load(str(args.int8))
        cal = get_metadata(q).get("lulc_edge.calibration")
        if isinstance(cal, dict) and isinstance(cal.get("fp32_model"), dict):
            cal["fp32_model"]["sha256"] = sha
            set_metadata(q, {"lulc_edge.calibration": cal})
            write_atomic(args.int8, q.SerializeToString())
    print(json.dumps({"model": str(args.model), "sha256": sha, "accuracy": acc}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
