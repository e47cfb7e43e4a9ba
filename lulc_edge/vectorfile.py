"""lulc_edge.vectorfile: the polygons file :mod:`lulc_edge.vectorize` writes: its format by
extension, the writer that appends chunk by chunk, and the options recorded in it (in the
layer's metadata, where the format keeps it: GeoPackage, FlatGeobuf) so a batch can tell a
file made with other options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .areas import M2_PER_HA
from .errors import OutputError

#: Output formats by extension (OGR driver names); anything else is refused (Shapefiles too:
#: several files, which cannot appear at once under their final names).
DRIVERS = {".gpkg": "GPKG", ".parquet": "Parquet", ".geoparquet": "Parquet",
           ".fgb": "FlatGeobuf", ".geojson": "GeoJSON", ".json": "GeoJSON"}
#: The layer metadata item holding the options a file was made with (JSON).
OPTIONS_ITEM = "LULC_EDGE_VECTOR_OPTIONS"


def made_with(path: str | Path) -> dict[str, Any] | None:
    """The options recorded in a polygons file (``OPTIONS_ITEM``), or None where the file
    keeps none (GeoJSON, an older lulc-edge) or cannot be read."""
    try:
        import pyogrio

        meta = pyogrio.read_info(path).get("layer_metadata") or {}
        return json.loads(meta[OPTIONS_ITEM]) if OPTIONS_ITEM in meta else None
    except Exception:  # noqa: BLE001 - unreadable: nothing recorded
        return None


def output_driver(path: str | Path) -> str:
    """The OGR driver that writes ``path`` (by extension); OutputError naming the file when
    the extension is unknown or this GDAL cannot write that format."""
    import pyogrio

    p = Path(path)
    driver = DRIVERS.get(p.suffix.lower())
    if driver is None:
        raise OutputError(f"{p}: unknown vector format {p.suffix or '(no extension)'!r} "
                          f"(use {', '.join(sorted(set(DRIVERS)))})")
    if "w" not in pyogrio.list_drivers().get(driver, ""):
        raise OutputError(f"{p}: this GDAL ({pyogrio.__gdal_version_string__}) has no "
                          f"{driver} driver; write .gpkg or .fgb instead")
    return driver


class PolygonWriter:
    """Polygons (pixel coordinates) to the output file: map coordinates and fields; appended
    chunk by chunk where the driver can append, else kept (as WKB) until :meth:`close`.
    ``options`` (the vectorize options) are recorded in the layer's metadata (``made_with``)."""

    def __init__(self, path: Path, driver: str, ds: Any, classes: tuple[str, ...],
                 confidence: bool, options: dict[str, Any]) -> None:
        import pyogrio

        self.path, self.driver, self.classes, self.confidence = path, driver, classes, confidence
        self.options = json.dumps(options, sort_keys=True)
        self.crs = ds.crs.to_wkt() if ds.crs else None
        t = ds.transform
        self.coeffs = [t.a, t.b, t.d, t.e, t.c, t.f]
        self.layer = path.name.split(".")[0] or "classes"
        self.append = "a" in pyogrio.list_drivers()[driver]
        self.buffer: list[tuple[np.ndarray, list[np.ndarray]]] = []
        self.written = False
        self.polygons = np.zeros(len(classes), np.int64)
        self.hectares = np.zeros(len(classes))
        self.vertices = 0

    def add(self, pieces: Any) -> None:
        """Write (or keep) a ``vectorize._Pieces``."""
        import shapely

        if not len(pieces.values):
            return
        values = pieces.values.astype(np.int32)
        area = pieces.area / M2_PER_HA
        np.add.at(self.polygons, values, 1)
        np.add.at(self.hectares, values, np.nan_to_num(area))
        self.vertices += int(shapely.get_num_coordinates(pieces.geoms).sum())
        wkb = np.array(shapely.to_wkb(_to_map(pieces.geoms, self.coeffs)), dtype=object)
        fields = [np.array([self.classes[v] for v in values], dtype=object), values, area]
        if self.confidence:
            with np.errstate(invalid="ignore", divide="ignore"):
                fields.append(np.where(pieces.conf_n > 0,
                                       pieces.conf_sum / np.maximum(pieces.conf_n, 1), np.nan))
        if self.append:
            self._write(wkb, fields)
        else:
            self.buffer.append((wkb, fields))

    def close(self) -> None:
        if self.buffer:
            wkb = np.concatenate([w for w, _ in self.buffer])
            fields = [np.concatenate(col) for col in zip(*(f for _, f in self.buffer),
                                                          strict=True)]
            self._write(wkb, fields)
        elif not self.written:
            empty = [np.array([], dtype=object), np.array([], np.int32), np.array([])]
            self._write(np.array([], dtype=object),
                        empty + ([np.array([])] if self.confidence else []))

    def _write(self, wkb: np.ndarray, fields: list[np.ndarray]) -> None:
        import pyogrio

        names = ["class", "class_id", "area_ha"] + (["confidence"] if self.confidence else [])
        pyogrio.raw.write(self.path, wkb, geometry_type="Polygon", crs=self.crs,
                          driver=self.driver, layer=self.layer, field_data=fields,
                          fields=names, append=self.written,
                          layer_metadata=None if self.written else {OPTIONS_ITEM: self.options})
        self.written = True


def _to_map(geoms: np.ndarray, coeffs: list[float]) -> np.ndarray:
    """Pixel-coordinate geometries in map coordinates."""
    import shapely

    a, b, d, e, xoff, yoff = coeffs
    return shapely.transform(geoms, lambda c: np.column_stack(
        (a * c[:, 0] + b * c[:, 1] + xoff, d * c[:, 0] + e * c[:, 1] + yoff)))
