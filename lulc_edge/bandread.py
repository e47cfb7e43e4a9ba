"""lulc_edge.bandread: one band file read on an output grid, each of its blocks decoded once.

A Sentinel-2 product stores each band in its own file at 10, 20 or 60 m, JPEG 2000 tiled in
1024 px blocks (per-band COGs: DEFLATE, 1024 px blocks). Reading tile windows straight from
such files decodes every block several times (each tile and halo that touches it), since GDAL's
bounded block cache cannot hold a full-width row of blocks of 13 bands. Here each band file is
read in full-width strips aligned to its own block rows, each strip decoded once, in a thread
pool (GDAL releases the GIL), one strip ahead of the reader; at most ``KEEP`` strips per band are
held (the memory bound). Tiles are assembled from the strips.

Coarser bands are resampled onto the output grid by a direct separable kernel when the grids
are integer multiples of each other (20 m and 60 m onto 10 m, offset or not): bilinear for
reflectances, nearest for SCL, with GDAL's warper conventions (pixel centres map through the
geotransforms; source nodata is left out of the bilinear sum and the weights renormalised; an
output pixel whose centre falls outside the source, or in a nodata pixel, is nodata; integers
rounded half up). Other
grids keep the general warper (a WarpedVRT).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

#: Strips held per band file (the strip a tile ends in, the one before it, one decoded ahead).
KEEP = 3
#: Fewest source rows per strip: files with small blocks (striped GeoTIFFs) are read in
#: strips of whole blocks at least this tall.
MIN_STRIP_ROWS = 256
#: Resample integer-multiple grids with the direct kernel (False: always the general warper;
#: the reference the kernel is tested against).
DIRECT_KERNEL = True


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


class StripReader:
    """Full-width strips of band 1 of a dataset, block-row aligned, decoded once each.

    ``request`` starts decoding the strips a row range needs (and one ahead) without waiting;
    ``read`` returns a window of native pixels. Safe from several threads: one lock guards the
    strip table, another the dataset (GDAL handles are not thread-safe).
    """

    def __init__(self, ds: rasterio.io.DatasetReader, pool: ThreadPoolExecutor) -> None:
        self.ds, self.pool = ds, pool
        self.width, self.height = ds.width, ds.height
        bh = max(1, ds.block_shapes[0][0])
        self.rows = bh * max(1, math.ceil(min(MIN_STRIP_ROWS, ds.height) / bh))
        self.n = math.ceil(ds.height / self.rows)
        self.dtype = np.dtype(ds.dtypes[0])
        self._strips: OrderedDict[int, Future] = OrderedDict()
        self._lock = threading.Lock()
        self._ds_lock = threading.Lock()
        self._last = -1
        #: strips decoded so far (each strip of a sequential pass once)
        self.decoded = 0

    def _decode(self, k: int) -> np.ndarray:
        r0 = k * self.rows
        with self._ds_lock:
            self.decoded += 1
            return self.ds.read(1, window=Window(0, r0, self.width, min(self.rows,
                                                                        self.height - r0)))

    def request(self, r0: int, r1: int) -> list[Future]:
        """Futures of the strips holding rows ``r0..r1-1``; decodes the next strip ahead when
        the reader moves down."""
        first, last = r0 // self.rows, (r1 - 1) // self.rows
        with self._lock:
            want = list(range(first, last + 1))
            if last > self._last:
                self._last = last
                if last + 1 < self.n:
                    want.append(last + 1)
            futs = []
            for k in want:
                fut = self._strips.get(k)
                if fut is None:
                    fut = self.pool.submit(self._decode, k)
                    self._strips[k] = fut
                self._strips.move_to_end(k)
                futs.append(fut)
            while len(self._strips) > max(KEEP, len(want)):
                # drop strips above the rows asked for first (the reader moves down), else LRU
                old = min(self._strips) if min(self._strips) < first else next(iter(self._strips))
                self._strips.pop(old)
            return futs[: last - first + 1]

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Native pixels of rows ``r0..r1-1``, columns ``c0..c1-1`` (inside the raster)."""
        futs = self.request(r0, r1)
        first = r0 // self.rows
        if len(futs) == 1:
            k0 = first * self.rows
            return futs[0].result()[r0 - k0: r1 - k0, c0:c1]
        out = np.empty((r1 - r0, c1 - c0), self.dtype)
        for i, fut in enumerate(futs):
            k0 = (first + i) * self.rows
            a, b = max(r0, k0), min(r1, k0 + self.rows)
            out[a - r0: b - r0] = fut.result()[a - k0: b - k0, c0:c1]
        return out


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
    when the taps repeat, else by gathering."""
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
            out += (np.take(v, nxt, axis=axis) - out) * wa
        return out
    out = np.empty(shape, np.float32)
    for p, cnt in zip(phases, counts, strict=True):
        dst = out[p:: taps.f] if axis == 0 else out[:, p:: taps.f]
        a = int(idx[p])
        wp = float(w1[p]) if w1 is not None else 0.0
        if wp == 0.0:
            dst[...] = take(a, cnt)
        else:
            np.multiply(take(a, cnt), 1.0 - wp, out=dst)
            dst += take(a + 1, cnt) * np.float32(wp)
    return out


class GridBand:
    """One band file read on the output grid: natively, resampled directly (``direct``, for
    nearest and bilinear), or warped."""

    def __init__(self, ds: rasterio.io.DatasetReader, grid, method: Resampling,
                 nodata: float | None, pool: ThreadPoolExecutor, direct: bool = True) -> None:
        self.nodata = nodata
        self.method = method
        self.dtype = np.dtype(ds.dtypes[0])
        self._vrt: WarpedVRT | None = None
        self._strips: StripReader | None = None
        maps = axis_maps(ds, grid.transform) if ds.crs == grid.crs else None
        native = maps is not None and maps[0] == AxisMap(0.0, 1, grid.height) and \
            maps[1] == AxisMap(0.0, 1, grid.width)
        if maps is not None and not native and not (direct and DIRECT_KERNEL):
            maps = None  # a resampling the direct kernel does not do: the warper
        if maps is None:
            crs = grid.crs or CRS.from_epsg(3857)  # no CRS anywhere: an identity stand-in
            self._vrt = WarpedVRT(ds, src_crs=ds.crs or crs, crs=crs, transform=grid.transform,
                                  width=grid.width, height=grid.height, resampling=method,
                                  src_nodata=nodata, nodata=nodata)
            self.how = f"{method.name} from {abs(ds.transform.a):g} (warped)"
        else:
            self._strips = StripReader(ds, pool)
            self._rows, self._cols = maps
            self.how = "native grid" if native else f"{method.name} from {abs(ds.transform.a):g}"
            self._native = native

    def request(self, window: Window) -> None:
        """Start decoding what ``window`` needs (call for every band before ``read``)."""
        if self._strips is not None:
            r = self._row_span(window)
            if r is not None:
                self._strips.request(*r)

    def _row_span(self, window: Window) -> tuple[int, int] | None:
        r0, h = int(window.row_off), int(window.height)
        if self._native:
            return r0, r0 + h
        ry = Taps(self._rows, r0, r0 + h, self.method == Resampling.bilinear)
        return ry.read if ry.inside.any() and ry.read[1] > ry.read[0] else None

    def read(self, window: Window) -> np.ndarray:
        """``(h, w)`` native-dtype pixels of ``window`` (inside the output grid)."""
        if self._vrt is not None:
            return self._vrt.read(1, window=window)
        assert self._strips is not None
        r0, c0 = int(window.row_off), int(window.col_off)
        h, w = int(window.height), int(window.width)
        if self._native:
            return self._strips.read(r0, r0 + h, c0, c0 + w)
        if self.method == Resampling.nearest:
            return self._read_nearest(r0, c0, h, w)
        if self.method == Resampling.bilinear:
            return self._read_bilinear(r0, c0, h, w)
        raise ValueError(f"direct resampling supports nearest and bilinear, not {self.method}")

    def _fill(self) -> float:
        return self.nodata if self.nodata is not None else 0

    def _source(self, ry: Taps, cx: Taps) -> np.ndarray:
        """The source pixels the taps read, zero-padded where they reach past the raster."""
        (a, b), (c, d) = ry.read, cx.read
        block = self._strips.read(a, b, c, d)
        if not (ry.padded or cx.padded):
            return block
        out = np.zeros((ry.stop - ry.start, cx.stop - cx.start), block.dtype)
        out[a - ry.start: b - ry.start, c - cx.start: d - cx.start] = block
        return out

    def _valid(self, v: np.ndarray, ry: Taps, cx: Taps) -> np.ndarray | None:
        """Mask of the source pixels that count (None: all of them)."""
        valid = None
        if self.dtype.kind == "f":
            valid = np.isfinite(v)
            if self.nodata is not None and not math.isnan(self.nodata):
                valid &= v != self.nodata
        elif self.nodata is not None:
            valid = v != self.nodata
        if ry.padded or cx.padded:
            pad = np.zeros(v.shape, bool)
            (a, b), (c, d) = ry.read, cx.read
            pad[a - ry.start: b - ry.start, c - cx.start: d - cx.start] = True
            valid = pad if valid is None else valid & pad
        return None if valid is None or valid.all() else valid

    def _read_nearest(self, r0: int, c0: int, h: int, w: int) -> np.ndarray:
        ry, cx = Taps(self._rows, r0, r0 + h, False), Taps(self._cols, c0, c0 + w, False)
        if not ry.inside.any() or not cx.inside.any():
            return np.full((h, w), self._fill(), self.dtype)
        v = self._source(ry, cx)
        out = _pass(_pass(v, ry, 0, ry.near, None), cx, 1, cx.near, None).astype(self.dtype)
        out[~ry.inside] = self._fill()
        out[:, ~cx.inside] = self._fill()
        return out

    def _read_bilinear(self, r0: int, c0: int, h: int, w: int) -> np.ndarray:
        ry, cx = Taps(self._rows, r0, r0 + h, True), Taps(self._cols, c0, c0 + w, True)
        if not ry.inside.any() or not cx.inside.any():
            return np.full((h, w), self._fill(), self.dtype)
        v = self._source(ry, cx)
        valid = self._valid(v, ry, cx)
        if valid is None:
            out = _pass(_pass(v, ry, 0, ry.lo, ry.w1), cx, 1, cx.lo, cx.w1)
            ok = None
        else:
            # nodata out of the sum, weights renormalised; as GDAL's warper, the pixel
            # holding the centre must be valid
            m = valid.astype(np.float32)
            num = _pass(_pass(np.where(valid, v, 0).astype(np.float32), ry, 0, ry.lo, ry.w1),
                        cx, 1, cx.lo, cx.w1)
            den = _pass(_pass(m, ry, 0, ry.lo, ry.w1), cx, 1, cx.lo, cx.w1)
            ok = _pass(_pass(m, ry, 0, ry.near, None), cx, 1, cx.near, None) > 0
            ok &= den > 1e-6
            out = np.divide(num, den, out=num, where=ok)
        if not (ry.inside.all() and cx.inside.all()):
            inside = ry.inside[:, None] & cx.inside[None, :]
            ok = inside if ok is None else ok & inside
        if self.dtype.kind == "f":
            res = out.astype(self.dtype)
        else:
            out += 0.5  # round half up, as GDAL
            res = (np.floor(out, out=out) if self.dtype.kind == "i" else out).astype(self.dtype)
        if ok is not None:
            res[~ok] = self._fill()
        return res

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()

