"""lulc_edge.areas: the ground area of a raster's pixels, row by row.

Projected grids have one pixel area (in the CRS's linear unit, converted to metres). Geographic
grids (EPSG:4326 and other lat/lon CRSs) have pixels whose area shrinks towards the poles: each
row's area is computed on the CRS's ellipsoid with the authalic latitude, exact for a lat/lon cell.
Grids that are neither (no CRS, rotated geographic grids) have no defined area: ``None``, with the
reason from :func:`area_reason`.
"""

from __future__ import annotations

import math

import numpy as np
from affine import Affine
from rasterio.crs import CRS

#: Square metres in a hectare.
M2_PER_HA = 10_000.0

_WGS84 = (6378137.0, 298.257223563)


def _ellipsoid(crs: CRS) -> tuple[float, float]:
    """Semi-major axis (m) and inverse flattening of a geographic CRS (WGS84 if unreadable)."""
    try:
        wkt = crs.to_wkt()
    except Exception:  # noqa: BLE001 - any CRS rasterio cannot describe falls back to WGS84
        return _WGS84
    import re

    m = re.search(r'(?:SPHEROID|ELLIPSOID)\["[^"]*",\s*([0-9.eE+]+),\s*([0-9.eE+]+)', wkt)
    if not m:
        return _WGS84
    a, rf = float(m.group(1)), float(m.group(2))
    return (a, rf) if a > 0 else _WGS84


def _authalic_q(lat_rad: np.ndarray, e: float) -> np.ndarray:
    """q(phi) of the authalic latitude (Snyder 1987, eq. 3-12); ``e`` the eccentricity."""
    s = np.sin(lat_rad)
    if e == 0.0:
        return 2.0 * s
    es = e * s
    return (1 - e * e) * (s / (1 - es * es) - np.log((1 - es) / (1 + es)) / (2 * e))


def area_reason(crs: CRS | None, transform: Affine) -> str | None:
    """Why a grid has no pixel area (``None`` when it has one)."""
    if crs is None or not crs.to_wkt():
        return "the map has no CRS"
    if crs.is_geographic and (transform.b != 0 or transform.d != 0):
        return "the map's geographic grid is rotated"
    if not crs.is_geographic and not crs.is_projected:
        return "the map's CRS is neither projected nor geographic"
    return None


def row_pixel_areas_m2(crs: CRS | None, transform: Affine, height: int,
                       row_off: int = 0) -> np.ndarray | None:
    """Area in m^2 of one pixel in each of ``height`` rows starting at ``row_off``.

    ``None`` when the grid has no defined area (see :func:`area_reason`).
    """
    if area_reason(crs, transform) is not None:
        return None
    if crs.is_projected:
        factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
        area = abs(transform.a * transform.e - transform.b * transform.d) * factor * factor
        return np.full(height, area, dtype=np.float64)
    a, rf = _ellipsoid(crs)
    f = 1.0 / rf if rf else 0.0
    e = math.sqrt(f * (2 - f))
    rows = np.arange(row_off, row_off + height + 1, dtype=np.float64)
    lat = np.radians(np.clip(transform.f + transform.e * rows, -90.0, 90.0))
    q = _authalic_q(lat, e)
    dlon = math.radians(abs(transform.a))
    # Area of a lat/lon cell on the ellipsoid: a^2 / 2 * dlon * |q(phi2) - q(phi1)|.
    return a * a / 2.0 * dlon * np.abs(np.diff(q))


class AreaSum:
    """Pixels and ground area (m^2) of each value 0..255 of a uint8 raster, summed block by
    block as the blocks go by: a lat/lon grid weights each row by its own area, so class areas
    of a map in EPSG:4326 are those on the ellipsoid. The one count of class areas: a run's
    (tile by tile: RunResult, service jobs), the pictures' and ``lulc-edge stats``' (per zone,
    with a mask) all add their blocks here."""

    def __init__(self, crs: CRS | None, transform: Affine) -> None:
        self.crs, self.transform = crs, transform
        #: why the grid has no area (then ``hectares`` is None), else None
        self.reason = area_reason(crs, transform)
        self.by_row = self.reason is None and not crs.is_projected
        self.counts = np.zeros(256, np.int64)
        self._m2 = np.zeros(256, np.float64)

    def add(self, values: np.ndarray, row_off: int, mask: np.ndarray | None = None) -> None:
        """Count a (rows, cols) block whose first row is ``row_off`` of the grid (only the
        pixels where ``mask`` is true, when given: a zone)."""
        if not self.by_row:
            self.counts += np.bincount((values if mask is None else values[mask]).ravel(),
                                       minlength=256)
            return
        rows = values.shape[0]  # pixels per row and value, then each row's area
        idx = values.astype(np.int32) + (256 * np.arange(rows, dtype=np.int32))[:, None]
        per_row = np.bincount((idx if mask is None else idx[mask]).ravel(),
                              minlength=rows * 256).reshape(rows, 256)
        self.counts += per_row.sum(axis=0)
        self._m2 += row_pixel_areas_m2(self.crs, self.transform, rows, row_off) @ per_row

    def hectares(self) -> np.ndarray | None:
        """Hectares of each value 0..255, or None when the grid has no area (``reason``)."""
        if self.reason is not None:
            return None
        if self.by_row:
            return self._m2 / M2_PER_HA
        return self.counts * row_pixel_areas_m2(self.crs, self.transform, 1)[0] / M2_PER_HA

    def named_hectares(self, names: dict[int, str]) -> dict[str, float] | None:
        """``{name: hectares}`` for the values named, rounded to 1 m^2; None as ``hectares``."""
        ha = self.hectares()
        return None if ha is None else {n: round(float(ha[v]), 4) for v, n in names.items()}

    def note(self) -> str | None:
        """Why there are no hectares, in words for a report (None when there are)."""
        return None if self.reason is None else f"no class areas: {self.reason}"
