"""Benchmark of remote reads (issue 24): the products benchmark's per-band COG folder served
over loopback HTTP, mapped through its STAC item's URL, against the same folder on disk.

Build: the COG folder of ``benchmarks/products.py`` (the real 29RKH spectra mirror-tiled to a
full 10980 px MGRS tile by default; ``--size WxH`` for tiny runs): products.py's build under
``--data`` when there is one of that size, else the COG folder alone (no JPEG 2000), cached.

Serving: a small threaded HTTP server on 127.0.0.1 in this process (single byte ranges, HEAD,
ETag and Last-Modified, files read with seek, not whole) that counts requests and bytes.

Measured, each run through the CLI in its own subprocess of the checkout under test (``lulc-edge
run INPUT --bbox ... -o OUT --overwrite -q --json``, CLI defaults), rounds interleaved (local
folder, then the item over HTTP; the other order the next round):

* two areas: 10 x 10 km given in lon/lat (its bounding window on the UTM grid, off the block
  and 4 px grids) and 1000 x 1000 px given in the scene's CRS: bytes and requests over HTTP
  against the bytes of the blocks each band file holds under the area and its halo (the area's
  window on the 10 m grid, snapped as a run snaps it, grown by the model's halo; each band's
  own blocks, with the bilinear kernel's pixel), the open's share (headers and the checks at
  open, measured alone), and wall/CPU seconds against the same area from the local folder;
* the whole product over HTTP against the local folder (one interleaved pair, ``--whole``).

Every map over HTTP must equal its local map, and each area's map the same pixels of the whole
map (when the whole pair runs). GDAL's version and settings are recorded with the numbers.
Writes ``OUT/remote-WxH.json`` and ``OUT/remote-WxH.md``. The machine is shared: compare
ratios within one run, never numbers across runs.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import os
import re
import shutil
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import products  # noqa: E402

SCHEMA = 1
#: The areas: name -> (kind, box). "lonlat": a 10 x 10 km box in EPSG:4326 around the point
#: at these scene pixels (col, row); "px": scene pixels (col0, row0, col1, row1), in the CRS
#: (scaled down with a scene smaller than a tile, ``--size``).
AREAS = {"10 x 10 km (lon/lat box)": ("lonlat", (5490.0, 5490.0, 10_000.0)),
         "1000 x 1000 px (UTM box)": ("px", (6203.3, 2107.6, 7203.3, 3107.6))}
TARGETS = {"bytes_over_blocks": 1.3, "http_over_local_wall": 1.2}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: Text after this line of the Markdown is hand-written analysis, kept when it is rewritten.
NOTES_MARK = "<!-- notes: kept when benchmarks/remote.py rewrites this file -->\n"


# ------------------------------------------------------------------------------------ server
class _Handler(BaseHTTPRequestHandler):
    server: RangeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(False)

    def do_GET(self) -> None:
        self._serve(True)

    def _serve(self, body: bool) -> None:
        path = urlsplit(self.path).path
        file = self.server.root / path.lstrip("/")
        if ".." in Path(path).parts or not file.is_file():
            self._reply(404, {}, b"", body)
            return
        st = file.stat()
        size, a, b = st.st_size, 0, st.st_size - 1
        status, headers = 200, {
            "ETag": f'"{st.st_mtime_ns:x}-{size:x}"', "Accept-Ranges": "bytes",
            "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True)}
        m = _RANGE.match(self.headers.get("Range") or "")
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                a, b = int(m.group(1)), min(int(m.group(2) or size - 1), size - 1)
            else:
                a = max(0, size - int(m.group(2)))
            if a > b:
                self._reply(416, {"Content-Range": f"bytes */{size}"}, b"", body)
                return
            status, headers["Content-Range"] = 206, f"bytes {a}-{b}/{size}"
        with open(file, "rb") as f:
            f.seek(a)
            data = f.read(b - a + 1) if body else b""
        self.server.count(len(data))
        self._reply(status, headers, data, body, length=b - a + 1)

    def _reply(self, status: int, headers: dict[str, str], data: bytes, body: bool,
               length: int | None = None) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        if body:
            self.wfile.write(data)


class RangeServer(ThreadingHTTPServer):
    """Serves ``root`` on 127.0.0.1 (a free port); counts the requests it serves a file for
    and the body bytes sent."""

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self._lock = threading.Lock()
        self.requests = self.bytes = 0
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"

    def count(self, sent: int) -> None:
        with self._lock:
            self.requests += 1
            self.bytes += sent

    def take(self) -> tuple[int, int]:
        """(requests, bytes) since the last call."""
        with self._lock:
            out = (self.requests, self.bytes)
            self.requests = self.bytes = 0
            return out


# ------------------------------------------------------------------------------------- build
def cog_folder(data: Path, size: tuple[int, int]) -> Path:
    """products.py's COG folder of ``size`` (its full build if there is one), else built alone."""
    built = products.product_paths(data, size)["cog"]
    if built.is_dir():
        return built
    base = data / f"l2a-29RKH-{size[0]}x{size[1]}-cog"
    done = base / products.COG_ITEM
    if done.is_dir():
        return done
    tmp = base / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for band, res in products.BANDS.items():
        write_cog(products.band_array(band, size, products.SOURCE), res, tmp / f"{band}.tif")
    (tmp / "item.json").write_text(json.dumps(products.stac_item(size), indent=1))
    tmp.rename(done)
    return done


def write_cog(a: Any, res: int, dst: Path) -> None:
    """One band as products.py writes its COGs."""
    import rasterio
    import rasterio.shutil
    from rasterio.io import MemoryFile
    from rasterio.transform import from_origin

    profile = {"driver": "GTiff", "width": a.shape[1], "height": a.shape[0], "count": 1,
               "dtype": a.dtype.name, "crs": f"EPSG:{products.EPSG}", "nodata": 0,
               "transform": from_origin(*products.ORIGIN, res, res)}
    with MemoryFile() as mf, mf.open(**profile) as mem:
        mem.write(a, 1)
        rasterio.shutil.copy(mem, str(dst), driver="COG", **products.COG_OPTIONS,
                             OVERVIEW_RESAMPLING="NEAREST" if a.dtype.name == "uint8"
                             else "AVERAGE")


# ---------------------------------------------------------------------------------- children
def bbox_args(name: str, cfg: dict[str, Any]) -> list[str]:
    """The CLI's ``--bbox``/``--bbox-crs`` of area ``name`` (from the child ``_plan``)."""
    return ["--bbox", ",".join(f"{v:.9f}" for v in cfg[name]["bbox"]), "--bbox-crs",
            cfg[name]["bbox_crs"]]


def child_plan(cfg: dict[str, Any]) -> dict[str, Any]:
    """Each area's box, window, the run's read window, and the bytes of the blocks under the
    area and its halo in each band file (and of the full-width strips of those rows)."""
    import rasterio
    from rasterio.warp import transform_bounds

    from lulc_edge import Engine, EngineOptions, bundled_model
    from lulc_edge.aoi import Area, area_window, restrict
    from lulc_edge.modes import default_tile, get_mode
    from lulc_edge.sources import open_source

    folder = Path(cfg["folder"])
    engine = Engine(bundled_model(), EngineOptions(device="cpu", threads=1))
    c = engine.contract
    out: dict[str, Any] = {"halo": c.halo, "alignment": c.alignment,
                           "tile": default_tile("seamless", "cpu")}
    with open_source(folder) as src:
        t, s = src.transform, min(src.width, src.height) / products.SIDE  # smaller scenes
        for name, (kind, box) in AREAS.items():
            if kind == "lonlat":
                col, row, metres = (v * s for v in box)
                x, y = t * (col, row)
                x0, y0, x1, y1 = x - metres / 2, y - metres / 2, x + metres / 2, y + metres / 2
                bbox = transform_bounds(src.crs, "EPSG:4326", x0, y0, x1, y1)
                area, crs = Area.from_bbox(bbox), "EPSG:4326"
            else:
                (x0, y1), (x1, y0) = t * (box[0] * s, box[1] * s), t * (box[2] * s, box[3] * s)
                bbox, crs = (x0, y0, x1, y1), src.crs.to_string()
                area = Area.from_bbox(bbox, crs)
            win = area_window(area, src, c.alignment)
            seen = []
            src.limit = seen.append  # what the run's plan tells the source it reads
            _, mode = restrict(src, area, get_mode("seamless"), engine)
            mode.plan(int(win.height), int(win.width), out["tile"], engine)
            read = seen[0]
            del src.limit
            halo = (max(0, win.col_off - c.halo), max(0, win.row_off - c.halo),
                    min(src.width, win.col_off + win.width + c.halo),
                    min(src.height, win.row_off + win.height + c.halo))
            per_band, totals = {}, {"blocks": 0, "full_width": 0, "run_window_blocks": 0}
            for f in sorted(folder.glob("*.tif")):
                with rasterio.open(f) as ds:
                    row = band_bytes(ds, halo, (read.col_off, read.row_off,
                                                read.col_off + read.width,
                                                read.row_off + read.height))
                per_band[f.stem] = row
                for k in totals:
                    totals[k] += row[k]
            out[name] = {"bbox": list(bbox), "bbox_crs": crs,
                         "window": [int(v) for v in (win.col_off, win.row_off, win.width,
                                                     win.height)],
                         "with_halo": [int(v) for v in halo],
                         "run_read_window": [int(v) for v in (read.col_off, read.row_off,
                                                              read.width, read.height)],
                         "bytes": totals, "per_band": per_band}
    return out


def band_bytes(ds: Any, box: tuple[int, ...], run_box: tuple[int, ...]) -> dict[str, int]:
    """Bytes of a COG's full-resolution blocks under ``box`` (10 m pixels: col0, row0, col1,
    row1) on the band's own grid with the bilinear kernel's pixel, of the full-width strips of
    those rows, and of the blocks under ``run_box`` (what the run's tiles read)."""
    f = round(ds.transform.a / 10)
    bh, bw = ds.block_shapes[0]

    def span(a: int, b: int, n: int, side: int) -> range:
        lo, hi = max(0, a // f - 1), min(n, -(-b // f) + 1)
        return range(lo // side, -(-hi // side))

    def size(i: int, j: int) -> int:
        return int(ds.get_tag_item(f"BLOCK_SIZE_{i}_{j}", "TIFF", bidx=1) or 0)

    def under(b: tuple[int, ...], full: bool = False) -> int:
        cols = range(-(-ds.width // bw)) if full else span(b[0], b[2], ds.width, bw)
        return sum(size(i, j) for j in span(b[1], b[3], ds.height, bh) for i in cols)

    return {"blocks": under(box), "full_width": under(box, True),
            "run_window_blocks": under(run_box), "block": bw}


def child_open(cfg: dict[str, Any]) -> dict[str, Any]:
    """Open the item (its headers and the checks at open) under a run's settings, no run."""
    from lulc_edge.contract import MODEL_BANDS
    from lulc_edge.gdalenv import open_for_run

    t0 = time.perf_counter()
    with open_for_run(cfg["input"], MODEL_BANDS) as src:
        size = (src.width, src.height)
    return {"seconds": round(time.perf_counter() - t0, 3), "grid": size}


def child_compare(cfg: dict[str, Any]) -> dict[str, Any]:
    """Pixels differing between maps: each (a, b) pair; an area map against the same pixels
    of a whole map when b is larger."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    out = {}
    for a, b in cfg["pairs"]:
        with rasterio.open(a) as x, rasterio.open(b) as y:
            col = round((x.transform.c - y.transform.c) / y.transform.a)
            row = round((x.transform.f - y.transform.f) / y.transform.e)
            want = y.read(1, window=Window(col, row, x.width, x.height))
            out[f"{Path(a).name} vs {Path(b).name}"] = int(np.count_nonzero(x.read(1) != want))
    return out


CHILDREN = {"_plan": child_plan, "_open": child_open, "_compare": child_compare}


def run_self(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    res = products.timed([sys.executable, str(Path(__file__).resolve()), f"--{name}",
                          json.dumps(cfg)])
    if res.get("exit"):
        raise SystemExit(f"--{name} failed: {res.get('error')}")
    return res["report"]


# ------------------------------------------------------------------------------------ timing
def measured(server: RangeServer, src: str, out: Path, extra: list[str]) -> dict[str, Any]:
    """One CLI run; over HTTP the requests and bytes the server saw during it."""
    server.take()
    res = products.run_cli(src, out, tuple(extra))
    res["requests"], res["bytes"] = server.take()
    res.pop("report", None)
    if res.get("exit"):
        raise SystemExit(f"run of {src} failed: {res.get('error')}")
    return res


def best(runs: list[dict[str, Any]], key: str) -> float:
    return min(r[key] for r in runs)


def analyse(r: dict[str, Any]) -> None:
    """Ratios of each area (best of rounds, one run) and of the whole pair, against targets."""
    for name, a in r["areas"].items():
        loc, http = a["runs"]["local"], a["runs"]["http"]
        blocks = r["plan"][name]["bytes"]["blocks"]
        fetched = max(x["bytes"] for x in http)
        a["summary"] = {
            "local_wall_best": best(loc, "wall_seconds"), "http_wall_best": best(http,
                                                                                 "wall_seconds"),
            "local_cpu_best": best(loc, "cpu_seconds"), "http_cpu_best": best(http,
                                                                             "cpu_seconds"),
            "http_over_local_wall": round(best(http, "wall_seconds")
                                          / best(loc, "wall_seconds"), 3),
            "http_over_local_cpu": round(best(http, "cpu_seconds") / best(loc, "cpu_seconds"),
                                         3),
            "bytes_fetched": fetched, "requests": max(x["requests"] for x in http),
            "bytes_blocks_area_halo": blocks,
            "bytes_over_blocks": round(fetched / blocks, 3),
            "bytes_full_width_strips": r["plan"][name]["bytes"]["full_width"],
            "bytes_over_full_width": round(fetched / r["plan"][name]["bytes"]["full_width"], 3),
        }
    w = r.get("whole")
    if w:
        w["http_over_local_wall"] = round(w["http"]["wall_seconds"]
                                          / w["local"]["wall_seconds"], 3)
        w["http_over_local_cpu"] = round(w["http"]["cpu_seconds"] / w["local"]["cpu_seconds"], 3)
        w["bytes_over_files"] = round(w["http"]["bytes"] / r["folder_bytes"], 3)


def fmt_run(x: dict[str, Any]) -> str:
    return (f"{x['wall_seconds']:.1f} s wall, {x['cpu_seconds']:.1f} CPU-s, "
            f"{x['peak_rss_mb']:.0f} MB")


def markdown(r: dict[str, Any]) -> str:
    env = r["env"]
    lines = [f"# Remote reads: the COG folder over loopback HTTP ({r['size'][0]} x "
             f"{r['size'][1]} px)", "",
             f"Written by `benchmarks/remote.py` on {r['date']}; checkout {env['checkout']}.",
             f"CPU: {env['cpu_model']} ({env['cpus_available']} of {env['cpus_os']} cores "
             f"available, flags {', '.join(env['cpu_flags']) or 'none'}); load at start "
             f"{env['loadavg_start']}. GDAL {env['libraries'].get('gdal')}, rasterio "
             f"{env['libraries'].get('rasterio')}, onnxruntime "
             f"{env['libraries'].get('onnxruntime')}, numpy {env['libraries'].get('numpy')}.",
             f"GDAL settings of a run: {json.dumps(env['run_defaults']['gdal'])}; for remote "
             f"files also {json.dumps(r['gdal_remote'])}. Environment: "
             f"{json.dumps(env['env_vars'])}.",
             f"Input: {r['folder']} ({r['folder_bytes'] / 2**20:.1f} MB, 13 COGs, DEFLATE "
             f"predictor 2, 1024 px blocks), served by a threaded Range server on 127.0.0.1 "
             f"(this script); over HTTP the run reads `item.json` by URL. Model halo "
             f"{r['plan']['halo']} px, tile {r['plan']['tile']} px. Rounds: {r['rounds']}, "
             "interleaved (local then HTTP, the other order the next round); best of rounds.",
             "", "A run of an area fetches everything (headers, the checks at open, the pass) "
             "only around the area; for scale, opening the item without an area (headers and "
             f"the whole-scene checks, 13 files) fetches {r['open']['requests']} requests, "
             f"{r['open']['bytes'] / 2**20:.2f} MB.", "",
             "| area | window (px) | bytes fetched (whole run) | blocks under area + halo | "
             "ratio | full-width strips of those rows | requests | local wall / CPU | "
             "HTTP wall / CPU | HTTP / local wall |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, a in r["areas"].items():
        s, p = a["summary"], r["plan"][name]
        lines.append(
            f"| {name} | {p['window'][2]} x {p['window'][3]} at ({p['window'][0]}, "
            f"{p['window'][1]}) | {s['bytes_fetched'] / 2**20:.2f} MB | "
            f"{s['bytes_blocks_area_halo'] / 2**20:.2f} MB | {s['bytes_over_blocks']} | "
            f"{s['bytes_full_width_strips'] / 2**20:.1f} MB | {s['requests']} | "
            f"{s['local_wall_best']:.1f} / {s['local_cpu_best']:.1f} s | "
            f"{s['http_wall_best']:.1f} / {s['http_cpu_best']:.1f} s | "
            f"{s['http_over_local_wall']} |")
    lines += ["", f"Targets: bytes <= {TARGETS['bytes_over_blocks']}x the blocks under the area "
              f"and its halo; HTTP <= {TARGETS['http_over_local_wall']}x the local folder's "
              "wall time.", ""]
    w = r.get("whole")
    if w:
        lines += ["Whole product, one interleaved pair"
                  + (f" (measured by an earlier run: {w['from']}):" if w.get("from") else ":"),
                  "",
                  f"- local folder: {fmt_run(w['local'])}",
                  f"- item over HTTP: {fmt_run(w['http'])}, {w['http']['requests']} requests, "
                  f"{w['http']['bytes'] / 2**20:.1f} MB ({w['bytes_over_files']}x the files)",
                  f"- HTTP / local: {w['http_over_local_wall']} wall, "
                  f"{w['http_over_local_cpu']} CPU", ""]
    else:
        lines += ["Whole product: not run (`--whole` not given).", ""]
    lines += ["Maps: pixels differing (must all be 0): "
              + ", ".join(f"{k}: {v}" for k, v in r["maps_differing"].items()), ""]
    return "\n".join(lines)


def write(r: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"remote-{r['size'][0]}x{r['size'][1]}"
    (out / f"{stem}.json").write_text(json.dumps(r, indent=1))
    md = out / f"{stem}.md"
    notes = ""
    if md.exists() and NOTES_MARK in md.read_text():
        notes = md.read_text().split(NOTES_MARK, 1)[1]
    md.write_text(markdown(r) + "\n" + NOTES_MARK + notes)
    return md


def main(a: argparse.Namespace) -> dict[str, Any]:
    from lulc_edge import remote

    size = products.parse_size(a.size) if a.size else (products.SIDE, products.SIDE)
    folder = cog_folder(Path(a.data), size)
    work = Path(a.data) / "remote-out"
    work.mkdir(parents=True, exist_ok=True)
    r: dict[str, Any] = {"schema": SCHEMA, "size": list(size), "folder": str(folder),
                         "folder_bytes": products.du(folder), "rounds": a.rounds,
                         "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                         "env": products.run_self("_env", {})["report"],
                         "gdal_remote": {**remote.gdal_remote_env(), **remote.FORCED}}
    r["plan"] = run_self("_plan", {"folder": str(folder)})
    server = RangeServer(folder.parent)
    item = server.url(f"{folder.name}/item.json")
    server.take()
    run_self("_open", {"input": item})
    r["open"] = dict(zip(("requests", "bytes"), server.take(), strict=True))
    r["areas"], pairs = {}, []
    for name in AREAS:
        runs: dict[str, list] = {"local": [], "http": []}
        for k in range(a.rounds):
            for form in (("local", "http") if k % 2 == 0 else ("http", "local")):
                out = work / f"{'area1' if 'km' in name else 'area2'}-{form}.tif"
                runs[form].append(measured(server, str(folder) if form == "local" else item,
                                           out, bbox_args(name, r["plan"])))
                print(f"{name} {form}: {fmt_run(runs[form][-1])}, {runs[form][-1]['bytes']} B",
                      file=sys.stderr, flush=True)
        r["areas"][name] = {"runs": runs}
        stem = "area1" if "km" in name else "area2"
        pairs.append([str(work / f"{stem}-http.tif"), str(work / f"{stem}-local.tif")])
    if a.whole_from:  # the whole pair of an earlier run (its maps still in the work folder)
        prev = json.loads(Path(a.whole_from).read_text())
        r["whole"] = {**prev["whole"], "from": f"{prev['env']['checkout']}, {prev['date']}"}
        pairs += [[p[1], str(work / "whole-local.tif")] for p in pairs[:2]]
    r["maps_differing"] = run_self("_compare", {"pairs": pairs})
    analyse(r)
    print(write(r, Path(a.out)), file=sys.stderr)  # the areas' results, before the long part
    if a.whole:
        r["whole"] = {form: measured(server, str(folder) if form == "local" else item,
                                     work / f"whole-{form}.tif", [])
                      for form in ("local", "http")}
        pairs.append([str(work / "whole-http.tif"), str(work / "whole-local.tif")])
        pairs += [[p[1], str(work / "whole-local.tif")] for p in pairs[:2]]
        r["maps_differing"] = run_self("_compare", {"pairs": pairs})
        analyse(r)
        print(write(r, Path(a.out)), file=sys.stderr)
    server.shutdown()
    return r


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("LULC_BENCH_DATA", "/tmp/lulc-edge-bench"))
    p.add_argument("--size", help="WxH of the 10 m grid (default a full 10980 px tile)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per area")
    p.add_argument("--whole", action="store_true",
                   help="also the whole product, local folder against HTTP (one pair)")
    p.add_argument("--whole-from", metavar="JSON",
                   help="report the whole pair of an earlier run's JSON (its maps compared)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    for name in CHILDREN:
        p.add_argument(f"--{name}", help=argparse.SUPPRESS)
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse(None)
    for child, fn in CHILDREN.items():
        cfg = getattr(args, child)
        if cfg is not None:
            print(json.dumps(fn(json.loads(cfg))))
            break
    else:
        main(args)
