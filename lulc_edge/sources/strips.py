"""Band files read in full-width strips, each of their blocks decoded once.

A Sentinel-2 product stores each band in its own file at 10, 20 or 60 m, JPEG 2000 tiled in
1024 px blocks (per-band COGs: DEFLATE, 1024 px blocks). Reading tile windows straight from
such files decodes every block several times (each tile and halo that touches it), since GDAL's
bounded block cache cannot hold a full-width row of blocks of 13 bands. Here each band file is
read in full-width strips aligned to its own block rows, each strip decoded once, on a thread
pool (GDAL releases the GIL), one strip ahead of the reader; at most ``KEEP`` strips per band are
held, besides those pinned by work in flight (the memory bound). Samples read before the pass
hold their strips for it, or decode only the blocks under them (``read_direct``), kept for the
pass, which then decodes the rest of their strip: no block is decoded twice.

Coarser bands are resampled onto the output grid by a direct separable kernel when the grids
are integer multiples of each other (20 m and 60 m onto 10 m, offset or not): bilinear for
reflectances, nearest for SCL, with GDAL's warper conventions (pixel centres map through the
geotransforms; source nodata is left out of the bilinear sum and the weights renormalised; an
output pixel whose centre falls outside the source, or in a nodata pixel, is nodata; integers
rounded half up), once per full-width chunk of ``CHUNK_ROWS`` output rows on a fixed grid (no
halo or neighbouring tile resamples a pixel twice; chunks, too, are held a few at a time).
Tiles are sliced from strips and chunks. Other grids keep the general warper (a WarpedVRT).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import rasterio
from rasterio.windows import Window

#: Strips held per band file (the strip a tile ends in, the one before it, one decoded ahead).
KEEP = 3
#: Fewest source rows per strip: files with small blocks (striped GeoTIFFs) are read in
#: strips of whole blocks at least this tall.
MIN_STRIP_ROWS = 256
#: Output rows per resampled chunk of a coarser band (full width; 2.8 MB of uint16 at 10980 px;
#: a 560-row tile spans 5 or 6, one more is resampled ahead).
CHUNK_ROWS = 128
#: Columns resampled at a time within a chunk (a fixed grid too): working arrays of a few MB
#: that stay in cache; full-width passes cost more CPU (measured: 9.5 against 7.3 CPU-s).
CHUNK_COLS = 1024
#: Resample integer-multiple grids with the direct kernel (False: always the general warper;
#: the reference the kernel is tested against).
DIRECT_KERNEL = True

#: GDAL's block cache for per-band inputs, beside the strips: a multi-tile JPEG 2000 read
#: decodes its tiles into the cache before copying them out, so concurrent strip reads whose
#: tiles do not fit evict each other's and decode them again, unseen (measured: 4 strip reads
#: at once under a 64 MB cache decoded the JPEG 2000 tiles 1.7x). Room for each decoding strip
#: (a 10980 px, 1024-row uint16 strip is 22.5 MB), on top of a base: 64 MB for 2 strips at
#: once, which measured the same CPU time as 128 MB (and 65 MB less peak RSS).
CACHE_BASE_BYTES = 16 * 2**20
CACHE_PER_WORKER_BYTES = 24 * 2**20


def decode_workers(threads: int) -> int:
    """Strips decoded at once: each JPEG 2000 strip read already decodes its tiles on every
    core (GDAL_NUM_THREADS), so a few suffice; more would only need more cache."""
    return max(2, threads // 4)


def cache_bytes(threads: int) -> int:
    """GDAL block cache for per-band inputs (see CACHE_PER_WORKER_BYTES)."""
    return CACHE_BASE_BYTES + CACHE_PER_WORKER_BYTES * decode_workers(threads)


class RowCache:
    """Full-width strips of ``rows`` rows of a ``height``-row raster, each made once by
    ``produce(k)`` (strip ``k``) on ``pool``, one strip ahead of the reader moving down; at most
    ``KEEP`` strips held, besides pinned ones and those one read spans. Safe from several
    threads.

    ``on_submit(k)`` runs as strip ``k`` is queued (a resampled chunk pins the source strips
    it will read, so that chunks running out of order never see them dropped and decoded
    again).
    """

    def __init__(self, rows: int, height: int, produce: Callable[[int], np.ndarray],
                 pool: ThreadPoolExecutor,
                 on_submit: Callable[[int], None] | None = None) -> None:
        self.rows, self.height = rows, height
        self.n = math.ceil(height / rows)
        self._produce, self._pool, self._on_submit = produce, pool, on_submit
        self._strips: OrderedDict[int, Future] = OrderedDict()
        self._pins: dict[int, int] = {}
        self._held: set[int] = set()
        self._lock = threading.Lock()
        self._last = -1
        #: the first column strips hold (StripReader.limit_columns)
        self.col0 = 0

    def _span(self, r0: int, r1: int) -> range:
        return range(r0 // self.rows, (r1 - 1) // self.rows + 1)

    def request(self, r0: int, r1: int, pin: bool = False, hold: bool = False
                ) -> list[Future]:
        """Futures of the strips holding rows ``r0..r1-1``; starts the next strip ahead when
        the reader moves down. Does not wait. ``pin``: keep them until ``release``; ``hold``:
        keep them until a plain request reaches them (samples read before the pass), with no
        read-ahead."""
        span = self._span(r0, r1)
        with self._lock:
            want = list(span)
            for k in () if hold else span:
                if k in self._held:  # the pass has reached a strip a sample decoded
                    self._held.discard(k)
                    self._unpin(k)
            if hold:
                for k in span:
                    if k not in self._held:
                        self._held.add(k)
                        self._pins[k] = self._pins.get(k, 0) + 1
            elif span[-1] > self._last:
                self._last = span[-1]
                if span[-1] + 1 < self.n:
                    want.append(span[-1] + 1)
            futs = []
            for k in want:
                fut = self._strips.get(k)
                if fut is None:
                    if self._on_submit is not None:
                        self._on_submit(k)
                    fut = self._pool.submit(self._produce, k)
                    self._strips[k] = fut
                self._strips.move_to_end(k)
                futs.append(fut)
            if pin:
                for k in span:
                    self._pins[k] = self._pins.get(k, 0) + 1
            self._evict(span, len(want))
            return futs[: len(span)]

    def _evict(self, span: range, wanted: int) -> None:
        """Above ``KEEP`` strips, drop those above every row still needed (this read's and
        the pinned ones: readers move down); past twice that, the least recently used."""
        low = min(span[0], min(self._pins, default=span[0]))
        while len(self._strips) > max(KEEP, wanted):
            free = [k for k in self._strips if k not in self._pins and k not in span]
            above = [k for k in free if k < low]
            if above:
                self._strips.pop(min(above))
            elif free and len(self._strips) > 2 * KEEP + wanted:
                self._strips.pop(free[0])
            else:
                return

    def _unpin(self, k: int) -> None:
        self._pins[k] -= 1
        if not self._pins[k]:
            del self._pins[k]

    def clear(self) -> None:
        """Drop every strip not pinned (``Source.drop_cache``); later reads make them again."""
        with self._lock:
            for k in [k for k in self._strips if k not in self._pins]:
                del self._strips[k]
            self._last = -1

    def release(self, r0: int, r1: int) -> None:
        """Unpin what ``request(r0, r1, pin=True)`` pinned."""
        with self._lock:
            for k in self._span(r0, r1):
                self._unpin(k)

    def read(self, r0: int, r1: int, c0: int, c1: int, hold: bool = False) -> np.ndarray:
        """Rows ``r0..r1-1``, columns ``c0..c1-1`` (inside the raster; strips may have
        leading axes, e.g. bands). ``hold``: see ``request``."""
        futs = self.request(r0, r1, hold=hold)
        first = r0 // self.rows
        c0, c1 = c0 - self.col0, c1 - self.col0  # strips hold columns from col0 on
        if len(futs) == 1:
            k0 = first * self.rows
            out = futs[0].result()[..., r0 - k0: r1 - k0, c0:c1]
        else:
            parts = []
            for i, fut in enumerate(futs):
                k0 = (first + i) * self.rows
                parts.append(fut.result()[..., max(r0, k0) - k0: min(r1, k0 + self.rows) - k0,
                                          c0:c1])
            out = np.concatenate(parts, axis=-2)
        if c0 < 0 or out.shape[-1] != c1 - c0:
            raise ValueError(f"columns {c0 + self.col0}..{c1 + self.col0} outside those the "
                             "strips hold")
        return out


def strip_rows(ds: rasterio.io.DatasetReader) -> int:
    """Rows of a dataset's strips: whole block rows, at least ``MIN_STRIP_ROWS``."""
    bh = max(1, ds.block_shapes[0][0])
    return bh * max(1, math.ceil(min(MIN_STRIP_ROWS, ds.height) / bh))


class StripReader(RowCache):
    """Bands ``indexes`` of a dataset (an int: ``(rows, width)`` strips, a list: ``(bands,
    rows, width)``) in full-width strips aligned to its block rows, each decoded once (GDAL
    releases the GIL: strips of all band files decode in parallel on ``pool``)."""

    def __init__(self, ds: rasterio.io.DatasetReader, pool: ThreadPoolExecutor,
                 indexes: int | list[int] = 1) -> None:
        super().__init__(strip_rows(ds), ds.height, self._decode, pool)
        self.ds, self.width, self.indexes = ds, ds.width, indexes
        self.col1 = ds.width  # and columns col0..col1-1 (limit_columns)
        self._ds_lock = threading.Lock()  # GDAL handles are not thread-safe
        #: strip -> (c0, c1, its columns c0..c1-1) decoded early by ``read_direct``
        self._parts: dict[int, tuple[int, int, np.ndarray]] = {}
        #: strips made so far (each strip of a sequential pass once); pixels read from the file
        self.decoded = 0
        self.pixels_read = 0

    def _read_file(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        with self._ds_lock:
            self.pixels_read += (r1 - r0) * (c1 - c0)
            return self.ds.read(self.indexes, window=Window(c0, r0, c1 - c0, r1 - r0))

    def limit_columns(self, c0: int, c1: int) -> None:
        """Hold only columns ``c0..c1-1`` (widened to whole blocks) in the strips: all a run
        of an area of interest reads (a later read beyond them is read from the file on its
        own). Only before the first strip is made (and not with samples' blocks kept), else
        nothing changes."""
        if self._strips or self._parts:
            return
        bw = max(1, self.ds.block_shapes[0][1])
        self.col0 = max(0, c0) // bw * bw
        self.col1 = min(self.width, -(-c1 // bw) * bw)

    def _decode(self, k: int) -> np.ndarray:
        r0, r1 = k * self.rows, min((k + 1) * self.rows, self.height)
        self.decoded += 1
        part = self._parts.pop(k, None)
        if part is None:
            return self._read_file(r0, r1, self.col0, self.col1)
        c0, c1, block = part  # the rest of the strip around what a sample decoded
        pieces = [self._read_file(r0, r1, 0, c0)] if c0 > 0 else []
        pieces.append(block)
        if c1 < self.width:
            pieces.append(self._read_file(r0, r1, c1, self.width))
        return np.concatenate(pieces, axis=-1) if len(pieces) > 1 else block

    def read(self, r0: int, r1: int, c0: int, c1: int, hold: bool = False) -> np.ndarray:
        if c0 < self.col0 or c1 > self.col1:  # beyond the columns held (limit_columns)
            return self._read_file(r0, r1, c0, c1)
        return super().read(r0, r1, c0, c1, hold)

    def read_held(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """``read`` for a sample taken before the pass: its strips are kept until the pass
        reaches them, so they are decoded once all the same."""
        return self.read(r0, r1, c0, c1, hold=True)

    def read_direct(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """The same pixels without decoding their strip (a sample far from where the pass
        starts): only the blocks under them are decoded, and those are kept (a few MB) for
        when the pass decodes the rest of that strip, so no block is decoded twice."""
        span = self._span(r0, r1)
        if any(k in self._strips or k in self._parts for k in span):
            return self._read_file(r0, r1, c0, c1)  # a strip already there (not at open)
        bw = max(1, self.ds.block_shapes[0][1])
        b0, b1 = c0 // bw * bw, min(self.width, -(-c1 // bw) * bw)
        pieces = []
        for k in span:
            s0, s1 = k * self.rows, min((k + 1) * self.rows, self.height)
            self._parts[k] = (b0, b1, self._read_file(s0, s1, b0, b1))
            pieces.append(self._parts[k][2][..., max(r0, s0) - s0: min(r1, s1) - s0,
                                            c0 - b0: c1 - b0])
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=-2)


