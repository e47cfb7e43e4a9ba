"""lulc_edge.aoi: an area of interest: map only the part of a scene that covers it.

An :class:`Area` is a frozen value (a bounding box or a GeoJSON geometry, in its CRS) that
travels in a ``RunSpec`` to workers, Dask tasks and service jobs. A run with an area reads and
maps the area's bounding window on the input's grid (:func:`area_window`: snapped outward to
the model's alignment from the scene's origin, clipped to the scene) through a
:class:`CroppedSource`, whose reads beyond the window are the scene's real pixels, and an
:class:`AreaMode`, which plans the whole-scene run's tiles restricted to the window (so every
pixel sees the context it sees in a whole-scene map: the area's map equals those pixels of the
whole-scene map exactly, in both modes) and sets pixels outside a polygon to nodata in each
tile's prediction, before any sink.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError
from rasterio.features import bounds as geometry_bounds
from rasterio.features import geometry_mask
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window, from_bounds
from rasterio.windows import transform as window_transform

from .engine import Engine
from .errors import InputError, one_line
from .modes import Mode
from .sources import Source
from .stitch import Prediction
from .tiling import Tile

#: The CRS of a bounding box or GeoJSON geometry that names none (GeoJSON's, RFC 7946).
DEFAULT_CRS = "EPSG:4326"


class AreaMissError(InputError):
    """The area does not overlap the scene: a batch skips that scene, with a note."""


@dataclass(frozen=True)
class Area:
    """An area of interest: ``bbox`` (minx, miny, maxx, maxy) or ``geometry`` (GeoJSON text),
    in ``crs``; ``label`` says where it came from (for messages and tags)."""

    crs: str = DEFAULT_CRS
    bbox: tuple[float, float, float, float] | None = None
    geometry: str | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if (self.bbox is None) == (self.geometry is None):
            raise ValueError("an area is a bbox or a geometry (one of them)")

    @classmethod
    def from_bbox(cls, values: str | Sequence[float], crs: str = DEFAULT_CRS) -> Area:
        """A box from ``"minx,miny,maxx,maxy"`` or 4 numbers; ValueError saying what is wrong."""
        parts = values.split(",") if isinstance(values, str) else list(values)
        try:
            box = tuple(float(v) for v in parts)
        except (TypeError, ValueError):
            box = ()
        if len(box) != 4 or not all(math.isfinite(v) for v in box):
            raise ValueError(f"bbox: expected MINX,MINY,MAXX,MAXY (4 numbers), got {values!r}")
        if box[0] >= box[2] or box[1] >= box[3]:
            raise ValueError(f"bbox: MINX < MAXX and MINY < MAXY needed, got {values!r}")
        return cls(_crs_text(crs, "bbox"), bbox=box, label=f"bbox {','.join(map(str, parts))}")

    @classmethod
    def from_geojson(cls, obj: Mapping[str, Any] | str, crs: str = DEFAULT_CRS,
                     label: str = "aoi") -> Area:
        """A geometry, Feature or FeatureCollection (a dict or its JSON text) in ``crs``."""
        doc = json.loads(obj) if isinstance(obj, str) else obj
        geom = _geometry(doc, label)
        return cls(_crs_text(crs, label), geometry=json.dumps(geom), label=label)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Area:
        """The union of a vector file's geometries (GeoJSON, GeoPackage, Shapefile...: what
        OGR reads), in the file's CRS; InputError when unreadable, empty or without a CRS."""
        p = Path(path)
        if not p.exists():
            raise InputError(f"{p}: no such file")
        try:
            import pyogrio
            import shapely
            from shapely.geometry import mapping
        except ImportError as exc:
            raise InputError(f"{p}: reading an area needs the vector extra ({exc.name} "
                             "missing): pip install 'lulc-edge[vector]'") from None
        try:
            meta, _, wkb, _ = pyogrio.raw.read(p, columns=[])
        except Exception as exc:  # noqa: BLE001 - pyogrio/GDAL errors of every kind: one line
            raise InputError(f"{p}: cannot read as a vector file ({one_line(exc)})") from None
        geoms = [mapping(g) for g in shapely.from_wkb([w for w in (wkb or []) if w is not None])]
        if not geoms:
            raise InputError(f"{p}: the file holds no geometry")
        if not meta.get("crs"):
            raise InputError(f"{p}: the file has no CRS (a shapefile without its .prj?): "
                             "an area must say which coordinates it uses")
        geom = geoms[0] if len(geoms) == 1 else {"type": "GeometryCollection",
                                                 "geometries": geoms}
        return cls(_crs_text(meta["crs"], str(p)), geometry=json.dumps(geom), label=str(p))

    @classmethod
    def of(cls, value: Area | str | os.PathLike | Sequence[float]) -> Area:
        """An area as the API takes it: an Area, a vector file's path, or a bbox in
        EPSG:4326."""
        if isinstance(value, Area):
            return value
        if isinstance(value, str | os.PathLike):
            return cls.from_file(value)
        return cls.from_bbox(value)

    def to_json(self) -> dict[str, Any]:
        """The area as JSON (``RunSpec.to_dict``, service jobs): ``bbox`` or ``geometry``."""
        out: dict[str, Any] = {"crs": self.crs, "label": self.label}
        if self.bbox is not None:
            out["bbox"] = list(self.bbox)
        else:
            out["geometry"] = json.loads(self.geometry or "null")
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | Area) -> Area:
        """``to_json``'s value back; ValueError naming what is wrong."""
        if isinstance(doc, Area):
            return doc
        if not isinstance(doc, Mapping):
            raise ValueError(f"area: expected an object with bbox or geometry, got {doc!r}")
        crs = doc.get("crs") or DEFAULT_CRS
        if doc.get("bbox") is not None:
            return cls.from_bbox(doc["bbox"], crs)
        if doc.get("geometry") is not None:
            return cls.from_geojson(doc["geometry"], crs, doc.get("label") or "aoi")
        raise ValueError("area: expected bbox or geometry")

    def geojson(self, crs: CRS) -> dict[str, Any] | None:
        """The geometry in ``crs`` (None for a box)."""
        if self.geometry is None:
            return None
        return transform_geom(CRS.from_user_input(self.crs), crs, json.loads(self.geometry))

    def bounds(self, crs: CRS) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in ``crs`` (a box's edges densified as they bend)."""
        if self.bbox is not None:
            return transform_bounds(CRS.from_user_input(self.crs), crs, *self.bbox,
                                    densify_pts=21)
        return tuple(geometry_bounds(self.geojson(crs)))  # type: ignore[return-value]


def _crs_text(crs: Any, what: str) -> str:
    try:
        return CRS.from_user_input(crs).to_string()
    except CRSError as exc:
        raise ValueError(f"{what}: unknown CRS {crs!r} ({one_line(exc)})") from None


def _geometry(doc: Any, label: str) -> dict[str, Any]:
    """A GeoJSON geometry of a geometry, Feature or FeatureCollection."""
    kind = doc.get("type") if isinstance(doc, Mapping) else None
    if kind == "Feature":
        return _geometry(doc.get("geometry"), label)
    if kind == "FeatureCollection":
        geoms = [_geometry(f, label) for f in doc.get("features") or []]
        if not geoms:
            raise ValueError(f"{label}: the FeatureCollection holds no geometry")
        return geoms[0] if len(geoms) == 1 else {"type": "GeometryCollection",
                                                 "geometries": geoms}
    if kind in ("Polygon", "MultiPolygon", "GeometryCollection"):
        return dict(doc)
    raise ValueError(f"{label}: expected a GeoJSON Polygon, MultiPolygon, Feature or "
                     f"FeatureCollection, got {kind or type(doc).__name__}")


def area_window(area: Area, source: Source, alignment: int) -> Window:
    """The area's bounding window on ``source``'s grid, snapped outward so its offsets and
    size are multiples of ``alignment`` from the scene's origin, clipped to the scene.
    AreaMissError when it misses the scene (a polygon: when no pixel centre of the scene lies
    inside it, though its bounding box may overlap); InputError when the scene has no CRS."""
    if source.crs is None:
        raise InputError(f"{source.path}: the input has no CRS: an area of interest cannot be "
                         "placed on it")
    try:
        box = area.bounds(source.crs)
        polygon = area.geojson(source.crs)
    except (RasterioError, CRSError, ValueError) as exc:
        raise InputError(f"{area.label}: cannot be moved to the input's CRS "
                         f"({one_line(exc)})") from None
    win = from_bounds(*box, transform=source.transform)
    r0 = max(0, math.floor(win.row_off + 1e-6) // alignment * alignment)
    c0 = max(0, math.floor(win.col_off + 1e-6) // alignment * alignment)
    r1 = min(source.height, -(-math.ceil(win.row_off + win.height - 1e-6) // alignment)
             * alignment)
    c1 = min(source.width, -(-math.ceil(win.col_off + win.width - 1e-6) // alignment)
             * alignment)
    win = Window(c0, r0, max(c1 - c0, 0), max(r1 - r0, 0))
    if r1 <= r0 or c1 <= c0 or (polygon is not None and
                                not _any_centre_inside(polygon, win, source.transform)):
        raise AreaMissError(f"{source.path}: the area ({area.label}) does not overlap the "
                            "scene")
    return win


def _any_centre_inside(polygon: dict[str, Any], window: Window, transform: Affine) -> bool:
    """Whether a pixel centre of ``window`` lies inside ``polygon`` (as AreaMode.clip keeps
    pixels), rasterized about 4 Mpx at a time."""
    rows = max(1, 2**22 // int(window.width))
    for r in range(int(window.row_off), int(window.row_off + window.height), rows):
        strip = Window(window.col_off, r, window.width,
                       min(rows, int(window.row_off + window.height) - r))
        if geometry_mask([polygon], (int(strip.height), int(strip.width)),
                         window_transform(strip, transform), invert=True).any():
            return True
    return False


class CroppedSource(Source):
    """``window`` of ``parent`` as a scene of its own: reads are the parent's, shifted (and
    boundless with the parent's real pixels beyond the window: a halo is real context).
    The parent stays its opener's to close."""

    def __init__(self, parent: Source, window: Window, area: Area) -> None:
        self.parent, self.window, self.area = parent, window, area
        self.path, self.options = parent.path, parent.options
        self.band_names, self.warnings = parent.band_names, parent.warnings
        self.in_strips, self.radiometry = parent.in_strips, parent.radiometry
        self.width, self.height = int(window.width), int(window.height)
        self.crs = parent.crs
        self.transform = window_transform(window, parent.transform)

    def read(self, window: Window) -> np.ndarray:
        return self.parent.read(Window(window.col_off + self.window.col_off,
                                       window.row_off + self.window.row_off,
                                       window.width, window.height))

    def fingerprint(self) -> dict[str, list[int]]:
        return self.parent.fingerprint()

    def band_locations(self) -> dict[str, tuple[str, int]]:
        return self.parent.band_locations()

    def tags(self) -> dict[str, str]:
        w = self.window
        return {**self.parent.tags(), "AOI": self.area.label,
                "AOI_WINDOW": f"{w.col_off} {w.row_off} {w.width} {w.height}",
                "GRID_SIZE": f"{self.width} {self.height}",
                "GRID_TRANSFORM": " ".join(f"{v:.10g}" for v in tuple(self.transform)[:6])}


class AreaMode(Mode):
    """``base``'s tiles of the whole scene (``height`` x ``width``) restricted to the area's
    window, on the window's grid; pixels outside the area's polygon made nodata. Planning
    tells the scene what its tiles read (``Source.limit``)."""

    def __init__(self, base: Mode, source: CroppedSource, engine: Engine) -> None:
        self.base, self.source, self.nodata = base, source, engine.contract.nodata.value
        self.name, self.step = base.name, base.step
        self.polygon = source.area.geojson(source.crs) if source.crs is not None else None

    def default_tile(self, device: str) -> int:
        return self.base.default_tile(device)

    def default_batch(self, device: str) -> int:
        return self.base.default_batch(device)

    def plan(self, height: int, width: int, tile: int, engine: Engine) -> list[Tile]:
        w, p = self.source.window, self.source.parent
        dr, dc = int(w.row_off), int(w.col_off)
        tiles = self.base.plan(p.height, p.width, tile, engine, within=w)
        # what the run reads: a source read in strips decodes only that
        r0, c0 = (min(int(getattr(t.read, a)) for t in tiles) for a in ("row_off", "col_off"))
        p.limit(Window(c0, r0, max(int(t.read.col_off + t.read.width) for t in tiles) - c0,
                       max(int(t.read.row_off + t.read.height) for t in tiles) - r0))
        return [Tile(t.index, _shift(t.core, dr, dc), _shift(t.read, dr, dc), t.windows)
                for t in tiles]

    def block_sizes(self, tiles: list[Tile], engine: Engine) -> list[tuple[int, int]]:
        return self.base.block_sizes(tiles, engine)

    def group_size(self, batch: int) -> int:
        return self.base.group_size(batch)

    def warnings(self, tile: int, halo: int) -> list[str]:
        return self.base.warnings(tile, halo)

    def infer(self, engine: Engine, group: list[Tile], bands: np.ndarray,
              outputs: tuple[str, ...], batch: int) -> list[Prediction]:
        preds = self.base.infer(engine, group, bands, outputs, batch)
        return preds if self.polygon is None else \
            [self.clip(t, p) for t, p in zip(group, preds, strict=True)]

    def clip(self, tile: Tile, pred: Prediction) -> Prediction:
        """``pred`` with the pixels outside the polygon nodata (centres inside are in)."""
        inside = inside_polygon(self.polygon, tile.core, self.source.transform)
        if inside is None:
            return pred
        conf = None if pred.confidence is None else np.where(inside, pred.confidence, 0)
        return Prediction(np.where(inside, pred.classes, self.nodata).astype(np.uint8),
                          None if conf is None else conf.astype(np.uint8), pred.probabilities)


def inside_polygon(polygon: dict[str, Any], window: Window, transform: Any
                   ) -> np.ndarray | None:
    """The pixels of ``window`` (on the grid of ``transform``) whose centres lie inside
    ``polygon``; None when all do."""
    inside = geometry_mask([polygon], (int(window.height), int(window.width)),
                           window_transform(window, transform), all_touched=False, invert=True)
    return None if inside.all() else inside


def checks_window(area: Area | None) -> Callable[[Source], Window | None] | None:
    """Where an opened scene's checks look in a run of ``area`` (``sources.checks_within``):
    the area's bounding window on its grid; None when it cannot be placed there (the run then
    says why) or there is no area."""
    if area is None:
        return None

    def where(source: Source) -> Window | None:
        try:
            return area_window(area, source, 1)
        except InputError:
            return None
    return where


def _shift(w: Window, dr: int, dc: int) -> Window:
    return Window(int(w.col_off) - dc, int(w.row_off) - dr, int(w.width), int(w.height))


def restrict(source: Source, area: Area | None, mode: Mode, engine: Engine
             ) -> tuple[Source, Mode]:
    """The source and mode of a run restricted to ``area`` (as they are without one)."""
    if area is None:
        return source, mode
    cropped = CroppedSource(source, area_window(area, source, engine.contract.alignment), area)
    return cropped, AreaMode(mode, cropped, engine)
