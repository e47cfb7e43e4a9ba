"""lulc_edge.sinks.counts: a composite's observation counts, NAME.counts.tif beside its map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from ..composite import COUNT_BANDS
from ..files import fsync_file, partial_path, place
from ..raster import (
    BLOCK,
    COMPLETE_TAG,
    COUNTS_TAG,
    add_overviews,
    copy_to_cog,
    sibling_path,
    write_error,
)
from ..stitch import Prediction
from ..tiling import Tile
from .base import RunContext, Sink

#: What the counts file holds, in its tags and the README.
COUNTS_MEANING = ("band 1 n_valid: observations used at the pixel (data, not cloud); "
                  "band 2 n_total: scenes covering the pixel, cloudy or clear")


def counts_path(final: Path) -> Path:
    """``NAME.counts.tif`` beside the composite ``NAME.tif``."""
    return sibling_path(final, "counts")


class Counts(Sink):
    """n_valid and n_total per pixel (uint16, two bands named so): the composite's input
    quality layer, as ESA WorldCover publishes one beside its map. A band of their own, not
    beside the palette of the class map (QGIS would draw the map as RGB)."""

    name = "counts"

    def open(self, ctx: RunContext) -> None:
        self.final, self.cog = counts_path(ctx.dst), ctx.spec.run.cog
        g = ctx.grid
        try:
            self.ds = rasterio.open(
                partial_path(self.final), "w", driver="GTiff", width=g.width,
                height=g.height, count=len(COUNT_BANDS), dtype="uint16", crs=g.crs,
                transform=g.transform, tiled=True, blockxsize=BLOCK, blockysize=BLOCK,
                compress="deflate", predictor=2, BIGTIFF="IF_SAFER")
            for i, name in enumerate(COUNT_BANDS, 1):
                self.ds.set_band_description(i, name)
        except (RasterioError, OSError) as exc:
            raise write_error(self.final, exc) from None

    def add(self, tile: Tile, result: Prediction, bands: np.ndarray | None = None) -> None:
        counts = getattr(result, "counts", None)
        if counts is not None:
            self.ds.write(counts, window=tile.core)

    def finish(self, tags: dict[str, str]) -> None:
        side = {k: v for k, v in tags.items() if k != COUNTS_TAG}
        tmp = partial_path(self.final)
        try:
            self.ds.update_tags(**side, LULC_EDGE_COUNTS=COUNTS_MEANING)
            self.ds.update_tags(**{COMPLETE_TAG: "1"})
            add_overviews(self.ds)
            self.ds.close()
            if self.cog:  # as the map's files with --cog (the overviews are reused)
                tmp = copy_to_cog(tmp, self.final)
            fsync_file(tmp)
        except (RasterioError, OSError) as exc:
            self.abort()
            raise write_error(self.final, exc) from None
        place(tmp, self.final)

    def abort(self, resumable: bool = False) -> None:
        if not self.ds.closed:
            self.ds.close()
        if not resumable:
            partial_path(self.final).unlink(missing_ok=True)
            partial_path(self.final, ".cog.tif").unlink(missing_ok=True)
