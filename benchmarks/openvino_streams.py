"""OpenVINO on the CPU: one stream of all threads, one block at a time, against 2 streams with 2
blocks in flight (what OpenVINOBackend.STREAMS chose), per precision, interleaved rounds.

    python benchmarks/openvino_streams.py [--rounds 3] [--size 560] [--out benchmarks/results]

Static-shape models of ``size`` x ``size`` px blocks (the interior block of a 512 px tile with
its 24 px halo), 12 blocks a round. Only the ratio within a round means anything on a shared
machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import env_info  # noqa: E402

from lulc_edge import bundled_model  # noqa: E402
from lulc_edge.devices import OV_HINT, openvino_core  # noqa: E402
from lulc_edge.engine import default_threads  # noqa: E402
from lulc_edge.synthetic import SceneSpec, generate  # noqa: E402

#: name: (streams, blocks in flight, ENABLE_CPU_PINNING or None for OpenVINO's default)
CONFIGS = {"1 stream x all threads, 1 in flight": (1, 1, None),
           "2 streams, 2 in flight": (2, 2, None),
           "2 streams, pinned": (2, 2, True),
           "2 streams, not pinned": (2, 2, False)}


def compile_static(model: Path, precision: str, size: int, streams: int, threads: int,
                   pinning: bool | None = None):
    import openvino

    core = openvino_core()
    m = core.read_model(str(model))
    p = m.get_parameters()[0]
    p.set_element_type(openvino.Type.f32)
    m.validate_nodes_and_infer_types()
    m.reshape({"bands": [1, 13, size, size]})
    config = {"NUM_STREAMS": streams, "INFERENCE_NUM_THREADS": threads,
              "INFERENCE_PRECISION_HINT": OV_HINT[precision]}
    if pinning is not None:
        config["ENABLE_CPU_PINNING"] = pinning
    return core.compile_model(m, "CPU", config)


def main(argv: list[str] | None = None) -> int:
    import openvino

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=int, default=560)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    threads = default_threads()
    bands, _, _ = generate(SceneSpec(width=2 * args.size, height=2 * args.size, seed=3))
    s = args.size
    blocks = [np.ascontiguousarray(bands[None, :, r:r + s, c:c + s], np.float32)
              for r in (0, s) for c in (0, s)] * 3
    variants = {"fp32": bundled_model(), "bf16": bundled_model(),
                "int8": bundled_model("demo-unet-int8.onnx")}
    compiled = {(prec, name): compile_static(path, prec, s, streams, threads, pin)
                for prec, path in variants.items()
                for name, (streams, _, pin) in CONFIGS.items()}
    mps: dict[str, list[float]] = {f"{p}|{n}": [] for p, n in compiled}
    for _ in range(args.rounds):
        for (prec, name), comp in compiled.items():
            q = openvino.AsyncInferQueue(comp, CONFIGS[name][1])
            t0 = time.perf_counter()
            for x in blocks:
                q.start_async({"bands": x})
            q.wait_all()
            mps[f"{prec}|{name}"].append(len(blocks) * s * s / 1e6 / (time.perf_counter() - t0))
    doc = {"env": env_info(), "size": s, "blocks_per_round": len(blocks), "threads": threads,
           "mp_per_s": {k: [round(v, 3) for v in vals] for k, vals in mps.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "openvino-streams.json").write_text(json.dumps(doc, indent=2))
    lines = ["# OpenVINO streams on the CPU", "",
             f"CPU: {doc['env']['cpu_model']} ({', '.join(doc['env']['cpu_flags'])}), "
             f"{threads} threads, load at start {doc['env']['loadavg_start']}; "
             f"openvino {doc['env']['libraries'].get('openvino')}; static {s}x{s} blocks, "
             f"{len(blocks)} a round, {args.rounds} interleaved rounds (MP/s of block pixels).", "",
             "| precision | " + " | ".join(CONFIGS) + " | 2 streams / 1 stream (median) |",
             "|---|" + "---|" * (len(CONFIGS) + 1)]
    names = list(CONFIGS)
    for prec in variants:
        rows = [mps[f"{prec}|{n}"] for n in names]
        ratio = float(np.median(np.array(rows[1]) / np.array(rows[0])))
        lines.append(f"| {prec} | " + " | ".join(" ".join(f"{v:.2f}" for v in r) for r in rows)
                     + f" | {ratio:.2f}x |")
    (args.out / "openvino-streams.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
