"""lulc_edge.sinks.base: what a sink is and what it is given."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..raster import Grid
from ..stitch import Prediction
from ..tiling import Tile

if TYPE_CHECKING:
    from ..engine import Engine
    from ..journal import Journal
    from ..sources import Source
    from ..spec import RunSpec


@dataclass
class RunContext:
    """What a run tells its sinks when it opens them."""

    src: str  # the input as given
    dst: Path  # the class map's final path; other files go beside it
    spec: RunSpec
    engine: Engine
    source: Source
    grid: Grid
    tiles: list[Tile]
    #: tiles finished by an interrupted run (index -> journal record): fed again, not inferred
    done: dict[int, bytes] = field(default_factory=dict)
    journal: Journal | None = None
    #: whether the run masks clouds (the map then has the Cloud class, ``lulc_edge.clouds``)
    clouds: bool = False


class Sink:
    """One product of a run, fed tile by tile (duck typing: any object with these methods).

    ``open(ctx)`` once before the first tile; ``add(tile, result, bands)`` for every tile in
    plan order, in the writer thread (``bands``: the tile's read block when ``needs_bands``,
    else None); ``finish(tags)`` in registry order once every tile is in (a sink may add tags
    for the sinks after it: ``areas`` adds the class counts the map records); ``abort`` when
    the run fails (``resumable``: interrupted, keep what ``--resume`` continues from).
    ``product`` is handed back in ``RunResult.products[name]`` (in ``--json`` when it has an
    ``as_dict``).
    """

    name = ""
    needs_bands = False
    product: Any = None
    #: made from the finished map alone: a batch whose map is current makes these files again
    #: (``remake``) where ``missing`` says so, without mapping the scene again
    derived = False

    @classmethod
    def wanted(cls, spec: RunSpec) -> bool:
        """Whether a run with ``spec`` makes this product."""
        return True

    @classmethod
    def missing(cls, dst: Path, spec: RunSpec, expect: dict[str, str]) -> str | None:
        """Why the files this sink made for ``dst`` are missing or outdated (None: fine);
        ``expect`` holds the tags a current output has (input fingerprint, options)."""
        return None

    @classmethod
    def remake(cls, dst: Path, spec: RunSpec) -> Any:
        """Make a ``derived`` sink's files again from the finished map ``dst``; the product."""
        raise NotImplementedError(f"{cls.__name__} is made by a run only")

    def open(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def add(self, tile: Tile, result: Prediction, bands: np.ndarray | None = None) -> None:
        pass

    def finish(self, tags: dict[str, str]) -> None:
        pass

    def abort(self, resumable: bool = False) -> None:
        pass
