"""What vectorising a map costs next to mapping it, and whether its numbers agree with the manual
way, on one scene in one run.

    python benchmarks/vectorize.py SCENE [--repeats N] [--out DIR]

Interleaves, ``--repeats`` times: ``lulc-edge run SCENE --confidence`` (the CLI's defaults),
``lulc-edge vectorize`` of that map (GeoPackage, with the confidence field) and the same with
``--simplify 10``; each a child process timed for wall and CPU seconds, with its peak RSS from
``os.wait4``. Then the manual way on the same map: ``rasterio.features.shapes`` over the whole
map (what ``gdal_polygonize`` does; 4-connected) for polygons and areas per class, and a numpy
count of the pixels for ``lulc-edge stats``. Writes vectorize.json and vectorize.md in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import env_info  # noqa: E402


def child_rusage(args: list[str]) -> dict[str, Any]:
    """Run ``python -m lulc_edge.cli ARGS``: wall s, CPU s and peak RSS MB of that one child
    (os.wait4), its stdout."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "lulc_edge.cli", *args],
                                stdout=out, stderr=err, text=True)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"{' '.join(args)} failed: {err.read().strip()}")
        return {"args": args, "wall_s": round(wall, 2),
                "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
                "peak_rss_mb": round(ru.ru_maxrss / 1024, 1), "stdout": out.read()}


def manual_way(map_path: Path) -> dict[str, Any]:
    """Polygons and areas per class by rasterio.features.shapes over the whole map, and pixels
    per class by numpy: what one would do by hand."""
    import rasterio
    import shapely
    from rasterio.features import shapes

    t0 = time.perf_counter()
    with rasterio.open(map_path) as ds:
        vals = ds.read(1)
        tr = ds.transform
        k = sum(1 for i in range(255) if f"CLASS_{i}" in ds.tags())
    polygons, hectares = np.zeros(k, int), np.zeros(k)
    for geom, value in shapes(vals, mask=vals < k, connectivity=4, transform=tr):
        polygons[int(value)] += 1
        hectares[int(value)] += shapely.geometry.shape(geom).area / 10_000
    pixels = np.bincount(vals.ravel(), minlength=256)[:k]
    return {"wall_s": round(time.perf_counter() - t0, 2), "polygons": polygons.tolist(),
            "hectares": hectares.round(4).tolist(), "pixels": pixels.tolist()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    env = env_info()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        m = Path(tmp) / "map.tif"
        for rep in range(args.repeats):
            run = child_rusage(["run", args.scene, "-o", str(m), "--confidence", "--overwrite",
                                "--json"])
            doc = json.loads(run.pop("stdout"))
            run["backend"] = {key: doc.get(key) for key in ("device", "precision")
                              if key in doc}
            rows.append({"step": "run --confidence", "repeat": rep, **run})
            for extra, name in (([], "vectorize"), (["--simplify", "10"],
                                                     "vectorize --simplify 10")):
                vec = child_rusage(["vectorize", str(m), "-o", str(Path(tmp) / "map.gpkg"),
                                    "--overwrite", "--json", *extra])
                summary = json.loads(vec.pop("stdout"))
                rows.append({"step": name, "repeat": rep, **vec, "summary": summary})
        stats = child_rusage(["stats", str(m), "--json"])
        stats_doc = json.loads(stats.pop("stdout"))
        manual = manual_way(m)
        import rasterio

        with rasterio.open(m) as ds:
            size = [ds.width, ds.height]
    vec = next(r["summary"] for r in rows if r["step"] == "vectorize")
    names = list(vec["classes"])
    stats_px = [stats_doc["whole_map"]["classes"][n]["pixels"] for n in names]
    agree = {
        "polygons_equal": [vec["classes"][n]["polygons"] for n in names] == manual["polygons"],
        "max_abs_ha_difference": max(abs(vec["classes"][n]["hectares"] - h)
                                     for n, h in zip(names, manual["hectares"], strict=True)),
        "stats_pixels_equal": stats_px == manual["pixels"]}
    doc = {"env": env, "scene": args.scene, "size": size, "steps": rows,
           "stats": stats, "stats_pixels": stats_px, "manual": manual, "classes": names,
           "agreement": agree,
           "loadavg_end": list(os.getloadavg())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vectorize.json").write_text(json.dumps(doc, indent=2))
    (args.out / "vectorize.md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


def markdown(doc: dict[str, Any]) -> str:
    env, w, h = doc["env"], *doc["size"]
    lines = [
        "# Vectorising next to mapping", "",
        f"`benchmarks/vectorize.py {doc['scene']}`: {w} x {h} px map; steps interleaved, "
        "each a fresh process (wall, CPU = user + system, peak RSS from wait4).", "",
        f"- CPU: {env['cpu_model']}, {env['cpus_available']} CPUs available (shared machine); "
        f"load average {env['loadavg_start'][0]:.1f} at start, {doc['loadavg_end'][0]:.1f} "
        "at end",
        "- " + ", ".join(f"{k} {v}" for k, v in env["libraries"].items()), "",
        "| step | repeat | wall s | CPU s | peak RSS MB | polygons | vertices |",
        "|---|---:|---:|---:|---:|---:|---:|"]
    for r in doc["steps"]:
        s = r.get("summary")
        polys = sum(c["polygons"] for c in s["classes"].values()) if s else ""
        lines.append(f"| {r['step']}{' ' + str(r.get('backend')) if 'backend' in r else ''} "
                     f"| {r['repeat']} | {r['wall_s']} | {r['cpu_s']} | {r['peak_rss_mb']} | "
                     f"{polys} | {s['vertices'] if s else ''} |")
    st = doc["stats"]
    lines += [f"| stats | 0 | {st['wall_s']} | {st['cpu_s']} | {st['peak_rss_mb']} | | |", "",
              "## Against the manual way", "",
              "rasterio.features.shapes over the whole map in memory (gdal_polygonize's "
              f"algorithm, 4-connected; {doc['manual']['wall_s']} s) and numpy pixel counts:", "",
              "| class | vectorize polygons | manual polygons | vectorize ha | manual ha | "
              "stats pixels | numpy pixels |", "|---|---:|---:|---:|---:|---:|---:|"]
    vec = next(r["summary"] for r in doc["steps"] if r["step"] == "vectorize")
    stats_px = doc["stats_pixels"]
    for i, n in enumerate(doc["classes"]):
        c = vec["classes"][n]
        lines.append(f"| {n} | {c['polygons']} | {doc['manual']['polygons'][i]} | "
                     f"{c['hectares']:.2f} | {doc['manual']['hectares'][i]:.2f} | "
                     f"{stats_px[i]} | {doc['manual']['pixels'][i]} |")
    a = doc["agreement"]
    lines += ["", f"Polygons per class equal: {a['polygons_equal']}; largest area difference "
              f"{a['max_abs_ha_difference']:.2g} ha; stats pixels equal: "
              f"{a['stats_pixels_equal']}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
