"""lulc_edge.core: the run itself: every tile of a source through the model into the sinks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .engine import Engine
from .modes import Mode
from .sinks import Sink
from .sources import Source
from .stitch import Prediction
from .stream import Feeder, infer_plan
from .tiling import Tile


@dataclass(frozen=True)
class Plan:
    """The work of a run: its tiles in order, the batch, the graph outputs wanted, and the
    tiles ``done`` by an interrupted run (index -> journal record), replayed, not inferred;
    ``mask`` the step between inference and the sinks (the cloud mask: ``clouds.TileMasker``),
    given each tile's prediction and read block. The sinks see its result, the journal too:
    a replayed tile is already masked."""

    tiles: list[Tile]
    batch: int
    outputs: tuple[str, ...] = ("class",)
    done: Mapping[int, bytes] = field(default_factory=dict)
    mask: Callable[[Tile, Prediction, np.ndarray], Prediction] | None = None


def run(source: Source, engine: Engine, mode: Mode, sinks: Sequence[Sink], plan: Plan,
        on_tile: Callable[[Tile, bool], None] | None = None) -> int:
    """Feed every tile of ``plan`` to the opened ``sinks``, in plan order: done tiles
    replayed, the others read and inferred ``plan.batch`` at a time; ``on_tile(tile,
    inferred)`` follows each. Returns the number of tiles inferred. Opening and finishing the
    sinks is the caller's (``runfile``)."""
    done = plan.done
    bands = any(getattr(s, "needs_bands", False) for s in sinks)
    todo = [t for t in plan.tiles if t.index not in done]
    feeder = Feeder(sinks)
    try:
        for t in plan.tiles:
            if t.index in done:
                res = Prediction.from_bytes(done[t.index], t, plan.outputs,
                                            engine.contract.n_classes)
                feeder.put(t, res, source.read(t.read) if bands else None)
                if on_tile is not None:
                    on_tile(t, False)
        for t, res, block in infer_plan(engine, mode, lambda t: source.read(t.read), todo,
                                        plan.outputs, plan.batch):
            if plan.mask is not None:
                res = plan.mask(t, res, block)
            feeder.put(t, res, block if bands else None)
            if on_tile is not None:
                on_tile(t, True)
    finally:
        feeder.close()
    return len(todo)
