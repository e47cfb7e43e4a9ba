"""What a composite of N scenes costs next to N single runs (issue 25): time, CPU and peak
memory of ``composite_file`` over N = 2, 4, 8 dates of a full-width strip, against
``segment_file`` of each date, in one interleaved run.

    python benchmarks/composite.py [--size 10980x768] [--ns 2,4,8] [--rounds 1] [--out DIR]

Inputs (built once, cached under ``--data`` by size and date count): the real spectra and SCL of
``../shared/data/l2a-29RKH-20200219`` (per-band COGs at 100/200/600 m) mirror-tiled to a
Sentinel-2 grid as ``products.py`` does (each source pixel one 10 m pixel; 20 m and 60 m bands
and SCL upsampled by repetition, nearest), written as 13-band DEFLATE stacks like the
synthetic ones. Date ``d`` is the scene ``d x 211`` rows further down (the same grid and
transform, different pixels) with its own planted clouds: seeded ellipses where SCL is 9
(cloud, high probability) and the reflectances bright, so no two dates are byte-identical and
each date masks different pixels.

Timing, per N (rounds alternate the order of N): the single runs of the first half of the
dates, the composite, the composite with ``drop_cache`` made a no-op (``--keep-n``, default 4:
the re-decoding that dropping the strips costs), the single runs of the other half; each a
fresh child of this script calling the API (``segment_file`` / ``composite_file``, rule
``mean``, the run's defaults otherwise), timed for wall and CPU seconds with its peak RSS from
``os.wait4``. Inside each child the strips decoded (``StripReader._decode``) are counted and
the accumulators (``Accumulator.add`` / ``result``) timed; one strip's decoding CPU is measured
alone, so the strips a composite decodes again after ``drop_cache`` have a cost.
Writes ``OUT/composite.json`` and ``OUT/composite.md``. The machine is shared: compare ratios
within one round, never numbers across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.products import (  # noqa: E402
    SOURCE,
    STACK_OPTIONS,
    checkout_rev,
    child_env,
    mirror_index,
    parse_size,
    run_child,
    timed,
    write_markdown,
)

SCHEMA = 1
#: Bump when the built dates change: cached builds of another version are rebuilt.
BUILD_VERSION = 1
DEFAULT_SIZE = (10980, 768)
ROW_SHIFT = 211  # rows between dates in the mirror-tiled scene
#: the real fixture's band files (native resolutions: 100/200/600 m, taken as 10/20/60 m)
SOURCE_FILES = {"B1": "B01", "B2": "B02", "B3": "B03", "B4": "B04", "B5": "B05", "B6": "B06",
                "B7": "B07", "B8": "B08", "B8A": "B8A", "B9": "B09", "SCL": "SCL",
                "B11": "B11", "B12": "B12"}
FACTOR = {"B1": 6, "B9": 6, "B2": 1, "B3": 1, "B4": 1, "B8": 1}  # the rest: 20 m
CLOUD_SCL = 9
CLOUD_DN = 7000  # reflectance of a planted cloud (B11/B12 lower, as real clouds)
TARGETS = {"composite_over_singles": 1.1, "rss_max_over_min": 1.10}


# ------------------------------------------------------------------------------------ build
def date_paths(data: Path, size: tuple[int, int], n: int) -> dict[str, Any]:
    base = data / f"composite-{size[0]}x{size[1]}"
    return {"base": base, "build": base / "build.json",
            "dates": [base / f"date{d}.tif" for d in range(n)]}


def clouds_of(date: int, size: tuple[int, int]) -> Any:
    """Date ``date``'s planted clouds: a (h, w) bool mask of seeded ellipses (about a sixth
    of a full-width strip)."""
    import numpy as np

    w, h = size
    rng = np.random.default_rng(1000 + date)
    yy, xx = np.ogrid[:h, :w]
    mask = np.zeros((h, w), bool)
    for _ in range(max(1, w * h // 800_000)):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.05, 0.25) * max(h, 64), rng.uniform(0.02, 0.08) * max(w, 256)
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return mask


def date_band(band: str, date: int, size: tuple[int, int], source: Path, cloud: Any) -> Any:
    """One band of a date on the 10 m grid (uint16; SCL too, as stacks hold it)."""
    import numpy as np
    import rasterio

    with rasterio.open(source / f"{SOURCE_FILES[band]}.tif") as ds:
        src = ds.read(1)
    f = FACTOR.get(band, 2) if band != "SCL" else 2
    w, h = size
    rows = np.arange(date * ROW_SHIFT, date * ROW_SHIFT + h) // f
    cols = np.arange(w) // f
    a = src[np.ix_(mirror_index(src.shape[0], int(rows[-1]) + 1)[rows],
                   mirror_index(src.shape[1], int(cols[-1]) + 1)[cols])].astype(np.uint16)
    if band == "SCL":
        a[cloud] = CLOUD_SCL
    else:
        a[cloud] = CLOUD_DN // (2 if band in ("B11", "B12") else 1)
    return a


def build(data: Path, size: tuple[int, int], n: int, source: Path = SOURCE) -> dict[str, Any]:
    """Build (or find, cached) ``n`` dates of a strip of ``size``; returns build.json's dict."""
    import rasterio
    from rasterio.transform import from_origin

    from lulc_edge.sources.base import DEFAULT_BANDS

    paths = date_paths(data, size, n)
    with contextlib.suppress(OSError, ValueError):
        done = json.loads(paths["build"].read_text())
        if done.get("version") == BUILD_VERSION and done.get("dates", 0) >= n and \
                all(p.exists() for p in paths["dates"]):
            return {**done, "cached": True}
    paths["base"].mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cover = []
    for d, dst in enumerate(paths["dates"]):
        cloud = clouds_of(d, size)
        cover.append(round(float(cloud.mean()), 4))
        profile = {"driver": "GTiff", "width": size[0], "height": size[1],
                   "count": len(DEFAULT_BANDS), "dtype": "uint16", "crs": "EPSG:32629",
                   "transform": from_origin(199980.0, 2800020.0, 10, 10), **STACK_OPTIONS}
        part = dst.with_suffix(".partial.tif")
        with rasterio.open(part, "w", **profile) as out:
            out.descriptions = DEFAULT_BANDS
            for i, band in enumerate(DEFAULT_BANDS, 1):
                out.write(date_band(band, d, size, source, cloud), i)
        part.rename(dst)
    doc = {"version": BUILD_VERSION, "size": list(size), "dates": n, "source": str(source),
           "seconds": round(time.perf_counter() - t0, 1), "planted_cloud_cover": cover,
           "bytes": [p.stat().st_size for p in paths["dates"]],
           "paths": [str(p) for p in paths["dates"]],
           "how": f"GTiff {STACK_OPTIONS}; date d: rows from d x {ROW_SHIFT} of the "
                  "mirror-tiled scene, own planted clouds (SCL 9, bright reflectances)"}
    paths["build"].write_text(json.dumps(doc, indent=1))
    return {**doc, "cached": False}


# ------------------------------------------------------------------------------------ children
class Counters:
    """Strip decoding and accumulator time inside one child (patched in, this script only):
    the accumulators' CPU seconds (they run on the main thread), the strips' wall seconds in
    the decoding thread (GDAL decodes a strip's blocks on threads of its own)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.n = {"strips_decoded": 0, "decode_wall_s": 0.0, "accumulate_cpu_s": 0.0}

    def wrap(self, owner: type, name: str, key: str, count: str | None = None) -> None:
        orig = getattr(owner, name)
        clock = time.perf_counter if key.endswith("wall_s") else time.thread_time

        def timed(*a: Any, **k: Any) -> Any:
            t0 = clock()
            try:
                return orig(*a, **k)
            finally:
                with self.lock:
                    self.n[key] += clock() - t0
                    if count:
                        self.n[count] += 1

        setattr(owner, name, timed)

    def report(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in self.n.items()}


def instrument() -> Counters:
    from lulc_edge.composite import Accumulator
    from lulc_edge.sources.strips import StripReader

    c = Counters()
    c.wrap(StripReader, "_decode", "decode_wall_s", "strips_decoded")
    c.wrap(Accumulator, "add", "accumulate_cpu_s")
    c.wrap(Accumulator, "result", "accumulate_cpu_s")
    return c


def spec() -> Any:
    from lulc_edge.spec import RunSpec

    return RunSpec().replace(overwrite=True, progress=False)


def child_single(cfg: dict[str, Any]) -> dict[str, Any]:
    """``segment_file`` of one date."""
    from lulc_edge.runfile import segment_file

    c = instrument()
    r = segment_file(cfg["src"], cfg["dst"], spec=spec())
    return {"seconds": r.seconds, "device": r.device, "precision": r.precision,
            "tiles": r.tiles_total, **c.report()}


def child_composite(cfg: dict[str, Any]) -> dict[str, Any]:
    """``composite_file`` of the dates (``keep``: each scene's strips kept, not dropped)."""
    from lulc_edge.compositing import CompositeOptions, composite_file
    from lulc_edge.regrid import RegriddedSource

    c = instrument()
    if cfg.get("keep"):  # benchmark only: what re-decoding after drop_cache costs
        RegriddedSource.drop_cache = lambda self: None  # type: ignore[method-assign]
    r = composite_file(cfg["srcs"], cfg["dst"], spec=spec(),
                       options=CompositeOptions(rule=cfg.get("rule", "mean")))
    return {"seconds": r.seconds, "device": r.device, "precision": r.precision,
            "tiles": r.tiles_total, "no_observation": r.no_observation,
            "class_pixels": r.class_pixels, "warnings": r.warnings, **c.report()}


def child_strip_cost(cfg: dict[str, Any]) -> dict[str, Any]:
    """Process CPU seconds of decoding one full-width strip of the 13 bands (as a run's
    ``StripReader`` reads them, under its GDAL settings), over every strip of a date, 3 times:
    what each strip a composite decodes again costs."""
    import rasterio
    from rasterio.windows import Window

    from lulc_edge.gdalenv import gdal_settings
    from lulc_edge.sources.strips import strip_rows

    before, t0, n = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), 0
    with rasterio.Env(**gdal_settings(strips=True)), rasterio.open(cfg["src"]) as ds:
        rows = strip_rows(ds)
        for _ in range(3):
            for r0 in range(0, ds.height, rows):
                ds.read(window=Window(0, r0, ds.width, min(rows, ds.height - r0)))
                n += 1
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"strip_rows": rows, "strips": n, "cpu_s_per_strip": round(cpu / n, 4),
            "wall_s_per_strip": round((time.perf_counter() - t0) / n, 4)}


CHILDREN = {"_single": child_single, "_strip_cost": child_strip_cost,
            "_composite": child_composite, "_env": child_env,
            "_build": lambda cfg: build(Path(cfg["data"]), tuple(cfg["size"]), cfg["n"],
                                        Path(cfg["source"]))}


# ------------------------------------------------------------------------------------ timing
def run_self(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """This script's ``--{name}`` child, timed (``products.timed``: wall, CPU, peak RSS)."""
    return timed([sys.executable, str(Path(__file__).resolve()), f"--{name}", json.dumps(cfg)])


def measure_n(n: int, dates: list[Path], outs: Path, keep: bool, per_strip: float, log: Any
              ) -> dict[str, Any]:
    """One block: singles of the first half, the composite (and its keep-the-strips twin), the
    singles of the second half; the composite's CPU seconds over the singles' split into
    strips decoded again (counted x ``per_strip`` CPU s), accumulators and the rest."""
    def step(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
        r = run_self(name, cfg)
        if "error" in r:
            raise SystemExit(f"composite.py: {name} N={n} failed: {r['error']}")
        log(f"N={n} {name[1:]}{' keep' if cfg.get('keep') else ''}: {r['wall_seconds']:.1f} s, "
            f"{r['cpu_seconds']:.1f} CPU-s, {r['peak_rss_mb']:.0f} MB")
        return r

    used = [str(p) for p in dates[:n]]
    singles: list[dict[str, Any]] = []
    for d in range(n // 2):
        singles.append(step("_single", {"src": used[d], "dst": str(outs / f"single{d}.tif")}))
    comp = step("_composite", {"srcs": used, "dst": str(outs / f"composite{n}.tif")})
    kept = step("_composite", {"srcs": used, "dst": str(outs / f"kept{n}.tif"),
                               "keep": True}) if keep else None
    for d in range(n // 2, n):
        singles.append(step("_single", {"src": used[d], "dst": str(outs / f"single{d}.tif")}))
    wall = sum(s["wall_seconds"] for s in singles)
    cpu = sum(s["cpu_seconds"] for s in singles)
    again = comp["report"]["strips_decoded"] - sum(s["report"]["strips_decoded"]
                                                   for s in singles)
    extra = comp["cpu_seconds"] - cpu
    redecode, acc = again * per_strip, comp["report"]["accumulate_cpu_s"]
    return {"n": n, "composite": comp, "composite_keep_cache": kept, "singles": singles,
            "singles_wall_s": round(wall, 2), "singles_cpu_s": round(cpu, 2),
            "extra_cpu_s": {"total": round(extra, 2), "strips_decoded_again": again,
                            "redecode_est": round(redecode, 2), "accumulate": acc,
                            "rest": round(extra - redecode - acc, 2)},
            "wall_ratio": round(comp["wall_seconds"] / wall, 3),
            "cpu_ratio": round(comp["cpu_seconds"] / cpu, 3),
            "singles_peak_rss_mb_max": max(s["peak_rss_mb"] for s in singles)}


def analyse(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Per N: the worst ratio over rounds; peak RSS of the composites: max/min over N."""
    by_n: dict[int, list[dict[str, Any]]] = {}
    for b in blocks:
        by_n.setdefault(b["n"], []).append(b)
    per_n = {n: {"wall_ratio_max": max(b["wall_ratio"] for b in bs),
                 "cpu_ratio_max": max(b["cpu_ratio"] for b in bs),
                 "composite_peak_rss_mb": max(b["composite"]["peak_rss_mb"] for b in bs)}
             for n, bs in sorted(by_n.items())}
    rss = [v["composite_peak_rss_mb"] for v in per_n.values()]
    flat = round(max(rss) / min(rss), 3) if rss else None
    worst = max((v["wall_ratio_max"] for v in per_n.values()), default=None)
    return {"per_n": per_n, "rss_max_over_min": flat, "wall_ratio_worst": worst,
            "targets": {
                "composite <= 1.1 x sum of singles (wall, worst N)":
                    {"value": worst, "limit": TARGETS["composite_over_singles"],
                     "met": worst is not None and worst <= TARGETS["composite_over_singles"]},
                "composite peak RSS within 10 % over N (max/min)":
                    {"value": flat, "limit": TARGETS["rss_max_over_min"],
                     "met": flat is not None and flat <= TARGETS["rss_max_over_min"]}}}


def run_main(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    data = Path(args.data).resolve()
    ns = [int(v) for v in args.ns.split(",") if v]
    b = run_self("_build", {"data": str(data), "size": list(args.size), "n": max(ns),
                            "source": args.source})
    if "error" in b:
        raise SystemExit(f"composite.py: build failed: {b['error']}")
    built = b["report"]
    log(f"dates {'cached' if built['cached'] else 'built'}: {built['paths'][0]} ...")
    dates = [Path(p) for p in built["paths"]]
    outs = data / "out" / f"composite-{os.getpid()}"
    outs.mkdir(parents=True, exist_ok=True)
    env = run_self("_env", {})["report"]
    # untimed: auto's first run measures the backends (then cached), files enter the page cache
    warm = run_self("_single", {"src": str(dates[0]), "dst": str(outs / "warm.tif")})
    strip = run_self("_strip_cost", {"src": str(dates[0])})["report"]
    res: dict[str, Any] = {
        "schema": SCHEMA, "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "finished": None,
        "command": shlex.join(["python", "benchmarks/composite.py", *sys.argv[1:]]),
        "env": env, "checkout": checkout_rev(),
        "settings": {"size": list(args.size), "ns": ns, "rounds": args.rounds,
                     "keep_n": args.keep_n, "rule": "mean",
                     "spec": "RunSpec().replace(overwrite=True, progress=False): the run's "
                             "defaults (device, precision, tile, batch auto; cloud mask on)",
                     "single": "lulc_edge.runfile.segment_file(date, out, spec=spec)",
                     "composite": "lulc_edge.compositing.composite_file(dates, out, spec=spec,"
                                  " options=CompositeOptions(rule='mean'))"},
        "build": built, "warmup": warm, "strip_cost": strip, "blocks": []}
    for rnd in range(args.rounds):
        for n in (ns if rnd % 2 == 0 else ns[::-1]):
            block = measure_n(n, dates, outs, n == args.keep_n, strip["cpu_s_per_strip"], log)
            res["blocks"].append({"round": rnd, **block})
            res["analysis"] = analyse(res["blocks"])
            write_results(res, Path(args.out))  # a run stopped later keeps what it measured
    for f in outs.iterdir():
        f.unlink()
    outs.rmdir()
    res.update(finished=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               loadavg_end=list(os.getloadavg()), analysis=analyse(res["blocks"]))
    write_results(res, Path(args.out))
    return res


# ------------------------------------------------------------------------------------ report
def markdown(r: dict[str, Any]) -> str:
    env, s, a = r["env"], r["settings"], r["analysis"]
    w, h = s["size"]
    lines = [
        "# Composite of N dates against N single runs (issue 25)", "",
        f"`{r['command']}`, {r['started']} to {r['finished'] or '(unfinished)'}; "
        f"checkout {r['checkout']}.", "",
        f"- Input: a full-width strip {w} x {h} px (10 m) of the real L2A 29RKH scene, "
        f"{r['build']['dates']} dates: {r['build']['how']}; planted cloud cover per date "
        f"{r['build']['planted_cloud_cover']}.",
        f"- Single: `{s['single']}`; composite: `{s['composite']}`; {s['spec']}.",
        "- Each measurement a fresh child process: wall, CPU = user + system of the child, peak "
        "RSS = the child's ru_maxrss (wait4). Per N the order is: singles of the first half of "
        "the dates, the composite, (keep-cache twin), singles of the second half.",
        f"- CPU: {env['cpu_model']}, flags {', '.join(env['cpu_flags']) or 'none of note'}, "
        f"{env['cpus_available']} CPUs available of {env['cpus_os']} (shared with other "
        f"jobs; load average {env['loadavg_start'][0]:.1f} at start"
        + (f", {r['loadavg_end'][0]:.1f} at end" if r.get("loadavg_end") else "") + ")",
        "- " + ", ".join(f"{k} {v}" for k, v in env["libraries"].items()),
        f"- Backend: {r['warmup']['report']['device']} {r['warmup']['report']['precision']}, "
        f"{r['warmup']['report']['tiles']} tiles per date; run defaults {env['run_defaults']}",
        "", "| round | N | composite wall s | singles wall s (sum) | wall ratio | composite CPU s "
        "| singles CPU s (sum) | CPU ratio | composite peak RSS MB | single peak RSS MB (max) "
        "| strips decoded: composite / singles |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for b in r["blocks"]:
        c, ss = b["composite"], b["singles"]
        cr = c["report"]
        lines.append(
            f"| {b['round']} | {b['n']} | {c['wall_seconds']:.1f} | {b['singles_wall_s']:.1f} | "
            f"{b['wall_ratio']:.3f} | {c['cpu_seconds']:.1f} | {b['singles_cpu_s']:.1f} | "
            f"{b['cpu_ratio']:.3f} | {c['peak_rss_mb']:.0f} | {b['singles_peak_rss_mb_max']:.0f}"
            f" | {cr['strips_decoded']} / {sum(x['report']['strips_decoded'] for x in ss)} |")
    sc = r["strip_cost"]
    lines += ["", "Where the composite's CPU seconds beyond the singles' go: strips decoded again "
              f"(after `drop_cache`) x {sc['cpu_s_per_strip']} CPU s per strip (one "
              f"{sc['strip_rows']}-row full-width strip of the 13 bands, measured alone), the "
              "accumulators (`Accumulator.add` / `result`, main thread CPU), and the rest "
              "(noise, and whatever else differs):", "",
              "| round | N | extra CPU s | strips decoded again | re-decoding CPU s (est.) | "
              "accumulators CPU s | rest CPU s |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for b in r["blocks"]:
        e = b["extra_cpu_s"]
        lines.append(f"| {b['round']} | {b['n']} | {e['total']:.1f} | "
                     f"{e['strips_decoded_again']} | {e['redecode_est']:.1f} | "
                     f"{e['accumulate']:.1f} | {e['rest']:.1f} |")
    kept = [b for b in r["blocks"] if b.get("composite_keep_cache")]
    if kept:
        lines += ["", "Strips kept (benchmark only: `drop_cache` a no-op) against dropped, "
                  "in the same block:", "",
                  "| round | N | dropped: wall s / CPU s / peak RSS MB / strips | kept: wall s / "
                  "CPU s / peak RSS MB / strips |", "|---:|---:|---|---|"]
        for b in kept:
            c, k = b["composite"], b["composite_keep_cache"]
            lines.append(
                f"| {b['round']} | {b['n']} | {c['wall_seconds']:.1f} / {c['cpu_seconds']:.1f} / "
                f"{c['peak_rss_mb']:.0f} / {c['report']['strips_decoded']} | "
                f"{k['wall_seconds']:.1f} / {k['cpu_seconds']:.1f} / {k['peak_rss_mb']:.0f} / "
                f"{k['report']['strips_decoded']} |")
    lines += ["", "## Targets", ""]
    for name, t in a["targets"].items():
        lines.append(f"- {name}: {t['value']} (limit {t['limit']}): "
                     f"{'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines) + "\n"


NOTES_MARK = "<!-- notes: kept when benchmarks/composite.py rewrites this file -->\n"


def write_results(res: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "composite.json").write_text(json.dumps(res, indent=1))
    write_markdown(out / "composite.md", markdown(res), NOTES_MARK)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=parse_size, default=DEFAULT_SIZE,
                   help=f"WxH of the strip at 10 m (default {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]})")
    p.add_argument("--ns", default="2,4,8", help="comma list of scene counts N")
    p.add_argument("--keep-n", type=int, default=4,
                   help="N whose composite is also run with the strips kept (0: none)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--data", default=os.environ.get("LULC_BENCH_DATA", "/tmp/lulc-edge-bench"),
                   help="where built dates are cached ($LULC_BENCH_DATA)")
    p.add_argument("--source", default=str(SOURCE), help="the real per-band L2A COGs used")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--quiet", action="store_true")
    for name in CHILDREN:
        p.add_argument(f"--{name}", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if run_child(args, CHILDREN):
        return 0

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    run_main(args, log)
    if not args.quiet:
        print((Path(args.out) / "composite.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
