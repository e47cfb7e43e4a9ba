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

from .areas import AreaSum
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
#: Tag with the options that shaped the outputs (JSON, pipeline.shaping_options): a batch
#: redoes an output made with other options instead of skipping it.
OPTIONS_TAG = "LULC_EDGE_OPTIONS"
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


#: Nodata of the confidence file: never a confidence, which is a percentage 0..100.
CONFIDENCE_NODATA = 255
#: What the confidence file holds, in its tags and in the README.
CONFIDENCE_MEANING = ("round(100 x probability of the chosen class), percent 0..100; "
                      f"{CONFIDENCE_NODATA} = nodata (where the class map is nodata)")
#: Nodata of the probabilities file (float32): NaN where the class map is nodata.
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


def confidence_percent(confidence: np.ndarray, classes: np.ndarray, nodata: int) -> np.ndarray:
    """The graph's confidence (round(255 x p)) as the file's percent, CONFIDENCE_NODATA where
    the class map is nodata (the graph gives 0 there, a valid value)."""
    pct = ((confidence.astype(np.uint16) * 100 + 127) // 255).astype(np.uint8)
    pct[classes == nodata] = CONFIDENCE_NODATA
    return pct


@dataclass
class _File:
    """One raster being written: its temporary and final names and the open dataset."""

    final: Path
    ds: Any = None

    @property
    def tmp(self) -> Path:
        return partial_path(self.final)


class OutputWriter:
    """Writes tiles of class map (and optional confidence / probabilities files beside it) to
    temporary files.

    Each is a single-purpose GeoTIFF: the class map keeps one paletted band, because QGIS opens
    any file of two bands or more as an RGB composite and GDAL's copies (COG, gdal_translate)
    turn a second band beside a palette into alpha. ``finish`` stamps the tags, marks the files
    complete, converts to COG if asked, and renames into place; ``abort`` removes the
    temporaries.
    """

    def __init__(self, final: Path, grid: Grid, contract: Contract, *, confidence: bool,
                 probs: bool) -> None:
        self.final = final
        self.contract = contract
        self.classes = _File(final)
        self.conf = _File(confidence_path(final)) if confidence else None
        self.probs = _File(probs_path(final)) if probs else None
        try:
            self.classes.ds = rasterio.open(self.classes.tmp, "w",
                                            **class_profile(grid, contract))
            self.classes.ds.write_colormap(1, colormap(contract))
            self.classes.ds.set_band_description(1, "class")
            if self.conf is not None:
                self.conf.ds = rasterio.open(self.conf.tmp, "w",
                                             **confidence_profile(grid, contract))
                self.conf.ds.set_band_description(1, "confidence")
                self.conf.ds.set_band_unit(1, "%")
            if self.probs is not None:
                self.probs.ds = rasterio.open(self.probs.tmp, "w",
                                              **probs_profile(grid, contract))
                for c in contract.classes:
                    self.probs.ds.set_band_description(c.value + 1, c.name)
        except (RasterioError, OSError) as exc:
            self.abort()
            raise OutputError(f"{final}: cannot create output ({exc})") from None

    @property
    def files(self) -> list[_File]:
        return [f for f in (self.classes, self.conf, self.probs) if f is not None]

    def write(self, window: Window, classes: np.ndarray, confidence: np.ndarray | None = None,
              probs: np.ndarray | None = None) -> None:
        """Write one core window of results (the graph's outputs, encoded for the files)."""
        nodata = self.contract.nodata.value
        try:
            self.classes.ds.write(classes, 1, window=window)
            if self.conf is not None and confidence is not None:
                self.conf.ds.write(confidence_percent(confidence, classes, nodata), 1,
                                   window=window)
            if self.probs is not None and probs is not None:
                self.probs.ds.write(np.where(classes == nodata, np.float32(PROBS_NODATA),
                                             probs), window=window)
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
        side = {k: v for k, v in tags.items() if k != COUNTS_TAG}
        try:
            self.classes.ds.update_tags(**class_tags(self.contract), **tags)
            if self.conf is not None:
                self.conf.ds.update_tags(**side, LULC_EDGE_CONFIDENCE=CONFIDENCE_MEANING)
            if self.probs is not None:
                self.probs.ds.update_tags(**side)
            ready = []
            for f in self.files:
                f.ds.update_tags(**{COMPLETE_TAG: "1"})
                add_overviews(f.ds)
                f.ds.close()
                tmp = f.tmp
                if cog:
                    cog_tmp = partial_path(f.final, ".cog.tif")
                    rasterio.shutil.copy(tmp, cog_tmp, driver="COG", compress="DEFLATE",
                                         blocksize=BLOCK, BIGTIFF="IF_SAFER")
                    tmp.unlink()
                    tmp = cog_tmp
                fsync_file(tmp)
                ready.append((tmp, f.final))
        except (RasterioError, OSError) as exc:
            self.abort()
            raise self.write_error(exc) from None
        for tmp, final in ready:
            os.replace(tmp, final)
        self._remove_stale()
        fsync_dir(self.final.parent)
        write_pam(self.final, self.contract)

    def _remove_stale(self) -> None:
        """Remove the confidence or probabilities file an earlier run left beside this map when
        this run writes none: it would pass for the new map's (pictures read the confidence)."""
        written = {f.final for f in self.files}
        for kind in ("confidence", "probs"):
            side = sibling_path(self.final, kind)
            if side not in written and side.is_file() and verify_output(side) is None:
                side.unlink()

    def close(self) -> None:
        """Close without finishing (keeps the partial files, e.g. for --resume)."""
        for f in self.files:
            if f.ds is not None and not f.ds.closed:
                f.ds.close()

    def abort(self) -> None:
        """Close and delete temporaries."""
        self.close()
        for f in self.files:
            f.tmp.unlink(missing_ok=True)
            partial_path(f.final, ".cog.tif").unlink(missing_ok=True)


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
    """GDAL PAM (.aux.xml) text naming the classes of band 1: category names, a thematic
    raster attribute table (value, name, colour) that GDAL and QGIS read back, and a colour
    table of the classes alone. A GeoTIFF palette has 256 entries (TIFF stores 2^bits), which
    QGIS lists as a 256-row legend; GDAL prefers this sidecar's table, so QGIS lists the
    classes, named by the category names (nodata is drawn transparent either way)."""
    last = max(c.value for c in contract.classes)
    rgba = {c.value: (*c.rgb, 255) for c in contract.classes}
    table = "".join('<Entry c1="{}" c2="{}" c3="{}" c4="{}"/>'.format(*rgba.get(v, (0, 0, 0, 0)))
                    for v in range(last + 1))
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
            "    <ColorInterp>Palette</ColorInterp>\n"
            f"    <CategoryNames>{cats}</CategoryNames>\n"
            f"    <ColorTable>{table}</ColorTable>\n"
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


def qml_style(classes: Sequence[ClassInfo], nodata: ClassInfo | None = None) -> str:
    """A QGIS layer style (paletted renderer with the class names and colours; ``nodata``, when
    given, is listed last, so the legend names it, though QGIS draws nodata transparent)."""
    rows = [(c, 255) for c in classes] + ([(nodata, 0)] if nodata is not None else [])
    entries = "".join(
        f'<paletteEntry value="{c.value}" color="{c.color}" alpha="{a}" '
        f'label="{escape(c.name, {chr(34): "&quot;"})}"/>' for c, a in rows)
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.22.0" styleCategories="Symbology">\n  <pipe>\n'
            '    <rasterrenderer type="paletted" band="1" opacity="1" nodataColor="">\n'
            f"      <colorPalette>{entries}</colorPalette>\n"
            "    </rasterrenderer>\n  </pipe>\n</qgis>\n")


def qml_path(final: Path) -> Path:
    """Where a map's QGIS style goes: NAME.qml beside NAME.tif, which QGIS loads with it."""
    return final.with_suffix(".qml")


def write_qml(final: Path, classes: Sequence[ClassInfo], nodata: ClassInfo | None) -> Path:
    """Write the QGIS style of the map ``final`` (see ``qml_style``); its path."""
    path = qml_path(final)
    write_atomic(path, qml_style(classes, nodata))
    return path


def sibling_path(final: Path, kind: str) -> Path:
    """``NAME.<kind>.tif`` beside the class map ``NAME.tif``."""
    name = final.name[:-4] if final.name.lower().endswith(".tif") else final.name
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
