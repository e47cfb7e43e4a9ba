"""lulc_edge.composite: per-pixel composites of several dates' class probabilities.

A composite runs tile by tile over the target grid: one :class:`Accumulator` per tile takes
each date's probabilities for that tile (after the cloud mask, :mod:`lulc_edge.clouds`), so
memory is one tile's accumulators (K float64 sums, K vote counts for ``mode``, two uint16
counts) whatever the number of dates.

Rules, over the observations valid at a pixel (the date has data there and it is not masked):

* ``mean``: the class of the highest mean probability; confidence is that mean probability.
* ``mode``: the class most dates chose (each date's argmax), ties broken by the higher mean
  probability (then the lower class value); confidence is the chosen class's mean probability.

Pixels with no valid observation are nodata (255) and counted (``Accumulator.empty``).
``n_valid`` counts the valid observations of a pixel, ``n_total`` the dates that cover it
(cloudy or clear), the composite's bands of the same names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .clouds import CLOUD_VALUE, CloudMask, TileMasker, masker
from .engine import Engine
from .modes import Mode
from .sources import Source
from .stitch import Prediction
from .stream import infer_plan
from .tiling import Tile

#: Composite rules (``--rule``).
RULES = ("mean", "mode")
#: Class value where no observation is valid.
NODATA = 255
#: Band descriptions of the composite's count bands.
COUNT_BANDS = ("n_valid", "n_total")


class CompositeTile(NamedTuple):
    """A tile's composite: classes (uint8, 255 nodata), confidence (uint8 percent, 255
    nodata), n_valid and n_total (uint16)."""

    classes: np.ndarray
    confidence: np.ndarray
    n_valid: np.ndarray
    n_total: np.ndarray


class Accumulator:
    """Running sums of one tile's observations; ``add`` each date, then ``result``."""

    def __init__(self, n_classes: int, shape: tuple[int, int], rule: str = "mean") -> None:
        if rule not in RULES:
            raise ValueError(f"unknown composite rule {rule!r} (use {', '.join(RULES)})")
        if not 1 <= n_classes < NODATA:
            raise ValueError(f"n_classes must be in 1..{NODATA - 1}, got {n_classes}")
        self.rule, self.k, self.shape = rule, n_classes, tuple(shape)
        # float64 sums: adding a few float32 probabilities loses nothing a float32 mean shows
        self.sums = np.zeros((n_classes, *self.shape), np.float64)
        self.votes = np.zeros((n_classes, *self.shape), np.uint16) if rule == "mode" else None
        self.n_valid = np.zeros(self.shape, np.uint16)
        self.n_total = np.zeros(self.shape, np.uint16)

    def add(self, probs: np.ndarray, valid: np.ndarray, observed: np.ndarray | None = None
            ) -> None:
        """One date: ``probs`` (K, h, w) float32, ``valid`` (h, w) where the date counts (data,
        not masked); ``observed`` where the date covers the pixel at all, cloudy or not
        (its data mask; default: the whole tile)."""
        if probs.shape != (self.k, *self.shape):
            raise ValueError(f"probabilities of shape {probs.shape}, expected "
                             f"{(self.k, *self.shape)}")
        valid = np.asarray(valid, bool)
        self.n_total += True if observed is None else np.asarray(observed, bool) | valid
        self.n_valid += valid
        seen = np.where(valid, probs, np.float32(0))
        self.sums += seen
        if self.votes is not None:
            top = np.argmax(seen, axis=0)
            for c in range(self.k):
                self.votes[c] += valid & (top == c)

    def mean(self) -> np.ndarray:
        """Mean probability of each class over the valid observations (K, h, w) float32, NaN
        where there is none."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.sums / self.n_valid).astype(np.float32)

    @property
    def empty(self) -> int:
        """Pixels with no valid observation (nodata in the result)."""
        return int((self.n_valid == 0).sum())

    def result(self, mean: np.ndarray | None = None) -> CompositeTile:
        """The composite of the dates added so far (``mean``: ``self.mean()`` when the caller
        has it already)."""
        mean = np.nan_to_num(self.mean() if mean is None else mean, nan=-1.0)
        if self.votes is None:
            cls = np.argmax(mean, axis=0)
        else:  # the most votes; among tied classes the highest mean probability
            tied = self.votes == self.votes.max(axis=0)
            cls = np.argmax(np.where(tied, mean, -2.0), axis=0)
        top = np.take_along_axis(mean, cls[None], axis=0)[0]
        none = self.n_valid == 0
        classes = np.where(none, NODATA, cls).astype(np.uint8)
        conf = np.where(none, NODATA, np.floor(np.clip(top, 0, 1) * 100 + 0.5)).astype(np.uint8)
        return CompositeTile(classes, conf, self.n_valid.copy(), self.n_total.copy())


class CompositePrediction(Prediction):
    """A composite tile as the sinks take it: classes, confidence (the graph's scale,
    round(255 x p) of the chosen class's mean probability), the mean probabilities (when
    asked for, ``keep_mean``), ``counts`` (2, h, w) uint16:
    n_valid and n_total. ``arrays`` is what the resume journal records."""

    def __init__(self, tile: CompositeTile, mean: np.ndarray, keep_mean: bool = False) -> None:
        chosen = np.where(tile.classes == NODATA, 0, tile.classes).astype(np.intp)
        top = np.nan_to_num(np.take_along_axis(mean, chosen[None], axis=0)[0])
        conf = np.where(tile.classes == NODATA, 0, np.floor(np.clip(top, 0, 1) * 255 + 0.5))
        super().__init__(tile.classes, conf.astype(np.uint8), mean if keep_mean else None)
        self.counts = np.stack([tile.n_valid, tile.n_total])

    def arrays(self) -> list[np.ndarray]:
        return [self.classes, self.confidence, self.counts,
                *([] if self.probabilities is None else [self.probabilities])]

    @classmethod
    def from_record(cls, payload: bytes, tile: Tile, n_classes: int) -> CompositePrediction:
        """A tile back from its journal record (``arrays``)."""
        h, w = int(tile.core.height), int(tile.core.width)
        buf, n = memoryview(payload), h * w
        classes = np.frombuffer(buf[:n], np.uint8).reshape(h, w)
        conf = np.frombuffer(buf[n: 2 * n], np.uint8).reshape(h, w)
        counts = np.frombuffer(buf[2 * n: 6 * n], np.uint16).reshape(2, h, w)
        mean = np.frombuffer(buf[6 * n:], np.float32).reshape(n_classes, h, w) \
            if len(buf) > 6 * n else None
        out = cls.__new__(cls)
        Prediction.__init__(out, classes, conf, mean)
        out.counts = counts
        return out


#: What a scene's tile is asked of the graph: nodata comes with the class, the rest is summed.
_OUTPUTS = ("class", "probabilities")


def scene_masks(mask: CloudMask, scenes: Sequence[Source], nodata: int
                ) -> list[TileMasker | None]:
    """Each scene's cloud mask step (None where nothing is masked: no SCL, or no mask)."""
    return [masker(mask, s.band_names, s.radiometry.scl_fill, nodata) for s in scenes]


@dataclass(frozen=True)
class SceneTile(Tile):
    """A tile of one of a composite's scenes (its index in the scene list)."""

    scene: int = 0


def composite_tiles(scenes: Sequence[Source], engine: Engine, mode: Mode, tiles: list[Tile],
                    batch: int, rule: str = "mean", probs: bool = False,
                    mask: Sequence[Callable[[Tile, Prediction, np.ndarray], Prediction] | None]
                    = ()) -> list[CompositePrediction]:
    """The composite of ``tiles`` (one row of the target grid, say) over ``scenes`` (all on
    that grid): scene after scene, each tile read and inferred once through the run's own path
    (one ``stream.infer_plan`` for all the scenes' tiles, so reading and inference overlap
    across scenes too), masked by the scene's ``mask`` step (clouds) and summed into one
    accumulator per tile. A scene's cached strips are dropped once its tiles are read, so
    memory is the tiles' accumulators whatever the number of scenes. The mean probabilities
    too with ``probs``."""
    k, nodata = engine.contract.n_classes, engine.contract.nodata.value
    accs = {t.index: Accumulator(k, (int(t.core.height), int(t.core.width)), rule)
            for t in tiles}
    jobs = [SceneTile(t.index, t.core, t.read, t.windows, i)
            for i, scene in enumerate(scenes) for t in tiles
            if getattr(scene, "overlaps", bool)(t.core)]
    reading = [0]

    def read(t: SceneTile) -> np.ndarray:  # in the read-ahead thread, in order
        if t.scene != reading[0]:
            scenes[reading[0]].drop_cache()
            reading[0] = t.scene
        return scenes[t.scene].read(t.read)

    try:
        for t, pred, block in infer_plan(engine, mode, read, jobs, _OUTPUTS, batch):
            step = mask[t.scene] if t.scene < len(mask) else None
            if step is not None:
                pred = step(t, pred, block)
            observed = pred.classes != nodata
            accs[t.index].add(pred.probabilities, observed & (pred.classes != CLOUD_VALUE),
                              observed)
    finally:
        if scenes:
            scenes[reading[0]].drop_cache()
    out = []
    for t in tiles:
        acc = accs.pop(t.index)
        mean = acc.mean()
        out.append(CompositePrediction(acc.result(mean), mean, probs))
    return out
