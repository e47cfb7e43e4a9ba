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


def _nearest(m: AxisMap, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.floor(m.coords(start, stop)).astype(np.int64)
    inside = (idx >= 0) & (idx < m.size)
    return np.clip(idx, 0, m.size - 1), inside


def _bilinear(m: AxisMap, start: int, stop: int):
    u = m.coords(start, stop)
    s = u - 0.5
    lo = np.floor(s).astype(np.int64)
    w1 = (s - lo).astype(np.float32)
    w0 = (1.0 - w1).astype(np.float32)
    w0[lo < 0] = 0.0
    w1[lo + 1 >= m.size] = 0.0
    inside = (u >= 0) & (u < m.size)
    return np.clip(lo, 0, m.size - 1), np.clip(lo + 1, 0, m.size - 1), w0, w1, inside


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
        idx, inside = _nearest(self._rows, r0, r0 + h)
        lo = np.floor(self._rows.coords(r0, r0 + h) - 0.5).astype(np.int64)
        a = max(0, int(min(idx.min(), lo.min())))
        b = min(self._rows.size, int(max(idx.max(), lo.max() + 1)) + 1)
        return (a, b) if inside.any() and b > a else None

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

    def _block(self, ri: np.ndarray, ci: np.ndarray) -> tuple[np.ndarray, int, int]:
        a, b, c, d = int(ri.min()), int(ri.max()) + 1, int(ci.min()), int(ci.max()) + 1
        return self._strips.read(a, b, c, d), a, c

    def _empty(self, h: int, w: int) -> np.ndarray:
        return np.full((h, w), self.nodata if self.nodata is not None else 0, self.dtype)

    def _read_nearest(self, r0: int, c0: int, h: int, w: int) -> np.ndarray:
        ri, rin = _nearest(self._rows, r0, r0 + h)
        ci, cin = _nearest(self._cols, c0, c0 + w)
        if not rin.any() or not cin.any():
            return self._empty(h, w)
        block, a, c = self._block(ri[rin], ci[cin])
        out = block[np.ix_(ri - a if rin.all() else np.clip(ri - a, 0, block.shape[0] - 1),
                           ci - c if cin.all() else np.clip(ci - c, 0, block.shape[1] - 1))]
        if not (rin.all() and cin.all()):
            out[~rin] = 0 if self.nodata is None else self.nodata
            out[:, ~cin] = 0 if self.nodata is None else self.nodata
        return out

    def _read_bilinear(self, r0: int, c0: int, h: int, w: int) -> np.ndarray:
        rlo, rhi, ry0, ry1, rin = _bilinear(self._rows, r0, r0 + h)
        clo, chi, cx0, cx1, cin = _bilinear(self._cols, c0, c0 + w)
        if not rin.any() or not cin.any():
            return self._empty(h, w)
        used_r = np.concatenate([rlo[ry0 > 0], rhi[ry1 > 0], rlo[rin]])
        used_c = np.concatenate([clo[cx0 > 0], chi[cx1 > 0], clo[cin]])
        block, a, c = self._block(used_r, used_c)
        rlo, rhi = np.clip(rlo - a, 0, block.shape[0] - 1), np.clip(rhi - a, 0, block.shape[0] - 1)
        clo, chi = np.clip(clo - c, 0, block.shape[1] - 1), np.clip(chi - c, 0, block.shape[1] - 1)
        v = block.astype(np.float32)
        valid = None
        if self.dtype.kind == "f":
            valid = np.isfinite(v)
            if self.nodata is not None and not math.isnan(self.nodata):
                valid &= v != self.nodata
        elif self.nodata is not None:
            valid = block != self.nodata
        if valid is not None and valid.all():
            valid = None
        num = _separable(np.where(valid, v, 0.0) if valid is not None else v,
                         rlo, rhi, ry0, ry1, clo, chi, cx0, cx1)
        if valid is None:
            den = np.outer(ry0 + ry1, cx0 + cx1)
        else:
            den = _separable(valid.astype(np.float32), rlo, rhi, ry0, ry1, clo, chi, cx0, cx1)
        ok = (den > 1e-6) & rin[:, None] & cin[None, :]
        if valid is not None:  # as GDAL's warper: the pixel holding the centre must be valid
            rn = _nearest(self._rows, r0, r0 + h)[0] - a
            cn = _nearest(self._cols, c0, c0 + w)[0] - c
            ok &= valid[np.ix_(np.clip(rn, 0, block.shape[0] - 1),
                               np.clip(cn, 0, block.shape[1] - 1))]
        out = np.divide(num, den, out=np.zeros_like(num), where=ok)
        fill = self.nodata if self.nodata is not None else 0
        if self.dtype.kind == "f":
            out[~ok] = fill
            return out.astype(self.dtype)
        info = np.iinfo(self.dtype)
        res = np.clip(np.floor(out + 0.5), info.min, info.max).astype(self.dtype)
        res[~ok] = fill
        return res

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()


def _separable(v: np.ndarray, rlo, rhi, ry0, ry1, clo, chi, cx0, cx1) -> np.ndarray:
    """Two-tap weighted sums along rows, then along columns."""
    t = v[rlo] * ry0[:, None]
    t += v[rhi] * ry1[:, None]
    out = t[:, clo] * cx0[None, :]
    out += t[:, chi] * cx1[None, :]
    return out
