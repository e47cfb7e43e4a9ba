"""lulc_edge.vectorize: a class map as polygons (GeoPackage, GeoParquet, FlatGeobuf, GeoJSON
through GDAL/OGR) with the class name, class value, area in hectares and, when the map has a
``MAP.confidence.tif``, the mean confidence of each polygon. Needs the ``vector`` extra.

Row chunks are polygonised in pixel coordinates (``rasterio.features.shapes``, 4-connected), so
pieces of a region cut by a chunk edge share exact vertices and are merged per class at the end.
Areas come from the horizontal edges and the cumulative ground area of the rows above them
(exact: the polygon's pixels times their row's area, on the ellipsoid for geographic maps); the
confidence is summed per piece, so merged polygons get the exact mean. ``min_area`` sieves
chunk by chunk with a halo as tall as the smallest kept region; ``simplify`` simplifies each
chunk's polygons, nodata included, as one coverage (``shapely.coverage_simplify``: neighbours
keep meeting) with the chunk's outline kept, so pieces still join across chunk edges.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.errors import RasterioError
from rasterio.features import rasterize, shapes, sieve

from .areas import M2_PER_HA, area_reason, row_pixel_areas_m2
from .errors import InputError, OutputError, one_line
from .files import partial_path, place
from .raster import confidence_path
from .vectorfile import PolygonWriter, output_driver
from .vectors import VECTOR_HINT
from .zonal import map_classes, open_map, row_blocks

#: Rows polygonised at once.
CHUNK_ROWS = 1024
#: Confidence rasters' nodata (uint8 percent 0..100).
CONF_NODATA = 255


@dataclass(frozen=True)
class VectorizeResult:
    """What was written: polygons per class and their summed area."""

    output: str
    classes: tuple[str, ...]
    polygons: tuple[int, ...]
    hectares: tuple[float, ...] | None
    sieved_pixels: int
    confidence: bool = False
    vertices: int = 0

    @property
    def features(self) -> int:
        """Polygons written, all classes."""
        return sum(self.polygons)

    def as_dict(self) -> dict[str, Any]:
        return {"output": self.output, "features": self.features,
                "sieved_pixels": self.sieved_pixels,
                "confidence": self.confidence, "vertices": self.vertices,
                "classes": {n: {"polygons": self.polygons[i],
                                "hectares": None if self.hectares is None else self.hectares[i]}
                            for i, n in enumerate(self.classes)}}


@dataclass
class _Pieces:
    """Polygons in pixel coordinates with their class and pixel-exact ground area (m2, NaN
    without a CRS) and confidence sum and count."""

    values: np.ndarray
    geoms: np.ndarray
    area: np.ndarray
    conf_sum: np.ndarray
    conf_n: np.ndarray

    def take(self, idx: Any) -> _Pieces:
        return _Pieces(self.values[idx], self.geoms[idx], self.area[idx], self.conf_sum[idx],
                       self.conf_n[idx])

    @staticmethod
    def join(parts: list[_Pieces]) -> _Pieces:
        return _Pieces(*(np.concatenate([getattr(p, f) for p in parts])
                         for f in ("values", "geoms", "area", "conf_sum", "conf_n")))


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


def _pixels_for(what: str, option: str, amount: float, ds: Any) -> float:
    """``amount`` of ``what`` (hectares or metres) in pixels (areas or lengths) of ``ds``."""
    areas = row_pixel_areas_m2(ds.crs, ds.transform, ds.height)
    if areas is None:
        raise InputError(f"{ds.name}: {option} needs pixel sizes, and "
                         f"{area_reason(ds.crs, ds.transform)}")
    mean = float(areas.mean())
    return amount * M2_PER_HA / mean if what == "ha" else amount / float(np.sqrt(mean))


def vectorize(map_path: str | Path, output: str | Path, min_area_ha: float = 0.0,
              overwrite: bool = False, chunk_rows: int = CHUNK_ROWS,
              simplify_m: float = 0.0) -> VectorizeResult:
    """Write the polygons of a class map to ``output`` (format by extension: .gpkg, .parquet,
    .fgb, .geojson); fields ``class``, ``class_id``, ``area_ha`` (null without a CRS)
    and, when ``MAP.confidence.tif`` exists beside the map, ``confidence`` (mean %).
    ``min_area_ha`` > 0 first sieves smaller regions into their largest neighbour;
    ``simplify_m`` > 0 simplifies the boundaries (metres; shared edges stay shared); areas and
    confidence stay those of the pixels. The file appears under its name only when complete
    (OutputError when it exists, unless ``overwrite``)."""
    out = Path(output)
    driver = check_output(out, simplify_m)
    if out.exists() and not overwrite:
        raise OutputError(f"{out}: exists (use --overwrite)")
    tmp = partial_path(out, ".partial" + out.suffix)
    with open_map(map_path) as ds:
        classes = map_classes(ds)
        size = int(np.ceil(_pixels_for("ha", "--min-area", min_area_ha, ds))) \
            if min_area_ha > 0 else 0
        tol = _pixels_for("m", "--simplify", simplify_m, ds) if simplify_m > 0 else 0.0
        conf = _open_confidence(Path(map_path), ds)
        areas = row_pixel_areas_m2(ds.crs, ds.transform, ds.height)
        cum = None if areas is None else np.concatenate([[0.0], np.cumsum(areas)])
        tmp.unlink(missing_ok=True)
        sink = PolygonWriter(tmp, driver, ds, classes, conf is not None,
                             {"min_area_ha": min_area_ha, "simplify_m": simplify_m})
        try:
            sieved = _polygons(ds, conf, sink, cum, max(size, 1), tol, chunk_rows)
            sink.close()
            place(tmp, out)
        except (RasterioError, OSError) as exc:
            tmp.unlink(missing_ok=True)
            raise InputError(f"{map_path}: cannot read ({one_line(exc)})") from None
        except Exception as exc:  # noqa: BLE001 - OGR errors of any kind: one line, no partial
            tmp.unlink(missing_ok=True)
            raise OutputError(f"{out}: cannot write ({one_line(exc)})") from None
        except BaseException:  # interrupted: no partial file either
            tmp.unlink(missing_ok=True)
            raise
        finally:
            if conf is not None:
                conf.close()
    return VectorizeResult(str(out), classes, tuple(int(n) for n in sink.polygons),
                           None if cum is None else tuple(float(h) for h in sink.hectares),
                           sieved, conf is not None, sink.vertices)


def check_output(output: Path, simplify_m: float = 0.0, who: str = "vectorize") -> str:
    """The OGR driver that writes ``output``, once the vector extra (and, to simplify, a
    shapely that can) is there: checked before a run maps anything. InputError or OutputError
    naming what is missing."""
    try:
        import pyogrio  # noqa: F401 - checked here: the extra may be missing
        import shapely
    except ImportError as exc:
        raise InputError(f"{who} needs the vector extra ({exc.name} missing): "
                         f"{VECTOR_HINT}") from None
    if simplify_m > 0 and not hasattr(shapely, "coverage_simplify"):
        raise InputError(f"--simplify needs shapely >= 2.1 (this is {shapely.__version__}): "
                         "pip install -U shapely")
    return output_driver(output)


def _open_confidence(map_path: Path, ds: Any) -> Any:
    """The map's ``.confidence.tif`` opened, or None when there is none."""
    path = confidence_path(map_path)
    if not path.is_file():
        return None
    cds = open_map(path)
    if (cds.height, cds.width) != (ds.height, ds.width):
        cds.close()
        raise InputError(f"{path}: {cds.width} x {cds.height} px, the map is "
                         f"{ds.width} x {ds.height}")
    return cds


def _chunk_pieces(core: np.ndarray, mask: np.ndarray | None, row0: int, conf: Any,
                  cum: np.ndarray | None, k: int) -> _Pieces:
    """The polygons of one chunk (rows ``row0..``) with their pixel-exact sums."""
    import shapely

    polys, vals = [], []
    for g, v in shapes(core, mask=mask, connectivity=4, transform=Affine.translation(0, row0)):
        polys.append(shapely.geometry.shape(g))     # the GeoJSON dicts are not kept: memory
        vals.append(int(v))
    n = len(polys)
    geoms = np.empty(n, dtype=object)
    geoms[:] = polys
    values = np.array(vals, np.int64)
    area = np.full(n, np.nan)
    if cum is not None:
        area[:] = [polygon_area_m2(p, cum) if v < k else np.nan
                   for p, v in zip(geoms, values, strict=True)]
    conf_sum, conf_n = np.zeros(n), np.zeros(n, np.int64)
    if conf is not None and n:
        rows = core.shape[0]
        ids = rasterize(((g, i + 1) for i, g in enumerate(polys)),
                        out_shape=core.shape, fill=0, dtype="int32",
                        transform=Affine.translation(0, row0))
        pct = conf.read(1, window=((row0, row0 + rows), (0, core.shape[1])))
        ok = pct != CONF_NODATA
        conf_sum = np.bincount(ids[ok], weights=pct[ok], minlength=n + 1)[1:]
        conf_n = np.bincount(ids[ok], minlength=n + 1)[1:]
    return _Pieces(values, geoms, area, conf_sum, conf_n)


def _polygons(ds: Any, conf: Any, sink: PolygonWriter, cum: np.ndarray | None, size: int,
              tol: float, chunk_rows: int) -> int:
    """Feed ``sink`` the polygons of ``ds``, chunk by chunk (polygons cut by a chunk edge are
    merged at the end); regions under ``size`` px are sieved first, boundaries simplified with
    ``tol`` px. Returns the pixels sieved."""
    import shapely

    k = len(sink.classes)
    edge: dict[int, list[_Pieces]] = defaultdict(list)
    sieved = 0
    for row0, rows in row_blocks(ds.height, chunk_rows):
        halo = size if size > 1 else 0
        top, bottom = max(0, row0 - halo), min(ds.height, row0 + rows + halo)
        block = ds.read(1, window=((top, bottom), (0, ds.width)))
        valid = block < k
        if size > 1:
            kept = sieve(block, size, mask=valid, connectivity=4)
            sieved += int((kept != block)[row0 - top: row0 - top + rows].sum())
            block = kept
        core = block[row0 - top: row0 - top + rows]
        mask = valid[row0 - top: row0 - top + rows]
        # simplifying: nodata regions join the coverage so the map's edges move with it
        pieces = _chunk_pieces(core, None if tol else mask, row0, conf, cum, k)
        bounds = shapely.bounds(pieces.geoms).reshape(-1, 4)
        cut = (((bounds[:, 1] == row0) & (row0 > 0))
               | ((bounds[:, 3] == row0 + rows) & (row0 + rows < ds.height)))
        if tol:
            pieces.geoms = shapely.coverage_simplify(pieces.geoms, tol, simplify_boundary=False)
        data = pieces.values < k
        sink.add(pieces.take(data & ~cut))
        cut_pieces = pieces.take(data & cut)
        for value in np.unique(cut_pieces.values):
            edge[int(value)].append(cut_pieces.take(cut_pieces.values == value))
    for value, parts in edge.items():      # merged; vertices left on the cut dropped
        sink.add(_merge(value, _Pieces.join(parts)))
    return sieved


def _merge(value: int, pieces: _Pieces) -> _Pieces:
    """The polygons that pieces of one class cut by chunk edges form, with summed areas and
    confidence (each piece found in the polygon containing a point inside it)."""
    import shapely

    merged = shapely.get_parts(shapely.simplify(shapely.union_all(pieces.geoms), 0))
    inside, owner = shapely.STRtree(merged).query(shapely.point_on_surface(pieces.geoms),
                                                  predicate="within")
    if not np.array_equal(np.sort(inside), np.arange(len(pieces.values))):
        raise RuntimeError("pieces cut by chunk edges do not merge into one polygon each")
    owner = owner[np.argsort(inside)]
    n = len(merged)
    return _Pieces(np.full(n, value), merged,
                   np.bincount(owner, weights=pieces.area, minlength=n),
                   np.bincount(owner, weights=pieces.conf_sum, minlength=n),
                   np.bincount(owner, weights=pieces.conf_n, minlength=n))
