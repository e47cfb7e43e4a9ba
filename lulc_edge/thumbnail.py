"""lulc_edge.thumbnail: a decimated true-colour copy of a scene, gathered while a run reads it.

A picture of a full tile needs B4/B3/B2 at ~2048 px. Read afterwards from a stack without
overviews, that means decoding the whole scene a second time (15 s for a full tile, more than
the pictures' budget of a tenth of the run); the run reads every pixel anyway, so it keeps the
nearest sample of each thumbnail pixel as the tiles go by, for a few MB.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .tiling import Tile

#: Longest side of the pictures (px), unless asked otherwise.
DEFAULT_SIZE = 2048
#: The bands of a true-colour picture, red, green, blue.
RGB_BANDS = ("B4", "B3", "B2")


def out_shape(width: int, height: int, size: int) -> tuple[int, int]:
    """(h, w) whose longest side is ``size`` at most (never enlarged)."""
    scale = min(1.0, size / max(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale))


def sample_index(n_out: int, n_in: int) -> np.ndarray:
    """The source pixel each of ``n_out`` pixels samples along an axis (nearest, centres)."""
    return ((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64)


class TrueColour:
    """Collects the (3, h, w) B4/B3/B2 thumbnail of a ``width`` x ``height`` scene from tiles."""

    def __init__(self, width: int, height: int, size: int, band_names: Sequence[str]) -> None:
        self.shape = out_shape(width, height, size)
        self.rows = sample_index(self.shape[0], height)
        self.cols = sample_index(self.shape[1], width)
        self.bands = [list(band_names).index(b) for b in RGB_BANDS]
        self.image = np.zeros((3, *self.shape), np.uint16)

    def add(self, tile: Tile, block: np.ndarray) -> None:
        """Take the samples inside ``tile``'s core from its read ``block`` (bands, h, w)."""
        r0, c0 = int(tile.core.row_off), int(tile.core.col_off)
        ri = np.nonzero((self.rows >= r0) & (self.rows < r0 + int(tile.core.height)))[0]
        ci = np.nonzero((self.cols >= c0) & (self.cols < c0 + int(tile.core.width)))[0]
        if not len(ri) or not len(ci):
            return
        rr = self.rows[ri] - int(tile.read.row_off)
        cc = self.cols[ci] - int(tile.read.col_off)
        self.image[:, ri[0]: ri[-1] + 1, ci[0]: ci[-1] + 1] = \
            block[self.bands][:, rr][:, :, cc]
