"""Band files read in strips, each of their blocks decoded once.

A Sentinel-2 product stores each band in its own file at 10, 20 or 60 m, JPEG 2000 tiled in
1024 px blocks (per-band COGs: DEFLATE, 1024 px blocks). Reading tile windows straight from
such files decodes every block several times (each tile and halo that touches it), since GDAL's
bounded block cache cannot hold a full-width row of blocks of 13 bands. Here each band file is
read in strips aligned to its own block rows, each strip decoded once, on a thread pool (GDAL
releases the GIL), one strip ahead of the reader; at most ``KEEP`` strips per band are held,
besides those pinned by work in flight (the memory bound). Strips are full width, or for a run
of an area of interest only the block columns its tiles read (``limit``: remote files are then
fetched only there), with no strip read ahead below it. Samples read before the pass decode
only the blocks under them (``read_direct``), kept for the pass, which then decodes the rest of
their strip around them: no block is decoded twice.

Coarser bands are resampled onto the output grid by a direct separable kernel when the grids
are integer multiples of each other (20 m and 60 m onto 10 m, offset or not): bilinear for
reflectances, nearest for SCL, with GDAL's warper conventions (pixel centres map through the
geotransforms; source nodata is left out of the bilinear sum and the weights renormalised; an
output pixel whose centre falls outside the source, or in a nodata pixel, is nodata; integers
rounded half up; a pixel's value depends on its taps alone), once per chunk of ``CHUNK_ROWS``
output rows on a fixed grid (no halo or neighbouring tile resamples a pixel twice; chunks, too,
are held a few at a time), full width or over an area's rows and columns.
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
#: Columns resampled at a time within a chunk: working arrays of a few MB
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
    """Strips of ``rows`` rows of a ``height``-row raster (columns from ``col0`` on), each made
    once by ``produce(k)`` (strip ``k``) on ``pool``, one strip ahead of the reader moving down;
    at most ``KEEP`` strips held, besides pinned ones and those one read spans. Safe from
    several threads.

    ``on_submit(k)`` runs as strip ``k`` is queued (a resampled chunk pins the source strips
    it will read, so that chunks running out of order never see them dropped and decoded
    again).
    """

    def __init__(self, rows: int, height: int, produce: Callable[[int], np.ndarray],
                 pool: ThreadPoolExecutor,
                 on_submit: Callable[[int], None] | None = None) -> None:
        self.rows, self.height = rows, height
        #: strip ``k`` holds rows ``row0 + k * rows`` on (``start_at``)
        self.row0 = 0
        self.n = math.ceil(height / rows)
        self._produce, self._pool, self._on_submit = produce, pool, on_submit
        self._strips: OrderedDict[int, Future] = OrderedDict()
        self._pins: dict[int, int] = {}
        self._lock = threading.Lock()
        self._last = -1
        #: strips from here on are never read ahead (``limit_rows``)
        self.stop = self.n
        #: the first column strips hold (``StripReader.limit``)
        self.col0 = 0

    def _span(self, r0: int, r1: int) -> range:
        return range((r0 - self.row0) // self.rows, (r1 - 1 - self.row0) // self.rows + 1)

    def bounds(self, k: int) -> tuple[int, int]:
        """The rows strip ``k`` holds."""
        r0 = self.row0 + k * self.rows
        return r0, min(r0 + self.rows, self.height)

    def request(self, r0: int, r1: int, pin: bool = False) -> list[Future]:
        """Futures of the strips holding rows ``r0..r1-1``; starts the next strip ahead when
        the reader moves down (not past ``stop``). Does not wait. ``pin``: keep them until
        ``release``."""
        span = self._span(r0, r1)
        with self._lock:
            want = list(span)
            if span[-1] > self._last:
                self._last = span[-1]
                if span[-1] + 1 < self.stop:
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

    @property
    def started(self) -> bool:
        """Whether a strip was made (a pass began)."""
        return bool(self._strips)

    def limit_rows(self, r1: int) -> None:
        """Read ahead no strip below row ``r1`` (a run of an area reads no further)."""
        self.stop = min(self.n, max(1, math.ceil((r1 - self.row0) / self.rows)))

    def start_at(self, row0: int) -> None:
        """Strips from row ``row0`` on: a run of an area reads none above it (a read above it
        is the caller's to make). Before the first strip only."""
        if not self.started:
            self.row0, self.n = row0, math.ceil((self.height - row0) / self.rows)
            self.stop = self.n

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

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Rows ``r0..r1-1``, columns ``c0..c1-1`` (inside the raster; strips may have
        leading axes, e.g. bands)."""
        futs = self.request(r0, r1)
        first = self._span(r0, r1)[0]
        c0, c1 = c0 - self.col0, c1 - self.col0  # strips hold columns from col0 on
        if len(futs) == 1:
            k0 = self.bounds(first)[0]
            out = futs[0].result()[..., r0 - k0: r1 - k0, c0:c1]
        else:
            parts = []
            for i, fut in enumerate(futs):
                k0 = self.bounds(first + i)[0]
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
    rows, width)``) in strips aligned to its block rows, each decoded once (GDAL releases the
    GIL: strips of all band files decode in parallel on ``pool``); full width, or the block
    columns a run reads (``limit``)."""

    def __init__(self, ds: rasterio.io.DatasetReader, pool: ThreadPoolExecutor,
                 indexes: int | list[int] = 1) -> None:
        super().__init__(strip_rows(ds), ds.height, self._decode, pool)
        self.ds, self.width, self.indexes = ds, ds.width, indexes
        self.col1 = ds.width  # and columns col0..col1-1 (limit)
        self.block_width = max(1, ds.block_shapes[0][1])
        self._ds_lock = threading.Lock()  # GDAL handles are not thread-safe
        #: strip -> {block column: its pixels} decoded early by ``read_direct`` (samples)
        self._parts: dict[int, dict[int, np.ndarray]] = {}
        #: strips made so far (each strip of a sequential pass once); pixels read from the file
        self.decoded = 0
        self.pixels_read = 0

    def _read_file(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        with self._ds_lock:
            self.pixels_read += (r1 - r0) * (c1 - c0)
            return self.ds.read(self.indexes, window=Window(c0, r0, c1 - c0, r1 - r0))

    def block_columns(self, c0: int, c1: int) -> tuple[int, int]:
        """Columns ``c0..c1-1`` widened to whole blocks (clipped to the raster)."""
        bw = self.block_width
        return max(0, c0) // bw * bw, min(self.width, -(-c1 // bw) * bw)

    def limit(self, r0: int, r1: int, c0: int, c1: int) -> None:
        """A run reads only rows ``r0..r1-1`` and columns ``c0..c1-1`` (an area of interest):
        strips hold only those columns (widened to whole blocks) and none is read ahead below
        ``r1``; blocks the samples decoded outside them are let go. A later read beyond them
        is read from the file on its own. Only before the pass (no strip made yet), else
        nothing changes."""
        if self.started:
            return
        self.col0, self.col1 = self.block_columns(c0, c1)
        self.limit_rows(r1)
        j0, j1 = self.col0 // self.block_width, -(-self.col1 // self.block_width)
        first, last = r0 // self.rows, (r1 - 1) // self.rows
        for k in list(self._parts):
            kept = {j: a for j, a in self._parts[k].items() if j0 <= j < j1}
            if kept and first <= k <= last:
                self._parts[k] = kept
            else:
                del self._parts[k]

    def _decode(self, k: int) -> np.ndarray:
        """Strip ``k``'s columns ``col0..col1-1``: the blocks samples decoded, the rest read
        from the file around them (a read per run of missing blocks)."""
        r0, r1 = self.bounds(k)
        self.decoded += 1
        kept = self._parts.pop(k, {})
        bw, pieces = self.block_width, []
        j, j1 = self.col0 // bw, -(-self.col1 // bw)
        while j < j1:
            if j in kept:
                pieces.append(kept[j])
                j += 1
                continue
            e = j
            while e < j1 and e not in kept:
                e += 1
            pieces.append(self._read_file(r0, r1, j * bw, min(self.col1, e * bw)))
            j = e
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=-1)

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        if c0 < self.col0 or c1 > self.col1:  # beyond the columns held (limit)
            return self._read_file(r0, r1, c0, c1)
        return super().read(r0, r1, c0, c1)

    def read_direct(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """The same pixels without decoding their strips (samples read at open): only the
        blocks under them are decoded, and kept (a few MB) for the pass, which decodes the
        rest of each strip around them, so no block is decoded twice."""
        span = self._span(r0, r1)
        if any(k in self._strips for k in span):
            return self._read_file(r0, r1, c0, c1)  # a strip already made (not at open)
        bw = self.block_width
        j0, j1 = c0 // bw, -(-c1 // bw)
        pieces = []
        for k in span:
            s0, s1 = self.bounds(k)
            blocks = self._fill(k, range(j0, j1))
            row = [blocks[j] for j in range(j0, j1)]
            row_px = row[0] if len(row) == 1 else np.concatenate(row, axis=-1)
            pieces.append(row_px[..., max(r0, s0) - s0: min(r1, s1) - s0,
                                 c0 - j0 * bw: c1 - j0 * bw])
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=-2)

    def prefetch(self, boxes: list[tuple[int, int, int, int]]) -> None:
        """Decode the blocks under ``boxes`` (``(r0, r1, c0, c1)``, the samples about to be
        read with ``read_direct``) together: adjacent blocks of a strip in one read, so a
        remote file gets one request for them, not one per block (which GDAL's read-ahead for
        sequential requests widens with blocks nobody reads)."""
        bw, need = self.block_width, {}
        for r0, r1, c0, c1 in boxes:
            if r1 > r0 and c1 > c0:
                for k in self._span(r0, r1):
                    need.setdefault(k, set()).update(range(c0 // bw, -(-c1 // bw)))
        for k, wanted in need.items():
            if k not in self._strips:
                self._fill(k, wanted)

    def _fill(self, k: int, wanted) -> dict[int, np.ndarray]:
        """Strip ``k``'s blocks ``wanted`` (block columns) in ``_parts``, those missing read a
        run of adjacent blocks at a time; the strip's kept blocks."""
        bw, (s0, s1) = self.block_width, self.bounds(k)
        blocks = self._parts.setdefault(k, {})
        missing = sorted(set(wanted) - blocks.keys())
        while missing:
            run = 1
            while run < len(missing) and missing[run] == missing[0] + run:
                run += 1
            j, e = missing[0], missing[0] + run
            data = self._read_file(s0, s1, j * bw, min(self.width, e * bw))
            for b in range(j, e):
                blocks[b] = data[..., (b - j) * bw: (b - j + 1) * bw]
            missing = missing[run:]
        return blocks
