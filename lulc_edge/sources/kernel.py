"""The direct separable resampling kernel of :mod:`lulc_edge.sources.resample`: how output pixels
map onto a band file's pixels along each axis (:class:`AxisMap`), the taps of a range of output
pixels (:class:`Taps`) and one pass of the kernel along an axis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio

#: Types whose values float32 holds exactly (resampled as they are; others as float32 first).
_EXACT = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16), np.dtype(np.float32))


@dataclass(frozen=True)
class AxisMap:
    """Output pixel ``i`` has its centre at source pixel coordinate ``offset + (i + 0.5) / factor``
    along one axis of a source ``size`` pixels long."""

    offset: float
    factor: int
    size: int

    def coords(self, start: int, stop: int) -> np.ndarray:
        return self.offset + (np.arange(start, stop, dtype=np.float64) + 0.5) / self.factor


def axis_maps(src: rasterio.io.DatasetReader, dst_transform, tol: float = 1e-6
              ) -> tuple[AxisMap, AxisMap] | None:
    """Row and column maps from the output grid onto ``src``, or None when the grids are not
    integer multiples of each other without rotation (the general warper handles those)."""
    s, d = src.transform, dst_transform
    if s.b or s.d or d.b or d.e * s.e <= 0 or d.a * s.a <= 0 or d.b or d.d:
        return None
    fx, fy = s.a / d.a, s.e / d.e
    if abs(fx - round(fx)) > tol or abs(fy - round(fy)) > tol or round(fx) < 1 or round(fy) < 1:
        return None
    rows = AxisMap((d.f - s.f) / s.e, round(fy), src.height)
    cols = AxisMap((d.c - s.c) / s.a, round(fx), src.width)
    return rows, cols


class Taps:
    """The source pixels one axis of an output window reads, relative to ``start`` (the first
    source index read, which may be -1 at the raster's edge: such taps read padding).

    ``lo[i]`` and ``lo[i] + 1`` are output pixel ``i``'s two bilinear taps with weight
    ``1 - w1[i]`` and ``w1[i]`` (nearest: ``lo`` alone); ``near[i]`` the pixel holding its centre;
    ``inside[i]`` whether that centre lies in the raster at all. With an integer factor ``f``
    both repeat every ``f`` pixels shifted by one, so each phase is one strided slice.
    """

    def __init__(self, m: AxisMap, start: int, stop: int, bilinear: bool) -> None:
        u = m.coords(start, stop)
        near = np.floor(u).astype(np.int64)
        if bilinear:
            s = u - 0.5
            lo = np.floor(s).astype(np.int64)
            w1 = (s - lo).astype(np.float32)
            last = lo + (w1 > 0)
        else:
            lo, w1, last = near, np.zeros(len(u), np.float32), near
        self.inside = (u >= 0) & (u < m.size)
        self.n, self.f = len(u), m.factor
        first = int(min(lo.min(), near.min()))
        stop_ = int(max(last.max(), near.max())) + 1
        self.start = max(first, -1)
        self.stop = min(stop_, m.size + 1)
        self.read = (max(self.start, 0), min(self.stop, m.size))  # rows/cols in the file
        self.padded = self.start < 0 or self.stop > m.size
        self.lo = np.clip(lo, self.start, self.stop - 1) - self.start
        self.near = np.clip(near, self.start, self.stop - 1) - self.start
        self.w1 = w1
        q = np.arange(self.n) // self.f
        k = np.arange(self.n) % self.f
        self.periodic = bool(np.array_equal(self.lo, self.lo[k] + q) and
                             np.array_equal(self.w1, self.w1[k]) and
                             np.array_equal(self.near, self.near[k] + q))


def _pass(v: np.ndarray, taps: Taps, axis: int, idx: np.ndarray, w1: np.ndarray | None
          ) -> np.ndarray:
    """Resample ``v`` along ``axis`` to ``taps.n`` pixels: a phase at a time (strided slices)
    when the taps repeat, else by gathering; both compute each pixel as ``a * (1 - w) + b * w``
    in float32, so a pixel's value depends on its taps alone, not on the window."""
    if v.dtype not in _EXACT:  # as float32 first, whichever way the taps are taken
        v = v.astype(np.float32)

    def take(a: int, cnt: int) -> np.ndarray:
        return v[a: a + cnt] if axis == 0 else v[:, a: a + cnt]

    shape = (taps.n, v.shape[1]) if axis == 0 else (v.shape[0], taps.n)
    phases = range(min(taps.f, taps.n))
    counts = [(taps.n - p + taps.f - 1) // taps.f for p in phases]
    fits = all(int(idx[p]) + counts[p] + (w1 is not None and w1[p] > 0) <= v.shape[axis]
               for p in phases)
    if not (taps.periodic and fits):
        out = np.take(v, idx, axis=axis).astype(np.float32)
        if w1 is not None:
            wa = w1[:, None] if axis == 0 else w1[None, :]
            nxt = np.minimum(idx + 1, v.shape[axis] - 1)  # weight 0 where it would pass the end
            out *= np.float32(1.0) - wa
            out += np.take(v, nxt, axis=axis) * wa
        return out
    out = np.empty(shape, np.float32)
    for p, cnt in zip(phases, counts, strict=True):
        dst = out[p:: taps.f] if axis == 0 else out[:, p:: taps.f]
        a = int(idx[p])
        wp = np.float32(w1[p] if w1 is not None else 0.0)
        if wp == 0.0:
            dst[...] = take(a, cnt)
        else:  # float32 weights: a Python float would make numpy compute in float64
            np.multiply(take(a, cnt), np.float32(1.0) - wp, out=dst)
            dst += take(a + 1, cnt) * wp
    return out
