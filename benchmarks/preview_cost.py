"""What the pictures cost next to the run that made the map, on one scene, in one process.

    python benchmarks/preview_cost.py SCENE [--out DIR]

Times ``segment_file`` with the defaults (auto) keeping the true-colour thumbnail (what
``lulc-edge run --preview`` does), then the pictures drawn from that thumbnail, then the
pictures drawn by reading the scene again (``lulc-edge preview MAP`` later). Use a full
10980 px stack without overviews for the worst case (benchmarks/products.py builds one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import env_info  # noqa: E402

from lulc_edge import Engine, EngineOptions, RunOptions, segment_file  # noqa: E402
from lulc_edge.preview import write_previews  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "map.tif"
        engine = Engine(options=EngineOptions(device="auto", precision="auto"))
        t0 = time.perf_counter()
        res = segment_file(args.scene, out, engine=engine,
                           options=RunOptions(progress=False, thumbnail=2048))
        run_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_previews(out, args.scene, true_colour=res.true_colour)
        kept_s = time.perf_counter() - t0
        os.mkdir(Path(tmp) / "again")
        t0 = time.perf_counter()
        write_previews(out, args.scene, Path(tmp) / "again")
        read_s = time.perf_counter() - t0
    doc = {"env": env_info(), "scene": args.scene, "size": [res.width, res.height],
           "backend": f"{res.device} {res.precision}", "run_s": round(run_s, 2),
           "pictures_from_the_run_s": round(kept_s, 2),
           "pictures_reading_the_scene_s": round(read_s, 2),
           "share_from_the_run": round(kept_s / run_s, 4),
           "share_reading_the_scene": round(read_s / run_s, 4),
           "loadavg_end": list(os.getloadavg())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "preview-cost.json").write_text(json.dumps(doc, indent=2))
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
