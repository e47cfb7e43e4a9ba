"""lulc_edge.sources: open a 13-band stack, a per-band folder, a .SAFE or .zip as one window reader.

Every source serves ``read(window)`` on one output grid (the 10 m grid for products): a
``(len(band_names), h, w)`` uint16 array in the model's band order, on the harmonised scale
(additive BOA offset removed), with nodata pixels set to 0 in all bands.

Choices made here:

* Float inputs are accepted only when they hold digital numbers: on the sample windows read at
  open time every finite value must be integral and the largest above 1 (reflectance in 0..1
  is refused with a hint). Values are then rounded; NaN is nodata.
* Integer inputs of 16 bits or more are clipped to 0..65535; uint8 is refused for reflectance
  bands (it cannot hold Sentinel-2 digital numbers: likely a visual/TCI product), int8 and
  complex types are refused.
* Nodata: for a stack, a pixel equal to the declared nodata value of any reflectance band; for
  per-band products, a pixel that is 0 in any reflectance band (Sentinel-2's NO_DATA value).
  Such pixels are 0 in all bands on output so the model marks them nodata.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import affine
import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from .bandread import GridBand, StripReader, decode_workers, strip_rows
from .contract import MODEL_BANDS
from .engine import default_threads
from .errors import InputError, LulcEdgeError, MissingSCLError, one_line
from .products import (
    KNOWN_BANDS,
    ProductMetadata,
    find_band_files,
    missing_bands,
    normalize_band,
    resolve_offset,
)
from .raster import Grid

DEFAULT_BANDS: tuple[str, ...] = MODEL_BANDS
#: Size (pixels) of the sample windows read at open time (probe, SCL check, float check).
SAMPLE_SIZE = int(os.environ.get("LULC_EDGE_SAMPLE_SIZE", "128"))
#: SCL classes are 0..11 (ESA L2A product specification).
SCL_MAX = 11
#: The --scl-fill an error about a missing SCL suggests: vegetation, as benchmarks/parity.py and
#: the real-data tests run L1C and BigEarthNet scenes.
SUGGESTED_SCL_FILL = 4
#: Resampling methods a source offers for coarser bands (``SourceOptions.resampling``).
RESAMPLINGS = ("bilinear", "nearest", "cubic", "average")
#: A stack is read in full-width strips (each block decoded once; tiles and halos sliced from
#: them) when one strip of the bands used is at most this many bytes: 73 MB for a 13-band
#: uint16 Sentinel-2 tile with 256 px blocks. Wider rasters are read a window at a time.
STACK_STRIP_BYTES = int(os.environ.get("LULC_EDGE_STACK_STRIP_BYTES", 96 * 2**20))
_READ_ERRORS = (RasterioError, CPLE_BaseError, OSError)
_INT_OK = {"uint16", "int16", "uint32", "int32", "int64", "uint64"}
_FLOAT = {"float16", "float32", "float64"}
_NO_SCL_TAG_WORDS = ("zero", "fill", "absent", "none", "missing")


@dataclass(frozen=True)
class SourceOptions:
    """How to read an input (all optional)."""

    bands: Mapping[str, int] | None = None  # stack: band name -> 1-based band index (--bands)
    boa_offset: int | None = None  # None: from product metadata, else 0; int: added to DN
    scl_fill: int | None = None    # no usable SCL: None -> MissingSCLError; int -> fill with it
    resampling: str = "bilinear"   # reflectance bands onto the 10 m grid; SCL is always nearest


def _resampling(name: str) -> Resampling:
    try:
        return Resampling[name.lower()]
    except KeyError:
        raise InputError(f"unknown resampling {name!r}") from None


def _open(path: str, label: str | None = None) -> rasterio.io.DatasetReader:
    try:
        src = rasterio.open(path)
    except _READ_ERRORS as e:
        raise InputError(f"{label or path}: not a readable raster ({one_line(e)})") from None
    if src.width == 0 or src.height == 0 or src.count == 0:
        src.close()
        raise InputError(f"{label or path}: empty raster ({src.width}x{src.height}, "
                         f"{src.count} bands)")
    return src


def _check_dtype(dtype: str, label: str, band: str) -> None:
    if dtype in _INT_OK or dtype in _FLOAT:
        return
    if dtype == "uint8" and band == "SCL":
        return
    hint = (": 8-bit data cannot hold Sentinel-2 digital numbers (a visual/TCI product?)"
            if dtype == "uint8" else "")
    raise InputError(f"{label}: unsupported data type {dtype} for band {band}{hint}; "
                     "expected integer digital numbers (uint16)")


def _clip_window(window: Window, width: int, height: int) -> tuple[Window, int, int] | None:
    """The part of ``window`` inside the raster, and its offset inside ``window``."""
    c0, r0 = max(int(window.col_off), 0), max(int(window.row_off), 0)
    c1 = min(int(window.col_off) + int(window.width), width)
    r1 = min(int(window.row_off) + int(window.height), height)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0), r0 - int(window.row_off), c0 - int(window.col_off)


def _sample_windows(width: int, height: int, size: int = SAMPLE_SIZE) -> list[Window]:
    """Small windows at the left, centre and right of the first rows, for the SCL and float
    checks, and the last corner, which probes the file's last block (a truncated file).
    Per-band files hold the strips of the first ones for the pass, which starts there (decoded
    once); the corner is read on its own: a strip held from the end would cost memory for the
    whole run, and a sample from the middle decoded strips the pass decoded again."""
    w, h = min(size, width), min(size, height)
    first = [Window(c, 0, w, h) for c in sorted({0, (width - w) // 2, width - w})]
    return first + [Window(width - w, height - h, w, h)]


def check_scl(label: str, scl: np.ndarray, hint: str) -> str | None:
    """Refuse a sample of SCL values (on valid pixels) that no SCL band holds: values outside
    the classes 0..11, or not whole numbers: another band in its place, which would give a
    wrong map without a word. Returns why the band is unusable (0 everywhere), else None."""
    if scl.dtype.kind == "f":
        scl = scl[np.isfinite(scl)]
    if not scl.size:
        return None
    lo, hi = float(scl.min()), float(scl.max())
    odd = scl.dtype.kind == "f" and not np.array_equal(scl, np.rint(scl))
    if lo < 0 or hi > SCL_MAX or odd:
        what = "values that are not whole numbers" if odd else f"values {lo:.6g}..{hi:.6g}"
        raise InputError(f"{label}: the band used as SCL has {what}, but SCL classes are "
                         f"0..{SCL_MAX} ({hint})")
    return None if hi else "its SCL band is 0 on every valid pixel sampled"


class Source:
    """A reader of windows of one scene on one grid, in the model's band order."""

    path: str
    width: int
    height: int
    crs: CRS | None
    transform: affine.Affine
    band_names: tuple[str, ...]
    warnings: list[str]
    #: reads in strips of its own (each block decoded once; GDAL's cache then only needs room
    #: for the strips being decoded)
    in_strips: bool = False
    #: what to check when the SCL band holds values no SCL band has
    _scl_hint = "is the SCL file another band's?"

    def __init__(self, path: str, band_names: Sequence[str], options: SourceOptions):
        self.path = path
        self.options = options
        self.band_names = tuple(band_names)
        self.warnings = []
        self._refl = [b for b in self.band_names if b != "SCL"]
        self._nodata: dict[str, float | None] = {}
        self._zero_is_nodata = False
        self._float = False
        self._offset: int | dict[str, int] = 0
        self._offset_source = ""
        self._scl_fill: int | None = None
        self._scl_reason = ""
        self._tags: dict[str, str] = {}

    # -- to implement ---------------------------------------------------------------------------
    def _read_raw(self, window: Window, sample: bool = False, hold: bool = True
                  ) -> dict[str, np.ndarray]:
        """Native-dtype arrays for ``window`` (inside the grid) keyed by band; SCL may be absent.
        ``sample``: a read before the sequential pass (the checks at open); ``hold``: keep what
        it decoded for the pass (where the reader can), else read it on its own."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the open datasets."""

    # -- shared --------------------------------------------------------------------------------
    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, {self.width}x{self.height})"

    def _warn(self, msg: str) -> None:
        # Only recorded: the caller prints ``warnings`` once (the CLI does, from RunResult);
        # a Python LulcEdgeWarning as well would be shown twice.
        self.warnings.append(msg)

    def _read_checked(self, window: Window, sample: bool = False, hold: bool = True
                      ) -> dict[str, np.ndarray]:
        try:
            return self._read_raw(window, sample, hold)
        except LulcEdgeError:
            raise
        except _READ_ERRORS as e:
            w = f"{window.width}x{window.height} at col {window.col_off}, row {window.row_off}"
            raise InputError(f"{self.path}: read failed (truncated or corrupt file?) "
                             f"for {w}: {one_line(e)}") from None

    def read(self, window: Window) -> np.ndarray:
        """``(len(band_names), h, w)`` uint16 for ``window`` of the grid; outside it 0."""
        window = Window(int(window.col_off), int(window.row_off),
                        int(window.width), int(window.height))
        inner = _clip_window(window, self.width, self.height)
        data = None if inner is None else self._convert(self._read_checked(inner[0]))
        if data is not None and data.shape[1:] == (window.height, window.width):
            return data  # inside the raster: no zero-filled copy
        out = np.zeros((len(self.band_names), window.height, window.width), np.uint16)
        if inner is not None:
            win, dr, dc = inner
            out[:, dr:dr + win.height, dc:dc + win.width] = data
        return out

    def _invalid(self, raw: Mapping[str, np.ndarray]) -> np.ndarray:
        shape = raw[self._refl[0]].shape
        bad = np.zeros(shape, bool)
        for b in self._refl:
            a = raw[b]
            nd = self._nodata.get(b)
            if nd is not None and not np.isnan(nd) and not (nd == 0 and self._zero_is_nodata):
                bad |= a == nd
            if a.dtype.kind == "f":
                bad |= ~np.isfinite(a)
            if self._zero_is_nodata:
                bad |= a == 0
        return bad

    @staticmethod
    def _to_u16(a: np.ndarray) -> np.ndarray:
        if a.dtype == np.uint16:
            return a
        if a.dtype.kind == "f":
            a = np.nan_to_num(np.rint(a), nan=0.0, posinf=0.0, neginf=0.0)
        return np.clip(a, 0, 65535).astype(np.uint16)

    def _convert(self, raw: Mapping[str, np.ndarray]) -> np.ndarray:
        bad = self._invalid(raw)
        shape = bad.shape
        out = np.zeros((len(self.band_names), *shape), np.uint16)
        minus: dict[int, np.ndarray] = {}  # an array operand: numpy's scalar loops are slower
        for i, b in enumerate(self.band_names):
            if b == "SCL":
                continue
            v = self._to_u16(raw[b])
            off = self._offset.get(b, 0) if isinstance(self._offset, dict) else self._offset
            if off < 0:  # v + off floored at 0 (0 stays 0): max(v, -off) + off, in uint16
                c = minus.get(off)
                if c is None:
                    c = minus[off] = np.full(shape, -off, np.uint16)
                np.maximum(v, c, out=out[i])
                np.subtract(out[i], c, out=out[i])
            elif off:
                v = np.where(v > 0, np.clip(v.astype(np.int32) + off, 0, 65535), 0)
                out[i] = v
            else:
                out[i] = v
        if "SCL" in self.band_names:
            i = self.band_names.index("SCL")
            if self._scl_fill is not None:
                has_data = np.zeros(shape, bool)
                for b in self._refl:
                    has_data |= raw[b] != 0
                out[i] = np.where(has_data, self._scl_fill, 0)
            else:
                out[i] = self._to_u16(raw["SCL"])
        if bad.any():  # one multiply over the bands: far cheaper than a boolean index
            np.multiply(out, ~bad, out=out)
        return out

    def _inspect(self) -> None:
        """Probe the sample windows: surfaces truncated files, checks floats and the SCL band."""
        wins = _sample_windows(self.width, self.height)
        samples = [self._read_checked(w, sample=True, hold=i < len(wins) - 1)
                   for i, w in enumerate(wins)]
        if self._float:
            vals = [s[b][np.isfinite(s[b])] for s in samples for b in self._refl]
            vals = np.concatenate([v.ravel() for v in vals]) if vals else np.zeros(0)
            if vals.size and (vals.max() <= 1.0 or not np.all(vals == np.rint(vals))):
                raise InputError(
                    f"{self.path}: floating-point values (max {vals.max():.4g}) are not digital "
                    "numbers; expected integral Sentinel-2 DN (reflectance * 10000), e.g. uint16"
                )
        valid = [~self._invalid(s) & np.any([s[b] != 0 for b in self._refl], axis=0)
                 for s in samples]
        self._check_range(samples, valid)
        if "SCL" not in self.band_names or self._scl_reason:
            return
        scl = np.concatenate([s["SCL"][v].ravel() for s, v in zip(samples, valid, strict=True)])
        self._scl_reason = check_scl(self.path, scl, self._scl_hint) or ""

    def _check_range(self, samples: list[dict[str, np.ndarray]],
                     valid: list[np.ndarray]) -> None:
        """Refuse reflectance beyond 65535 (it would be clipped: not Sentinel-2 DN); warn once
        about negative values (taken as 0), naming the bands. Judged on the sample windows."""
        negative: dict[str, float] = {}
        for b in self._refl:
            vals = [s[b][v] for s, v in zip(samples, valid, strict=True) if v.any()]
            if not vals or vals[0].dtype == np.uint16:
                continue
            top = max(float(np.nanmax(v)) for v in vals)
            low = min(float(np.nanmin(v)) for v in vals)
            if top > 65535:
                raise InputError(
                    f"{self.path}: band {b} has values up to {top:.6g}, outside Sentinel-2's "
                    "digital numbers (0..65535, reflectance * 10000): another product or scale?")
            if low < 0:
                negative[b] = low
        if negative:
            which = (f"all {len(negative)} reflectance bands" if len(negative) == len(self._refl)
                     else ("bands " if len(negative) > 1 else "band ") + ", ".join(negative))
            self._warn(f"{self.path}: negative values in {which} (down to "
                       f"{min(negative.values()):.6g}); they are taken as 0")

    def _settle_scl(self, level: str | None = None) -> None:
        """Refuse, or fill, when the input has no usable SCL."""
        if "SCL" not in self.band_names:
            self._tags["SCL_SOURCE"] = "not used by the model"
            return
        if not self._scl_reason:
            return
        fill = self.options.scl_fill
        if fill is None:
            lvl = f" ({level})" if level else ""
            todo = "add the product's SCL file" if level == "L2A" else "use L2A input with SCL"
            raise MissingSCLError(
                f"{self.path}: no usable SCL{lvl}: {self._scl_reason}; the model takes SCL as "
                f"an input channel: {todo}, or run with --scl-fill {SUGGESTED_SCL_FILL} (SCL "
                "class 4, vegetation, the fill this project's checks of scenes without SCL use; "
                f"any class 0..{SCL_MAX} is accepted)"
            )
        if not 0 <= int(fill) <= 65535:
            raise InputError(f"--scl-fill {fill}: must be an SCL class 0..{SCL_MAX}")
        self._scl_fill = int(fill)
        self._tags["SCL_SOURCE"] = f"filled with {fill} (--scl-fill): {self._scl_reason}"
        self._tags["SCL_FILL"] = str(fill)
        self._warn(f"{self.path}: SCL filled with {fill} ({self._scl_reason}); the model was "
                   "trained on real SCL, results may differ")

    def _grid_tags(self) -> None:
        if self.crs is None:  # rasterio's NotGeoreferencedWarning names no file: this does
            what = "no georeference (no CRS or geotransform)" \
                if self.transform.is_identity else "no CRS"
            self._warn(f"{self.path}: {what}: output will have none")
        self._tags.update({
            "INPUT": self.path,
            "GRID_CRS": self.crs.to_string() if self.crs else "none",
            "GRID_RES": f"{abs(self.transform.a):g} {abs(self.transform.e):g}",
            "GRID_SIZE": f"{self.width} {self.height}",
            "GRID_TRANSFORM": " ".join(f"{v:.10g}" for v in tuple(self.transform)[:6]),
            "BANDS": ",".join(self.band_names),
            "BOA_OFFSET": json.dumps(self._offset) if isinstance(self._offset, dict)
            else str(self._offset),
            "BOA_OFFSET_SOURCE": self._offset_source,
        })

    def tags(self) -> dict[str, str]:
        """Provenance for the output's tags: band files, grid, resampling, offset, SCL."""
        return dict(self._tags)


def _check_band_names(band_names: Sequence[str]) -> tuple[str, ...]:
    out = []
    for b in band_names:
        n = normalize_band(b)
        if n is None or n not in KNOWN_BANDS:
            raise ValueError(f"unknown band name {b!r} in the model's band order")
        out.append(n)
    return tuple(out)


def map_stack_bands(src: rasterio.io.DatasetReader, wanted: Sequence[str],
                    bands: Mapping[str, int] | None = None, label: str | None = None
                    ) -> tuple[dict[str, int], str]:
    """Which band of a stack holds each of ``wanted`` (1-based) and how that was decided: an
    explicit ``bands`` mapping (``--bands``), else band descriptions naming them, else
    position (13 bands in the model order, or 12 without SCL). InputError when none fits."""
    path = label or src.name
    refl = [b for b in wanted if b != "SCL"]
    expected = ",".join(wanted)
    if bands:
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
        miss = [b for b in refl if b not in index]
        if miss:
            raise InputError(f"--bands lacks {', '.join(miss)} for {path}")
        return {b: index[b] for b in wanted if b in index}, "explicit --bands"
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
        f"{path}: has {src.count} bands; expected {len(wanted)} ({expected}), "
        f"{len(refl)} without SCL, band descriptions naming them, or --bands"
    )


class StackSource(Source):
    """One multi-band raster (GeoTIFF, COG, VRT, any GDAL raster) holding the bands.

    Bands are found by an explicit ``options.bands`` mapping, else by band descriptions naming
    them (``B1``/``B01``/``B8A``/``SCL``, any case), else by position: 13 bands in the model order,
    or 12 without SCL.
    """

    _scl_hint = "another band in its place, such as B10? name the bands with --bands"

    def __init__(self, path: str, band_names: Sequence[str] = DEFAULT_BANDS,
                 options: SourceOptions = SourceOptions()):
        super().__init__(path, _check_band_names(band_names), options)
        self._src = _open(path, self.path)
        self._strips: StripReader | None = None
        self._pool: ThreadPoolExecutor | None = None
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

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
            dt = src.dtypes[i - 1]
            _check_dtype(dt, self.path, b)
            self._float |= dt in _FLOAT and b != "SCL"
            self._nodata[b] = src.nodatavals[i - 1]
        tag_scl = str(src.tags().get("SCL_SOURCE", ""))
        if "SCL" in self.band_names:
            if "SCL" not in self._index:
                self._scl_reason = f"{src.count}-band stack without an SCL band"
            elif any(w in tag_scl.lower() for w in _NO_SCL_TAG_WORDS):
                self._scl_reason = f"tagged SCL_SOURCE={tag_scl!r}"
        self._offset, self._offset_source = resolve_offset(ProductMetadata(),
                                                          self.options.boa_offset)
        if self.options.boa_offset is None:
            self._offset_source = "plain raster: values taken as harmonised"
        level = str(src.tags().get("PROCESSING_LEVEL", "")) or None
        if self._scl_reason and self.options.scl_fill is None:
            self._settle_scl(level)  # refuse before reading anything
        self._inspect()
        self._settle_scl(level)
        self._grid_tags()
        self._tags["INPUT_KIND"] = "stack"
        if "SCL" in self._index and self._scl_fill is None:
            self._tags["SCL_SOURCE"] = f"band {self._index['SCL']} of the stack"
        self._tags["BAND_SOURCES"] = json.dumps(
            {b: f"{os.path.basename(self.path)}:{i}" for b, i in self._index.items()})
        self._tags["BAND_MAPPING"] = how
        self._tags["RESAMPLING"] = "none (single grid)"
        idx = list(self._index.values())
        size = max(np.dtype(src.dtypes[i - 1]).itemsize for i in idx)
        if len(idx) * src.width * strip_rows(src) * size <= STACK_STRIP_BYTES:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="lulc-edge-decode")
            self._strips = StripReader(src, self._pool, idx)
            self.in_strips = True

    def _read_raw(self, window: Window, sample: bool = False, hold: bool = True
                  ) -> dict[str, np.ndarray]:
        if sample or self._strips is None:
            data = self._src.read(list(self._index.values()), window=window)
        else:
            r0, c0 = int(window.row_off), int(window.col_off)
            data = self._strips.read(r0, r0 + int(window.height), c0, c0 + int(window.width))
        return {b: data[k] for k, b in enumerate(self._index)}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._src.close()


class BandFolderSource(Source):
    """Per-band files (a folder, an unpacked .SAFE, a zipped .SAFE read through /vsizip/).

    The output grid is the finest band's grid (10 m for Sentinel-2). Each band file is decoded
    once, in block-aligned strips on a thread pool, and other bands are resampled on the fly
    onto that grid (:mod:`lulc_edge.bandread`): each output pixel centre maps through the bands'
    geotransforms, so 20/60 m grids offset from the 10 m grid land right.
    Reflectance bands use ``options.resampling`` (bilinear by default: smooth, unbiased, the
    same as the reference stacks); SCL always uses nearest because it is categorical: averaging
    class 4 (vegetation) and class 6 (water) would invent class 5 (not vegetated).
    """

    def __init__(self, path: str, band_names: Sequence[str] = DEFAULT_BANDS,
                 options: SourceOptions = SourceOptions()):
        super().__init__(path, _check_band_names(band_names), options)
        self._found = find_band_files(path)
        self._datasets: list = []
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        found, files = self._found, self._found.files
        miss = missing_bands(files, self.band_names)
        if miss:
            raise InputError(f"{self.path}: missing band files for {', '.join(miss)} "
                             f"(found {', '.join(sorted(files)) or 'none'})")
        use = [b for b in self.band_names if b in files]
        srcs = {}
        for b in use:
            srcs[b] = _open(files[b], f"{self.path}: {b} ({_short(files[b])})")
            self._datasets.append(srcs[b])
            _check_dtype(srcs[b].dtypes[0], f"{self.path}: {_short(files[b])}", b)
            self._float |= srcs[b].dtypes[0] in _FLOAT and b != "SCL"
        ref = self._reference(srcs)
        self.width, self.height = ref.width, ref.height
        self.crs, self.transform = ref.crs, ref.transform
        self._check_grids(srcs, ref)
        rs = _resampling(self.options.resampling)
        direct = rs in (Resampling.bilinear, Resampling.nearest)
        self._pool = ThreadPoolExecutor(min(len(srcs), decode_workers(default_threads())),
                                        thread_name_prefix="lulc-edge-decode")
        self._resampler = ThreadPoolExecutor(min(len(srcs), default_threads()),
                                             thread_name_prefix="lulc-edge-resample")
        grid = Grid(ref.width, ref.height, ref.crs, ref.transform)
        self._bands: dict[str, GridBand] = {}
        how = {}
        for b, src in srcs.items():
            nd = src.nodata if src.nodata is not None else (None if b == "SCL" else 0)
            self._nodata[b] = nd
            method = Resampling.nearest if b == "SCL" else rs
            self._bands[b] = GridBand(src, grid, method, nd, self._pool, self._resampler,
                                      direct=direct)
            how[b] = self._bands[b].how
        self._zero_is_nodata = True
        self.in_strips = True
        meta = found.metadata
        self._offset, self._offset_source = resolve_offset(meta, self.options.boa_offset)
        if "SCL" in self.band_names and "SCL" not in files:
            self._scl_reason = "no SCL band file"
            if self.options.scl_fill is None:
                self._settle_scl(meta.level)  # refuse before reading anything
        self._inspect()
        self._settle_scl(meta.level)
        self._grid_tags()
        self._tags.update({
            "INPUT_KIND": found.kind,
            "BAND_SOURCES": json.dumps({b: _short(files[b]) for b in use}),
            "RESAMPLING": json.dumps(how),
            "PROCESSING_LEVEL": meta.level or "unknown",
            "PROCESSING_BASELINE": meta.baseline or "unknown",
        })
        if meta.file:
            self._tags["PRODUCT_METADATA"] = _short(meta.file)
        if "SCL" in files and "SCL" in self.band_names and self._scl_fill is None:
            self._tags["SCL_SOURCE"] = _short(files["SCL"])

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

    def _read_raw(self, window: Window, sample: bool = False, hold: bool = True
                  ) -> dict[str, np.ndarray]:
        if not sample:
            for band in self._bands.values():  # every band decodes and resamples at once
                band.request(window)
        return {b: band.read(window, sample, hold) for b, band in self._bands.items()}

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


def open_source(path: str | os.PathLike, band_names: Sequence[str] = DEFAULT_BANDS,
                options: SourceOptions = SourceOptions()) -> Source:
    """Open ``path`` as the right kind of source.

    A folder (plain, or an unpacked .SAFE) or a ``.zip`` -> BandFolderSource; anything else
    GDAL opens (GeoTIFF, VRT, ``/vsi...`` paths) -> StackSource. Raises InputError (or
    MissingSCLError) with a one-line message naming the input.
    """
    p = os.fspath(path)
    if reads_band_files(p):
        return BandFolderSource(p, band_names, options)
    check_input(p)
    return StackSource(p, band_names, options)


def reads_band_files(path: str | os.PathLike) -> bool:
    """Whether ``path`` is read as per-band files (a folder, .SAFE or .zip), not one raster."""
    p = os.fspath(path)
    return os.path.isdir(p) or (os.path.isfile(p) and (p.lower().endswith(".zip") or _is_zip(p)))


def is_remote(src: str | os.PathLike) -> bool:
    """A URL or GDAL virtual path: kept as a string (``Path`` would fold ``https://`` to
    ``https:/``) and never checked on the local filesystem."""
    p = os.fspath(src)
    return "://" in p or p.startswith("/vsi")


def check_input(path: str | os.PathLike) -> None:
    """InputError unless ``path`` exists here or is a GDAL virtual path or URL (checked later,
    when GDAL opens it)."""
    p = os.fspath(path)
    if is_remote(p):
        return
    if not os.path.exists(p):
        raise InputError(f"{p}: no such file or folder")
    if not (os.path.isfile(p) or os.path.isdir(p)):  # a FIFO would block the open forever
        raise InputError(f"{p}: not a regular file or folder (a FIFO, device or socket)")


def _is_zip(path: str) -> bool:
    import zipfile

    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False
