"""Coarser band files resampled onto the output grid (see :mod:`lulc_edge.sources.strips`):
a direct separable kernel for integer-multiple grids, GDAL's warper for the others."""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from . import strips
from .kernel import AxisMap, Taps, _pass, axis_maps
from .strips import RowCache, StripReader

#: ``fetch(r0, r1, c0, c1)``: native pixels of a row and column range of a band file.
Fetch = Callable[[int, int, int, int], np.ndarray]
class GridBand:
    """One band file read on the output grid: natively (slices of its strips), resampled
    directly (``direct``, nearest and bilinear: chunks of ``CHUNK_ROWS`` output rows, full
    width or the rows and columns a run reads (``limit``), each resampled once on
    ``resampler``), or warped.

    ``pool`` decodes strips, ``resampler`` resamples chunks (which wait on strips: two pools,
    so waiting chunks can never starve the decoding they wait for). Chunks sit on a fixed grid
    of output rows from the scene's or the area's first row (no pixel resampled twice), and a
    pixel's value depends on its taps alone, never on the window or chunk that resampled it.
    """

    def __init__(self, ds: rasterio.io.DatasetReader, grid, method: Resampling,
                 nodata: float | None, pool: ThreadPoolExecutor,
                 resampler: ThreadPoolExecutor, direct: bool = True) -> None:
        self.nodata = nodata
        self.method = method
        self.dtype = np.dtype(ds.dtypes[0])
        self.width = grid.width
        self._vrt: WarpedVRT | None = None
        self._strips: StripReader | None = None
        self._out: RowCache | None = None  # what tiles are sliced from
        self._ocols = (0, grid.width)  # the output columns chunks hold (limit)
        maps = axis_maps(ds, grid.transform) if ds.crs == grid.crs else None
        native = maps is not None and maps[0] == AxisMap(0.0, 1, grid.height) and \
            maps[1] == AxisMap(0.0, 1, grid.width)
        if maps is not None and not native and not (direct and strips.DIRECT_KERNEL):
            maps = None  # a resampling the direct kernel does not do: the warper
        if maps is None:
            crs = grid.crs or CRS.from_epsg(3857)  # no CRS anywhere: an identity stand-in
            # a remote band (lulc_edge.remote.RemoteDataset) warps its open dataset; reads
            # through the warper are not retried
            self._vrt = WarpedVRT(getattr(ds, "dataset", ds), src_crs=ds.crs or crs, crs=crs,
                                  transform=grid.transform, width=grid.width,
                                  height=grid.height, resampling=method,
                                  src_nodata=nodata, nodata=nodata)
            self.how = f"{method.name} from {abs(ds.transform.a):g} (warped)"
            return
        if not native and method not in (Resampling.nearest, Resampling.bilinear):
            raise ValueError(f"direct resampling supports nearest and bilinear, not {method}")
        self._strips = StripReader(ds, pool)
        self._rows, self._cols = maps
        self._native = native
        if native:
            self._out = self._strips
            self.how = "native grid"
        else:
            self._out = RowCache(strips.CHUNK_ROWS, grid.height, self._chunk, resampler, self._pin)
            self.how = f"{method.name} from {abs(ds.transform.a):g}"

    def _source_rows(self, k: int) -> tuple[int, int] | None:
        """The source rows chunk ``k`` reads (None: it lies outside the source)."""
        assert self._out is not None
        ry = Taps(self._rows, *self._out.bounds(k), self.method == Resampling.bilinear)
        return ry.read if ry.inside.any() and ry.read[1] > ry.read[0] else None

    def _pin(self, k: int) -> None:
        rows = self._source_rows(k)
        if rows is not None:
            self._strips.request(*rows, pin=True)  # and their decoding starts now

    def prefetch(self, boxes: list[tuple[int, int, int, int]]) -> None:
        """Decode together the source blocks the samples ``boxes`` (output ``(r0, r1, c0,
        c1)``) will read (``StripReader.prefetch``)."""
        if self._strips is None:
            return
        if not self._native:
            bilinear = self.method == Resampling.bilinear
            boxes = [(*Taps(self._rows, r0, r1, bilinear).read,
                      *Taps(self._cols, c0, c1, bilinear).read) for r0, r1, c0, c1 in boxes]
        self._strips.prefetch(boxes)

    def limit(self, r0: int, r1: int, c0: int, c1: int) -> None:
        """A run reads only rows ``r0..r1-1`` and columns ``c0..c1-1`` of the output grid:
        chunks hold only those columns, strips only the source columns their kernel reads
        (widened to whole blocks), and neither is read ahead below the area. Before the pass
        only."""
        if self._strips is None or self._out is None or self._out.started:
            return
        if self._native:
            self._strips.limit(r0, r1, c0, c1)
            return
        bilinear = self.method == Resampling.bilinear
        o0, o1 = max(0, c0), min(self.width, c1)
        self._out.start_at(max(0, r0))  # chunks from the area's first row on
        self._out.limit_rows(r1)
        self._out.col0, self._ocols = o0, (o0, o1)
        cx = Taps(self._cols, o0, o1, bilinear)
        last = self._out.bounds(self._out.stop - 1)[1]
        ry = Taps(self._rows, self._out.row0, last, bilinear)  # the chunks' rows
        if cx.read[1] > cx.read[0] and ry.read[1] > ry.read[0]:  # else the chunks are fill
            self._strips.limit(*ry.read, *cx.read)

    def _chunk(self, k: int) -> np.ndarray:
        """Output rows of chunk ``k`` over the columns chunks hold, resampled in pieces of
        ``CHUNK_COLS`` columns (working arrays that stay in the CPU's cache)."""
        assert self._strips is not None and self._out is not None
        r0, r1 = self._out.bounds(k)
        h = r1 - r0
        o0, o1 = self._ocols
        rows = self._source_rows(k)
        if rows is None:
            return self._resample(self._strips.read, r0, o0, h, o1 - o0)  # all fill
        cols = Taps(self._cols, o0, o1, self.method == Resampling.bilinear).read
        try:
            src = self._strips.read(*rows, *cols)
        finally:
            self._strips.release(*rows)

        def fetch(a: int, b: int, c: int, d: int) -> np.ndarray:
            return src[a - rows[0]: b - rows[0], c - cols[0]: d - cols[0]]

        out = np.empty((h, o1 - o0), self.dtype)
        for c0 in range(o0, o1, strips.CHUNK_COLS):
            c1 = min(c0 + strips.CHUNK_COLS, o1)
            out[:, c0 - o0: c1 - o0] = self._resample(fetch, r0, c0, h, c1 - c0)
        return out

    def request(self, window: Window) -> None:
        """Start decoding (and resampling) what ``window`` needs; call for every band before
        ``read`` so that all bands work at once."""
        if self._out is not None:
            self._out.request(int(window.row_off), int(window.row_off + window.height))

    def read(self, window: Window, sample: bool = False) -> np.ndarray:
        """``(h, w)`` native-dtype pixels of ``window`` (inside the output grid); ``sample``:
        a read before the sequential pass (the checks at open), resampled on its own, only the
        blocks under it decoded (kept for the pass)."""
        if self._vrt is not None:
            return self._vrt.read(1, window=window)
        assert self._strips is not None and self._out is not None
        r0, c0 = int(window.row_off), int(window.col_off)
        h, w = int(window.height), int(window.width)
        if sample:
            if self._native:
                return self._strips.read_direct(r0, r0 + h, c0, c0 + w)
            return self._resample(self._strips.read_direct, r0, c0, h, w)
        if self._native or self._ocols[0] <= c0 and c0 + w <= self._ocols[1] and \
                r0 >= self._out.row0:
            return self._out.read(r0, r0 + h, c0, c0 + w)
        # beyond the columns or above the rows chunks hold (a source reused after a run of an
        # area): resampled on its own, the same pixels (a pixel's value depends on its taps
        # alone)
        return self._resample(self._strips.read, r0, c0, h, w)

    def _resample(self, fetch: Fetch, r0: int, c0: int, h: int, w: int) -> np.ndarray:
        if self.method == Resampling.nearest:
            return self._read_nearest(fetch, r0, c0, h, w)
        return self._read_bilinear(fetch, r0, c0, h, w)

    def _fill(self) -> float:
        return self.nodata if self.nodata is not None else 0

    def _source(self, fetch: Fetch, ry: Taps, cx: Taps) -> np.ndarray:
        """The source pixels the taps read, zero-padded where they reach past the raster."""
        (a, b), (c, d) = ry.read, cx.read
        block = fetch(a, b, c, d)
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

    def _read_nearest(self, fetch: Fetch, r0: int, c0: int, h: int, w: int) -> np.ndarray:
        ry, cx = Taps(self._rows, r0, r0 + h, False), Taps(self._cols, c0, c0 + w, False)
        if not ry.inside.any() or not cx.inside.any():
            return np.full((h, w), self._fill(), self.dtype)
        v = self._source(fetch, ry, cx)
        out = _pass(_pass(v, ry, 0, ry.near, None), cx, 1, cx.near, None).astype(self.dtype)
        out[~ry.inside] = self._fill()
        out[:, ~cx.inside] = self._fill()
        return out

    def _read_bilinear(self, fetch: Fetch, r0: int, c0: int, h: int, w: int) -> np.ndarray:
        ry, cx = Taps(self._rows, r0, r0 + h, True), Taps(self._cols, c0, c0 + w, True)
        if not ry.inside.any() or not cx.inside.any():
            return np.full((h, w), self._fill(), self.dtype)
        v = self._source(fetch, ry, cx)
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
            # renormalised only where a weighted tap is nodata: elsewhere the plain sum, so a
            # pixel's value does not depend on nodata elsewhere in the window
            some = _pass(_pass(1 - m, ry, 0, ry.lo, ry.w1), cx, 1, cx.lo, cx.w1) > 0
            out = np.divide(num, den, out=num, where=ok & some)
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

    def clear(self) -> None:
        """Drop the decoded strips and resampled chunks (``Source.drop_cache``)."""
        for cache in {id(c): c for c in (self._out, self._strips) if c is not None}.values():
            cache.clear()

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()

