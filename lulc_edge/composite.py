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

from typing import NamedTuple

import numpy as np

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

    def result(self) -> CompositeTile:
        """The composite of the dates added so far."""
        mean = np.nan_to_num(self.mean(), nan=-1.0)
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
