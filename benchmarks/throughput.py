"""Throughput benchmark (issues 5, 9, 10): the original app's method against lulc-edge.

Everything compared is measured in one run, interleaved and repeated (round robin over the
configurations, ``--repeats`` times), on the same synthetic scene:

* ``keras``: the original app's method, Keras ``model.predict`` on one 64x64 window at a time,
  stride 32, numpy features per window (a bounded number of windows, extrapolated);
* ``pure``: ``Engine.run`` on blocks read beforehand (no I/O), for every model (fp32, int8 when
  the bundled int8 model exists), device, mode, tile size and batch;
* ``e2e``: ``segment_file`` (read, inference, stitching, write), each in a fresh subprocess that
  reports its own peak resident memory (ru_maxrss and VmHWM);
* ``spin``: end to end with onnxruntime's intra-op thread spinning on/off and 1 or all threads;
* ``features``: the end-to-end graph (uint16 bands in, uint8 classes out) against the U-Net
  subgraph fed float32 features computed in numpy, with the argmax in numpy (issue 10);
* ``profile``: onnxruntime's per-operator profile of one tile;
* ``batch`` (``--batch``): many small scenes one at a time, in 2 worker processes, on a Dask
  LocalCluster (issue 9);
* ``full_scene`` (``--full-scene``): one 10980 x 10980 scene through the CLI with its defaults,
  wall time and peak RSS.

Writes ``OUT/throughput.json`` and ``OUT/throughput.md`` (default ``benchmarks/results``).
``--quick`` finishes in under a minute. Timings on a shared machine are noisy: compare ratios
within one run, never numbers across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lulc_edge.engine import (  # noqa: E402
    Engine,
    EngineOptions,
    available_devices,
    bundled_model,
    default_threads,
)

S2_SIDE = 10980
S2_PIXELS = S2_SIDE * S2_SIDE
WINDOW, STRIDE = 64, 32
SPIN_KEY = "session.intra_op.allow_spinning"
SCHEMA = 1
#: Text after this line of throughput.md is hand-written analysis, kept when the file is rewritten.
NOTES_MARK = "<!-- notes: kept when benchmarks/throughput.py rewrites this file -->\n"


# ------------------------------------------------------------------------------------ helpers
def peak_rss_mb() -> dict[str, float]:
    """This process's peak resident memory: ru_maxrss and /proc's VmHWM (MB)."""
    out = {"ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:")):
                key = "vmhwm_mb" if line.startswith("VmHWM") else "vmrss_mb"
                out[key] = round(int(line.split()[1]) / 1024, 1)
    return out


def cpu_seconds() -> float:
    """CPU time (user + system) of this process, all threads."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def env_info() -> dict[str, Any]:
    """CPU model, relevant flags, cores, library versions, load: recorded beside every number."""
    from lulc_edge.devices import cpu_info, versions

    info = cpu_info()
    flags = set(info["flags"])
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
              "amx_bf16", "amx_int8", "amx_tile")
    libs = dict(versions())
    import onnx
    import rasterio

    libs.update(numpy=np.__version__, rasterio=rasterio.__version__, onnx=onnx.__version__,
                python=platform.python_version())
    return {
        "cpu_model": info["model"],
        "cpu_flags": [f for f in wanted if f in flags],
        "cpus_os": os.cpu_count(),
        "cpus_available": default_threads(),
        "loadavg_start": list(os.getloadavg()),
        "libraries": libs,
        "devices": available_devices(),
    }


def mps(pixels: float, seconds: float) -> float:
    return round(pixels / max(seconds, 1e-12) / 1e6, 4)


def e2e_summary(row: dict[str, Any], runs: list[dict[str, Any]], pixels: int) -> None:
    """Fill ``row`` with the end-to-end summary of child runs and its ratios to ``row["pure"]``
    (peak RSS: VmHWM, else ru_maxrss)."""
    row["e2e"] = summarize([r["seconds"] for r in runs], pixels)
    row["e2e"]["peak_rss_mb"] = max(r["rss_peak"].get("vmhwm_mb", r["rss_peak"]["ru_maxrss_mb"])
                                    for r in runs)
    row["e2e_over_pure"] = round(row["e2e"]["mp_s"] / row["pure"]["mp_s"], 3)
    row["e2e_over_pure_median"] = round(row["e2e"]["mp_s_median"] / row["pure"]["mp_s_median"], 3)


def summarize(times: list[float], pixels: int) -> dict[str, Any]:
    """Best (least disturbed) and median of repeated timings, as seconds and MP/s."""
    best, med = min(times), statistics.median(times)
    return {"runs": len(times), "seconds_best": round(best, 4), "seconds_median": round(med, 4),
            "mp_s": mps(pixels, best), "mp_s_median": mps(pixels, med),
            "s2_tile_minutes": round(S2_PIXELS / (pixels / best) / 60, 2)}


def make_scene(path: Path, size: int, seed: int = 11) -> Path:
    from lulc_edge.synthetic import SceneSpec, write_scene

    if not path.exists():
        write_scene(path, SceneSpec(width=size, height=size, seed=seed))
    return path


def run_json_child(args: list[str], timeout: float = 3600,
                   script: str | Path | None = None) -> dict[str, Any]:
    """Run this script (or ``script``) in a fresh interpreter; its last stdout line is a JSON
    report."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(Path(script or __file__).resolve()), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(lines[-1])


def patch_spinning(spin: str | None) -> None:
    """Make every onnxruntime session of lulc-edge use ``allow_spinning = spin`` ("0"/"1")."""
    if spin is None:
        return
    import lulc_edge.ort_backend as ort_backend

    original = ort_backend.session_options

    def session_options(threads: int, optimize: bool = True):  # type: ignore[no-untyped-def]
        so = original(threads, optimize)
        so.add_session_config_entry(SPIN_KEY, spin)
        return so

    ort_backend.session_options = session_options


def model_variants() -> dict[str, Path]:
    out = {"fp32": bundled_model()}
    for prec in ("int8", "fp16"):
        path = bundled_model(f"demo-unet-{prec}.onnx")
        if path.is_file():
            out[prec] = path
    return out


def runs_on(precision: str, device: str) -> bool:
    """fp16 is measured on CUDA only (its model file is CUDA's; CPUs here have no fp16 path)."""
    return precision != "fp16" or device == "cuda"


def open_engine(precision: str, device: str, threads: int) -> Engine:
    return Engine(bundled_model(), EngineOptions(device=device, threads=threads,
                                                 precision=precision))


# ------------------------------------------------------------------------------------ children
def child_e2e(cfg: dict[str, Any]) -> dict[str, Any]:
    """One ``segment_file`` run in this (fresh) process: seconds, load time, peak RSS."""
    patch_spinning(cfg.get("spin"))
    from lulc_edge import RunOptions, segment_file
    from lulc_edge.modes import default_batch, default_tile, plan

    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    engine = open_engine(cfg["precision"], cfg["device"], cfg["threads"])
    load_s = time.perf_counter() - t0
    mode = cfg["mode"]
    tile = cfg.get("tile") or default_tile(mode, engine.device)
    batch = cfg.get("batch") or default_batch(mode, engine.device)
    if cfg.get("warmup", True):  # one call of the run's main shape (as the pure timings do)
        import rasterio

        with rasterio.open(cfg["scene"]) as ds:
            h, w = ds.height, ds.width
        t = plan(mode, h, w, tile, engine)[0]
        if mode == "seamless":
            engine.run(np.zeros((batch, 13, *t.read_shape), np.uint16))
        else:
            engine.run(np.zeros((batch, 13, WINDOW, WINDOW), np.uint16),
                       ("class", "probabilities"))
    rss1 = peak_rss_mb()
    opts = RunOptions(mode=mode, tile=cfg.get("tile"), batch=cfg.get("batch"), progress=False,
                      overwrite=True)
    t1, c1 = time.perf_counter(), cpu_seconds()
    res = segment_file(cfg["scene"], cfg["output"], engine=engine, options=opts)
    secs, cpu = time.perf_counter() - t1, cpu_seconds() - c1
    with contextlib.suppress(OSError):
        os.unlink(cfg["output"])
    return {"seconds": secs, "cpu_seconds": cpu, "load_seconds": load_s, "pixels": res.pixels,
            "tile": tile, "batch": batch, "device": engine.device,
            "rss_start": rss0, "rss_after_load": rss1, "rss_peak": peak_rss_mb()}


def child_keras(cfg: dict[str, Any]) -> dict[str, Any]:
    """The original app's loop: per 64x64 window, numpy features then ``model.predict``."""
    import rasterio
    from rasterio.windows import Window

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    from export.reference import features_nhwc

    t0 = time.perf_counter()
    if cfg.get("h5"):
        from export.keras_model import load_h5

        model, weights = load_h5(cfg["h5"]), f"from {Path(cfg['h5']).name}"
    else:
        from export.keras_model import build_unet

        model, weights = build_unet(), "random (export.keras_model.build_unet)"
    load_s = time.perf_counter() - t0
    n = int(cfg["windows"])
    with rasterio.open(cfg["scene"]) as ds:
        h, w = ds.height, ds.width
        origins = [(y, x) for y in range(0, h - WINDOW + 1, STRIDE)
                   for x in range(0, w - WINDOW + 1, STRIDE)]
        step = max(1, len(origins) // (n + 1))
        picks = origins[::step][: n + 1]
        blocks = [ds.read(window=Window(x, y, WINDOW, WINDOW)) for y, x in picks]
    times = []
    for i, b in enumerate(blocks):
        t = time.perf_counter()
        feats = features_nhwc(b[None])
        model.predict(feats, verbose=0)
        if i:  # the first call traces the function: not part of the steady state
            times.append(time.perf_counter() - t)
    n_scene = len(range(0, h - WINDOW + 1, STRIDE)) * len(range(0, w - WINDOW + 1, STRIDE))
    n_s2 = len(range(0, S2_SIDE - WINDOW + 1, STRIDE)) ** 2
    ms = min(times) * 1e3  # the fastest window: the original method at its best (conservative)
    ms_med = statistics.median(times) * 1e3
    return {
        "method": "keras model.predict per 64x64 window, stride 32, numpy features per window",
        "weights": weights, "windows_timed": len(times), "load_seconds": round(load_s, 2),
        "ms_per_window_median": round(ms_med, 2),
        "ms_per_window_best": round(min(times) * 1e3, 2),
        "ms_per_window_mean": round(statistics.mean(times) * 1e3, 2),
        "scene_windows": n_scene, "scene_pixels": h * w,
        "mp_s": mps(h * w, n_scene * ms / 1e3),
        "mp_s_median": mps(h * w, n_scene * ms_med / 1e3),
        "speedups_use": "mp_s (best window time), the original method's most favourable figure",
        "s2_tile_windows": n_s2, "s2_tile_minutes": round(n_s2 * ms / 1e3 / 60, 1),
        "s2_tile_minutes_median": round(n_s2 * ms_med / 1e3 / 60, 1),
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "tf_threads": {"intra": tf.config.threading.get_intra_op_parallelism_threads(),
                       "inter": tf.config.threading.get_inter_op_parallelism_threads()},
        "rss_peak": peak_rss_mb(),
    }


def child_batch(cfg: dict[str, Any]) -> dict[str, Any]:
    """One batch of scenes (issue 9): run_local with 1 or 2 workers, or run_dask on LocalCluster."""
    from lulc_edge import RunOptions, RunSpec
    from lulc_edge.batch import plan_jobs, run_dask, run_local

    jobs = plan_jobs(cfg["inputs"], cfg["out_dir"])
    eopts = EngineOptions(device="cpu", threads=cfg["threads"])
    ropts = RunOptions(progress=False, overwrite=True)
    extra: dict[str, Any] = {}
    if cfg["kind"] == "dask":
        from distributed import LocalCluster

        t = time.perf_counter()
        cluster = LocalCluster(n_workers=cfg["workers"], threads_per_worker=1, processes=True,
                               dashboard_address=None)
        extra["cluster_start_seconds"] = round(time.perf_counter() - t, 2)
        try:
            t0 = time.perf_counter()
            reps = run_dask(jobs, cluster.scheduler_address, RunSpec.of(None, eopts, ropts))
            secs = time.perf_counter() - t0
        finally:
            cluster.close()
    else:
        t0 = time.perf_counter()
        reps = run_local(jobs, RunSpec.of(None, eopts, ropts), workers=cfg["workers"])
        secs = time.perf_counter() - t0
    status = [r.status for r in reps]
    pixels = sum(r.pixels for r in reps)
    return {"seconds": secs, "pixels": pixels, "scenes": len(reps), "status": status, **extra}


# ------------------------------------------------------------------------------------ pure
def pre_read(scene: Path, mode: str, tile: int, batch: int, engine: Engine
             ) -> tuple[list[np.ndarray], float, int]:
    """The scene's blocks as the pipeline would batch them: (arrays, read seconds, pixels).

    Seamless: one (B, 13, h, w) array per group of same-shaped tiles. Window mode: the tiles'
    64x64 windows stacked ``batch`` at a time (what ``infer_windows`` passes to the engine).
    """
    from lulc_edge.modes import plan
    from lulc_edge.sources import SourceOptions, open_source
    from lulc_edge.tiling import batches

    t0 = time.perf_counter()
    with open_source(scene, engine.contract.bands, SourceOptions()) as src:
        tiles = plan(mode, src.height, src.width, tile, engine)
        pixels = src.height * src.width
        if mode == "seamless":
            arrays = [np.stack([src.read(t.read) for t in g]) for g in batches(tiles, batch)]
        else:
            arrays = []
            for t in tiles:
                block = src.read(t.read)
                wins = [block[:, y: y + WINDOW, x: x + WINDOW] for y, x in t.windows]
                arrays += [np.stack(wins[i: i + batch]) for i in range(0, len(wins), batch)]
    return arrays, time.perf_counter() - t0, pixels


def time_interior(engine: Engine, block: np.ndarray, tile: int, batch: int,
                  warm: bool, calls: int = 2) -> float:
    """One call on ``batch`` interior tiles (core + full halo on every side), as in a big scene.

    Small benchmark scenes clip the halo at their borders; a 10980 px scene's tiles mostly have
    the full ``(tile + 2 * halo)^2`` read. Rates from this are per core pixel.
    """
    side = tile + 2 * engine.contract.halo
    x = np.ascontiguousarray(np.repeat(block[:, :, :side, :side], batch, axis=0))
    if x.shape[2:] != (side, side):
        x = np.pad(x, ((0, 0), (0, 0), (0, side - x.shape[2]), (0, side - x.shape[3])))
    if warm:
        engine.run(x)  # a shape new to the engine
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        engine.run(x)
        best = min(best, time.perf_counter() - t0)
    return best


def time_pure(engine: Engine, arrays: list[np.ndarray], mode: str) -> float:
    outputs = ("class",) if mode == "seamless" else ("class", "probabilities")
    t0 = time.perf_counter()
    for a in arrays:
        engine.run(a, outputs)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------ issue 10
def unet_subgraph(model: Path, out: Path) -> Path:
    """The plain U-Net of the end-to-end graph: float32 features in, probabilities out."""
    import onnx.utils

    onnx.utils.extract_model(str(model), str(out), input_names=["features"],
                             output_names=["probabilities"])
    return out


def features_nchw(bands: np.ndarray) -> np.ndarray:
    """The graph's feature recipe in numpy, band-first (what a float-feature graph needs fed)."""
    from export.reference import features_nhwc

    return np.ascontiguousarray(features_nhwc(bands).transpose(0, 3, 1, 2))


def bench_features(scene_block: np.ndarray, threads: int, repeats: int, tmp: Path
                   ) -> dict[str, Any]:
    """End-to-end graph vs float-feature U-Net + numpy features + numpy argmax (issue 10)."""
    import onnxruntime as ort

    from lulc_edge.ort_backend import session_options

    model = bundled_model()
    sub = unet_subgraph(model, tmp / "unet-only.onnx")
    full = ort.InferenceSession(str(model), session_options(threads),
                                providers=["CPUExecutionProvider"])
    plain = ort.InferenceSession(str(sub), session_options(threads),
                                 providers=["CPUExecutionProvider"])
    x = scene_block
    n, _, h, w = x.shape

    def host_pipeline() -> tuple[float, float, float]:
        t0 = time.perf_counter()
        f = features_nchw(x)
        t1 = time.perf_counter()
        p = plain.run(["probabilities"], {"features": f})[0]
        t2 = time.perf_counter()
        cls = p.argmax(axis=1).astype(np.uint8)
        cls[~np.any(x != 0, axis=1)] = 255
        return t1 - t0, t2 - t1, time.perf_counter() - t2

    def graph() -> float:
        t0 = time.perf_counter()
        full.run(["class"], {"bands": x})
        return time.perf_counter() - t0

    def graph_probs() -> float:
        t0 = time.perf_counter()
        full.run(["probabilities"], {"bands": x})
        return time.perf_counter() - t0

    graph(), host_pipeline(), graph_probs()  # warm up
    g, gp, parts = [], [], []
    for _ in range(repeats):
        g.append(graph())
        parts.append(host_pipeline())
        gp.append(graph_probs())
    feat_s = min(p[0] for p in parts)
    unet_s = min(p[1] for p in parts)
    argmax_s = min(p[2] for p in parts)
    host_s = min(sum(p) for p in parts)
    px = n * h * w
    return {
        "block": [n, 13, h, w], "threads": threads, "repeats": repeats,
        "end_to_end_graph": {"input": "bands uint16, 26 B/px", "output": "class uint8, 1 B/px",
                             **summarize(g, px)},
        "end_to_end_graph_probabilities_out": {"output": "probabilities float32, 20 B/px",
                                               **summarize(gp, px)},
        "float_feature_graph": {
            "input": "features float32, 64 B/px", "output": "probabilities float32, 20 B/px",
            "numpy_features_seconds": round(feat_s, 4),
            "unet_seconds": round(unet_s, 4), "numpy_argmax_seconds": round(argmax_s, 4),
            **summarize([sum(p) for p in parts], px),
        },
        "host_over_graph": round(host_s / min(g), 3),
        "bytes_per_pixel": {"graph_in": 26, "graph_out_class": 1, "graph_out_class_conf": 2,
                            "float_in": 64, "float_out": 20},
    }


def bench_profile(block: np.ndarray, model: Path, threads: int, tmp: Path) -> dict[str, Any]:
    """onnxruntime's per-node profile of a few runs: share of time per op type and per part."""
    import onnxruntime as ort

    from lulc_edge.ort_backend import session_options

    so = session_options(threads)
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp / f"prof-{model.stem}")
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    for _ in range(4):
        sess.run(["class"], {"bands": block})
    trace = json.loads(Path(sess.end_profiling()).read_text())
    by_op: dict[str, float] = {}
    by_part: dict[str, float] = {}
    runs = 0.0
    for ev in trace:
        if ev.get("cat") == "Session" and ev.get("name") == "model_run":
            runs += ev["dur"]
        if ev.get("cat") != "Node" or not ev.get("name", "").endswith("_kernel_time"):
            continue
        op = ev.get("args", {}).get("op_name", "?")
        node = ev["name"][: -len("_kernel_time")]
        by_op[op] = by_op.get(op, 0.0) + ev["dur"]
        part = node.split("/")[0] if "/" in node else "other"
        by_part[part] = by_part.get(part, 0.0) + ev["dur"]
    total = sum(by_op.values()) or 1.0
    top = sorted(by_op.items(), key=lambda kv: -kv[1])
    return {
        "model": model.name, "block": list(block.shape), "threads": threads,
        "kernel_share_by_op": {k: round(v / total, 4) for k, v in top[:10]},
        "kernel_share_by_part": {k: round(v / total, 4) for k, v in
                                 sorted(by_part.items(), key=lambda kv: -kv[1])},
        "kernels_over_run": round(total / runs, 3) if runs else None,
    }


# ------------------------------------------------------------------------------------ main run
def build_configs(args: argparse.Namespace, threads: int) -> list[dict[str, Any]]:
    """The (mode, tile, batch, model, device) grid, trimmed in --quick mode."""
    devices = [d for d in args.devices.split(",") if d in available_devices()]
    variants = model_variants()
    cfgs = []
    for prec in variants:
        for dev in devices:
            if not runs_on(prec, dev):
                continue
            sweep_all = dev == "cpu"
            for tile in args.tiles:
                for b in args.batches:
                    if b > 1 and dev != "cuda" and (not sweep_all
                                                    or tile > min(256, args.size // 2)):
                        continue  # on CPUs batching is for small tiles; big ones fill the cores
                    cfgs.append({"mode": "seamless", "tile": tile, "batch": b,
                                 "precision": prec, "device": dev, "threads": threads})
            wins = args.window_batches if sweep_all and prec == "fp32" else args.window_batches[-1:]
            if args.no_window:
                wins = []
            for b in wins:
                cfgs.append({"mode": "window", "tile": 512, "batch": b,
                             "precision": prec, "device": dev, "threads": threads})
    return cfgs


def key_of(c: dict[str, Any]) -> str:
    extra = f" spin={c['spin']}" if c.get("spin") is not None else ""
    return (f"{c['precision']}/{c['device']}/{c['mode']}/t{c['tile']}/b{c['batch']}"
            f"/th{c['threads']}{extra}")


def run_main(args: argparse.Namespace) -> dict[str, Any]:
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = args.threads or default_threads()
    result: dict[str, Any] = {"schema": SCHEMA, "quick": args.quick, "env": env_info(),
                              "settings": {}, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    from lulc_edge.modes import MODES

    defaults = {k: (m.default_tile("cpu"), m.default_batch("cpu")) for k, m in MODES.items()}
    result["settings"] = {
        "scene": f"synthetic {args.size}x{args.size}, 13-band uint16, DEFLATE GeoTIFF",
        "threads": threads, "repeats": args.repeats, "tiles": args.tiles,
        "batches": args.batches, "window_batches": args.window_batches,
        "defaults": {"tile": {k: t for k, (t, _) in defaults.items()},
                     "batch": {k: b for k, (_, b) in defaults.items()}},
        "timing": "best of repeats (least disturbed); medians also given",
    }
    with tempfile.TemporaryDirectory(prefix="lulc-bench-", dir=args.tmp) as tmpd:
        tmp = Path(tmpd)
        scene = make_scene(tmp / "scene.tif", args.size)
        log = print if not args.quiet else (lambda *a, **k: None)

        # (1) the original app's method
        keras_res: dict[str, Any] | None = None
        keras_cfg = {"scene": str(scene), "windows": args.keras_windows, "h5": args.h5}
        if args.keras_windows > 0:
            import importlib.util

            if importlib.util.find_spec("tensorflow") is None:
                keras_res = {"skipped": "TensorFlow is not installed"}
            else:
                log("keras: original method ...", flush=True)
                keras_res = run_json_child(["--_keras", json.dumps(keras_cfg)])
        result["keras"] = keras_res
        base_mps = (keras_res or {}).get("mp_s")

        # (2) pure inference and end to end, interleaved, repeated
        cfgs = build_configs(args, threads)
        engines: dict[tuple, Engine] = {}
        arrays: dict[str, tuple[list[np.ndarray], float, int]] = {}
        pure_t: dict[str, list[float]] = {key_of(c): [] for c in cfgs}
        interior_t: dict[str, list[float]] = {key_of(c): [] for c in cfgs}
        interior_block = read_block(scene, min(args.size, max(args.tiles) + 48))
        e2e_t: dict[str, list[dict]] = {key_of(c): [] for c in cfgs}
        for rep in range(args.repeats):
            log(f"repeat {rep + 1}/{args.repeats}: {len(cfgs)} configs", flush=True)
            order = cfgs if rep % 2 == 0 else cfgs[::-1]
            for c in order:
                k = key_of(c)
                ek = (c["precision"], c["device"], c["threads"])
                if ek not in engines:
                    engines[ek] = open_engine(*ek)
                eng = engines[ek]
                ak = f"{c['mode']}/{c['tile']}/{c['batch']}"
                if ak not in arrays:
                    arrays.clear()  # hold one configuration's blocks at a time
                    arrays[ak] = pre_read(scene, c["mode"], c["tile"], c["batch"], eng)
                arrs = arrays[ak][0]
                if not pure_t[k]:
                    eng.run(arrs[0], ("class", "probabilities"))  # warm up this shape
                pure_t[k].append(time_pure(eng, arrs, c["mode"]))
                if c["mode"] == "seamless":
                    interior_t[k].append(time_interior(eng, interior_block, c["tile"],
                                                       c["batch"], not interior_t[k]))
                if not args.no_e2e:
                    e2e_t[k].append(run_json_child(["--_e2e", json.dumps(
                        {**c, "scene": str(scene), "output": str(tmp / "out.tif")})]))
        engines.clear()
        arrays.clear()

        rows = []
        for c in cfgs:
            k = key_of(c)
            pixels = args.size * args.size
            row: dict[str, Any] = {"key": k, **{f: c[f] for f in
                                                ("precision", "device", "mode", "tile", "batch",
                                                 "threads")}}
            row["pure"] = summarize(pure_t[k], pixels)
            if interior_t[k]:
                row["interior"] = summarize(interior_t[k], c["tile"] ** 2 * c["batch"])
            runs = [r for r in e2e_t[k] if "error" not in r]
            if runs:
                e2e_summary(row, runs, pixels)
                row["e2e"]["rss_after_load_mb"] = runs[0]["rss_after_load"].get("vmrss_mb")
                row["e2e"]["load_seconds"] = round(min(r["load_seconds"] for r in runs), 3)
            elif e2e_t[k]:
                row["e2e"] = {"error": e2e_t[k][0]["error"]}
            rate = row.get("interior", {}).get("mp_s")
            if rate and "e2e_over_pure" in row:
                rate *= min(1.0, row["e2e_over_pure"])
            elif "mp_s" in row.get("e2e", {}):
                rate = row["e2e"]["mp_s"]
            if rate:
                row["s2_tile_minutes"] = round(S2_PIXELS / (rate * 1e6) / 60, 2)
            if base_mps:
                row["speedup_pure"] = round(row["pure"]["mp_s"] / base_mps, 1)
                if "mp_s" in row.get("e2e", {}):
                    row["speedup_e2e"] = round(row["e2e"]["mp_s"] / base_mps, 1)
            rows.append(row)
        result["configs"] = rows
        # (2b) the defaults on a bigger scene: e2e against pure, spinning and thread count
        if args.headline_size:
            log(f"headline: defaults on a {args.headline_size} px scene ...", flush=True)
            result["headline"] = bench_headline(args, tmp, threads, base_mps)

        # (3) issue 10 and the profile, on one default-sized tile
        side = min(defaults["seamless"][0], args.size) + 48
        block = read_block(scene, side)
        result["features"] = bench_features(block, threads, max(2, args.repeats), tmp)
        if not args.quick or args.profile:
            result["profile"] = [bench_profile(block, m, threads, tmp)
                                 for p, m in model_variants().items() if runs_on(p, "cpu")]
        # (4) many scenes (issue 9)
        if args.batch:
            result["batch"] = bench_batch(args, tmp)
        if args.full_scene:
            result["full_scene"] = bench_full_scene(Path(args.full_scene), tmp)
    result["env"]["loadavg_end"] = list(os.getloadavg())
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    (out_dir / "throughput.json").write_text(json.dumps(result, indent=1) + "\n")
    md_path = out_dir / "throughput.md"
    old = md_path.read_text() if md_path.is_file() else ""
    notes = old.split(NOTES_MARK, 1)[1] if NOTES_MARK in old else ""
    md_path.write_text(markdown(result) + "\n" + NOTES_MARK + notes)
    return result


def headline_variants(threads: int, devices: list[str]) -> list[dict[str, Any]]:
    """Default tile and batch; onnxruntime's spinning on/off and 1 thread; other devices."""
    out = []
    for prec in model_variants():
        base = {"mode": "seamless", "tile": None, "batch": None, "precision": prec,
                "device": "cpu", "threads": threads}
        if runs_on(prec, "cpu"):
            out += [{**base, "spin": "1"}, {**base, "spin": "0"}]
            if threads > 1:
                out.append({**base, "threads": 1, "spin": "1"})
        out += [{**base, "device": d, "spin": None} for d in devices
                if d != "cpu" and runs_on(prec, d)]
    return out


def spin_engine(c: dict[str, Any]) -> Engine:
    """An engine whose onnxruntime sessions use the variant's spinning setting."""
    import lulc_edge.ort_backend as ort_backend

    original = ort_backend.session_options
    patch_spinning(c.get("spin"))
    try:
        return open_engine(c["precision"], c["device"], c["threads"])
    finally:
        ort_backend.session_options = original


def bench_headline(args: argparse.Namespace, tmp: Path, threads: int,
                   base_mps: float | None) -> dict[str, Any]:
    """e2e vs pure for the default tile/batch on a bigger scene, interleaved and repeated."""
    from lulc_edge.modes import default_batch, default_tile

    size = args.headline_size
    scene = make_scene(tmp / f"headline-{size}.tif", size, seed=12)
    devices = [d for d in args.devices.split(",") if d in available_devices()]
    variants = headline_variants(threads, devices)
    tile, batch = default_tile("seamless", "cpu"), default_batch("seamless", "cpu")
    engines = [spin_engine(c) for c in variants]
    arrays, read_s, pixels = pre_read(scene, "seamless", tile, batch, engines[0])
    for e in engines:
        e.run(arrays[0])
    pure: list[list[float]] = [[] for _ in variants]
    e2e: list[list[dict]] = [[] for _ in variants]
    for rep in range(args.repeats):
        idx = list(range(len(variants)))
        for i in (idx if rep % 2 == 0 else idx[::-1]):
            pure[i].append(time_pure(engines[i], arrays, "seamless"))
            e2e[i].append(run_json_child(["--_e2e", json.dumps(
                {**variants[i], "scene": str(scene), "output": str(tmp / "out.tif")})]))
    del engines, arrays
    rows = []
    for c, p, e in zip(variants, pure, e2e, strict=True):
        row: dict[str, Any] = {"key": key_of({**c, "tile": tile, "batch": batch}),
                               "precision": c["precision"], "device": c["device"],
                               "threads": c["threads"], "spin": c["spin"],
                               "pure": summarize(p, pixels)}
        ok = [r for r in e if "error" not in r]
        if ok:
            e2e_summary(row, ok, pixels)
            row["e2e"]["cpu_seconds_min"] = round(min(r["cpu_seconds"] for r in ok), 3)
            if base_mps:
                row["speedup_e2e"] = round(row["e2e"]["mp_s"] / base_mps, 1)
        else:
            row["e2e"] = {"error": e[0]["error"] if e else "not run"}
        rows.append(row)
    return {"scene": f"synthetic {size}x{size}", "tile": tile, "batch": batch,
            "read_seconds_one_thread": round(read_s, 3), "repeats": args.repeats,
            "rows": rows}


def read_block(scene: Path, side: int) -> np.ndarray:
    """A (1, 13, side, side) block from the top-left of the scene."""
    from rasterio.windows import Window

    from lulc_edge.sources import SourceOptions, open_source

    with open_source(scene, options=SourceOptions()) as src:
        return src.read(Window(0, 0, side, side))[None]


def bench_batch(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Issue 9: N scenes one at a time (2 threads) vs 2 workers x 1 thread vs Dask LocalCluster."""
    n, size = args.batch_scenes, args.batch_size
    inputs = [str(make_scene(tmp / f"batch-{i}.tif", size, seed=100 + i)) for i in range(n)]
    threads = args.threads or default_threads()
    kinds = [("sequential", "local", 1, threads), ("workers", "local", 2, 1)]
    import importlib.util

    if importlib.util.find_spec("distributed") is not None:
        kinds.append(("dask", "dask", 2, 1))
    runs: dict[str, list[dict]] = {k[0]: [] for k in kinds}
    for rep in range(args.batch_repeats):
        for name, kind, workers, th in (kinds if rep % 2 == 0 else kinds[::-1]):
            out = tmp / f"batch-out-{name}-{rep}"
            runs[name].append(run_json_child(["--_batch", json.dumps(
                {"inputs": inputs, "out_dir": str(out), "kind": kind, "workers": workers,
                 "threads": th})]))
    res: dict[str, Any] = {"scenes": n, "scene_size": size, "repeats": args.batch_repeats,
                           "runs": {}}
    for name, _kind, workers, th in kinds:
        ok = [r for r in runs[name] if "error" not in r and
              all(s == "done" for s in r["status"])]
        if not ok:
            res["runs"][name] = {"error": (runs[name] or [{"error": "not run"}])[0].get(
                "error", "scenes failed")}
            continue
        best = min(r["seconds"] for r in ok)
        res["runs"][name] = {
            "how": {"sequential": f"run_local workers=1, {th} threads",
                    "workers": f"run_local workers={workers}, {th} thread each",
                    "dask": f"run_dask on LocalCluster({workers} workers x 1 thread)"}[name],
            "seconds_best": round(best, 3),
            "seconds_median": round(statistics.median(r["seconds"] for r in ok), 3),
            "scenes_per_hour": round(n / best * 3600, 1),
            "mp_s": mps(ok[0]["pixels"], best),
            **({"cluster_start_seconds": ok[0]["cluster_start_seconds"]}
               if "cluster_start_seconds" in ok[0] else {}),
        }
    return res


def bench_full_scene(scene: Path, tmp: Path) -> dict[str, Any]:
    """The CLI with its defaults on one big scene, in a child whose peak RSS wait4 reports."""
    import rasterio

    with rasterio.open(scene) as ds:
        w, h = ds.width, ds.height
    out = tmp / "full.lulc.tif"
    cmd = [sys.executable, "-m", "lulc_edge.cli", "run", str(scene), "-o", str(out),
           "--quiet", "--json"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    # VmHWM, polled: the child's ru_maxrss would include this (big) parent's, which vfork/exec
    # hands down on Linux.
    hwm, status_file = 0, Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        with contextlib.suppress(OSError, ValueError):
            for line in status_file.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]))
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    stdout = proc.stdout.read() if proc.stdout else ""
    stderr = proc.stderr.read() if proc.stderr else ""
    report: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        report = json.loads(stdout)
    with contextlib.suppress(OSError):
        out.unlink()
    return {"scene": f"{w}x{h}", "command": " ".join(["lulc-edge", *cmd[3:]]),
            "exit": proc.returncode, "wall_seconds": round(wall, 1),
            "mp_s": mps(w * h, wall), "peak_rss_mb": round(hwm / 1024, 1),
            "report": {k: report.get(k) for k in ("device", "precision", "seconds", "mode")
                       if isinstance(report, dict)} if report else None,
            "stderr_tail": stderr.strip().splitlines()[-3:]}


# ------------------------------------------------------------------------------------ markdown
def markdown(r: dict[str, Any]) -> str:
    env = r["env"]
    lines = [
        "# Throughput", "",
        f"Measured {r['started']}, `benchmarks/throughput.py{' --quick' if r['quick'] else ''}`."
        " One run, configurations interleaved and repeated; best of repeats (medians in the"
        " JSON). The machine is shared: compare ratios within this run.", "",
        f"- CPU: {env['cpu_model']} ({', '.join(env['cpu_flags'])}), "
        f"{env['cpus_available']} CPUs available; load average "
        f"{env['loadavg_start'][0]:.1f} at start, {env.get('loadavg_end', [0])[0]:.1f} at end",
        "- " + ", ".join(f"{k} {v}" for k, v in env["libraries"].items()),
        f"- Scene: {r['settings']['scene']}; {r['settings']['threads']} inference threads; "
        f"{r['settings']['repeats']} repeats", "",
    ]
    k = r.get("keras") or {}
    if "mp_s" in k:
        lines += [
            "## The original app's method", "",
            f"{k['method']}; weights {k['weights']}; TensorFlow {k['tensorflow']}, "
            f"Keras {k['keras']}. {k['windows_timed']} windows timed: median "
            f"{k['ms_per_window_median']} ms a window, best {k['ms_per_window_best']} ms. At "
            f"the best window time (used for every speed-up below, the original method's most "
            f"favourable figure): **{k['mp_s']} MP/s** (median: {k['mp_s_median']}); a full "
            f"Sentinel-2 tile ({k['s2_tile_windows']} windows) would take "
            f"**{k['s2_tile_minutes']} min** ({k['s2_tile_minutes_median']} at the median).", "",
        ]
    elif k:
        lines += ["## The original app's method", "", f"Not measured: {k}", ""]
    lines += [
        "## lulc-edge: pure inference and end to end", "",
        "pure = `Engine.run` over the scene's pre-read blocks (halo included, no I/O); e2e = "
        "`segment_file` in a fresh process (read, inference, stitching, write); peak RSS = "
        "VmHWM of that process; x original = e2e MP/s over the original method's.",
        "",
        "interior = one call on full-halo tiles as in a big scene (per core pixel; small scenes "
        "clip halos at their borders, big ones do not); S2 min = projected minutes for a 10980 x "
        "10980 px tile at the interior rate x e2e/pure (window mode: at the e2e rate).", "",
        "| model | device | mode | tile | batch | interior MP/s | pure MP/s | e2e MP/s | e2e/pure "
        "| x original (e2e) | peak RSS MB | S2 tile min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["configs"]:
        e = row.get("e2e", {})
        lines.append(
            f"| {row['precision']} | {row['device']} | {row['mode']} | {row['tile']} | "
            f"{row['batch']} | {row.get('interior', {}).get('mp_s', '-')} | "
            f"{row['pure']['mp_s']} | {e.get('mp_s', '-')} | "
            f"{row.get('e2e_over_pure', '-')} | {row.get('speedup_e2e', '-')} | "
            f"{e.get('peak_rss_mb', '-')} | {row.get('s2_tile_minutes', '-')} |")
    lines.append("")
    h = r.get("headline")
    if h:
        lines += [
            f"## Defaults end to end vs pure inference ({h['scene']}, tile {h['tile']}, batch "
            f"{h['batch']})", "",
            f"onnxruntime session config `{SPIN_KEY}` (1 = onnxruntime's default). Reading the "
            f"scene's blocks on one thread took {h['read_seconds_one_thread']} s.", "",
            "| model | device | threads | spinning | pure MP/s | e2e MP/s | e2e/pure (best) | "
            "e2e/pure (median) | x original (e2e) | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for x in h["rows"]:
            e = x.get("e2e", {})
            lines.append(
                f"| {x['precision']} | {x['device']} | {x['threads']} | "
                f"{x['spin'] if x['spin'] is not None else '-'} | {x['pure']['mp_s']} | "
                f"{e.get('mp_s', e.get('error', '-'))} | {x.get('e2e_over_pure', '-')} | "
                f"{x.get('e2e_over_pure_median', '-')} | {x.get('speedup_e2e', '-')} | "
                f"{e.get('peak_rss_mb', '-')} |")
        lines.append("")
    f = r.get("features")
    if f:
        g, fl = f["end_to_end_graph"], f["float_feature_graph"]
        gp = f["end_to_end_graph_probabilities_out"]
        lines += [
            "## In-graph features and uint8 output vs a float-feature graph (issue 10)", "",
            f"One block {f['block']}, {f['threads']} threads, best of {f['repeats']}.", "",
            "| variant | bytes in/out per px | seconds | MP/s |", "|---|---|---|---|",
            f"| end-to-end graph (bands uint16 -> class uint8) | 26 / 1 | {g['seconds_best']} | "
            f"{g['mp_s']} |",
            f"| end-to-end graph, probabilities out | 26 / 20 | {gp['seconds_best']} | "
            f"{gp['mp_s']} |",
            f"| numpy features + U-Net subgraph + numpy argmax | 64 / 20 | "
            f"{fl['seconds_best']} (features {fl['numpy_features_seconds']}, U-Net "
            f"{fl['unet_seconds']}, argmax {fl['numpy_argmax_seconds']}) | {fl['mp_s']} |",
            "", f"Host-feature pipeline / end-to-end graph time: {f['host_over_graph']}.", "",
        ]
    for p in r.get("profile") or []:
        ops = ", ".join(f"{k} {v:.1%}" for k, v in p["kernel_share_by_op"].items())
        parts = ", ".join(f"{k} {v:.1%}" for k, v in p["kernel_share_by_part"].items())
        lines += [f"Profile ({p['model']}, block {p['block']}): kernels by op: {ops}. "
                  f"By part: {parts}.", ""]
    b = r.get("batch")
    if b:
        lines += [
            "## Many scenes on one machine (issue 9)", "",
            f"{b['scenes']} scenes of {b['scene_size']}x{b['scene_size']}, wall time from "
            "submission to the last report (worker start and model loads included), best of "
            f"{b['repeats']}.", "",
            "| how | seconds | scenes/hour | MP/s |", "|---|---|---|---|",
        ]
        for name, v in b["runs"].items():
            if "error" in v:
                lines.append(f"| {name} | error: {v['error']} | | |")
            else:
                extra = (f" (cluster start {v['cluster_start_seconds']} s not included)"
                         if "cluster_start_seconds" in v else "")
                lines.append(f"| {v['how']}{extra} | {v['seconds_best']} | "
                             f"{v['scenes_per_hour']} | {v['mp_s']} |")
        lines.append("")
    fs = r.get("full_scene")
    if fs:
        lines += ["## Full Sentinel-2 sized scene, CLI defaults", "",
                  f"`{fs['command']}` on {fs['scene']}: exit {fs['exit']}, "
                  f"{fs['wall_seconds']} s wall ({fs['mp_s']} MP/s incl. start-up), "
                  f"peak RSS {fs['peak_rss_mb']} MB. Report: {fs['report']}", ""]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ cli
def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small scene, few configs (< 1 min)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--h5", help="Keras .h5 for the original method (default: random weights)")
    p.add_argument("--size", type=int, help="scene edge in px (default 1536; quick 384)")
    p.add_argument("--tiles", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--window-batches", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--devices", default="cpu,openvino", help="comma list (those installed)")
    p.add_argument("--threads", type=int, help="inference threads (default: all CPUs)")
    p.add_argument("--repeats", type=int)
    p.add_argument("--headline-size", type=int,
                   help="scene edge for the defaults' e2e/pure section (0: skip; default 2048)")
    p.add_argument("--keras-windows", type=int, help="windows timed (0: skip; default 30)")
    p.add_argument("--no-e2e", action="store_true", help="pure inference only")
    p.add_argument("--no-window", action="store_true", help="seamless mode only")
    p.add_argument("--profile", action="store_true", help="onnxruntime profile (quick mode)")
    p.add_argument("--batch", action="store_true", help="also the many-scenes section")
    p.add_argument("--batch-scenes", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--batch-repeats", type=int)
    p.add_argument("--full-scene", help="also run the CLI with defaults on this scene")
    p.add_argument("--tmp", help="folder for temporary scenes and outputs")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--_e2e", help=argparse.SUPPRESS)
    p.add_argument("--_keras", help=argparse.SUPPRESS)
    p.add_argument("--_batch", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    q = a.quick
    defaults: dict[str, Any] = {
        "size": 384 if q else 1024, "tiles": [128, 256] if q else [128, 256, 512, 1024],
        "batches": [1, 2] if q else [1, 2, 4], "window_batches": [32] if q else [8, 64, 32],
        "repeats": 1 if q else 2, "keras_windows": 4 if q else 30,
        "batch_scenes": 2 if q else 6, "batch_size": 256 if q else 512,
        "batch_repeats": 1 if q else 2, "headline_size": 0 if q else 2048,
    }
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if q and a.devices == "cpu,openvino":
        a.devices = "cpu"
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    children: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "_e2e": child_e2e, "_keras": child_keras, "_batch": child_batch}
    for name, fn in children.items():
        if getattr(args, name):
            print(json.dumps(fn(json.loads(getattr(args, name)))), flush=True)
            return 0
    res = run_main(args)
    if not args.quiet:
        print((Path(args.out) / "throughput.md").read_text())
    return 0 if res else 1


if __name__ == "__main__":
    sys.exit(main())
