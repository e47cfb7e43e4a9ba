"""lulc_edge.raster: output rasters: profiles, tags, overviews, sibling names, completeness.

The writer of a run's rasters is ``lulc_edge.mapwriter``; their styles ``lulc_edge.styles``;
atomic placement ``lulc_edge.files``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from .areas import AreaSum
from .contract import Contract
from .errors import OutputError, one_line
from .files import partial_path

#: Output GeoTIFF block size; multiple of 16 as GeoTIFF requires.
BLOCK = 256
#: Tag that marks an output as complete; written last, read by batch runs to skip done scenes.
COMPLETE_TAG = "LULC_EDGE_COMPLETE"
#: Tag with the digest of the input's fingerprint (journal.fingerprint): an output made from
#: another version of the input is not complete for a batch.
FINGERPRINT_TAG = "LULC_EDGE_INPUT_FINGERPRINT"
#: Tag with the pixel count per class value of band 1 (JSON): a batch re-reads the band and
#: compares, so tiles lost in a power cut (they read back as 0) make the output incomplete.
COUNTS_TAG = "LULC_EDGE_CLASS_COUNTS"
#: Tag with the options that shaped the outputs (JSON, spec.RunSpec.shaping): a batch
#: redoes an output made with other options instead of skipping it.
OPTIONS_TAG = "LULC_EDGE_OPTIONS"
#: Rows read at once when verifying the class band.
_VERIFY_ROWS = 1024


def class_counts(counts: Any) -> str:
    """The COUNTS_TAG value for per-value pixel counts (a 256-long array)."""
    return json.dumps({str(v): int(n) for v, n in enumerate(counts) if n})


@dataclass(frozen=True)
class Grid:
    """Georeferencing and size of the output grid."""

    width: int
    height: int
    crs: Any
    transform: Any


#: Nodata of the confidence file: never a confidence, which is a percentage 0..100.
CONFIDENCE_NODATA = 255
#: What the confidence file holds, in its tags and in the README.
CONFIDENCE_MEANING = ("round(100 x probability of the chosen class), percent 0..100; "
                      f"{CONFIDENCE_NODATA} = nodata (where the class map is nodata or Cloud)")
#: Nodata of the probabilities file (float32): NaN where the class map is nodata or Cloud.
PROBS_NODATA = float("nan")


def class_profile(grid: Grid, contract: Contract) -> dict[str, Any]:
    """Profile of the class map: one uint8 band, tiled, DEFLATE, nodata from the contract."""
    return {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": "uint8",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": contract.nodata.value,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }


def confidence_profile(grid: Grid, contract: Contract) -> dict[str, Any]:
    """Profile of the confidence file: one grey uint8 band, nodata CONFIDENCE_NODATA."""
    return {**class_profile(grid, contract), "nodata": CONFIDENCE_NODATA,
            "photometric": "MINISBLACK"}


def probs_profile(grid: Grid, contract: Contract) -> dict[str, Any]:
    """Profile of the probabilities raster: one float32 band per class, nodata NaN."""
    return {**class_profile(grid, contract), "count": contract.n_classes, "dtype": "float32",
            "nodata": PROBS_NODATA, "predictor": 3, "interleave": "band"}


def confidence_percent(confidence: np.ndarray, classes: np.ndarray, nodata: int) -> np.ndarray:
    """The graph's confidence (round(255 x p)) as the file's percent, CONFIDENCE_NODATA where
    the class map is nodata (the graph gives 0 there, a valid value)."""
    pct = ((confidence.astype(np.uint16) * 100 + 127) // 255).astype(np.uint8)
    pct[classes == nodata] = CONFIDENCE_NODATA
    return pct


def overview_factors(width: int, height: int, smallest: int = BLOCK) -> list[int]:
    """Overview levels 2, 4, 8... until the longest side fits in ``smallest`` pixels."""
    out, f = [], 2
    while max(width, height) / (f // 2) > smallest:
        out.append(f)
        f *= 2
    return out


def add_overviews(*datasets: Any) -> None:
    """Internal overviews (nearest: class values must stay class values) on datasets open for
    writing (None skipped), so QGIS and web viewers open a full tile at once; the COG copy
    reuses them."""
    for ds in datasets:
        factors = overview_factors(ds.width, ds.height) if ds is not None else []
        if factors:
            ds.build_overviews(factors, Resampling.nearest)
            ds.update_tags(ns="rio_overview", resampling="nearest")


def copy_to_cog(tmp: Path, final: Path) -> Path:
    """``tmp`` (closed, overviews built) copied to a Cloud-Optimized GeoTIFF beside ``final``
    under its hidden temporary name, ``tmp`` removed; returns the copy's path (``--cog``)."""
    cog = partial_path(final, ".cog.tif")
    rasterio.shutil.copy(tmp, cog, driver="COG", compress="DEFLATE", blocksize=BLOCK,
                         BIGTIFF="IF_SAFER")
    tmp.unlink()
    return cog


def sibling_path(final: Path, kind: str) -> Path:
    """``NAME.<kind>.tif`` beside the class map ``NAME.tif`` (or ``NAME.tiff``)."""
    name = final.name
    for ext in (".tif", ".tiff"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
    return final.with_name(f"{name}.{kind}.tif")


def confidence_path(final: Path) -> Path:
    """Where ``--confidence`` writes the confidence of each pixel: beside the class map."""
    return sibling_path(final, "confidence")


def probs_path(final: Path) -> Path:
    """Where ``--probs`` writes the per-class probabilities: beside the class map."""
    return sibling_path(final, "probs")


def write_cause(exc: BaseException) -> str:
    """The cause of a failed write in words: the errno's text when there is one (GDAL hides
    ENOSPC inside its own message), else the library's message on one line."""
    text = one_line(exc)
    for errno_text in ("No space left on device", "File too large", "Disk quota exceeded",
                       "Read-only file system", "Input/output error"):
        if errno_text.lower() in text.lower():
            return errno_text.lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return text


def write_error(final: Path, exc: BaseException) -> OutputError:
    """The one-line error for a failed write of ``final``: the output and the cause."""
    return OutputError(f"{final}: cannot write output ({write_cause(exc)})")


def band_counts(ds: Any) -> AreaSum:
    """Pixels (and ground area) of each value 0..255 in band 1 of an open uint8 dataset, read
    in full-width strips of ``_VERIFY_ROWS`` rows."""
    acc = AreaSum(ds.crs, ds.transform)
    for row in range(0, ds.height, _VERIFY_ROWS):
        win = Window(0, row, ds.width, min(_VERIFY_ROWS, ds.height - row))
        acc.add(ds.read(1, window=win), row)
    return acc


def options_change(old: str | None, new: str) -> str | None:
    """How the options recorded in an output (OPTIONS_TAG) differ from ``new``, in words, or
    None when they are the same."""
    if old == new:
        return None
    try:
        was = json.loads(old) if old else {}
    except ValueError:
        was = {}
    now = json.loads(new)
    if not was:
        return "made without a record of its options (an older lulc-edge)"
    diff = [f"{k} {was.get(k)} -> {now.get(k)}" for k in sorted(now) if was.get(k) != now.get(k)]
    return "made with other options (" + ", ".join(diff) + ")"


def verify_output(path: Path, fingerprint: str | None = None,
                  options: str | None = None) -> str | None:
    """Why ``path`` is not a complete lulc-edge output, or None when it is.

    Complete: the completeness tag is set, the input fingerprint tag matches ``fingerprint``
    (when given), the options tag matches ``options`` (when given; with its confidence and
    probabilities files complete where the options ask for them), and the class band's pixel
    counts equal those recorded at write time (one read of band 1; an output without
    COUNTS_TAG, from an older version, is taken as is).
    """
    try:
        with rasterio.open(path) as ds:
            tags = ds.tags()
            if tags.get(COMPLETE_TAG) != "1":
                return "no completeness tag"
            if fingerprint is not None and tags.get(FINGERPRINT_TAG) != fingerprint:
                return "made from another version of the input"
            if options is not None:
                why = options_change(tags.get(OPTIONS_TAG), options) or _siblings(path, options)
                if why:
                    return why
            if COUNTS_TAG not in tags:
                return None
            if class_counts(band_counts(ds).counts) != tags[COUNTS_TAG]:
                return "its class band does not match the pixel counts recorded when written"
    except (RasterioError, OSError, ValueError) as exc:
        return f"unreadable ({one_line(exc)})"
    return None


def _siblings(path: Path, options: str) -> str | None:
    """Why the confidence or probabilities file the options ask for is not complete."""
    want = json.loads(options)
    for kind, key in (("confidence", "confidence"), ("probs", "probs")):
        side = sibling_path(path, kind)
        if want.get(key):
            try:
                with rasterio.open(side) as ds:
                    if ds.tags().get(COMPLETE_TAG) != "1":
                        return f"{side.name} is not complete"
            except (RasterioError, OSError):
                return f"{side.name} is missing or unreadable"
    return None


def is_complete(path: Path, fingerprint: str | None = None) -> bool:
    """True when ``path`` is a complete lulc-edge output (see ``verify_output``)."""
    return verify_output(path, fingerprint) is None
