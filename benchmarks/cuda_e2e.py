"""benchmarks.cuda_e2e: end to end on a GPU against inference alone, and what GDAL's threads do.

    python benchmarks/cuda_e2e.py [--size 4096]

Writes a synthetic 13-band DEFLATE scene, then per backend/precision (cuda fp32, fp16, int8 and
cpu int8 for scale), each in a fresh process, times ``segment_file`` with the defaults and the
steady inference rate on one interior 1024 px tile; once with GDAL decoding on all cores (the
default of a run) and once with ``GDAL_NUM_THREADS=1``. Prints one line per run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import resource, sys, time
import numpy as np
from lulc_edge import Engine, EngineOptions
from lulc_edge import RunOptions, segment_file
scene, out, dev, prec = sys.argv[1:5]
t = time.perf_counter()
eng = Engine(None, EngineOptions(device=dev, precision=prec))
load = time.perf_counter() - t
t, c = time.perf_counter(), time.process_time()
r = segment_file(scene, out, engine=eng, options=RunOptions(overwrite=True, progress=False))
wall, cpu = time.perf_counter() - t, time.process_time() - c
x = np.full((1, 13, 1072, 1072), 1000, np.uint16)
eng.run(x)
t = time.perf_counter()
for _ in range(5):
    eng.run(x)
pure = 1024 * 1024 * 5 / (time.perf_counter() - t) / 1e6
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{dev} {prec}: load {load:.2f} s, e2e {wall:.2f} s = {r.pixels / wall / 1e6:.1f} MP/s "
      f"(process CPU {cpu:.1f} s), inference alone {pure:.1f} MP/s, peak RSS {rss:.0f} MB")
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096, help="scene edge in px (default 4096)")
    ap.add_argument("--tmp", type=Path, default=Path("/tmp"), help="folder for scene and map")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from lulc_edge.synthetic import SceneSpec, write_scene

    scene = args.tmp / f"lulc-edge-e2e-{args.size}.tif"
    if not scene.exists():
        t = time.perf_counter()
        write_scene(scene, SceneSpec(width=args.size, height=args.size, seed=3))
        print(f"scene {scene} written in {time.perf_counter() - t:.1f} s", flush=True)
    pairs = (("cuda", "fp32"), ("cuda", "fp16"), ("cuda", "int8"), ("cpu", "int8"))
    for threads in (None, "1"):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
        if threads:
            env["GDAL_NUM_THREADS"] = threads
        for dev, prec in pairs:
            proc = subprocess.run([sys.executable, "-c", CHILD, str(scene),
                                   str(args.tmp / "lulc-edge-e2e-map.tif"), dev, prec],
                                  env=env, capture_output=True, text=True, timeout=600)
            line = proc.stdout.strip() or proc.stderr.strip().splitlines()[-1]
            print(f"GDAL_NUM_THREADS={threads or 'ALL_CPUS (default)'} {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
