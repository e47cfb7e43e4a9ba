"""Speed and agreement of every (backend, precision) pair this environment can run.

    python benchmarks/backends.py [--model M.onnx] [--size 512] [--runs 5] [--json OUT]

Each pair maps a synthetic scene tile of ``size`` x ``size`` px (one warm-up, then ``runs``
timed calls; the median counts) and is compared with onnxruntime's CPU provider at fp32 (argmax
agreement over valid pixels). int8 needs ``M-int8.onnx`` beside the model. Run it once per
environment (.venv for cpu/openvino, .venv-openvino for openvino-ep) in one go to compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from lulc_edge import Engine, EngineOptions, LulcEdgeError
from lulc_edge.devices import PRECISIONS, available_devices, cpu_info, versions
from lulc_edge.synthetic import SceneSpec, generate


def measure(model: str | None, size: int, runs: int, threads: int) -> dict:
    """The table: one row per pair, with MP/s, agreement and the reason a pair could not run."""
    bands, _, _ = generate(SceneSpec(width=size, height=size, seed=3))
    x = bands[None]
    valid = bands.any(axis=0)
    ref_eng = Engine(model, EngineOptions(device="cpu", precision="fp32", threads=threads))
    ref = ref_eng.run(x, ("class",))[0][0]
    rows = []
    for device in available_devices():
        for precision in PRECISIONS:
            row: dict = {"device": device, "precision": precision}
            try:
                t0 = time.perf_counter()
                eng = Engine(model, EngineOptions(device=device, precision=precision,
                                                  threads=threads, openvino_cache_dir=""))
                row["load_s"] = round(time.perf_counter() - t0, 3)
                cls = eng.run(x, ("class",))[0][0]
                times = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    eng.run(x, ("class",))
                    times.append(time.perf_counter() - t0)
                row["mp_per_s"] = round(size * size / statistics.median(times) / 1e6, 3)
                row["mp_per_s_best"] = round(size * size / min(times) / 1e6, 3)
                row["agreement"] = round(float((cls[valid] == ref[valid]).mean()), 5)
                row["model"] = eng.path.name
            except LulcEdgeError as exc:
                row["error"] = str(exc)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    return {"cpu": cpu_info()["model"], "threads": threads, "size": size, "runs": runs,
            "versions": versions(), "python": sys.executable, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="fp32 model (default: the bundled one)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None, help="write the table here")
    args = p.parse_args(argv)
    doc = measure(args.model, args.size, args.runs, args.threads)
    text = json.dumps(doc, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
