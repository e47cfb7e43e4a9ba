"""Window arithmetic of sources, on rasterio's window helpers: the one boundless read."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rasterio.errors import WindowError
from rasterio.windows import Window, intersection

#: Size (pixels) of the sample windows read at open time (probe, SCL check, float check).
SAMPLE_SIZE = 128


def whole(window: Window) -> Window:
    """``window`` with integer offsets and size."""
    return Window(int(window.col_off), int(window.row_off), int(window.width),
                  int(window.height))


def clip_window(window: Window, width: int, height: int) -> tuple[Window, int, int] | None:
    """The part of ``window`` inside a ``width`` x ``height`` raster and its (row, col) offset
    inside ``window``; None when they do not overlap."""
    window = whole(window)
    try:
        inner = intersection(window, Window(0, 0, width, height))
    except WindowError:
        return None
    if inner.width <= 0 or inner.height <= 0:
        return None
    inner = whole(inner)
    return inner, inner.row_off - window.row_off, inner.col_off - window.col_off


def read_boundless(window: Window, width: int, height: int, bands: int, dtype: np.dtype,
                   read: Callable[[Window], np.ndarray]) -> np.ndarray:
    """``(bands, h, w)`` of ``window`` of a ``width`` x ``height`` raster, 0 outside it;
    ``read`` reads a window inside the raster. Inside it, ``read``'s array as is (no copy)."""
    window = whole(window)
    inner = clip_window(window, width, height)
    data = None if inner is None else read(inner[0])
    if data is not None and data.shape[1:] == (window.height, window.width):
        return data
    out = np.zeros((bands, window.height, window.width), dtype)
    if inner is not None:
        win, dr, dc = inner
        out[:, dr:dr + win.height, dc:dc + win.width] = data
    return out


def rows_cols(window: Window) -> tuple[int, int, int, int]:
    """``window``'s rows and columns as ``(r0, r1, c0, c1)``."""
    w = whole(window)
    return w.row_off, w.row_off + w.height, w.col_off, w.col_off + w.width


def sample_windows(width: int, height: int, size: int = SAMPLE_SIZE,
                   within: Window | None = None) -> list[Window]:
    """Small windows at the left, centre and right of the first rows, for the SCL and float
    checks, and the last corner, which probes the file's last block (a truncated file); of the
    window ``within`` alone when given (a run of an area reads nothing else). Per-band files
    decode only the blocks under them, kept for the pass (decoded once)."""
    c0, r0 = 0, 0
    if within is not None:
        (c0, r0), width, height = (int(within.col_off), int(within.row_off)), \
            int(within.width), int(within.height)
    w, h = min(size, width), min(size, height)
    first = [Window(c0 + c, r0, w, h) for c in sorted({0, (width - w) // 2, width - w})]
    return first + [Window(c0 + width - w, r0 + height - h, w, h)]
