"""lulc_edge.regrid: one target grid for several scenes, and a scene read on it.

Composites and mosaics map scenes that may lie on different grids (adjacent MGRS tiles, two
UTM zones) onto one grid. :func:`target_grid` chooses it: the CRS given, else the area's UTM
zone (with an area of interest) or the first scene's CRS; the resolution given, else the first
scene's where the CRS is its own, else 10 m (in a geographic CRS its size in degrees of
latitude); the extent of the area, else of all the scenes.
Its origin is the first scene's where the CRS and resolution are the same, so a scene on the
target grid's own grid is read as it is, pixel for pixel.

:class:`RegriddedSource` serves a scene's bands on the target grid: a plain shifted read when
the grids coincide (exact: the map of such a scene equals its own map), else each window
resampled from the scene's pixels with nearest neighbour (digital numbers and SCL classes stay
values the scene holds; the model then runs on the target grid).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window, from_bounds
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform

from .aoi import Area
from .errors import InputError
from .raster import Grid
from .sources import Source

#: Resolution of a target grid in a CRS of none of the scenes (metres: Sentinel-2's 10 m).
DEFAULT_RES = 10.0
#: Metres per degree of latitude: a geographic grid's default pixel is DEFAULT_RES of them.
M_PER_DEGREE = 111_320.0
#: Pixels of the scene read around a window before resampling it (nearest needs one).
_PAD = 2


@dataclass(frozen=True)
class TargetGrid:
    """A grid: CRS (as text), the 6 affine coefficients, size. Frozen and picklable (Dask
    tasks and the journal's header carry it)."""

    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int

    @property
    def affine(self) -> Affine:
        return Affine(*self.transform)

    @property
    def res(self) -> float:
        return abs(self.transform[0])

    def grid(self) -> Grid:
        """The output grid of the maps written on it."""
        return Grid(self.width, self.height, CRS.from_user_input(self.crs), self.affine)

    def to_json(self) -> dict[str, object]:
        return {"crs": self.crs, "transform": list(self.transform), "width": self.width,
                "height": self.height}


def grid_of(source: Source) -> TargetGrid:
    """A scene's own grid."""
    if source.crs is None:
        raise InputError(f"{source.path}: the input has no CRS: it cannot be put on a common "
                         "grid with other scenes")
    return TargetGrid(source.crs.to_string(), tuple(source.transform)[:6],  # type: ignore
                      source.width, source.height)


def utm_zone(area: Area) -> str:
    """The UTM zone (WGS 84) of an area's centre."""
    x0, y0, x1, y1 = area.bounds(CRS.from_epsg(4326))
    lon, lat = (x0 + x1) / 2, (y0 + y1) / 2
    zone = min(60, max(1, int((lon + 180) // 6) + 1))
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def target_grid(sources: Sequence[Source], crs: str | None = None, res: float | None = None,
                area: Area | None = None, alignment: int = 1) -> TargetGrid:
    """The grid scenes are put on (see the module's doc); ``alignment``: the grid's offset
    from the first scene's origin is a multiple of it (the model's alignment, so
    tiling changes no pixel). InputError when a scene has no CRS or the area misses them."""
    first = grid_of(sources[0])
    want = CRS.from_user_input(crs) if crs else \
        CRS.from_user_input(utm_zone(area)) if area is not None else CRS.from_user_input(first.crs)
    own = want == CRS.from_user_input(first.crs)
    r = float(res) if res else first.res if own else \
        DEFAULT_RES / M_PER_DEGREE if want.is_geographic else DEFAULT_RES
    step = r * alignment
    ox, oy = (first.transform[2], first.transform[5]) if own and r == first.res else (0.0, 0.0)
    if area is not None:
        x0, y0, x1, y1 = area.bounds(want)
    else:
        boxes = [transform_bounds(s.crs, want, *_bounds(s), densify_pts=21) for s in sources]
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    left = ox + math.floor((x0 - ox) / step + 1e-9) * step
    top = oy - math.floor((oy - y1) / step + 1e-9) * step
    width = math.ceil((x1 - left) / r - 1e-9)
    height = math.ceil((top - y0) / r - 1e-9)
    if width <= 0 or height <= 0:
        raise InputError("the area of interest is empty on the target grid")
    return TargetGrid(want.to_string(), (r, 0.0, left, 0.0, -r, top), width, height)


def _bounds(source: Source) -> tuple[float, float, float, float]:
    return window_bounds(Window(0, 0, source.width, source.height), source.transform)


class RegriddedSource(Source):
    """``parent`` read on ``grid`` (the parent stays its opener's to close); ``covers``: the
    scene has pixels on the grid."""

    def __init__(self, parent: Source, grid: TargetGrid) -> None:
        self.parent, self.target = parent, grid
        self.path, self.options = parent.path, parent.options
        self.band_names, self.warnings = parent.band_names, parent.warnings
        self.in_strips, self.radiometry = parent.in_strips, parent.radiometry
        self.width, self.height = grid.width, grid.height
        self.crs = CRS.from_user_input(grid.crs)
        self.transform = grid.affine
        self.shift = _shift(parent, grid)
        box = transform_bounds(parent.crs, self.crs, *_bounds(parent), densify_pts=21)
        #: the scene's bounding window on the grid
        self.footprint = from_bounds(*box, transform=self.transform)
        self.covers = self.overlaps(Window(0, 0, grid.width, grid.height))

    def overlaps(self, window: Window) -> bool:
        """Whether the scene has pixels in ``window`` of the grid (its bounding box does)."""
        f = self.footprint
        return f.col_off < window.col_off + window.width and f.col_off + f.width > \
            window.col_off and f.row_off < window.row_off + window.height and \
            f.row_off + f.height > window.row_off

    def limit(self, window: Window) -> None:
        """Tell the scene the window of the grid a run reads (an area, or a mosaic where the
        scene covers part of the grid): a scene reading in strips then decodes only that."""
        p = self.parent
        if self.shift is not None:
            dr, dc = self.shift
            p.limit(Window(window.col_off + dc, window.row_off + dr, window.width,
                           window.height))
            return
        box = transform_bounds(self.crs, p.crs, *window_bounds(window, self.transform),
                               densify_pts=21)
        src = from_bounds(*box, transform=p.transform)
        c0, r0 = math.floor(src.col_off) - _PAD, math.floor(src.row_off) - _PAD
        p.limit(Window(c0, r0, math.ceil(src.col_off + src.width) + _PAD - c0,
                       math.ceil(src.row_off + src.height) + _PAD - r0))

    def read(self, window: Window) -> np.ndarray:
        if self.shift is not None:
            dr, dc = self.shift
            return self.parent.read(Window(window.col_off + dc, window.row_off + dr,
                                           window.width, window.height))
        return self._resampled(window)

    def _resampled(self, window: Window) -> np.ndarray:
        """The window resampled (nearest) from the parent's pixels around it."""
        p = self.parent
        box = transform_bounds(self.crs, p.crs, *window_bounds(window, self.transform),
                               densify_pts=21)
        src = from_bounds(*box, transform=p.transform)
        c0, r0 = math.floor(src.col_off) - _PAD, math.floor(src.row_off) - _PAD
        c1 = math.ceil(src.col_off + src.width) + _PAD
        r1 = math.ceil(src.row_off + src.height) + _PAD
        out = np.zeros((len(self.band_names), int(window.height), int(window.width)), np.uint16)
        if c1 <= 0 or r1 <= 0 or c0 >= p.width or r0 >= p.height:
            return out
        c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, p.width), min(r1, p.height)
        part = Window(c0, r0, c1 - c0, r1 - r0)
        reproject(p.read(part), out, src_transform=window_transform(part, p.transform),
                  src_crs=p.crs, dst_transform=window_transform(window, self.transform),
                  dst_crs=self.crs, resampling=Resampling.nearest, src_nodata=None,
                  dst_nodata=None)
        return out

    def fingerprint(self) -> dict[str, list[int]]:
        return self.parent.fingerprint()

    def band_locations(self) -> dict[str, tuple[str, int]]:
        return self.parent.band_locations()

    def drop_cache(self) -> None:
        self.parent.drop_cache()

    def tags(self) -> dict[str, str]:
        how = "none (the scene's own grid)" if self.shift is not None else "nearest"
        return {**self.parent.tags(), "REGRID": how}


def _shift(parent: Source, grid: TargetGrid) -> tuple[int, int] | None:
    """(rows, cols) of the grid's origin on the parent's grid when the grids coincide (same
    CRS and pixel size, whole-pixel offset); None when the scene must be resampled."""
    if parent.crs is None or CRS.from_user_input(grid.crs) != parent.crs:
        return None
    a, b = parent.transform, grid.affine
    if not (math.isclose(a.a, b.a) and math.isclose(a.e, b.e) and a.b == b.b == 0
            and a.d == b.d == 0):
        return None
    dc, dr = (b.c - a.c) / a.a, (b.f - a.f) / a.e
    if abs(dc - round(dc)) > 1e-6 or abs(dr - round(dr)) > 1e-6:
        return None
    return round(dr), round(dc)
