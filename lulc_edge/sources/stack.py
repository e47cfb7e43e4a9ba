"""The 13-band stack opener: one multi-band raster (GeoTIFF, COG, VRT, any GDAL raster)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import rasterio
from rasterio.windows import Window

from ..errors import InputError
from .base import DEFAULT_BANDS, NO_OPTIONS, Opener, Source, SourceOptions, open_raster
from .checks import FLOAT, check_dtype
from .metadata import ProductMetadata, normalize_band, resolve_offset
from .radiometry import Radiometry
from .strips import StripReader, strip_rows
from .windows import rows_cols

#: A stack is read in full-width strips (each block decoded once; tiles and halos sliced from
#: them) when one strip of the bands used is at most this many bytes: 73 MB for a 13-band
#: uint16 Sentinel-2 tile with 256 px blocks. Wider rasters are read a window at a time.
STACK_STRIP_BYTES = 96 * 2**20
_NO_SCL_TAG_WORDS = ("zero", "fill", "absent", "none", "missing")


def _explicit_bands(src: rasterio.io.DatasetReader, wanted: Sequence[str],
                    bands: Mapping[str, int], path: str) -> dict[str, int]:
    """The ``--bands`` mapping, checked against the model's bands and the stack."""
    expected = ",".join(wanted)
    index: dict[str, int] = {}
    for name, i in bands.items():
        b = normalize_band(name)
        if b is None:
            raise InputError(f"--bands: unknown band name {name!r}")
        if b not in wanted:
            raise InputError(f"--bands {name}={i}: the model does not use {b} "
                             f"(it uses {expected})")
        if b in index:
            raise InputError(f"--bands: {b} is given twice")
        if int(i) < 1:
            raise InputError(f"--bands {name}={i}: band indices start at 1")
        if int(i) > src.count:
            raise InputError(f"--bands {name}={i}: {path} has {src.count} bands")
        twin = next((k for k, j in index.items() if j == int(i)), None)
        if twin is not None:
            raise InputError(f"--bands: band {i} is given to both {twin} and {b}")
        index[b] = int(i)
    miss = [b for b in wanted if b != "SCL" and b not in index]
    if miss:
        raise InputError(f"--bands lacks {', '.join(miss)} for {path}")
    return {b: index[b] for b in wanted if b in index}


def map_stack_bands(src: rasterio.io.DatasetReader, wanted: Sequence[str],
                    bands: Mapping[str, int] | None = None, label: str | None = None
                    ) -> tuple[dict[str, int], str]:
    """Which band of a stack holds each of ``wanted`` (1-based) and how that was decided: an
    explicit ``bands`` mapping (``--bands``), else band descriptions naming them, else
    position (13 bands in the model order, or 12 without SCL). InputError when none fits."""
    path = label or src.name
    refl = [b for b in wanted if b != "SCL"]
    if bands:
        return _explicit_bands(src, wanted, bands, path), "explicit --bands"
    named: dict[str, int] = {}
    for i, d in enumerate(src.descriptions, start=1):
        b = normalize_band(d) if d else None
        if b in named and b in wanted:
            raise InputError(f"{path}: bands {named[b]} and {i} are both described as "
                             f"{b}; fix the descriptions or name the bands with --bands")
        if b and b not in named:
            named[b] = i
    if all(b in named for b in refl):
        return {b: named[b] for b in wanted if b in named}, "band descriptions"
    if src.count == len(wanted):
        return {b: i for i, b in enumerate(wanted, start=1)}, "position"
    if "SCL" in wanted and src.count == len(refl):
        return {b: i for i, b in enumerate(refl, start=1)}, "position (no SCL)"
    raise InputError(
        f"{path}: has {src.count} bands; expected {len(wanted)} ({','.join(wanted)}), "
        f"{len(refl)} without SCL, band descriptions naming them, or --bands"
    )


class StackSource(Source):
    """One multi-band raster (GeoTIFF, COG, VRT, any GDAL raster) holding the bands.

    Bands are found by an explicit ``options.bands`` mapping, else by band descriptions naming
    them (``B1``/``B01``/``B8A``/``SCL``, any case), else by position: 13 bands in the model order,
    or 12 without SCL. Nodata: a pixel equal to the declared nodata value of any reflectance band.
    """

    _scl_hint = "another band in its place, such as B10? name the bands with --bands"

    def __init__(self, path: str, band_names: Sequence[str] = DEFAULT_BANDS,
                 options: SourceOptions = NO_OPTIONS):
        super().__init__(path, band_names, options)
        self._src = self._open()
        self._strips: StripReader | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._start()

    def _open(self) -> rasterio.io.DatasetReader:
        """The raster, open (a subclass opens remote ones with retries)."""
        return open_raster(self.path)

    def _setup(self) -> None:
        src = self._src
        self.width, self.height = src.width, src.height
        self.crs, self.transform = src.crs, src.transform
        self._index, how = map_stack_bands(src, self.band_names, self.options.bands,
                                           self.path)
        if how.startswith("position"):  # a stack in another order maps wrong without a word
            self._warn(f"{self.path}: bands taken by position ({','.join(self._index)}), as "
                       "no band descriptions name them; a stack in another order needs --bands")
            self._scl_hint = "bands taken by position: is another band in the SCL position? " \
                             "name the bands with --bands"
        for b, i in self._index.items():
            check_dtype(src.dtypes[i - 1], self.path, b)
            self._float |= src.dtypes[i - 1] in FLOAT and b != "SCL"
        offset, offset_source = resolve_offset(ProductMetadata(), self.options.boa_offset)
        if self.options.boa_offset is None:
            offset_source = "plain raster: values taken as harmonised"
        self.radiometry = Radiometry(
            offset=offset, nodata={b: src.nodatavals[i - 1] for b, i in self._index.items()})
        tag_scl = str(src.tags().get("SCL_SOURCE", ""))
        reason = ""
        if "SCL" in self.band_names:
            if "SCL" not in self._index:
                reason = f"{src.count}-band stack without an SCL band"
            elif any(w in tag_scl.lower() for w in _NO_SCL_TAG_WORDS):
                reason = f"tagged SCL_SOURCE={tag_scl!r}"
        self._settle(reason, str(src.tags().get("PROCESSING_LEVEL", "")) or None, offset_source)
        self._tags["INPUT_KIND"] = "stack"
        if "SCL" in self._index and self.radiometry.scl_fill is None:
            self._tags["SCL_SOURCE"] = f"band {self._index['SCL']} of the stack"
        self._tags["BAND_SOURCES"] = json.dumps(
            {b: f"{os.path.basename(self.path)}:{i}" for b, i in self._index.items()})
        self._tags["BAND_MAPPING"] = how
        self._tags["RESAMPLING"] = "none (single grid)"
        self._strip_reader()

    def _strip_reader(self) -> None:
        """Read in strips when one strip of the bands used fits ``STACK_STRIP_BYTES``."""
        src, idx = self._src, list(self._index.values())
        size = max(np.dtype(src.dtypes[i - 1]).itemsize for i in idx)
        if len(idx) * src.width * strip_rows(src) * size <= STACK_STRIP_BYTES:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="lulc-edge-decode")
            self._strips = StripReader(src, self._pool, idx)
            self.in_strips = True

    def _read_raw(self, window: Window, sample: bool = False) -> dict[str, np.ndarray]:
        if sample or self._strips is None:
            data = self._src.read(list(self._index.values()), window=window)
        else:
            r0, c0 = int(window.row_off), int(window.col_off)
            data = self._strips.read(r0, r0 + int(window.height), c0, c0 + int(window.width))
        return {b: data[k] for k, b in enumerate(self._index)}

    def band_locations(self) -> dict[str, tuple[str, int]]:
        return {b: (self.path, i) for b, i in self._index.items()}

    def limit(self, window: Window) -> None:
        if self._strips is not None:
            self._strips.limit(*rows_cols(window))

    def drop_cache(self) -> None:
        if self._strips is not None:
            self._strips.clear()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._src.close()


def stack_scene(path: str, band_names: Sequence[str]) -> tuple[str, bool]:
    """(kind, has SCL) of a stack from its header alone (the scene list)."""
    with rasterio.open(path) as ds:
        index, _ = map_stack_bands(ds, band_names)
    return "stack", "SCL" in index


#: The last resort: anything GDAL may open.
OPENER = Opener("stack", lambda _path: True, StackSource, scene=stack_scene)
