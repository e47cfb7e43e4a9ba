"""lulc_edge.raster: output rasters: profiles, colour table, tags, atomic placement, COG."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import RasterioError
from rasterio.windows import Window

from .contract import Contract
from .errors import OutputError

#: Output GeoTIFF block size; multiple of 16 as GeoTIFF requires.
BLOCK = 256
#: Tag that marks an output as complete; written last, read by batch runs to skip done scenes.
COMPLETE_TAG = "LULC_EDGE_COMPLETE"


def partial_path(final: Path, suffix: str = ".partial.tif") -> Path:
    """Temporary name beside the final output, hidden, so a crash never leaves a final name."""
    return final.with_name(f".{final.name}{suffix}")


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
        self.ds.write(classes, 1, window=window)
        if self.confidence and confidence is not None:
            self.ds.write(confidence, 2, window=window)
        if self.pds is not None and probs is not None:
            self.pds.write(probs, window=window)

    def finish(self, tags: dict[str, str], cog: bool = False) -> None:
        """Tag, close, optionally convert to COG, and move into place."""
        self.ds.update_tags(**class_tags(self.contract), **tags)
        self.ds.update_tags(**{COMPLETE_TAG: "1"})
        self.ds.close()
        if self.pds is not None:
            self.pds.update_tags(**tags)
            self.pds.update_tags(**{COMPLETE_TAG: "1"})
            self.pds.close()
        pairs = [(self.tmp, self.final)]
        if self.probs_tmp is not None and self.probs_final is not None:
            pairs.append((self.probs_tmp, self.probs_final))
        for tmp, final in pairs:
            if cog:
                cog_tmp = partial_path(final, ".cog.tif")
                rasterio.shutil.copy(tmp, cog_tmp, driver="COG", compress="DEFLATE",
                                     blocksize=BLOCK, BIGTIFF="IF_SAFER")
                tmp.unlink()
                tmp = cog_tmp
            os.replace(tmp, final)

    def close(self) -> None:
        """Close without finishing (keeps the partial files, e.g. for --resume)."""
        for ds in (getattr(self, "ds", None), getattr(self, "pds", None)):
            if ds is not None and not ds.closed:
                ds.close()

    def abort(self) -> None:
        """Close and delete temporaries."""
        self.close()
        for p in (self.tmp, self.probs_tmp):
            if p is not None and p.exists():
                p.unlink()


def probs_path(final: Path) -> Path:
    """Where ``--probs`` writes the per-class probabilities: beside the class map."""
    name = final.name[:-4] if final.name.lower().endswith(".tif") else final.name
    return final.with_name(f"{name}.probs.tif")


def is_complete(path: Path) -> bool:
    """True when ``path`` is a lulc-edge output whose completeness tag was written."""
    try:
        with rasterio.open(path) as ds:
            return ds.tags().get(COMPLETE_TAG) == "1"
    except (RasterioError, OSError):
        return False
