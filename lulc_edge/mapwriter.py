"""lulc_edge.mapwriter: the class map, confidence and probabilities files of a run, written
tile by tile under temporary names and placed atomically when the run finishes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from .clouds import CLOUD_VALUE
from .contract import Contract
from .errors import OutputError
from .files import fsync_dir, fsync_file, partial_path, place
from .raster import (
    COMPLETE_TAG,
    CONFIDENCE_MEANING,
    CONFIDENCE_NODATA,
    COUNTS_TAG,
    PROBS_NODATA,
    Grid,
    add_overviews,
    class_profile,
    confidence_path,
    confidence_percent,
    confidence_profile,
    copy_to_cog,
    probs_path,
    probs_profile,
    sibling_path,
    verify_output,
    write_error,
)
from .styles import class_tags, colormap, write_pam


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
                 probs: bool, clouds: bool = False) -> None:
        self.final = final
        self.contract = contract
        self.clouds = clouds  # the map has the Cloud class (lulc_edge.clouds)
        self.classes = _File(final)
        self.conf = _File(confidence_path(final)) if confidence else None
        self.probs = _File(probs_path(final)) if probs else None
        try:
            self.classes.ds = rasterio.open(self.classes.tmp, "w",
                                            **class_profile(grid, contract))
            self.classes.ds.write_colormap(1, colormap(contract, clouds))
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
        """Write one core window of results (the graph's outputs, encoded for the files):
        Cloud pixels are nodata in the confidence and probabilities files."""
        nodata = self.contract.nodata.value
        try:
            self.classes.ds.write(classes, 1, window=window)
            blank = (classes == nodata) | (classes == CLOUD_VALUE)
            if self.conf is not None and confidence is not None:
                pct = confidence_percent(confidence, classes, nodata)
                pct[blank] = CONFIDENCE_NODATA
                self.conf.ds.write(pct, 1, window=window)
            if self.probs is not None and probs is not None:
                self.probs.ds.write(np.where(blank, np.float32(PROBS_NODATA), probs),
                                    window=window)
        except (RasterioError, OSError) as exc:
            raise self.write_error(exc) from None

    def write_error(self, exc: BaseException) -> OutputError:
        """The one-line error for a failed write: the output and the cause (disk full...)."""
        return write_error(self.final, exc)

    def finish(self, tags: dict[str, str], cog: bool = False) -> None:
        """Tag, close, optionally convert to COG, fsync, and move into place.

        Each file reaches the disk before its rename and the rename before we return, so after
        a power cut the final name is either absent or a whole file; COUNTS_TAG in ``tags``
        lets a later check verify the class band anyway (``verify_output``).
        """
        side = {k: v for k, v in tags.items() if k != COUNTS_TAG}
        try:
            self.classes.ds.update_tags(**class_tags(self.contract, self.clouds), **tags)
            if self.conf is not None:
                self.conf.ds.update_tags(**side, LULC_EDGE_CONFIDENCE=CONFIDENCE_MEANING)
            if self.probs is not None:
                self.probs.ds.update_tags(**side)
            ready = []
            for f in self.files:
                f.ds.update_tags(**{COMPLETE_TAG: "1"})
                add_overviews(f.ds)
                f.ds.close()
                tmp = copy_to_cog(f.tmp, f.final) if cog else f.tmp
                fsync_file(tmp)
                ready.append((tmp, f.final))
        except (RasterioError, OSError) as exc:
            self.abort()
            raise self.write_error(exc) from None
        for tmp, final in ready:
            place(tmp, final, sync=False)
        self._remove_stale()
        fsync_dir(self.final.parent)
        write_pam(self.final, self.contract, self.clouds)

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


