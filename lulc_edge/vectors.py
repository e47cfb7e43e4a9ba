"""lulc_edge.vectors: points and polygons (zones, reference samples) read from vector files or
CSV, moved to a raster's CRS and burnt onto its grid one window at a time.

CSV needs nothing beyond the standard library (columns x,y or lon,lat plus the attribute
column); GeoJSON, GeoPackage and the other formats GDAL reads need the ``vector`` extra
(pyogrio and shapely).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError
from rasterio.features import rasterize
from rasterio.warp import transform_geom

from .errors import InputError, one_line

VECTOR_HINT = "pip install 'lulc-edge[vector]'"
#: Coordinate column pairs recognised in CSV files (case-insensitive), in order of preference.
CSV_XY = (("x", "y"), ("lon", "lat"), ("longitude", "latitude"), ("lng", "lat"))


@dataclass(frozen=True)
class Features:
    """Geometries (GeoJSON-like dicts, in ``crs``) with one attribute value each."""

    path: str
    crs: CRS | None
    geometries: tuple[dict[str, Any], ...]
    values: tuple[Any, ...]

    def to_crs(self, dst: CRS | None) -> Features:
        """The same features in ``dst`` (unchanged when either CRS is unknown or they match)."""
        if dst is None or self.crs is None or self.crs == dst or not self.geometries:
            return self
        try:
            geoms = transform_geom(self.crs, dst, list(self.geometries))
        except (RasterioError, CRSError, ValueError) as exc:
            raise InputError(f"{self.path}: cannot transform to the map's CRS "
                             f"({one_line(exc)})") from None
        return Features(self.path, dst, tuple(geoms), self.values)


def _crs(text: str | CRS | None, path: str) -> CRS | None:
    if text is None or isinstance(text, CRS):
        return text
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise InputError(f"{path}: unknown CRS {text!r} ({one_line(exc)})") from None


def _csv_features(path: Path, field: str, crs: CRS | None) -> Features:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read CSV ({one_line(exc)})") from None
    names = {n.strip().lower(): n for n in (rows[0].keys() if rows else []) if n}
    xy = next(((names[x], names[y]) for x, y in CSV_XY if x in names and y in names), None)
    if xy is None:
        raise InputError(f"{path}: no coordinate columns (x,y or lon,lat) in "
                         f"{', '.join(names.values()) or 'an empty file'}")
    col = names.get(field.lower())
    if col is None:
        raise InputError(f"{path}: no column {field!r} (has {', '.join(names.values())}); "
                         "name the class column with --field")
    geoms, values = [], []
    for i, row in enumerate(rows, start=2):
        try:
            x, y = float(row[xy[0]]), float(row[xy[1]])
        except (TypeError, ValueError):
            raise InputError(f"{path}: line {i}: coordinates {row[xy[0]]!r}, {row[xy[1]]!r} "
                             "are not numbers") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InputError(f"{path}: line {i}: coordinates are not finite")
        geoms.append({"type": "Point", "coordinates": (x, y)})
        values.append(row[col].strip() if isinstance(row[col], str) else row[col])
    return Features(str(path), crs or CRS.from_epsg(4326), tuple(geoms), tuple(values))


def _ogr_features(path: Path, field: str, crs: CRS | None) -> Features:
    try:
        import pyogrio
        import shapely
        from shapely.geometry import mapping
    except ImportError as exc:
        raise InputError(f"{path}: reading vector files needs the vector extra ({exc.name} "
                         f"missing): {VECTOR_HINT}") from None
    try:
        info = pyogrio.read_info(path)
        fields = [str(n) for n in info["fields"]]
        match = next((n for n in fields if n.lower() == field.lower()), None)
        if match is None:
            raise InputError(f"{path}: no field {field!r} (has {', '.join(fields) or 'none'}); "
                             "name it with --field")
        meta, _, wkb, data = pyogrio.raw.read(path, columns=[match])
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyogrio/GDAL errors of every kind: one line
        raise InputError(f"{path}: cannot read as a vector file ({one_line(exc)})") from None
    if wkb is None:
        raise InputError(f"{path}: the layer has no geometries")
    keep = [i for i, g in enumerate(wkb) if g is not None]
    geoms = tuple(mapping(g) for g in shapely.from_wkb([wkb[i] for i in keep]))
    values = tuple(data[0][i] for i in keep)
    file_crs = _crs(meta.get("crs"), str(path)) if meta.get("crs") else None
    return Features(str(path), file_crs or crs, geoms, tuple(_plain(v) for v in values))


def _plain(value: Any) -> Any:
    """numpy scalars as Python values (so they print and compare as users expect)."""
    return value.item() if isinstance(value, np.generic) else value


def read_features(path: str | Path, field: str, crs: str | CRS | None = None) -> Features:
    """Features of a vector file or CSV with their ``field`` values.

    ``crs`` is the CRS of CSV coordinates (default EPSG:4326) and of vector files that carry
    none. InputError (one line naming the file) when it cannot be read or lacks the field.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    user_crs = _crs(crs, str(p))
    if p.suffix.lower() in (".csv", ".txt"):
        return _csv_features(p, field, user_crs)
    return _ogr_features(p, field, user_crs)


def bounds(geom: dict[str, Any]) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of a GeoJSON-like geometry."""
    xs: list[float] = []
    ys: list[float] = []

    def walk(c: Any) -> None:
        if isinstance(c[0], (int, float)):
            xs.append(c[0])
            ys.append(c[1])
        else:
            for part in c:
                walk(part)

    parts = geom["geometries"] if geom["type"] == "GeometryCollection" else [geom]
    for part in parts:
        if part.get("coordinates"):
            walk(part["coordinates"])
    if not xs:
        return (math.inf, math.inf, -math.inf, -math.inf)
    return min(xs), min(ys), max(xs), max(ys)


def window_bounds(transform: Affine, row0: int, rows: int, width: int) -> tuple[float, ...]:
    """(minx, miny, maxx, maxy) covered by rows ``row0 .. row0 + rows`` of a grid."""
    xs, ys = zip(*(transform @ (c, r) for c in (0, width) for r in (row0, row0 + rows)),
                 strict=True)
    return min(xs), min(ys), max(xs), max(ys)


def overlapping(boxes: list[tuple[float, ...]], box: tuple[float, ...]) -> list[int]:
    """Indices of ``boxes`` that intersect ``box``."""
    return [i for i, b in enumerate(boxes)
            if b[0] <= box[2] and b[2] >= box[0] and b[1] <= box[3] and b[3] >= box[1]]


def burn(shapes: list[tuple[dict[str, Any], int]], transform: Affine, row0: int, rows: int,
         width: int) -> np.ndarray:
    """(value) of each pixel whose centre lies in a shape, over rows ``row0 .. row0 + rows``
    (int32, 0 outside every shape; a later shape wins where shapes overlap)."""
    if not shapes:
        return np.zeros((rows, width), np.int32)
    return rasterize(shapes, out_shape=(rows, width), fill=0, dtype="int32",
                     transform=transform @ Affine.translation(0, row0))
