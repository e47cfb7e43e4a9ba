"""The per-band openers: a folder of band files, an unpacked ``.SAFE`` or a zipped product
(band files found by :mod:`.safe`), read on the finest band's grid."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..engine import default_threads
from ..errors import InputError
from ..raster import Grid
from .base import DEFAULT_BANDS, NO_OPTIONS, Opener, Source, SourceOptions, open_raster, resampling
from .checks import FLOAT, check_dtype
from .metadata import resolve_offset
from .radiometry import Radiometry
from .resample import GridBand
from .safe import BandFiles, find_band_files, missing_bands
from .strips import decode_workers
from .windows import rows_cols


class BandFolderSource(Source):
    """Per-band files (a folder, an unpacked .SAFE, a zipped .SAFE read through /vsizip/).

    The output grid is the finest band's grid (10 m for Sentinel-2). Each band file is decoded
    once, in block-aligned strips on a thread pool, and other bands are resampled on the fly
    onto that grid (:mod:`.strips`, :mod:`.resample`): each output pixel centre maps through
    the bands' geotransforms, so 20/60 m grids offset from the 10 m grid land right.
    Reflectance bands use ``options.resampling`` (bilinear by default: smooth, unbiased, the
    same as the reference stacks); SCL always uses nearest because it is categorical: averaging
    class 4 (vegetation) and class 6 (water) would invent class 5 (not vegetated).
    """

    def __init__(self, path: str, band_names: Sequence[str] = DEFAULT_BANDS,
                 options: SourceOptions = NO_OPTIONS, found: BandFiles | None = None):
        super().__init__(path, band_names, options)
        # ``found``: band files named by the caller (a STAC item's hrefs), not looked for
        self._found = found if found is not None else find_band_files(path)
        self._datasets: list = []
        self._start()

    def _setup(self) -> None:
        found, files = self._found, self._found.files
        miss = missing_bands(files, self.band_names)
        if miss:
            raise InputError(f"{self.path}: missing band files for {', '.join(miss)} "
                             f"(found {', '.join(sorted(files)) or 'none'})")
        srcs = self._open_bands([b for b in self.band_names if b in files])
        ref = self._reference(srcs)
        self.width, self.height = ref.width, ref.height
        self.crs, self.transform = ref.crs, ref.transform
        self._check_grids(srcs, ref)
        how = self._grid_bands(srcs, Grid(ref.width, ref.height, ref.crs, ref.transform))
        meta = found.metadata
        offset, offset_source = resolve_offset(meta, self.options.boa_offset)
        self.radiometry = Radiometry(offset=offset, zero_is_nodata=True,
                                     nodata={b: band.nodata for b, band in self._bands.items()})
        reason = "no SCL band file" if "SCL" in self.band_names and "SCL" not in files else ""
        self._settle(reason, meta.level, offset_source)
        self._tags.update({
            "INPUT_KIND": found.kind,
            "BAND_SOURCES": json.dumps({b: _short(files[b]) for b in srcs}),
            "RESAMPLING": json.dumps(how),
            "PROCESSING_LEVEL": meta.level or "unknown",
            "PROCESSING_BASELINE": meta.baseline or "unknown",
        })
        if meta.file:
            self._tags["PRODUCT_METADATA"] = _short(meta.file)
        if "SCL" in files and "SCL" in self.band_names and self.radiometry.scl_fill is None:
            self._tags["SCL_SOURCE"] = _short(files["SCL"])

    def _open_bands(self, use: Sequence[str]) -> dict[str, rasterio.io.DatasetReader]:
        """The band files, opened at once (a remote file's open waits on requests); the first
        failure in band order is raised, every file opened kept for ``close``."""
        files, srcs = self._found.files, {}
        with ThreadPoolExecutor(min(8, len(use)) or 1) as ex:
            opening = {b: ex.submit(self._open_band, files[b],
                                    f"{self.path}: {b} ({_short(files[b])})") for b in use}
        failed = [f.exception() for f in opening.values() if f.exception() is not None]
        for b, fut in opening.items():
            if fut.exception() is None:
                srcs[b] = fut.result()
                self._datasets.append(srcs[b])
        if failed:
            raise failed[0]
        for b, src in srcs.items():
            check_dtype(src.dtypes[0], f"{self.path}: {_short(files[b])}", b)
            self._float |= src.dtypes[0] in FLOAT and b != "SCL"
        return srcs

    def _open_band(self, path: str, label: str) -> rasterio.io.DatasetReader:
        """One band file, opened (a subclass reads remote ones with retries)."""
        return open_raster(path, label)

    def _grid_bands(self, srcs: Mapping[str, rasterio.io.DatasetReader], grid: Grid
                    ) -> dict[str, str]:
        """Each band file on the output grid (:class:`GridBand`); how each is resampled."""
        rs = resampling(self.options.resampling)
        direct = rs in (Resampling.bilinear, Resampling.nearest)
        self._pool = ThreadPoolExecutor(min(len(srcs), decode_workers(default_threads())),
                                        thread_name_prefix="lulc-edge-decode")
        self._resampler = ThreadPoolExecutor(min(len(srcs), default_threads()),
                                             thread_name_prefix="lulc-edge-resample")
        self._bands: dict[str, GridBand] = {}
        for b, src in srcs.items():
            nd = src.nodata if src.nodata is not None else (None if b == "SCL" else 0)
            method = Resampling.nearest if b == "SCL" else rs
            self._bands[b] = GridBand(src, grid, method, nd, self._pool, self._resampler,
                                      direct=direct)
        self.in_strips = True
        return {b: band.how for b, band in self._bands.items()}

    def band_locations(self) -> dict[str, tuple[str, int]]:
        return {b: (f, 1) for b, f in self._found.files.items() if b in self._bands}

    def _reference(self, srcs: Mapping[str, rasterio.io.DatasetReader]):
        """The finest grid; among equals the first of B2, B3, B4, B8, then the model order."""
        order = ["B2", "B3", "B4", "B8", *srcs]
        ranked = sorted(srcs, key=lambda b: (abs(srcs[b].transform.a), order.index(b)))
        return srcs[ranked[0]]

    def _check_grids(self, srcs, ref) -> None:
        files = self._found.files
        crss = {b: s.crs for b, s in srcs.items()}
        if any((c is None) != (ref.crs is None) or (c is not None and c != ref.crs)
               for c in crss.values()):
            shown = ", ".join(f"{b}: {c.to_string() if c else 'none'}" for b, c in crss.items())
            raise InputError(f"{self.path}: band files are on different CRSs ({shown})")
        rb = ref.bounds
        for b, s in srcs.items():
            tol = max(abs(s.transform.a), abs(ref.transform.a)) * 1.001
            sb = s.bounds
            overlap = (min(sb.right, rb.right) > max(sb.left, rb.left)
                       and min(sb.top, rb.top) > max(sb.bottom, rb.bottom))
            if not overlap or any(abs(x - y) > tol for x, y in zip(sb, rb, strict=True)):
                raise InputError(
                    f"{self.path}: band files do not cover the same area: {_short(files[b])} "
                    f"{tuple(round(v, 2) for v in sb)} vs {tuple(round(v, 2) for v in rb)}"
                )

    def _read_raw(self, window: Window, sample: bool = False) -> dict[str, np.ndarray]:
        if not sample:
            for band in self._bands.values():  # every band decodes and resamples at once
                band.request(window)
        return {b: band.read(window, sample) for b, band in self._bands.items()}

    def _prefetch(self, windows: list[Window]) -> None:
        """The samples' blocks of every band file, on the decode pool (remote files: their
        requests overlap, and decoding overlaps them)."""
        boxes = [rows_cols(w) for w in windows]
        list(self._pool.map(lambda band: band.prefetch(boxes), self._bands.values()))

    def limit(self, window: Window) -> None:
        for band in self._bands.values():
            band.limit(*rows_cols(window))

    def drop_cache(self) -> None:
        for band in getattr(self, "_bands", {}).values():
            band.clear()

    def close(self) -> None:
        for name in ("_resampler", "_pool"):
            pool = getattr(self, name, None)
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        for band in getattr(self, "_bands", {}).values():
            band.close()
        for d in reversed(self._datasets):
            try:
                d.close()
            except Exception:  # noqa: BLE001 - closing must not mask the real error
                pass
        self._datasets = []


def _short(gdal_path: str) -> str:
    """A band file's name for tags and messages (``IMG_DATA/R10m/..._B02_10m.jp2``)."""
    parts = gdal_path.replace("\\", "/").split("/")
    return "/".join(parts[-3:]) if "IMG_DATA" in parts else parts[-1]


def _is_zip(path: str) -> bool:
    if not os.path.isfile(path):
        return False
    if path.lower().endswith(".zip"):
        return True
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def band_files_scene(path: str, band_names: Sequence[str]) -> tuple[str, bool] | None:
    """(kind, has SCL) of a folder or zip whose band files hold every band but SCL."""
    found = find_band_files(path)
    if missing_bands(found.files, band_names):
        return None
    return found.kind, "SCL" in found.files


FOLDER = Opener("folder", os.path.isdir, BandFolderSource, band_files=True,
                scene=band_files_scene)
ZIP = Opener("zip", _is_zip, BandFolderSource, band_files=True, scene=band_files_scene)
