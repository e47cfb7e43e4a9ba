"""lulc_edge.raster: output rasters: profiles, colour table, tags, atomic placement, COG."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from .contract import ClassInfo, Contract
from .errors import OutputError, one_line

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
#: Rows read at once when verifying the class band.
_VERIFY_ROWS = 1024


def partial_path(final: Path, suffix: str = ".partial.tif") -> Path:
    """Temporary name beside the final output, hidden, so a crash never leaves a final name."""
    return final.with_name(f".{final.name}{suffix}")


def fsync_file(path: Path) -> None:
    """Flush a closed file's data to the disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make renames in a directory durable (as databases do after an atomic rename)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # e.g. a filesystem that cannot open directories: nothing more can be done
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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


def class_profile(grid: Grid, contract: Contract, confidence: bool) -> dict[str, Any]:
    """Profile of the class map: uint8, tiled, DEFLATE, nodata from the contract."""
    return {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 2 if confidence else 1,
        "dtype": "uint8",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": contract.nodata.value,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "interleave": "band",
        "BIGTIFF": "IF_SAFER",
    }


def probs_profile(grid: Grid, contract: Contract) -> dict[str, Any]:
    """Profile of the probabilities raster: one float32 band per class."""
    prof = class_profile(grid, contract, confidence=False)
    prof.update(count=contract.n_classes, dtype="float32", nodata=None, predictor=3)
    return prof


def colormap(contract: Contract) -> dict[int, tuple[int, int, int, int]]:
    """Class colours plus nodata (black, transparent) as a GDAL colour table."""
    cmap = {c.value: (*c.rgb, 255) for c in contract.classes}
    cmap[contract.nodata.value] = (*contract.nodata.rgb, 0)
    return cmap


def class_tags(contract: Contract) -> dict[str, str]:
    """Tags naming the classes, so the file explains itself without the model."""
    tags = {f"CLASS_{c.value}": c.name for c in contract.classes}
    tags[f"CLASS_{contract.nodata.value}"] = contract.nodata.name
    return tags


class OutputWriter:
    """Writes tiles of class map (and optional confidence / probabilities) to temporary files.

    ``finish`` stamps the tags, marks the file complete, converts to COG if asked, and renames
    into place; ``abort`` removes the temporaries.
    """

    def __init__(self, final: Path, grid: Grid, contract: Contract, *, confidence: bool,
                 probs: bool) -> None:
        self.final = final
        self.contract = contract
        self.tmp = partial_path(final)
        self.probs_final = probs_path(final) if probs else None
        self.probs_tmp = partial_path(self.probs_final) if self.probs_final else None
        self.confidence = confidence
        try:
            self.ds = rasterio.open(self.tmp, "w", **class_profile(grid, contract, confidence))
            self.ds.write_colormap(1, colormap(contract))
            self.ds.set_band_description(1, "class")
            if confidence:
                self.ds.set_band_description(2, "confidence")
            self.pds = None
            if self.probs_tmp is not None:
                self.pds = rasterio.open(self.probs_tmp, "w", **probs_profile(grid, contract))
                for c in contract.classes:
                    self.pds.set_band_description(c.value + 1, c.name)
        except (RasterioError, OSError) as exc:
            self.abort()
            raise OutputError(f"{final}: cannot create output ({exc})") from None

    def write(self, window: Window, classes: np.ndarray, confidence: np.ndarray | None = None,
              probs: np.ndarray | None = None) -> None:
        """Write one core window of results."""
        try:
            self.ds.write(classes, 1, window=window)
            if self.confidence and confidence is not None:
                self.ds.write(confidence, 2, window=window)
            if self.pds is not None and probs is not None:
                self.pds.write(probs, window=window)
        except (RasterioError, OSError) as exc:
            raise self.write_error(exc) from None

    def write_error(self, exc: BaseException) -> OutputError:
        """The one-line error for a failed write: the output and the cause (disk full...)."""
        return OutputError(f"{self.final}: cannot write output ({write_cause(exc)})")

    def finish(self, tags: dict[str, str], cog: bool = False) -> None:
        """Tag, close, optionally convert to COG, fsync, and move into place.

        Each file reaches the disk before its rename and the rename before we return, so after
        a power cut the final name is either absent or a whole file; COUNTS_TAG in ``tags``
        lets a later check verify the class band anyway (``verify_output``).
        """
        try:
            self.ds.update_tags(**class_tags(self.contract), **tags)
            self.ds.update_tags(**{COMPLETE_TAG: "1"})
            add_overviews(self.ds, self.pds)
            self.ds.close()
            if self.pds is not None:
                self.pds.update_tags(**{k: v for k, v in tags.items() if k != COUNTS_TAG})
                self.pds.update_tags(**{COMPLETE_TAG: "1"})
                self.pds.close()
            pairs = [(self.tmp, self.final)]
            if self.probs_tmp is not None and self.probs_final is not None:
                pairs.append((self.probs_tmp, self.probs_final))
            ready = []
            for tmp, final in pairs:
                if cog:
                    cog_tmp = partial_path(final, ".cog.tif")
                    rasterio.shutil.copy(tmp, cog_tmp, driver="COG", compress="DEFLATE",
                                         blocksize=BLOCK, BIGTIFF="IF_SAFER")
                    tmp.unlink()
                    tmp = cog_tmp
                fsync_file(tmp)
                ready.append((tmp, final))
        except (RasterioError, OSError) as exc:
            self.abort()
            raise self.write_error(exc) from None
        for tmp, final in ready:
            os.replace(tmp, final)
        fsync_dir(self.final.parent)
        write_pam(self.final, self.contract)

    def close(self) -> None:
        """Close without finishing (keeps the partial files, e.g. for --resume)."""
        for ds in (getattr(self, "ds", None), getattr(self, "pds", None)):
            if ds is not None and not ds.closed:
                ds.close()

    def abort(self) -> None:
        """Close and delete temporaries."""
        self.close()
        for final in (self.final, self.probs_final):
            if final is not None:
                partial_path(final).unlink(missing_ok=True)
                partial_path(final, ".cog.tif").unlink(missing_ok=True)


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


def pam_xml(contract: Contract) -> str:
    """GDAL PAM (.aux.xml) text naming the classes of band 1: category names and a thematic
    raster attribute table (value, name, colour) that GDAL and QGIS read back."""
    names = {c.value: c.name for c in (*contract.classes, contract.nodata)}
    cats = "".join(f"<Category>{escape(names.get(v, ''))}</Category>" if v in names
                   else "<Category />" for v in range(max(names) + 1))
    fields = [("Value", 0, 5), ("Class_Name", 2, 2), ("Red", 0, 6), ("Green", 0, 7),
              ("Blue", 0, 8)]
    defs = "".join(f'<FieldDefn index="{i}"><Name>{n}</Name><Type>{t}</Type>'
                   f"<Usage>{u}</Usage></FieldDefn>" for i, (n, t, u) in enumerate(fields))
    rows = "".join(
        f'<Row index="{i}"><F>{c.value}</F><F>{escape(c.name)}</F>'
        + "".join(f"<F>{v}</F>" for v in c.rgb) + "</Row>"
        for i, c in enumerate((*contract.classes, contract.nodata)))
    return ('<PAMDataset>\n  <PAMRasterBand band="1">\n'
            f"    <CategoryNames>{cats}</CategoryNames>\n"
            f'    <GDALRasterAttributeTable tableType="thematic">{defs}{rows}'
            "</GDALRasterAttributeTable>\n  </PAMRasterBand>\n</PAMDataset>\n")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a small file (text as UTF-8) through a hidden temporary name, so the final name
    never holds a partial file; OutputError on failure."""
    tmp = partial_path(path, ".partial")
    try:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None


def write_pam(final: Path, contract: Contract) -> None:
    """Write ``final.aux.xml``: GeoTIFF has no tag for category names, GDAL keeps them in this
    sidecar (as GDAL's own SetCategoryNames would)."""
    write_atomic(final.with_name(final.name + ".aux.xml"), pam_xml(contract))


def qml_style(classes: Sequence[ClassInfo]) -> str:
    """A QGIS layer style (paletted renderer with the class names and colours)."""
    entries = "".join(
        f'<paletteEntry value="{c.value}" color="{c.color}" alpha="255" '
        f'label="{escape(c.name, {chr(34): "&quot;"})}"/>' for c in classes)
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.28" styleCategories="Symbology">\n  <pipe>\n'
            '    <rasterrenderer type="paletted" band="1" opacity="1" nodataColor="">\n'
            f"      <colorPalette>{entries}</colorPalette>\n"
            "    </rasterrenderer>\n  </pipe>\n</qgis>\n")


def probs_path(final: Path) -> Path:
    """Where ``--probs`` writes the per-class probabilities: beside the class map."""
    name = final.name[:-4] if final.name.lower().endswith(".tif") else final.name
    return final.with_name(f"{name}.probs.tif")


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


def band_counts(ds: Any) -> np.ndarray:
    """Pixels of each value 0..255 in band 1 of an open uint8 dataset, read in full-width
    strips of ``_VERIFY_ROWS`` rows."""
    counts = np.zeros(256, np.int64)
    for row in range(0, ds.height, _VERIFY_ROWS):
        win = Window(0, row, ds.width, min(_VERIFY_ROWS, ds.height - row))
        counts += np.bincount(ds.read(1, window=win).ravel(), minlength=256)
    return counts


def verify_output(path: Path, fingerprint: str | None = None) -> str | None:
    """Why ``path`` is not a complete lulc-edge output, or None when it is.

    Complete: the completeness tag is set, the input fingerprint tag matches ``fingerprint``
    (when given), and the class band's pixel counts equal those recorded at write time (one
    read of band 1; an output without COUNTS_TAG, from an older version, is taken as is).
    """
    try:
        with rasterio.open(path) as ds:
            tags = ds.tags()
            if tags.get(COMPLETE_TAG) != "1":
                return "no completeness tag"
            if fingerprint is not None and tags.get(FINGERPRINT_TAG) != fingerprint:
                return "made from another version of the input"
            if COUNTS_TAG not in tags:
                return None
            if class_counts(band_counts(ds)) != tags[COUNTS_TAG]:
                return "its class band does not match the pixel counts recorded when written"
    except (RasterioError, OSError, ValueError) as exc:
        return f"unreadable ({one_line(exc)})"
    return None


def is_complete(path: Path, fingerprint: str | None = None) -> bool:
    """True when ``path`` is a complete lulc-edge output (see ``verify_output``)."""
    return verify_output(path, fingerprint) is None
