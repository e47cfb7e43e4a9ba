"""export.layout_bench: time the raw tf2onnx U-Net against the band-first graph (see LAYOUT.md)."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python export/layout_bench.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

RAW = "tf2onnx raw (NHWC in, Transpose, Tile)"
UNET = "band-first U-Net (NCHW, Resize)"
E2E = "end-to-end graph (uint16 bands in)"


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"


def _time(sessions: dict, feeds: dict, repeats: int) -> dict[str, float]:
    """Median seconds per run; the graphs take turns so that machine noise hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for name, sess in sessions.items():
        sess.run(None, feeds[name])  # warm-up
    for _ in range(repeats):
        for name, sess in sessions.items():
            t0 = time.perf_counter()
            sess.run(None, feeds[name])
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    """Print MP/s of the three graphs at each size (batch 1, fp32, CPU provider)."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)

    import keras
    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    from export.graph import FEATURES_NAME, OPSET, OUTPUT_PROBS
    from export.keras_model import build_unet, flexible_copy
    from export.reference import features_nhwc, synthetic_bands
    from export.to_onnx import to_end_to_end

    keras.utils.set_random_seed(0)
    model = build_unet()
    spec = (tf.TensorSpec((None, None, None, 16), tf.float32, name="features"),)
    raw, _ = tf2onnx.convert.from_keras(flexible_copy(model), input_signature=spec, opset=OPSET)
    e2e, _ = to_end_to_end(model)
    # the band-first U-Net alone: features (N,16,H,W) -> probabilities, cut out of the e2e graph
    unet_nodes = [n for n in e2e.graph.node if n.name.startswith("unet/")]
    used = {i for n in unet_nodes for i in n.input}
    unet = onnx.helper.make_model(onnx.helper.make_graph(
        unet_nodes, "unet",
        [onnx.helper.make_tensor_value_info(FEATURES_NAME, onnx.TensorProto.FLOAT,
                                            ["N", 16, "H", "W"])],
        [onnx.helper.make_tensor_value_info(OUTPUT_PROBS, onnx.TensorProto.FLOAT,
                                            ["N", 5, "H", "W"])],
        initializer=[t for t in e2e.graph.initializer if t.name in used]),
        opset_imports=e2e.opset_import)
    unet.ir_version = e2e.ir_version

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    sessions = {name: ort.InferenceSession(m.SerializeToString(), so,
                                           providers=["CPUExecutionProvider"])
                for name, m in ((RAW, raw),
                                (UNET, unet),
                                (E2E, e2e))}
    transposes = {name: sum(n.op_type == "Transpose" for n in m.graph.node)
                  for name, m in (("raw", raw), ("unet", unet), ("e2e", e2e))}
    print(f"CPU: {_cpu_model()}; onnxruntime {ort.__version__}, tf2onnx {tf2onnx.__version__}, "
          f"onnx {onnx.__version__}, tensorflow {tf.__version__}; {args.threads} threads, fp32")
    print(f"Transpose nodes: {transposes}")
    for size in args.sizes:
        bands = synthetic_bands(1, size, size, seed=1)
        feats = features_nhwc(bands)
        feeds = {
            RAW: {raw.graph.input[0].name: feats},
            UNET: {FEATURES_NAME: feats.transpose(0, 3, 1, 2).copy()},
            E2E: {"bands": bands},
        }
        for name, t in _time(sessions, feeds, args.repeats).items():
            print(f"{size}x{size}  {name:38s} {size * size / t / 1e6:6.3f} MP/s ({t * 1e3:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
