"""Service benchmark (issue 17): ``POST /predict`` latency against the original app's method,
and what a preview of a full tile costs.

* ``predict``: ``lulc-edge serve`` in a subprocess on 127.0.0.1, the bundled example scene
  (512 x 512) posted as the original Node backend does (field ``file``, image/tiff), one
  request at a time after a warm-up: wall time per request end to end (upload, map, three
  PNGs, base64, JSON), for the CLI defaults and for CPU fp32; the server's peak RSS.
* ``keras``: the original app's method on the same scene in the same run: Keras
  ``model.predict`` per 64x64 window, stride 32 (``benchmarks/throughput.py``'s child, the
  fastest window extrapolated to the scene's windows: the model alone, no pictures, so the
  original's figure is a lower bound).
* ``preview`` (``--preview-tile``): a 10980 x 10980, 13-band stack and its class map (the
  example scene and its map repeated), ``write_previews`` at 2048 px in a fresh process: wall
  time and extra peak RSS, with the stack as written (no overviews) and after adding
  overviews; ``--run-tile`` also maps the stack with the CLI defaults for the 10 % budget.

Writes ``OUT/serve.json`` and ``OUT/serve.md`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.throughput import env_info, peak_rss_mb, run_json_child  # noqa: E402

EXAMPLE = ROOT / "examples" / "data" / "example-scene.tif"
S2_SIDE = 10980


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vm(pid: int | str, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_predict(device: str, precision: str, requests: int, tmp: Path) -> dict[str, Any]:
    """Sequential /predict requests against a fresh server; seconds per request."""
    import httpx

    port = _port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "lulc_edge.cli", "serve", "--port", str(port),
                             "--device", device, "--precision", precision,
                             "--jobs-dir", str(tmp / f"jobs-{device}-{precision}")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        for _ in range(1200):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        start_s = time.perf_counter() - t0
        body = EXAMPLE.read_bytes()
        info = httpx.get(url + "/info").json()
        times = []
        with httpx.Client(timeout=600) as c:
            for i in range(requests + 1):
                t = time.perf_counter()
                r = c.post(url + "/predict",
                           files={"file": ("example-scene.tif", body, "image/tiff")})
                r.raise_for_status()
                if i:  # the first request warms the backend up
                    times.append(time.perf_counter() - t)
        stats = r.json()["class_stats"]
        return {"device": info["device"], "precision": info["precision"],
                "server_start_s": round(start_s, 2), "requests": len(times),
                "seconds_best": round(min(times), 4),
                "seconds_median": round(statistics.median(times), 4),
                "server_peak_rss_mb": round(_vm(proc.pid, "VmHWM"), 1), "class_stats": stats}
    finally:
        proc.terminate()
        proc.wait(30)


def _write_tile(scene: Path, map_path: Path) -> None:
    """A full-tile stack and class map: the example scene and its map repeated (pixel
    interleaved DEFLATE as the example, the map through lulc-edge's own writer profile)."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    from lulc_edge import RunOptions, segment_file
    from lulc_edge.raster import add_overviews

    small_map = scene.parent / "example.lulc.tif"
    segment_file(EXAMPLE, small_map, options=RunOptions(confidence=True, progress=False,
                                                       overwrite=True))
    with rasterio.open(EXAMPLE) as src, rasterio.open(small_map) as m:
        bands, classes = src.read(), m.read()
        prof, mprof = src.profile, m.profile
        tags, mtags, cmap = src.tags(), m.tags(), m.colormap(1)
        descs, mdescs = src.descriptions, m.descriptions
    side = bands.shape[1]
    prof.update(width=S2_SIDE, height=S2_SIDE, BIGTIFF="YES", NUM_THREADS="ALL_CPUS")
    mprof.update(width=S2_SIDE, height=S2_SIDE)
    with rasterio.open(scene, "w", **prof) as dst, rasterio.open(map_path, "w", **mprof) as md:
        for i, d in enumerate(descs, 1):
            dst.set_band_description(i, d)
        for i, d in enumerate(mdescs, 1):
            md.set_band_description(i, d)
        md.write_colormap(1, cmap)
        for r in range(0, S2_SIDE, side):
            for c in range(0, S2_SIDE, side):
                w = Window(c, r, min(side, S2_SIDE - c), min(side, S2_SIDE - r))
                h, wd = int(w.height), int(w.width)
                dst.write(np.ascontiguousarray(bands[:, :h, :wd]), window=w)
                md.write(np.ascontiguousarray(classes[:, :h, :wd]), window=w)
        dst.update_tags(**tags)
        mtags["LULC_EDGE_SOURCE_INPUT"] = str(scene)
        md.update_tags(**mtags)
        add_overviews(md)


def child_preview(cfg: dict[str, Any]) -> dict[str, Any]:
    """One preview in this fresh process: wall time, RSS before, peak after."""
    import lulc_edge.preview as preview

    rss0 = _vm("self", "VmRSS")
    t = time.perf_counter()
    preview.write_previews(cfg["map"], cfg["scene"], cfg["out"], size=cfg["size"])
    sec = time.perf_counter() - t
    peak = peak_rss_mb().get("vmhwm_mb", float("nan"))
    return {"seconds": round(sec, 2), "rss_before_mb": round(rss0, 1), "peak_rss_mb": peak,
            "extra_peak_rss_mb": round(peak - rss0, 1)}


def bench_preview(tmp: Path, run_tile: bool) -> dict[str, Any]:
    import rasterio
    from rasterio.enums import Resampling

    scene, map_path = tmp / "tile.tif", tmp / "tile.lulc.tif"
    t = time.perf_counter()
    if not scene.exists():
        _write_tile(scene, map_path)
    out: dict[str, Any] = {"scene_gb": round(scene.stat().st_size / 1e9, 2),
                           "write_seconds": round(time.perf_counter() - t, 1)}
    cfg = {"map": str(map_path), "scene": str(scene), "out": str(tmp), "size": 2048}
    out["stack_without_overviews"] = run_json_child(["--_preview", json.dumps(cfg)],
                                                    script=__file__)
    t = time.perf_counter()
    with rasterio.open(scene, "r+") as ds:
        ds.build_overviews([2, 4, 8, 16], Resampling.average)
    out["overview_build_seconds"] = round(time.perf_counter() - t, 1)
    out["stack_with_overviews"] = run_json_child(["--_preview", json.dumps(cfg)],
                                                 script=__file__)
    if run_tile:
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "lulc_edge.cli", "run", str(scene), "-o",
                               str(tmp / "run.lulc.tif"), "-q", "--overwrite"],
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                              text=True)
        out["run_defaults_seconds"] = round(time.perf_counter() - t, 1)
        out["run_error"] = proc.stderr.strip()[-300:] if proc.returncode else None
    return out


def markdown(r: dict[str, Any]) -> str:
    e = r["env"]
    lines = ["# /predict latency and preview cost (benchmarks/serve.py)", "",
             f"Machine: {e['cpu_model']}, {e['cpus_available']} CPUs available, load at start "
             f"{e['loadavg_start']}; " + ", ".join(f"{k} {v}" for k, v in
                                                   e["libraries"].items()) + ".", ""]
    k = r.get("keras") or {}
    lines += ["| method, example scene 512 x 512 | seconds a scene | x original |",
              "|---|---|---|"]
    base = None
    if "ms_per_window_best" in k:
        base = k["scene_windows"] * k["ms_per_window_best"] / 1e3
        lines.append(f"| original: Keras predict per 64x64 window, stride 32 ({k['scene_windows']}"
                     f" windows x {k['ms_per_window_best']} ms best, model only, no PNGs) | "
                     f"{base:.2f} | 1x |")
    for p in r["predict"]:
        if "error" in p:
            lines.append(f"| /predict {p.get('config')} | error: {p['error']} | |")
            continue
        x = f"{base / p['seconds_median']:.0f}x" if base else ""
        lines.append(f"| lulc-edge serve /predict, {p['device']} {p['precision']} "
                     f"(median of {p['requests']}, best {p['seconds_best']} s; server peak "
                     f"RSS {p['server_peak_rss_mb']} MB) | {p['seconds_median']:.3f} | {x} |")
    pv = r.get("preview")
    if pv:
        lines += ["", "Preview of a 10980 x 10980 tile (2048 px pictures, fresh process):", "",
                  "| scene file | seconds | extra peak RSS |", "|---|---|---|"]
        for key in ("stack_without_overviews", "stack_with_overviews"):
            v = pv[key]
            lines.append(f"| 13-band stack, {key.replace('_', ' ')[6:]} | {v.get('seconds')} | "
                         f"{v.get('extra_peak_rss_mb')} MB |")
        if pv.get("run_defaults_seconds"):
            lines.append(f"\n`lulc-edge run` with defaults on the same stack: "
                         f"{pv['run_defaults_seconds']} s.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=10)
    p.add_argument("--keras-windows", type=int, default=30)
    p.add_argument("--preview-tile", action="store_true")
    p.add_argument("--run-tile", action="store_true")
    p.add_argument("--tmp")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--_preview", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._preview:
        print(json.dumps(child_preview(json.loads(a._preview))), flush=True)
        return 0
    tmp = Path(a.tmp or tempfile.mkdtemp(prefix="lulc-serve-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    r: dict[str, Any] = {"env": env_info(), "predict": []}
    for device, precision in (("auto", "auto"), ("cpu", "fp32")):
        try:
            r["predict"].append(bench_predict(device, precision, a.requests, tmp))
        except Exception as exc:  # noqa: BLE001 - recorded in the results
            r["predict"].append({"config": f"{device}/{precision}", "error": str(exc)})
        print(json.dumps(r["predict"][-1]), flush=True)
    if a.keras_windows:
        r["keras"] = run_json_child(["--_keras", json.dumps(
            {"scene": str(EXAMPLE), "windows": a.keras_windows, "h5": None})])
        print(json.dumps(r["keras"]), flush=True)
    if a.preview_tile:
        r["preview"] = bench_preview(tmp, a.run_tile)
        print(json.dumps(r["preview"]), flush=True)
    out = Path(a.out)
    (out / "serve.json").write_text(json.dumps(r, indent=1) + "\n")
    (out / "serve.md").write_text(markdown(r))
    print(markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
