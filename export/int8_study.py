"""export.int8_study: the measurements behind export/INT8.md (which int8 recipe, and why).

    python export/int8_study.py [--model lulc_edge/models/demo-unet.onnx] [--json out.json]

Quantizes the fp32 model several ways (same calibration tiles from synthetic scenes), then
compares each with fp32 on labelled synthetic scenes and on the real scenes in ../shared/data:
argmax agreement, worst per-class F1 drop against the synthetic labels, and MP/s of one
512x512 tile on the CPU provider. Prints a Markdown table.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402

from export.errors import ExportError  # noqa: E402
from export.quantize import (  # noqa: E402
    QuantizeOptions,
    _session,
    calibration_scenes,
    calibration_tiles,
    load_fp32,
    per_class_f1,
    quantize_graph,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LULC_EDGE_SHARED_DATA", ROOT.parent / "shared" / "data"))
EVAL_SYNTHETIC = ((401, 512, 32), (402, 512, 48), (403, 512, 64))
REAL = ("l1c-18SVG-20160112-crop.tif", "l1c-sen1floods11-spain-7370579.tif",
        "l2a-29RKH-20200219")

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("naive: whole graph (features too), one input scale, head quantized",
     {"scope": "graph", "input_handling": "none", "float_head": False}),
    ("U-Net only, one input scale, head quantized",
     {"input_handling": "none", "float_head": False}),
    ("U-Net only, one input scale, float head",
     {"input_handling": "none"}),
    ("U-Net only, per-channel input scale, head quantized",
     {"input_handling": "channel-scale", "float_head": False}),
    ("U-Net only, per-channel input scale, float head (MinMax)",
     {"input_handling": "channel-scale"}),
    ("U-Net only, per-channel input scale, float head (Percentile 99.999)",
     {"input_handling": "channel-scale", "method": "percentile"}),
    ("U-Net only, per-channel input scale, float head (Entropy)",
     {"input_handling": "channel-scale", "method": "entropy"}),
    ("**U-Net only, first conv float, float head (MinMax)** (chosen)",
     {"input_handling": "float-first-conv"}),
    ("U-Net only, first conv float, float head (Percentile 99.999)",
     {"input_handling": "float-first-conv", "method": "percentile"}),
]


def _eval_scenes() -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    from lulc_edge.sources import SourceOptions, open_source
    from lulc_edge.synthetic import SceneSpec, generate

    out = []
    for seed, size, scale in EVAL_SYNTHETIC:
        bands, labels, _ = generate(SceneSpec(width=size, height=size, seed=seed,
                                              region_scale=scale))
        out.append((f"synthetic {seed}", bands, labels))
    from rasterio.windows import Window

    for name in REAL:
        path = SHARED / name
        if not path.exists():
            continue
        with open_source(path, options=SourceOptions(scl_fill=4)) as src:
            h, w = src.height // 4 * 4, src.width // 4 * 4
            out.append((name, src.read(Window(0, 0, w, h)), None))
    return out


def _classes(sess: Any, bands: np.ndarray) -> np.ndarray:
    return sess.run(["class"], {"bands": bands[None]})[0][0]


def _mps(sessions: list[Any], bands: np.ndarray, rounds: int = 6) -> list[float]:
    """MP/s of each session on one 512x512 tile: best of ``rounds``, run round-robin so that
    load from other processes hits every variant alike (the ratios are what to compare)."""
    x = bands[None, :, :512, :512]
    best = [float("inf")] * len(sessions)
    for s in sessions:
        s.run(["class"], {"bands": x})
    for _ in range(rounds):
        for i, s in enumerate(sessions):
            t0 = time.perf_counter()
            s.run(["class"], {"bands": x})
            best[i] = min(best[i], time.perf_counter() - t0)
    return [x.shape[2] * x.shape[3] / b / 1e6 for b in best]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "lulc_edge/models/demo-unet.onnx"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--only", type=int, nargs="*", default=None, help="variant indices")
    ap.add_argument("--calibration", nargs="+", default=["synthetic"],
                    help="calibration scenes (default: the synthetic set)")
    args = ap.parse_args(argv)
    fp32 = load_fp32(args.model)
    with calibration_scenes(args.calibration, 4) as (scenes, _):
        tiles, _ = calibration_tiles(scenes, 32, 128, 0)
    evals = _eval_scenes()
    s32 = _session(fp32, 2)
    ref = [_classes(s32, b) for _, b, _ in evals]
    rows: list[dict[str, Any]] = [{"variant": "fp32 (reference)"}]
    sessions = [s32]
    for i, (name, kw) in enumerate(VARIANTS):
        if args.only is not None and i not in args.only:
            continue
        opts = QuantizeOptions(**kw)
        t0 = time.monotonic()
        try:
            q, facts = quantize_graph(fp32, tiles, opts)
        except ExportError as exc:
            rows.append({"variant": name, "error": str(exc)})
            continue
        row: dict[str, Any] = {"variant": name, "quantize_s": round(time.monotonic() - t0, 1),
                               "qdq_nodes": facts["quantize_linear_nodes"]}
        s8 = _session(q, 2)
        drops, agree_syn, agree_real = [], [], {}
        for (label, bands, labels), c32 in zip(evals, ref, strict=True):
            c8 = _classes(s8, bands)
            valid = c32 != 255
            a = float(np.mean(c8[valid] == c32[valid]))
            if labels is None:
                agree_real[label] = a
                continue
            agree_syn.append(a)
            lab = labels != 255
            f32 = per_class_f1(c32[lab], labels[lab], 5)
            f8 = per_class_f1(c8[lab], labels[lab], 5)
            drops += [x - y for x, y in zip(f32, f8, strict=True)
                      if x is not None and y is not None]
        row.update(agreement_synthetic=min(agree_syn), agreement_real=agree_real,
                   max_f1_drop=max(drops))
        rows.append(row)
        sessions.append(s8)
        print(json.dumps(row), flush=True)
    timed = [r for r in rows if "error" not in r]
    for r, mps in zip(timed, _mps(sessions, evals[0][1]), strict=True):
        r["mps"] = mps
        r["speedup"] = mps / timed[0]["mps"]
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), platform.processor())
    import onnxruntime

    print(f"\n{cpu}, {os.cpu_count()} cores, onnxruntime {onnxruntime.__version__}, 2 threads, "
          f"model {Path(args.model).name}, {onnx.load(args.model).graph.name}\n")
    real_names = [n for n, _, lab in evals if lab is None]
    head = ("| variant | agreement synthetic (min of 3) | "
            + " | ".join(f"agreement {n}" for n in real_names)
            + " | worst F1 drop (points) | MP/s 512x512 | x fp32 |")
    print(head)
    print("|" + "---|" * (5 + len(real_names)))
    for r in rows:
        if "error" in r:
            print(f"| {r['variant']} | error: {r['error']} |")
            continue
        if "agreement_synthetic" not in r:
            print(f"| {r['variant']} | 100% | " + " | ".join("100%" for _ in real_names)
                  + f" | 0 | {r['mps']:.2f} | 1.00 |")
            continue
        real = " | ".join(f"{100 * r['agreement_real'][n]:.2f}%" for n in real_names)
        print(f"| {r['variant']} | {100 * r['agreement_synthetic']:.2f}% | {real} | "
              f"{100 * r['max_f1_drop']:.2f} | {r['mps']:.2f} | {r['speedup']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
