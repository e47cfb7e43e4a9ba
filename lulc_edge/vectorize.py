"""lulc_edge.vectorize: a class map as polygons (GeoPackage, GeoJSON, any OGR format), with the
class name, class value and area in hectares of each polygon.

The map is polygonised in row chunks (``rasterio.features.shapes``, 4-connected, in pixel
coordinates so that pieces of one region cut by a chunk edge share exact vertices); pieces
touching an inner chunk edge are merged per class at the end with shapely. Areas come from the
polygons' horizontal edges and the cumulative ground area of the rows above them (Green's
theorem on a rectilinear polygon), so they equal the polygon's pixels times their row's pixel
area, on the ellipsoid for geographic maps. ``min_area`` sieves regions smaller than that
(``rasterio.features.sieve``: into their largest neighbour) chunk by chunk, with a halo as many
rows as the smallest kept region has pixels, so a region is judged on all of it.
Needs the ``vector`` extra.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.errors import RasterioError
from rasterio.features import shapes, sieve

from .areas import M2_PER_HA, area_reason, row_pixel_areas_m2
from .errors import InputError, OutputError, one_line
from .files import partial_path, place
from .vectors import VECTOR_HINT
from .zonal import map_classes, open_map, row_blocks

#: Rows polygonised at once.
CHUNK_ROWS = 1024


@dataclass(frozen=True)
class VectorizeResult:
    """What was written: polygons per class and their summed area."""

    output: str
    classes: tuple[str, ...]
    polygons: tuple[int, ...]
    hectares: tuple[float, ...] | None
    sieved_pixels: int

    def as_dict(self) -> dict[str, Any]:
        return {"output": self.output, "sieved_pixels": self.sieved_pixels,
                "classes": {n: {"polygons": self.polygons[i],
                                "hectares": None if self.hectares is None else self.hectares[i]}
                            for i, n in enumerate(self.classes)}}


def _ring_area(coords: np.ndarray, cum: np.ndarray) -> float:
    """|sum over horizontal edges of dx * C(y)|: the ground area of a rectilinear ring in
    pixel coordinates, C(y) the ground area of one pixel column from row 0 down to row y."""
    x, y = coords[:, 0], coords[:, 1]
    dx = np.diff(x)
    return abs(float((dx * cum[np.rint(y[:-1]).astype(np.int64)]).sum()))


def polygon_area_m2(poly: Any, cum: np.ndarray) -> float:
    """Ground area of a pixel-coordinate polygon (exterior minus holes)."""
    import shapely

    area = _ring_area(shapely.get_coordinates(poly.exterior), cum)
    return area - sum(_ring_area(shapely.get_coordinates(r), cum) for r in poly.interiors)


def _sieve_pixels(min_area_ha: float, ds: Any) -> int:
    if min_area_ha <= 0:
        return 0
    areas = row_pixel_areas_m2(ds.crs, ds.transform, ds.height)
    if areas is None:
        raise InputError(f"{ds.name}: --min-area needs pixel areas, and "
                         f"{area_reason(ds.crs, ds.transform)}")
    return max(1, int(np.ceil(min_area_ha * M2_PER_HA / float(areas.mean()))))


class _Sink:
    """Polygons (pixel coordinates) to the output file: areas, map coordinates, fields;
    appended chunk by chunk for GeoPackage, kept until :meth:`close` for other formats."""

    def __init__(self, path: Path, ds: Any, classes: tuple[str, ...],
                 cum: np.ndarray | None) -> None:
        self.path, self.classes, self.cum = path, classes, cum
        self.crs = ds.crs.to_wkt() if ds.crs else None
        t = ds.transform
        self.coeffs = [t.a, t.b, t.d, t.e, t.c, t.f]
        self.driver = _driver(path)
        self.layer = path.name.split(".")[0] or "classes"
        self.buffer: list[tuple[int, Any]] = []
        self.written = False
        self.polygons = np.zeros(len(classes), np.int64)
        self.hectares = np.zeros(len(classes))

    def add(self, items: list[tuple[int, Any]]) -> None:
        if self.driver != "GPKG":
            self.buffer += items
        elif items:
            self._write(items)

    def close(self) -> None:
        if self.buffer or not self.written:
            self._write(self.buffer)

    def _write(self, items: list[tuple[int, Any]]) -> None:
        import pyogrio
        import shapely

        values = np.array([v for v, _ in items], np.int32).reshape(-1)
        polys = [p for _, p in items]
        if self.cum is None:
            area = np.full(len(polys), np.nan)
        else:
            area = np.array([polygon_area_m2(p, self.cum) / M2_PER_HA for p in polys])
        np.add.at(self.polygons, values, 1)
        np.add.at(self.hectares, values, np.nan_to_num(area))
        geoms = [shapely.affinity.affine_transform(p, self.coeffs) for p in polys]
        pyogrio.raw.write(
            self.path, np.array(shapely.to_wkb(geoms), dtype=object).reshape(-1),
            geometry_type="Polygon", crs=self.crs, driver=self.driver, layer=self.layer,
            field_data=[np.array([self.classes[v] for v in values], dtype=object), values,
                        area],
            fields=["class", "class_id", "area_ha"], append=self.written)
        self.written = True


def vectorize(map_path: str | Path, output: str | Path, min_area_ha: float = 0.0,
              overwrite: bool = False, chunk_rows: int = CHUNK_ROWS) -> VectorizeResult:
    """Write the polygons of a class map to ``output`` (format by extension: .gpkg, .geojson,
    .fgb, .shp); fields ``class``, ``class_id``, ``area_ha`` (null without a CRS).
    ``min_area_ha`` > 0 first sieves smaller regions into their largest neighbour. The file
    appears under its name only when complete (OutputError when it exists, unless
    ``overwrite``)."""
    try:
        import pyogrio  # noqa: F401 - checked here: the extra may be missing
        import shapely  # noqa: F401
    except ImportError as exc:
        raise InputError(f"vectorize needs the vector extra ({exc.name} missing): "
                         f"{VECTOR_HINT}") from None
    out = Path(output)
    if out.exists() and not overwrite:
        raise OutputError(f"{out}: exists (use --overwrite)")
    tmp = partial_path(out, ".partial" + out.suffix)
    with open_map(map_path) as ds:
        classes = map_classes(ds)
        size = _sieve_pixels(min_area_ha, ds)
        areas = row_pixel_areas_m2(ds.crs, ds.transform, ds.height)
        cum = None if areas is None else np.concatenate([[0.0], np.cumsum(areas)])
        tmp.unlink(missing_ok=True)
        sink = _Sink(tmp, ds, classes, cum)
        try:
            sieved = _polygons(ds, sink, size, chunk_rows)
            sink.close()
            place(tmp, out)
        except (RasterioError, OSError) as exc:
            tmp.unlink(missing_ok=True)
            raise InputError(f"{map_path}: cannot read ({one_line(exc)})") from None
        except Exception as exc:  # noqa: BLE001 - OGR errors of any kind: one line, no partial
            tmp.unlink(missing_ok=True)
            raise OutputError(f"{out}: cannot write ({one_line(exc)})") from None
    return VectorizeResult(str(out), classes, tuple(int(n) for n in sink.polygons),
                           None if cum is None else tuple(float(h) for h in sink.hectares),
                           sieved)


def _polygons(ds: Any, sink: _Sink, size: int, chunk_rows: int) -> int:
    """Feed ``sink`` the polygons of ``ds``, chunk by chunk (polygons cut by a chunk edge are
    merged at the end); regions under ``size`` px are sieved first. Returns the pixels sieved."""
    import shapely

    k = len(sink.classes)
    edge: dict[int, list[Any]] = defaultdict(list)
    sieved = 0
    for row0, rows in row_blocks(ds.height, chunk_rows):
        top, bottom = max(0, row0 - size), min(ds.height, row0 + rows + size)
        block = ds.read(1, window=((top, bottom), (0, ds.width)))
        valid = block < k
        if size > 1:
            kept = sieve(block, size, mask=valid, connectivity=4)
            sieved += int((kept != block)[row0 - top: row0 - top + rows].sum())
            block = kept
        core = block[row0 - top: row0 - top + rows]
        mask = valid[row0 - top: row0 - top + rows]
        done = []
        for geom, value in shapes(core, mask=mask, connectivity=4,
                                  transform=Affine.translation(0, row0)):
            poly = shapely.geometry.shape(geom)
            _, ymin, _, ymax = poly.bounds
            if (ymin == row0 and row0 > 0) or (ymax == row0 + rows < ds.height):
                edge[int(value)].append(poly)      # cut by a chunk edge: merge later
            else:
                done.append((int(value), poly))
        sink.add(done)
    for value, pieces in edge.items():      # merged; vertices left on the cut dropped
        merged = shapely.simplify(shapely.union_all(pieces), 0)
        sink.add([(value, p) for p in shapely.get_parts(merged)])
    return sieved


def _driver(path: Path) -> str:
    return {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".fgb": "FlatGeobuf",
            ".shp": "ESRI Shapefile"}.get(path.suffix.lower(), "GPKG")
