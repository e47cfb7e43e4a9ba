"""lulc_edge.sinks.outputs: the built-in sinks: class map files, QGIS style, resume journal,
counts and areas, thumbnail."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..areas import AreaSum
from ..mapwriter import OutputWriter
from ..raster import COUNTS_TAG, FINGERPRINT_TAG, OPTIONS_TAG, class_counts, verify_output
from ..spec import RunSpec
from ..stitch import Prediction
from ..styles import map_classes, write_qml
from ..thumbnail import TrueColour
from ..tiling import Tile
from .base import RunContext, Sink


class Maps(Sink):
    """The class map, with the confidence and probabilities files beside it when asked for."""

    @classmethod
    def missing(cls, dst: Path, spec: RunSpec, expect: dict[str, str]) -> str | None:
        return verify_output(dst, expect.get(FINGERPRINT_TAG), expect.get(OPTIONS_TAG))

    def open(self, ctx: RunContext) -> None:
        self.cog = ctx.spec.run.cog
        self.out = OutputWriter(ctx.dst, ctx.grid, ctx.engine.contract,
                                confidence=ctx.spec.run.confidence, probs=ctx.spec.run.probs,
                                clouds=ctx.clouds)

    def add(self, tile: Tile, result: Prediction, bands: np.ndarray | None = None) -> None:
        self.out.write(tile.core, result.classes, result.confidence, result.probabilities)

    def finish(self, tags: dict[str, str]) -> None:
        self.out.finish(tags, cog=self.cog)

    def abort(self, resumable: bool = False) -> None:
        if resumable:
            self.out.close()  # keep the partial files: --resume continues from here
        else:
            self.out.abort()


class Style(Sink):
    """The QGIS style NAME.qml beside the map (``--qml``)."""

    @classmethod
    def wanted(cls, spec: RunSpec) -> bool:
        return spec.run.qml

    def finish(self, tags: dict[str, str]) -> None:
        c = self.ctx.engine.contract
        write_qml(self.ctx.dst, map_classes(c, self.ctx.clouds), c.nodata)


class Resume(Sink):
    """The journal of finished tiles: a killed run continues with ``--resume``."""

    def open(self, ctx: RunContext) -> None:
        assert ctx.journal is not None, "a run opens its journal before its sinks"
        self.journal, self.done = ctx.journal, ctx.done
        self.journal.start(sorted(ctx.done.items()))

    def add(self, tile: Tile, result: Prediction, bands: np.ndarray | None = None) -> None:
        if tile.index not in self.done:
            self.journal.append(tile.index, result.arrays())

    def finish(self, tags: dict[str, str]) -> None:
        self.journal.remove()

    def abort(self, resumable: bool = False) -> None:
        if resumable:
            self.journal.close()
        else:
            self.journal.remove()


class Areas(Sink):
    """Pixels and ground area per class; records the counts in the map (COUNTS_TAG)."""

    def open(self, ctx: RunContext) -> None:
        self.sum = AreaSum(ctx.grid.crs, ctx.grid.transform)

    def add(self, tile: Tile, result: Prediction, bands: np.ndarray | None = None) -> None:
        self.sum.add(result.classes, tile.core.row_off)

    def finish(self, tags: dict[str, str]) -> None:
        tags[COUNTS_TAG] = class_counts(self.sum.counts)


class Thumbnail(Sink):
    """The B4/B3/B2 thumbnail (``thumbnail`` px, longest side), sampled from the read blocks:
    pictures of a scene without overviews then need no second read of it."""

    needs_bands = True

    @classmethod
    def wanted(cls, spec: RunSpec) -> bool:
        return spec.run.thumbnail > 0

    def open(self, ctx: RunContext) -> None:
        s = ctx.source
        self.picture = TrueColour(s.width, s.height, ctx.spec.run.thumbnail, s.band_names)

    def add(self, tile: Tile, result: Prediction, bands: np.ndarray | None = None) -> None:
        if bands is not None:
            self.picture.add(tile, bands)

    def finish(self, tags: dict[str, str]) -> None:
        self.product = self.picture.image
