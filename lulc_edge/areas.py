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


def class_hectares(counts_per_row: np.ndarray, crs: CRS | None, transform: Affine,
                   row_off: int = 0) -> np.ndarray | None:
    """Hectares per class from pixel counts per row (shape ``(rows, classes)``)."""
    areas = row_pixel_areas_m2(crs, transform, counts_per_row.shape[0], row_off)
    if areas is None:
        return None
    return (counts_per_row.astype(np.float64) * areas[:, None]).sum(axis=0) / M2_PER_HA
