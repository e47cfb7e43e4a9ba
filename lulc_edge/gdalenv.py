"""lulc_edge.gdalenv: the GDAL settings a run reads its input under."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import rasterio

from .engine import default_threads
from .sources import Source, SourceOptions, open_source, reads_band_files
from .sources import strips as strip_reader

#: GDAL block cache while mapping a scene, in bytes, unless GDAL_CACHEMAX is set: enough for the
#: blocks of one row of tiles of a 10980 px wide scene (halo re-reads hit the cache), instead of
#: GDAL's default of 5% of RAM, which held 1.2 GB of decoded input on a 24 GB machine.
#: ``LULC_EDGE_GDAL_CACHE_BYTES`` overrides it (read at each run).
GDAL_CACHE_BYTES = 256 * 2**20


def cache_bytes(strips: bool) -> int:
    """The block cache of a run. Inputs read in strips of their own (per-band files: folders,
    .SAFE, .zip; stacks whose strips fit, sources.STACK_STRIP_BYTES) hold the decoded blocks in
    the strips, so the cache needs room only for the strips being decoded (the strip reader's
    figure: 64 MB on 2 to 11 cores; a stack's 256 MB only double-buffered its strips, 190 MB of
    peak RSS on a full tile); ``LULC_EDGE_GDAL_CACHE_BYTES_BANDS`` overrides that figure."""
    if strips:
        return int(os.environ.get("LULC_EDGE_GDAL_CACHE_BYTES_BANDS") or 0) or \
            strip_reader.cache_bytes(default_threads())
    return int(os.environ.get("LULC_EDGE_GDAL_CACHE_BYTES") or GDAL_CACHE_BYTES)


def gdal_settings(strips: bool = False) -> dict[str, Any]:
    """GDAL settings of a run, each unless the environment sets it: a bounded block cache
    (``cache_bytes``), and block decoding on all cores (GTiff decodes a window's blocks in
    parallel, JPEG 2000 its tiles; a GPU run is bound by it, a CPU run spends the same
    core-seconds sooner)."""
    defaults = {"GDAL_CACHEMAX": cache_bytes(strips), "GDAL_NUM_THREADS": "ALL_CPUS"}
    return {k: v for k, v in defaults.items() if k not in os.environ}


@contextlib.contextmanager
def open_for_run(src: str | Source, bands: Sequence[str],
                 source_options: SourceOptions | None = None) -> Iterator[Source]:
    """``open_source`` under a run's GDAL settings: per-band files get the strips' smaller
    cache from the start, a stack once it is open and known to read in strips. What
    ``segment_file`` reads through, and what a benchmark of the reader alone should. An
    opened ``Source`` is used as is (and left open: it is the caller's)."""
    opened = isinstance(src, Source)
    with rasterio.Env(**gdal_settings(not opened and reads_band_files(src))), \
            (contextlib.nullcontext(src) if opened
             else open_source(src, bands, source_options or SourceOptions())) as source:
        strips = {k: v for k, v in gdal_settings(True).items() if k == "GDAL_CACHEMAX"} \
            if source.in_strips else {}
        with rasterio.Env(**strips):
            yield source
