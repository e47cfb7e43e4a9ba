"""The ``Source`` every opener returns, and what sources share.

A source serves ``read(window)`` on one output grid (the 10 m grid for products): a
``(len(band_names), h, w)`` uint16 array in the model's band order, on the harmonised scale
(additive BOA offset removed), with nodata pixels set to 0 in all bands (:mod:`.radiometry`).

Choices made here:

* Float inputs are accepted only when they hold digital numbers: on the sample windows read at
  open time every finite value must be integral and the largest above 1 (reflectance in 0..1
  is refused with a hint). Values are then rounded; NaN is nodata.
* Integer inputs of 16 bits or more are clipped to 0..65535; uint8 is refused for reflectance
  bands (it cannot hold Sentinel-2 digital numbers: likely a visual/TCI product), int8 and
  complex types are refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

import affine
import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from ..contract import MODEL_BANDS
from ..errors import InputError, LulcEdgeError, one_line
from . import checks
from .fingerprint import file_fingerprint
from .metadata import KNOWN_BANDS, normalize_band
from .radiometry import Radiometry, to_model
from .windows import read_boundless, sample_windows

DEFAULT_BANDS: tuple[str, ...] = MODEL_BANDS
#: Resampling methods a source offers for coarser bands (``SourceOptions.resampling``).
RESAMPLINGS = ("bilinear", "nearest", "cubic", "average")
READ_ERRORS = (RasterioError, CPLE_BaseError, OSError)
#: Where the checks at open look (``checks_within``): None, the whole scene.
_CHECKS_WITHIN: ContextVar[Callable[[Source], Window | None] | None] = \
    ContextVar("checks_within", default=None)


@contextlib.contextmanager
def checks_within(where: Callable[[Source], Window | None] | None) -> Iterator[None]:
    """Sources opened inside run their checks at open (SCL, floats, value range, the last
    block's probe) on the window ``where(source)`` of their grid (None: the whole scene): a
    run of an area of interest reads nothing else, so a remote input fetches no block
    beyond it."""
    token = _CHECKS_WITHIN.set(where)
    try:
        yield
    finally:
        _CHECKS_WITHIN.reset(token)


@dataclass(frozen=True)
class SourceOptions:
    """How to read an input (all optional)."""

    bands: Mapping[str, int] | None = None  # stack: band name -> 1-based band index (--bands)
    boa_offset: int | None = None  # None: from product metadata, else 0; int: added to DN
    scl_fill: int | None = None    # no usable SCL: None -> MissingSCLError; int -> fill with it
    resampling: str = "bilinear"   # reflectance bands onto the 10 m grid; SCL is always nearest


NO_OPTIONS = SourceOptions()


def resampling(name: str) -> Resampling:
    try:
        return Resampling[name.lower()]
    except KeyError:
        raise InputError(f"unknown resampling {name!r}") from None


def open_raster(path: str, label: str | None = None) -> rasterio.io.DatasetReader:
    """``rasterio.open`` with a one-line InputError naming the input; refuses empty rasters."""
    try:
        src = rasterio.open(path)
    except READ_ERRORS as e:
        raise InputError(f"{label or path}: not a readable raster ({one_line(e)})") from None
    if src.width == 0 or src.height == 0 or src.count == 0:
        src.close()
        raise InputError(f"{label or path}: empty raster ({src.width}x{src.height}, "
                         f"{src.count} bands)")
    return src


def check_band_names(band_names: Sequence[str]) -> tuple[str, ...]:
    out = []
    for b in band_names:
        n = normalize_band(b)
        if n is None or n not in KNOWN_BANDS:
            raise ValueError(f"unknown band name {b!r} in the model's band order")
        out.append(n)
    return tuple(out)


class Source:
    """A reader of windows of one scene on one grid, in the model's band order.

    Subclasses set the grid (``width``, ``height``, ``crs``, ``transform``), implement
    ``_read_raw`` and call ``_settle`` once their radiometry is known."""

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
    #: how raw values become model input; replaced (never changed) as the open settles it
    radiometry: Radiometry = Radiometry()
    #: what to check when the SCL band holds values no SCL band has
    _scl_hint = "is the SCL file another band's?"

    def __init__(self, path: str, band_names: Sequence[str], options: SourceOptions):
        self.path = path
        self.options = options
        self.band_names = check_band_names(band_names)
        self.warnings = []
        self._refl = [b for b in self.band_names if b != "SCL"]
        self._float = False
        self._tags: dict[str, str] = {}

    # -- to implement ---------------------------------------------------------------------------
    def _read_raw(self, window: Window, sample: bool = False) -> dict[str, np.ndarray]:
        """Native-dtype arrays for ``window`` (inside the grid) keyed by band; SCL may be absent.
        ``sample``: a read before the sequential pass (the checks at open)."""
        raise NotImplementedError

    def band_locations(self) -> dict[str, tuple[str, int]]:
        """Where each band used lives: band -> (GDAL path of a raster, 1-based band index);
        e.g. for a true-colour picture read straight from the files."""
        raise NotImplementedError

    def _setup(self) -> None:
        """Open what the source reads, set the grid and radiometry, then ``_settle``."""

    def close(self) -> None:
        """Release the open datasets."""

    def _prefetch(self, windows: list[Window]) -> None:
        """The checks at open are about to read ``windows`` (``sample=True``): a reader that
        decodes blocks may read all of theirs now, together. Nothing by default."""

    def limit(self, window: Window) -> None:
        """A run reads only ``window`` of the grid (an area of interest and its halo): a
        source reading in strips of its own may hold only its columns and read no strip ahead
        below it. Before the run's first read; nothing by default."""

    def drop_cache(self) -> None:
        """Drop what the source holds for its sequential pass (decoded strips): a composite
        moving on to another scene keeps memory flat in the number of scenes. The next read
        decodes again what it needs."""

    # -- shared --------------------------------------------------------------------------------
    def _start(self) -> None:
        """``_setup``, closing what it opened when it fails."""
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def fingerprint(self) -> dict[str, list[int]]:
        """What tells this input's content apart from a changed one (a resume, a batch's skip
        check): size, mtime and inode of its local files (``journal`` format)."""
        return file_fingerprint(self.path)

    def tags(self) -> dict[str, str]:
        """Provenance for the output's tags: band files, grid, resampling, offset, SCL."""
        return dict(self._tags)

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

    def _read_checked(self, window: Window, sample: bool = False) -> dict[str, np.ndarray]:
        try:
            return self._read_raw(window, sample)
        except LulcEdgeError:
            raise
        except READ_ERRORS as e:
            w = f"{window.width}x{window.height} at col {window.col_off}, row {window.row_off}"
            raise InputError(f"{self.path}: read failed (truncated or corrupt file?) "
                             f"for {w}: {one_line(e)}") from None

    def read(self, window: Window) -> np.ndarray:
        """``(len(band_names), h, w)`` uint16 for ``window`` of the grid; outside it 0."""
        return read_boundless(window, self.width, self.height, len(self.band_names),
                              np.uint16, lambda w: self._convert(self._read_checked(w)))

    def _convert(self, raw: Mapping[str, np.ndarray]) -> np.ndarray:
        return to_model(raw, self.band_names, self.radiometry)

    def _settle(self, scl_reason: str, level: str | None, offset_source: str) -> None:
        """Check the samples and settle SCL (refusing before any read when there is no SCL
        and no fill), then write the grid tags."""
        wants_scl = "SCL" in self.band_names
        if wants_scl and scl_reason and self.options.scl_fill is None:
            checks.scl_fill(self.path, scl_reason, None, level)  # raises
        scl_reason = self._inspect(wants_scl and not scl_reason) or scl_reason
        if not wants_scl:
            self._tags["SCL_SOURCE"] = "not used by the model"
        elif scl_reason:
            fill, tags, warning = checks.scl_fill(self.path, scl_reason,
                                                  self.options.scl_fill, level)
            self.radiometry = dataclasses.replace(self.radiometry, scl_fill=fill)
            self._tags.update(tags)
            self._warn(warning)
        self._grid_tags(offset_source)

    def _inspect(self, scl_band: bool) -> str:
        """Probe the sample windows (surfaces truncated files), check floats, value range and
        (``scl_band``) the SCL band; returns why SCL is unusable ("" when it is fine)."""
        where = _CHECKS_WITHIN.get()
        wins = sample_windows(self.width, self.height,
                              within=where(self) if where is not None else None)
        try:
            self._prefetch(wins)
        except READ_ERRORS:
            pass  # the samples' own reads below say what is wrong, naming the window
        samples = [self._read_checked(w, sample=True) for w in wins]
        if self._float:
            checks.check_floats(self.path, samples, self._refl)
        valid = checks.valid_masks(samples, self._refl, self.radiometry)
        negative = checks.check_range(self.path, samples, valid, self._refl)
        if negative:
            self._warn(negative)
        if not scl_band:
            return ""
        scl = np.concatenate([s["SCL"][v].ravel() for s, v in zip(samples, valid, strict=True)])
        return checks.check_scl(self.path, scl, self._scl_hint) or ""

    def _grid_tags(self, offset_source: str) -> None:
        if self.crs is None:  # rasterio's NotGeoreferencedWarning names no file: this does
            what = "no georeference (no CRS or geotransform)" \
                if self.transform.is_identity else "no CRS"
            self._warn(f"{self.path}: {what}: output will have none")
        off = self.radiometry.offset
        self._tags.update({
            "INPUT": self.path,
            "GRID_CRS": self.crs.to_string() if self.crs else "none",
            "GRID_RES": f"{abs(self.transform.a):g} {abs(self.transform.e):g}",
            "GRID_SIZE": f"{self.width} {self.height}",
            "GRID_TRANSFORM": " ".join(f"{v:.10g}" for v in tuple(self.transform)[:6]),
            "BANDS": ",".join(self.band_names),
            "BOA_OFFSET": json.dumps(dict(off)) if isinstance(off, Mapping) else str(off),
            "BOA_OFFSET_SOURCE": offset_source,
        })


@dataclass(frozen=True)
class Opener:
    """One kind of input: ``probe(input)`` says whether an input string is of this kind,
    ``open(input, band_names, options)`` returns its Source. Registered with
    :func:`lulc_edge.sources.register_opener`; the first opener whose probe accepts wins."""

    name: str
    probe: Callable[[str], bool]
    open: Callable[[str, Sequence[str], SourceOptions], Source]
    #: a path on this machine: checked to exist before opening, globbed by batches
    local: bool = True
    #: reads per-band files (their GDAL cache is sized for strips)
    band_files: bool = False
    #: ``scene(input, band_names)`` -> (kind, has SCL), cheaply (no pixels), for the scene
    #: list; InputError or None when it is not a scene. None: never listed
    scene: Callable[[str, Sequence[str]], tuple[str, bool] | None] | None = None
    #: ``fingerprint(input)`` without opening it (a batch's skip check); None: the files'
    #: size, mtime and inode for local inputs, the server's ETag/Last-Modified for URLs
    fingerprint: Callable[[str], dict[str, list]] | None = None

