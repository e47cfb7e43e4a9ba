"""Benchmark on the inputs users have (issue 15): one real L2A scene as a .SAFE, its .zip, a
per-band COG folder and a 13-band stack, timed through the CLI in one interleaved run.

Build (cached under ``--data``, keyed by size; a rerun does not rebuild): the real spectra and
SCL of ``../shared/data/l2a-29RKH-20200219`` (per-band COGs, 100/200/600 m) are mirror-tiled,
each band on its own grid, up to a Sentinel-2 grid of the chosen size at 10/20/60 m: a full
10980 x 10980 MGRS tile (default), a full-width strip 10980 x 2520 (``--quick``), or ``--size
WxH`` for tiny runs. The pixels are held four ways:

* ``.SAFE``: ``GRANULE/L2A_T.../IMG_DATA/R10m|R20m|R60m/T29RKH_..._B02_10m.jp2`` ... (each band
  once, at its native resolution, and SCL_20m), lossless JPEG 2000 with 1024 px tiles (GDAL
  JP2OpenJPEG, QUALITY=100 REVERSIBLE=YES), and ``MTD_MSIL2A.xml`` with PROCESSING_BASELINE
  04.00 and BOA_ADD_OFFSET -1000: reflectance DN are stored +1000, so the harmonised values
  equal the stack's;
* its ``.zip``, entries stored (ZIP_STORED: JPEG 2000 does not deflate further; ESA's zips are
  deflated, which costs the reader nothing but inflating a few per cent);
* a per-band COG folder (``B01.tif`` ... ``SCL.tif`` at native resolutions, DEFLATE predictor 2,
  1024 px blocks, overviews) with a STAC ``item.json`` (baseline 04.00,
  ``earthsearch:boa_offset_applied`` false): the same DN and the same offset handling as the
  SAFE;
* the 13-band stack on the 10 m grid, written from the windows ``lulc_edge.sources.open_source``
  returns for the COG folder (so it holds exactly what the reader yields; DEFLATE like the
  synthetic stacks of throughput.py).

Timing, rounds interleaved (stack, COG folder, SAFE, zip, decode-once, pure, then again), each
in its own subprocess of the checkout under test (``--checkout`` or ``$LULC_EDGE_CHECKOUT``,
default this script's repository): ``lulc-edge run FORM -o OUT --overwrite -q --json`` (CLI
defaults); decode-once (every JPEG 2000 band file read whole once, ``GDAL_NUM_THREADS=ALL_CPUS``);
pure inference (``Segmenter.predict`` on the stack in memory, device and precision auto, only
``predict`` timed). ``--backends cpu:fp32,cpu:int8`` adds, per device and precision named, the
stack through the CLI with ``--device/--precision`` and pure inference on that backend, for the
issue's "stack >= 0.9 x pure inference" on the CPU provider. ``--device cuda`` (and
``--precision``) runs every form and pure inference on that device instead of auto, for a GPU
machine; ``--reader`` adds the reader alone on each form (every tile of a run's plan read through
``open_source`` with a run's GDAL settings, no inference): what a form can feed an accelerator.
Wall seconds, CPU seconds (RUSAGE_CHILDREN deltas) and peak RSS (the child's ru_maxrss from
wait4) for each. The class maps of the SAFE, zip and COG folder must be identical; their
agreement with the stack's map is reported.

Writes ``OUT/products.json`` and ``OUT/products.md`` (default ``benchmarks/results``). The
machine is shared: compare ratios within one run, never numbers across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHECKOUT_ENV = "LULC_EDGE_CHECKOUT"
CHECKOUT = Path(os.environ.get(CHECKOUT_ENV) or ROOT).resolve()
for _p in (ROOT, CHECKOUT):  # the checkout's lulc_edge wins; benchmarks.throughput from either
    if str(_p) in sys.path:
        sys.path.remove(str(_p))
    sys.path.insert(0, str(_p))

from benchmarks.throughput import env_info, mps, peak_rss_mb  # noqa: E402

SCHEMA = 1
#: Bump when the built products change: cached builds of another version are rebuilt.
BUILD_VERSION = 1
SIDE = 10980
QUICK_SIZE = (SIDE, 2520)
SHARED_DATA = Path(os.environ.get("LULC_EDGE_SHARED_DATA", ROOT.parent / "shared" / "data"))
SOURCE = SHARED_DATA / "l2a-29RKH-20200219"
FORMS = ("stack", "cog", "safe", "zip")
FORM_NAMES = {"stack": "13-band DEFLATE stack", "cog": "per-band COG folder",
              "safe": ".SAFE (lossless JPEG 2000, 1024 tiles)", "zip": ".zip of the .SAFE"}
#: Band -> native resolution (m), as the product stores them (ESA file names: B02, B8A, SCL).
BANDS = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
         "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20, "SCL": 20}
OFFSET = 1000  # DN = harmonised value + 1000 (processing baseline 04.00)
ORIGIN = (199980.0, 2800020.0)  # 29RKH's upper-left corner, EPSG:32629
EPSG = 32629
SENSING = "20200219T112111"
PRODUCT = f"S2A_MSIL2A_{SENSING}_N0400_R037_T29RKH_20200219T123947"
GRANULE = "L2A_T29RKH_A024344_20200219T113105"
COG_ITEM = "S2A_29RKH_20200219_0_L2A"
JP2_OPTIONS = {"QUALITY": "100", "REVERSIBLE": "YES", "BLOCKXSIZE": "1024",
               "BLOCKYSIZE": "1024", "NUM_THREADS": "ALL_CPUS"}
COG_OPTIONS = {"COMPRESS": "DEFLATE", "PREDICTOR": "2", "BLOCKSIZE": "1024",
               "OVERVIEWS": "AUTO", "NUM_THREADS": "ALL_CPUS"}
#: As lulc_edge.synthetic writes its stacks (what throughput.py and the README measured).
STACK_OPTIONS = {"tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
                 "predictor": 2, "zlevel": 1}
#: Text after this line of products.md is hand-written analysis, kept when the file is rewritten.
NOTES_MARK = "<!-- notes: kept when benchmarks/products.py rewrites this file -->\n"
TARGETS = {"cog_over_stack": 1.15, "safe_over_decode_plus_pure": 1.0,
           "stack_over_pure_rate": 0.9, "peak_rss_mb": 1536}


# ------------------------------------------------------------------------------------ build
def grid_size(size: tuple[int, int], res: int) -> tuple[int, int]:
    """(width, height) of a band's grid for a 10 m grid of ``size`` (ceil: covers it)."""
    f = res // 10
    return -(-size[0] // f), -(-size[1] // f)


def mirror_index(n_src: int, n_out: int) -> Any:
    """0, 1, ..., n-1, n-1, ..., 0, 0, 1, ...: the source mirrored at each edge, ``n_out`` long.

    Sources whose sizes are in the ratio of their resolutions (1098, 549, 183) stay co-located
    at every resolution, so the 10/20/60 m grids of the result hold one consistent scene.
    """
    import numpy as np

    i = np.arange(n_out) % (2 * n_src)
    return np.where(i < n_src, i, 2 * n_src - 1 - i)


def band_array(band: str, size: tuple[int, int], source: Path) -> Any:
    """The band at its native resolution for a 10 m grid of ``size``, as stored (DN)."""
    import numpy as np
    import rasterio

    with rasterio.open(source / f"{band}.tif") as ds:
        src = ds.read(1)
    w, h = grid_size(size, BANDS[band])
    a = src[np.ix_(mirror_index(src.shape[0], h), mirror_index(src.shape[1], w))]
    if band == "SCL":
        return a.astype(np.uint8)
    return np.where(a > 0, a.astype(np.uint16) + OFFSET, 0).astype(np.uint16)


def jp2_name(band: str) -> str:
    """ESA's name and folder of a band file: ``R10m/T29RKH_20200219T112111_B02_10m.jp2``."""
    res = BANDS[band]
    return f"R{res}m/T29RKH_{SENSING}_{band}_{res}m.jp2"


def mtd_xml() -> str:
    """A minimal MTD_MSIL2A.xml: what sources.metadata.parse_mtd_xml reads, in ESA's layout."""
    offsets = "\n".join(f'          <BOA_ADD_OFFSET band_id="{i}">-{OFFSET}</BOA_ADD_OFFSET>'
                        for i in range(13))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_URI>{PRODUCT}.SAFE</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>
      <PROCESSING_BASELINE>04.00</PROCESSING_BASELINE>
      <GENERATION_TIME>2020-02-19T12:39:47.000000Z</GENERATION_TIME>
    </Product_Info>
    <Product_Image_Characteristics>
      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>
      <BOA_ADD_OFFSET_VALUES_LIST>
{offsets}
      </BOA_ADD_OFFSET_VALUES_LIST>
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-2A_User_Product>
"""


def stac_item(size: tuple[int, int]) -> dict[str, Any]:
    """A STAC item as earth-search writes one, with the fields parse_stac_item reads."""
    assets = {}
    for band, res in BANDS.items():
        w, h = grid_size(size, res)
        assets[band] = {"href": f"./{band}.tif", "type": "image/tiff; application=geotiff; "
                        "profile=cloud-optimized", "proj:shape": [h, w],
                        "proj:transform": [res, 0, ORIGIN[0], 0, -res, ORIGIN[1]],
                        "roles": ["data"]}
    return {"type": "Feature", "stac_version": "1.0.0", "id": COG_ITEM,
            "properties": {"datetime": "2020-02-19T11:34:25.405000Z", "proj:epsg": EPSG,
                           "s2:product_type": "S2MSI2A", "s2:processing_baseline": "04.00",
                           "s2:product_uri": f"{PRODUCT}.SAFE",
                           "earthsearch:boa_offset_applied": False},
            "assets": assets, "links": []}


def write_band(a: Any, res: int, jp2: Path, cog: Path) -> tuple[float, float]:
    """One band as JPEG 2000 and as COG; seconds spent on each."""
    import rasterio
    import rasterio.shutil
    from rasterio.io import MemoryFile
    from rasterio.transform import from_origin

    scl = a.dtype.name == "uint8"
    profile = {"driver": "GTiff", "width": a.shape[1], "height": a.shape[0], "count": 1,
               "dtype": a.dtype.name, "crs": f"EPSG:{EPSG}",
               "transform": from_origin(*ORIGIN, res, res)}
    with MemoryFile() as mf, mf.open(**profile) as mem:
        mem.write(a, 1)
        t0 = time.perf_counter()
        rasterio.shutil.copy(mem, str(jp2), driver="JP2OpenJPEG", **JP2_OPTIONS)
        t1 = time.perf_counter()
        mem.nodata = 0
        rasterio.shutil.copy(mem, str(cog), driver="COG", **COG_OPTIONS,
                             OVERVIEW_RESAMPLING="NEAREST" if scl else "AVERAGE")
        return t1 - t0, time.perf_counter() - t1


def write_stack(cog_dir: Path, dst: Path, rows: int = 512) -> None:
    """The 13-band stack of what ``open_source`` returns for the COG folder, ``rows`` at a time."""
    import rasterio
    from rasterio.windows import Window

    from lulc_edge.sources import open_source

    with open_source(cog_dir) as src:
        profile = {"driver": "GTiff", "width": src.width, "height": src.height,
                   "count": len(src.band_names), "dtype": "uint16", "crs": src.crs,
                   "transform": src.transform, **STACK_OPTIONS}
        with rasterio.open(dst, "w", **profile) as out:
            out.descriptions = src.band_names
            for r0 in range(0, src.height, rows):
                win = Window(0, r0, src.width, min(rows, src.height - r0))
                out.write(src.read(win), window=win)


def product_paths(data: Path, size: tuple[int, int]) -> dict[str, Path]:
    """Where the forms of a scene of ``size`` live (built or not)."""
    base = data / f"l2a-29RKH-{size[0]}x{size[1]}"
    return {"base": base, "safe": base / f"{PRODUCT}.SAFE", "zip": base / f"{PRODUCT}.zip",
            "cog": base / COG_ITEM, "stack": base / "stack.tif", "build": base / "build.json"}


def sample_windows(width: int, height: int, side: int = 256) -> list[Any]:
    """Top-left, centre and bottom-right windows: the pixel check after a build."""
    from rasterio.windows import Window

    w, h = min(side, width), min(side, height)
    origins = dict.fromkeys([(0, 0), ((width - w) // 2, (height - h) // 2),
                             (width - w, height - h)])
    return [Window(c, r, w, h) for c, r in origins]


def same_pixels(paths: dict[str, Path], windows: list[Any] | None = None) -> dict[str, Any]:
    """Read each form through ``open_source`` on ``windows`` (default: three samples) and
    count differing values against the COG folder (0 everywhere: the forms hold one scene)."""
    import numpy as np

    from lulc_edge.sources import open_source

    srcs = {f: open_source(paths[f]) for f in FORMS}
    try:
        ref = srcs["cog"]
        wins = windows or sample_windows(ref.width, ref.height)
        diff = {f: 0 for f in FORMS}
        worst: dict[str, dict[str, int]] = {f: {} for f in FORMS}
        for win in wins:
            a = ref.read(win).astype(np.int32)
            for f in FORMS:
                d = np.abs(srcs[f].read(win) - a)
                diff[f] += int(np.count_nonzero(d))
                for i in np.flatnonzero(d.max(axis=(1, 2))):
                    b = ref.band_names[i]
                    worst[f][b] = max(worst[f].get(b, 0), int(d[i].max()))
        return {"windows": [[int(w.col_off), int(w.row_off), int(w.width), int(w.height)]
                            for w in wins],
                "values_differing_from_cog": diff,
                "max_abs_difference_by_band": {f: v for f, v in worst.items() if v},
                "grids": {f: [s.width, s.height] for f, s in srcs.items()}}
    finally:
        for s in srcs.values():
            s.close()


def build(data: Path, size: tuple[int, int], source: Path = SOURCE) -> dict[str, Any]:
    """Build (or find, cached) the four forms of a scene of ``size``; returns build.json's dict."""
    paths = product_paths(data, size)
    with contextlib.suppress(OSError, ValueError):
        done = json.loads(paths["build"].read_text())
        if done.get("version") == BUILD_VERSION and all(paths[f].exists() for f in FORMS):
            return {**done, "cached": True}
    base = paths["base"]
    if base.exists():
        shutil.rmtree(base)
    tmp = base / "partial"
    safe_t, cog_t = tmp / paths["safe"].name, tmp / paths["cog"].name
    img = safe_t / "GRANULE" / GRANULE / "IMG_DATA"
    for d in ("R10m", "R20m", "R60m"):
        (img / d).mkdir(parents=True)
    (safe_t / "GRANULE" / GRANULE / "QI_DATA").mkdir()
    cog_t.mkdir(parents=True)
    secs = {"source": 0.0, "safe": 0.0, "cog": 0.0}
    pixels = 0
    for band, res in BANDS.items():
        t0 = time.perf_counter()
        a = band_array(band, size, source)
        secs["source"] += time.perf_counter() - t0
        pixels += a.size
        j, c = write_band(a, res, img / jp2_name(band), cog_t / f"{band}.tif")
        secs["safe"] += j
        secs["cog"] += c
        del a
    (safe_t / "MTD_MSIL2A.xml").write_text(mtd_xml())
    (cog_t / "item.json").write_text(json.dumps(stac_item(size), indent=1))
    safe_t.rename(paths["safe"])
    cog_t.rename(paths["cog"])
    t0 = time.perf_counter()
    zpart = tmp / paths["zip"].name
    with zipfile.ZipFile(zpart, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(paths["safe"].rglob("*")):
            z.write(f, f.relative_to(paths["base"]).as_posix())
    zpart.rename(paths["zip"])
    secs["zip"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    spart = tmp / paths["stack"].name
    write_stack(paths["cog"], spart)
    spart.rename(paths["stack"])
    secs["stack"] = time.perf_counter() - t0
    tmp.rmdir()
    t0 = time.perf_counter()
    check = same_pixels(paths)
    check["seconds"] = round(time.perf_counter() - t0, 2)
    doc = {"version": BUILD_VERSION, "size": list(size), "source": str(source),
           "band_pixels_mp": round(pixels / 1e6, 1),
           "seconds": {k: round(v, 2) for k, v in secs.items()},
           "bytes": {f: du(paths[f]) for f in FORMS},
           "stack_from": f"lulc_edge.sources.open_source of the COG folder, {checkout_rev()}",
           "check": check, "paths": {k: str(v) for k, v in paths.items()},
           "how": {"safe": f"JP2OpenJPEG {JP2_OPTIONS}", "zip": "ZIP_STORED",
                   "cog": f"COG {COG_OPTIONS}, overviews AVERAGE (SCL NEAREST), nodata 0",
                   "stack": f"GTiff {STACK_OPTIONS}, no nodata"}}
    part = paths["build"].with_suffix(".json.partial")
    part.write_text(json.dumps(doc, indent=1))
    part.rename(paths["build"])
    return {**doc, "cached": False}


def du(path: Path) -> int:
    """Bytes in a file or under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def checkout_rev() -> str:
    """The checkout under test and its git commit (and whether it has local changes)."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=CHECKOUT, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " + local changes" if git("status", "--porcelain", "--", "lulc_edge") else ""
    return f"{CHECKOUT} at {rev}{dirty}"


# ------------------------------------------------------------------------------------ children
def child_decode(cfg: dict[str, Any]) -> dict[str, Any]:
    """Every JPEG 2000 band file of the SAFE read whole once (GDAL_NUM_THREADS from the env)."""
    import rasterio

    files = sorted(Path(cfg["safe"]).rglob("*.jp2"))
    pixels = 0
    t0 = time.perf_counter()
    with rasterio.Env(GDAL_NUM_THREADS=os.environ.get("GDAL_NUM_THREADS", "ALL_CPUS")):
        for f in files:
            with rasterio.open(f) as ds:
                pixels += ds.read(1).size
    secs = time.perf_counter() - t0
    return {"seconds": secs, "files": len(files), "band_pixels": pixels,
            "mp_s": mps(pixels, secs), "rss_peak": peak_rss_mb()}


def child_pure(cfg: dict[str, Any]) -> dict[str, Any]:
    """``Segmenter.predict`` on the stack read into memory (device and precision from ``cfg``,
    default auto); only ``predict`` is timed."""
    import numpy as np
    import rasterio

    from lulc_edge import Segmenter

    t0 = time.perf_counter()
    seg = Segmenter(device=cfg.get("device", "auto"), precision=cfg.get("precision", "auto"))
    load = time.perf_counter() - t0
    with rasterio.open(cfg["stack"]) as ds:
        bands = ds.read()
    t1 = time.perf_counter()
    pred = seg.predict(bands)
    secs = time.perf_counter() - t1
    if cfg.get("save"):
        np.save(cfg["save"], pred.classes)
    return {"seconds": secs, "load_seconds": load, "device": seg.device,
            "precision": seg.precision, "pixels": int(pred.classes.size),
            "rss_peak": peak_rss_mb()}


def child_read(cfg: dict[str, Any]) -> dict[str, Any]:
    """The reader alone on one form: every tile of a run's plan (tile size as a run on
    ``cfg["device"]`` chooses) read in order, the source opened as a run opens it."""
    from lulc_edge import Engine
    from lulc_edge.engine import EngineOptions
    from lulc_edge.gdalenv import open_for_run
    from lulc_edge.modes import default_tile, plan

    engine = Engine(options=EngineOptions(device="cpu", precision="fp32", threads=1))  # contract
    tile = default_tile("seamless", cfg.get("device", "cpu"))
    t0 = time.perf_counter()
    with open_for_run(cfg["path"], engine.contract.bands) as src:
        tiles = plan("seamless", src.height, src.width, tile, engine)
        for t in tiles:
            src.read(t.read)
        pixels = src.width * src.height
    secs = time.perf_counter() - t0
    return {"seconds": secs, "tile": tile, "tiles": len(tiles), "mp_s": mps(pixels, secs),
            "rss_peak": peak_rss_mb()}


def child_compare(cfg: dict[str, Any]) -> dict[str, Any]:
    """Class maps of the forms (and of pure inference): identical? fraction equal to the stack's."""
    import numpy as np
    import rasterio

    maps = {}
    for f, p in cfg["maps"].items():
        if p.endswith(".npy"):
            maps[f] = np.load(p)
        else:
            with rasterio.open(p) as ds:
                maps[f] = ds.read(1)
    ref = maps.get("stack")
    out: dict[str, Any] = {"pixels": int(next(iter(maps.values())).size)}
    if ref is not None:
        out["fraction_equal_to_stack"] = {f: float(np.mean(m == ref)) for f, m in maps.items()
                                          if f != "stack" and m.shape == ref.shape}
    prod = [f for f in ("cog", "safe", "zip") if f in maps]
    out["pixels_differing_from_cog"] = {f: int(np.count_nonzero(maps[f] != maps["cog"]))
                                        for f in prod if f != "cog"} if "cog" in prod else {}
    out["products_identical"] = bool(prod) and not any(out["pixels_differing_from_cog"].values())
    return out


def child_env(cfg: dict[str, Any]) -> dict[str, Any]:
    """throughput.env_info() plus GDAL's version and what the checkout is."""
    import rasterio

    from lulc_edge import gdalenv, modes

    env = env_info()
    env["libraries"]["gdal"] = rasterio.__gdal_version__
    env["checkout"] = checkout_rev()
    with contextlib.suppress(OSError, subprocess.SubprocessError):  # a GPU machine: which GPU
        env["gpu"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30).stdout.strip() or None
    gdal = gdalenv.gdal_settings()  # what a run sets unless the env does
    device = "cuda" if cfg.get("device") == "cuda" else "cpu"
    env["run_defaults"] = {"tile": modes.default_tile("seamless", device),
                           "batch": modes.default_batch("seamless", "cpu"),
                           "gdal": {k: str(v) for k, v in gdal.items()}}
    env["env_vars"] = {k: v for k, v in os.environ.items()
                       if k.startswith(("LULC_EDGE_", "GDAL_", "OMP_", "OV_", "ORT_"))}
    return env


def child_build(cfg: dict[str, Any]) -> dict[str, Any]:
    return build(Path(cfg["data"]), tuple(cfg["size"]), Path(cfg["source"]))


CHILDREN = {"_decode": child_decode, "_pure": child_pure, "_read": child_read,
            "_compare": child_compare,
            "_env": child_env, "_build": child_build}


# ------------------------------------------------------------------------------------ timing
def child_env_vars(extra: dict[str, str] | None = None) -> dict[str, str]:
    pp = os.pathsep.join(p for p in (str(CHECKOUT), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=pp, **{CHECKOUT_ENV: str(CHECKOUT)}, **(extra or {}))


def timed(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 7200
          ) -> dict[str, Any]:
    """Run ``cmd`` in the checkout: wall and CPU seconds, the child's peak RSS, its JSON output.

    CPU: the RUSAGE_CHILDREN delta over the run; peak RSS: the child's own ru_maxrss (wait4).
    This process stays small (no big arrays) so that its memory, which a vfork/exec child
    inherits into ru_maxrss on Linux, does not show in the child's figure.
    """
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=CHECKOUT, env=env or child_env_vars(), stdout=out,
                                stderr=err, text=True)
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    res: dict[str, Any] = {
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(after.ru_utime - before.ru_utime + after.ru_stime
                             - before.ru_stime, 3),
        "peak_rss_mb": round(ru.ru_maxrss / 1024, 1), "exit": proc.returncode}
    if proc.returncode != 0:
        res["error"] = " | ".join(stderr.strip().splitlines()[-3:]) or f"exit {proc.returncode}"
    with contextlib.suppress(ValueError):
        res["report"] = json.loads(stdout[stdout.find("{"):]) if "{" in stdout else None
    return res


def run_self(name: str, cfg: dict[str, Any], env: dict[str, str] | None = None
             ) -> dict[str, Any]:
    """This script's ``--{name}`` child (its stdout is one JSON document)."""
    return timed([sys.executable, str(Path(__file__).resolve()), f"--{name}", json.dumps(cfg)],
                 env)


def run_cli(src: Path, out: Path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The CLI with its defaults (plus ``extra`` options) on one form, as a user runs it."""
    return timed([sys.executable, "-m", "lulc_edge.cli", "run", str(src), "-o", str(out),
                  "--overwrite", "-q", "--json", *extra])


def backend_kinds(pair: str) -> tuple[str, str]:
    """The two run kinds of a ``device:precision`` pair: the stack end to end, pure inference."""
    return f"stack {pair}", f"pure {pair}"


def parse_pair(text: str) -> tuple[str, str]:
    device, _, precision = text.partition(":")
    return device, precision or "auto"


def summarize_runs(runs: list[dict[str, Any]], pixels: int) -> dict[str, Any]:
    """Best and median wall seconds, CPU seconds of the best run, largest peak RSS."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[0].get("error", "not run") if runs else "not run"}
    walls = [r["wall_seconds"] for r in ok]
    best = min(ok, key=lambda r: r["wall_seconds"])
    s = {"runs": len(ok), "wall_best": best["wall_seconds"],
         "wall_median": round(statistics.median(walls), 3), "cpu_seconds": best["cpu_seconds"],
         "peak_rss_mb": max(r["peak_rss_mb"] for r in ok), "mp_s": mps(pixels,
                                                                        best["wall_seconds"])}
    inner = [r["report"]["seconds"] for r in ok
             if isinstance(r.get("report"), dict) and "seconds" in r["report"]]
    if inner:
        s["inner_best"] = round(min(inner), 3)  # what the child timed itself
    rep = best.get("report")
    if isinstance(rep, dict):
        s.update({k: rep[k] for k in ("device", "precision") if k in rep})
    return s


def ratio(a: dict[str, Any], b: float | None, key: str = "wall_best") -> float | None:
    return round(a[key] / b, 3) if key in a and b else None


def analyse(runs: dict[str, list[dict[str, Any]]], pixels: int) -> dict[str, Any]:
    """Per-form summaries, ratios vs the stack and vs decode-once + pure inference, targets."""
    s = {k: summarize_runs(v, pixels) for k, v in runs.items()}
    stack = s.get("stack", {}).get("wall_best")
    dec, pure = s.get("decode", {}), s.get("pure", {})
    bound = (dec["inner_best"] + pure["inner_best"]) if ("inner_best" in dec
                                                          and "inner_best" in pure) else None
    stack_cpu = s.get("stack", {}).get("cpu_seconds")
    for k in FORMS:
        if "wall_best" in s.get(k, {}):
            s[k]["x_stack"] = ratio(s[k], stack)
            # CPU-s move less than wall time when other jobs take the cores
            s[k]["cpu_x_stack"] = ratio(s[k], stack_cpu, "cpu_seconds")
            s[k]["x_decode_plus_pure"] = ratio(s[k], bound)
    per_round = {}
    for k in ("cog", "safe", "zip"):
        pairs = zip(runs.get(k, []), runs.get("stack", []), strict=False)
        per_round[f"{k}_over_stack"] = [round(a["wall_seconds"] / b["wall_seconds"], 3)
                                        for a, b in pairs if "error" not in a and "error" not in b]
    targets = []
    if "x_stack" in s.get("cog", {}):
        targets.append(target("COG folder <= 1.15 x stack", s["cog"]["x_stack"],
                               TARGETS["cog_over_stack"]))
    for k in ("safe", "zip"):
        if s.get(k, {}).get("x_decode_plus_pure") is not None:
            targets.append(target(f"{k} <= decode-once + pure inference",
                                  s[k]["x_decode_plus_pure"],
                                  TARGETS["safe_over_decode_plus_pure"]))
    # rates: stack e2e MP/s over pure MP/s = pure seconds (inside predict) / stack seconds
    pairs = [("stack", "pure", "")] + [(k, k.replace("stack ", "pure ", 1), f" ({k[6:]})")
                                       for k in s if k.startswith("stack ")]
    for sk, pk, what in pairs:
        wall, p = s.get(sk, {}).get("wall_best"), s.get(pk, {})
        if wall and "inner_best" in p:
            targets.append(target(f"stack rate >= 0.9 x pure inference rate{what}",
                                  round(p["inner_best"] / wall, 3),
                                  TARGETS["stack_over_pure_rate"], at_least=True))
            # the same ratio within each round (neighbouring runs: less of the machine's drift)
            per_round[f"pure_over_stack{what}"] = [
                round(b["report"]["seconds"] / a["wall_seconds"], 3)
                for a, b in zip(runs.get(sk, []), runs.get(pk, []), strict=False)
                if "error" not in a and "error" not in b and (b.get("report") or {}).get("seconds")]
    cog_read = s.get("read cog", {})
    if "inner_best" in cog_read and any(v.get("device") == "cuda" for v in s.values()):
        targets.append(target("COG folder reader alone >= 60 MP/s (GPU machine)",
                              mps(pixels, cog_read["inner_best"]), 60, at_least=True))
    for k in FORMS:
        if "peak_rss_mb" in s.get(k, {}):
            targets.append(target(f"{k} peak RSS <= 1.5 GB (MB)", s[k]["peak_rss_mb"],
                                  TARGETS["peak_rss_mb"]))
    return {"forms": s, "decode_plus_pure_seconds": round(bound, 3) if bound else None,
            "per_round": per_round, "targets": targets}


def target(name: str, value: float, limit: float, at_least: bool = False) -> dict[str, Any]:
    met = value >= limit if at_least else value <= limit
    return {"target": name, "value": value, "limit": limit, "met": bool(met)}


# ------------------------------------------------------------------------------------ markdown
def markdown(r: dict[str, Any]) -> str:
    env, st, a, b = r["env"], r["settings"], r["analysis"], r["build"]
    f = a["forms"]
    w, h = st["size"]
    lines = [
        "# Real products: SAFE, zip, COG folder and stack of one scene", "",
        f"{r['label']}. Measured {r['started']}, `{r['command']}`; "
        f"{r.get('rounds_done', st['rounds'])} of {st['rounds']} rounds "
        "interleaved (stack, COG folder, SAFE, zip, decode-once, pure), best round per row "
        "(medians and every run in products.json). The machine is shared: compare ratios within "
        "this run, not numbers across runs.", "",
        f"- Scene: {w} x {h} px at 10 m ({w * h / 1e6:.1f} MP; {b['band_pixels_mp']} MP of band "
        "pixels at native resolutions), the real spectra and SCL of l2a-29RKH-20200219 "
        "mirror-tiled on each band's grid (Copernicus Sentinel data 2020, via rio-tiler-pds "
        "fixtures, BSD-3-Clause)",
        f"- Checkout timed: {env['checkout']}",
        f"- CPU: {env['cpu_model']} ({', '.join(env['cpu_flags'])}), {env['cpus_available']} "
        f"CPUs available; load average {env['loadavg_start'][0]:.1f} at start, "
        f"{r['loadavg_end'][0]:.1f} at end",
        "- " + ", ".join(f"{k} {v}" for k, v in env["libraries"].items()),
        *([f"- GPU: {env['gpu']}"] if env.get("gpu") else []),
        f"- CLI: `{st['cli']}` (device {st.get('device', 'auto')}, precision "
        f"{st.get('precision', 'auto')}, threads "
        f"{env['cpus_available']}, tile {env['run_defaults']['tile']}, batch "
        f"{env['run_defaults']['batch']}, GDAL {env['run_defaults']['gdal']}); decode-once: "
        f"{st['decode']}; pure: {st['pure']}",
        f"- Environment variables set: {env['env_vars'] or 'none'}",
        f"- Build: {b['seconds']} s; bytes {b['bytes']}; "
        f"{'cached' if b.get('cached') else 'built in this run'}", "",
        "| input | wall s (best) | timed inside | median wall | CPU s | peak RSS MB | MP/s | "
        "x stack | CPU x stack | x (decode-once + pure) | backend |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = {**FORM_NAMES, "decode": "decode-once: every JP2 band file read whole",
             "pure": "pure inference: Segmenter.predict in memory",
             "read": "reader alone: open_source, every tile, no inference"}
    for k in (*FORMS, "decode", "pure", *sorted(k for k in f if " " in k)):
        s = f.get(k)
        if not s:
            continue
        if k not in names:  # a --backends pair
            kind, pair = k.split(" ", 1)
            names[k] = f"{names[kind].split(':')[0]}, {FORM_NAMES.get(pair, pair)}"
        if "error" in s:
            lines.append(f"| {names[k]} | error: {s['error']} | | | | | | | | | |")
            continue
        backend = f"{s.get('device', '')} {s.get('precision', '')}".strip() or "-"
        lines.append(
            f"| {names[k]} | {s['wall_best']} | {s.get('inner_best', '-')} | "
            f"{s['wall_median']} | {s['cpu_seconds']} "
            f"| {s['peak_rss_mb']} | {s['mp_s']} | {s.get('x_stack', '-')} | "
            f"{s.get('cpu_x_stack', '-')} | "
            f"{s.get('x_decode_plus_pure') or '-'} | {backend} |")
    bound = (f"decode-once + pure inference (the times measured inside those children, no "
             f"start-up): {a['decode_plus_pure_seconds']} s. ") if a["decode_plus_pure_seconds"] \
        else ""
    lines += [
        "", f"{bound}CLI rows are wall time of the whole command (start-up, model load, auto's "
        "cached choice, read, inference, write); pure rows time only `predict`.", "",
        "## Targets of issue 15", "",
        "| target | value | limit | met |", "|---|---|---|---|",
    ]
    for t in a["targets"]:
        lines.append(f"| {t['target']} | {t['value']} | {t['limit']} | "
                     f"{'yes' if t['met'] else '**no**'} |")
    rounds = {k: v for k, v in a.get("per_round", {}).items() if v}
    if rounds:
        lines += ["", "Per round (neighbouring runs): " + "; ".join(
            f"{k.replace('_', ' ')} {', '.join(map(str, v))}" for k, v in rounds.items()) + "."]
    if (w, h) != (SIDE, SIDE):
        lines += ["", f"The RSS target is for a full {SIDE} px tile; this run is {w} x {h}."]
    m = r.get("maps") or {}
    if any((m.get("report") or {}).get(k) for k in ("fraction_equal_to_stack",
                                                    "pixels_differing_from_cog")):
        rep = m["report"]
        eq = ", ".join(f"{k} {v:.6f}" for k, v in rep.get("fraction_equal_to_stack", {}).items())
        same = (f"SAFE, zip and COG folder maps identical: **{rep['products_identical']}** "
                f"(pixels differing from the COG folder's: {rep['pixels_differing_from_cog']}). "
                if rep.get("pixels_differing_from_cog") else "")  # needs the COG and another
        lines += ["", "## Class maps", "",
                  f"{same}Fraction of pixels equal to the stack's map: {eq}."]
    chk = b.get("check", {})
    if chk:
        lines += ["", f"Build check: values read through open_source on windows "
                  f"{chk['windows']} differing from the COG folder's: "
                  f"{chk['values_differing_from_cog']}."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ cli
def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, got {text!r}") from None
    if w < 64 or h < 64:
        raise argparse.ArgumentTypeError(f"{text}: at least 64x64")
    return w, h


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help=f"a full-width strip {QUICK_SIZE[0]}x{QUICK_SIZE[1]} instead of a tile")
    p.add_argument("--size", type=parse_size, help="WxH at 10 m (default 10980x10980)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 2)")
    p.add_argument("--data", default=os.environ.get("LULC_BENCH_DATA", "/tmp/lulc-edge-bench"),
                   help="where built products are cached, by size ($LULC_BENCH_DATA)")
    p.add_argument("--source", default=str(SOURCE), help="the real per-band L2A COGs used")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--checkout", help=f"repository whose lulc_edge is timed (${CHECKOUT_ENV}; "
                   "default this script's)")
    p.add_argument("--forms", default=",".join(FORMS), help="comma list of " + ",".join(FORMS))
    p.add_argument("--no-reference", action="store_true", help="skip decode-once and pure")
    p.add_argument("--device", default="auto",
                   help="device of the CLI runs and pure inference (e.g. cuda on a GPU machine)")
    p.add_argument("--precision", default="auto", help="precision of those runs")
    p.add_argument("--reader", action="store_true",
                   help="also time the reader alone (no inference) on each form")
    p.add_argument("--backends", default="",
                   help="comma list of DEVICE:PRECISION (e.g. cpu:fp32,cpu:int8): the stack "
                   "end to end and pure inference also on each")
    p.add_argument("--label", default="", help="what this run measures (goes into the .md)")
    p.add_argument("--build-only", action="store_true")
    p.add_argument("--render", action="store_true",
                   help="only rewrite OUT/products.md (and the analysis) from OUT/products.json")
    p.add_argument("--quiet", action="store_true")
    for name in CHILDREN:
        p.add_argument(f"--{name}", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.size = a.size or (QUICK_SIZE if a.quick else (SIDE, SIDE))
    a.rounds = a.rounds or 2
    return a


def run_main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    data = Path(args.data).resolve()
    data.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    b = run_self("_build", {"data": str(data), "size": list(args.size), "source": args.source})
    if "error" in b:
        raise SystemExit(f"products.py: build failed: {b['error']}")
    built = {**b["report"], "wall_seconds": b["wall_seconds"], "peak_rss_mb": b["peak_rss_mb"]}
    if not args.quiet:
        print(f"products: {'cached' if built['cached'] else 'built'} in "
              f"{time.perf_counter() - t0:.1f} s: {built['paths']['base']}", file=sys.stderr)
    if args.build_only:
        return {"build": built}
    paths = {k: Path(v) for k, v in built["paths"].items()}
    forms = [f for f in args.forms.split(",") if f]
    # this run's own folder: runs from two checkouts at once must not compare each other's maps
    outs = data / "out" / f"{args.size[0]}x{args.size[1]}-{os.getpid()}"
    outs.mkdir(parents=True, exist_ok=True)
    env = run_self("_env", {"device": args.device})["report"]
    kinds = forms + ([] if args.no_reference else ["decode", "pure"])
    pairs = {kind: parse_pair(pair) for pair in args.backends.split(",") if pair
             for kind in backend_kinds(pair)}
    kinds += list(pairs) + ([f"read {f}" for f in forms] if args.reader else [])
    chosen = () if (args.device, args.precision) == ("auto", "auto") else (
        "--device", args.device, "--precision", args.precision)
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    decode_env = child_env_vars({"GDAL_NUM_THREADS": "ALL_CPUS"})
    # untimed: auto's first run measures the backends (then cached), files enter the page cache
    warm = run_cli(paths[forms[0]], outs / "warmup.lulc.tif", chosen) if forms else {}
    pixels = args.size[0] * args.size[1]
    res = {
        "schema": SCHEMA, "started": started, "finished": None,
        "label": args.label or f"lulc-edge {env['checkout']}",
        "command": shlex.join(["python", "benchmarks/products.py", *sys.argv[1:]]),
        "env": env,
        "settings": {
            "size": list(args.size), "rounds": args.rounds, "forms": forms,
            "cli": shlex.join(["lulc-edge", "run", "FORM", "-o", "OUT", "--overwrite", "-q",
                               "--json", *chosen]),
            "decode": "rasterio read(1) of each .jp2, GDAL_NUM_THREADS=ALL_CPUS, sequential",
            "pure": f"Segmenter(device={args.device!r}, precision={args.precision!r})"
                    ".predict(stack read whole)",
            "backends": args.backends, "device": args.device, "precision": args.precision,
            "checkout": str(CHECKOUT)},
        "build": built, "warmup": warm, "runs": runs, "maps": {},
    }
    for rnd in range(args.rounds):
        last = rnd == args.rounds - 1
        for k in kinds:
            if k == "decode":
                r = run_self("_decode", {"safe": str(paths["safe"])}, decode_env)
            elif k == "pure":
                r = run_self("_pure", {"stack": str(paths["stack"]), "device": args.device,
                                       "precision": args.precision,
                                       "save": str(outs / "pure.npy") if last else None})
            elif k.startswith("read "):
                r = run_self("_read", {"path": str(paths[k[5:]]), "device": args.device})
            elif k.startswith("pure "):
                device, precision = pairs[k]
                r = run_self("_pure", {"stack": str(paths["stack"]), "device": device,
                                       "precision": precision})
            elif k.startswith("stack "):
                device, precision = pairs[k]
                r = run_cli(paths["stack"], outs / "stack-pair.lulc.tif",
                            ("--device", device, "--precision", precision))
            else:
                r = run_cli(paths[k], outs / f"{k}.lulc.tif", chosen)
            runs[k].append(r)
            if not args.quiet:
                print(f"round {rnd + 1}/{args.rounds} {k}: {r['wall_seconds']:.1f} s, "
                      f"{r['cpu_seconds']:.1f} CPU-s, {r['peak_rss_mb']:.0f} MB"
                      f"{' ' + r['error'] if 'error' in r else ''}", file=sys.stderr)
        # after every round: a run stopped later still leaves what it measured
        write_results({**progress(res, rnd + 1), "analysis": analyse(runs, pixels)},
                      Path(args.out))
    maps = {k: str(outs / f"{k}.lulc.tif") for k in forms if "error" not in runs[k][-1]}
    if "pure" in runs and "error" not in runs["pure"][-1]:
        maps["pure"] = str(outs / "pure.npy")
    cmp_ = run_self("_compare", {"maps": maps}) if maps else {}
    shutil.rmtree(outs, ignore_errors=True)
    res.update(progress(res, args.rounds), analysis=analyse(runs, pixels),
               finished=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               maps={"compared": sorted(maps), "report": cmp_.get("report"),
                     "error": cmp_.get("error")})
    write_results(res, Path(args.out))
    return res


def progress(res: dict[str, Any], rounds_done: int) -> dict[str, Any]:
    """``res`` with the rounds done so far, the load and this process's peak RSS now."""
    return {**res, "rounds_done": rounds_done, "loadavg_end": list(os.getloadavg()),
            "orchestrator_peak_rss_mb": round(resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def write_markdown(md: Path, text: str, mark: str) -> None:
    """``text`` into ``md``, followed by the hand-written notes after ``mark`` (kept)."""
    old = md.read_text() if md.is_file() else ""
    md.write_text(text + "\n" + (old[old.index(mark):] if mark in old else mark))


def write_results(res: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "products.json").write_text(json.dumps(res, indent=1))
    write_markdown(out / "products.md", markdown(res), NOTES_MARK)


def run_child(args: argparse.Namespace, children: dict[str, Any]) -> bool:
    """Run the ``--_name CFG`` child named in ``args`` (its JSON to stdout); False if none."""
    for name, fn in children.items():
        if getattr(args, name):
            print(json.dumps(fn(json.loads(getattr(args, name)))), flush=True)
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if run_child(args, CHILDREN):
        return 0
    if args.checkout and Path(args.checkout).resolve() != CHECKOUT:
        # CHECKOUT (sys.path, children's cwd) is fixed at import: start again with it set
        env = dict(os.environ, **{CHECKOUT_ENV: str(Path(args.checkout).resolve())})
        argv = sys.argv[1:] if argv is None else argv
        return subprocess.call([sys.executable, str(Path(__file__).resolve()), *argv], env=env)
    if args.render:
        res = json.loads((Path(args.out) / "products.json").read_text())
        res["analysis"] = analyse(res["runs"], res["settings"]["size"][0]
                                  * res["settings"]["size"][1])
        write_results(res, Path(args.out))
    else:
        res = run_main(args)
    if not args.quiet and "analysis" in res:
        print((Path(args.out) / "products.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
