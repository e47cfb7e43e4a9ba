"""lulc_edge.evaluate: accuracy of a class map against reference labels.

The reference is a label raster (any grid and CRS: compared on the map's grid with nearest
resampling, or on its own grid) or reference samples (points or polygons of a vector file or
CSV with a class column). Map and reference are read in full-width row blocks and each block
adds ``bincount(reference * K + map)`` to the confusion matrix, so memory stays bounded on a
whole tile. Reference codes become the map's classes through a mapping (``4=Water,...``);
unmapped codes and nodata on either side are left out and counted.

The metrics, the stratified estimates of Olofsson et al. (2014) for samples drawn by map
class, and the reports are in :mod:`lulc_edge.metrics`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT

from .classplan import ClassPlan, class_plan, code_key, parse_classes
from .errors import InputError, one_line
from .metrics import Evaluation, LeftOut, Report, pool, scores
from .vectors import (
    Features,
    bounds,
    burn,
    overlapping,
    read_features,
    window_bounds,
)
from .zonal import class_areas, map_classes, open_map, row_blocks

#: ``reference_nodata`` default: the nodata value the reference raster declares.
FILE_NODATA = "file"
#: File name endings read as reference samples rather than a raster.
VECTOR_SUFFIXES = (".csv", ".txt", ".geojson", ".json", ".gpkg", ".shp", ".fgb", ".kml",
                   ".gml", ".sqlite")
__all__ = ["EvalOptions", "Evaluation", "LeftOut", "Report", "class_plan", "evaluate",
           "evaluate_pairs", "parse_classes"]


# ----------------------------------------------------------------------------- counting


class _Tally:
    """The confusion matrix and the left-out counts, added to block by block."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.matrix = np.zeros((k, k), np.int64)
        self.ref_nodata = 0
        self.map_nodata = 0
        self.unmapped: Counter[str] = Counter()

    def add(self, ref_idx: np.ndarray, map_idx: np.ndarray) -> None:
        """``ref_idx``: evaluated class, -1 unmapped (counted by the caller), -2 nodata;
        ``map_idx``: evaluated class, -1 nodata."""
        self.ref_nodata += int((ref_idx == -2).sum())
        ok = ref_idx >= 0
        self.map_nodata += int((ok & (map_idx < 0)).sum())
        both = ok & (map_idx >= 0)
        idx = ref_idx[both].astype(np.int32) * self.k + map_idx[both]
        self.matrix += np.bincount(idx, minlength=self.k * self.k).reshape(self.k, self.k)

    def left_out(self) -> LeftOut:
        return LeftOut(self.ref_nodata, self.map_nodata, tuple(sorted(self.unmapped.items())))


def _map_idx(values: np.ndarray, plan: ClassPlan, valid: np.ndarray | None = None
             ) -> np.ndarray:
    """Evaluated classes of map values (int16), -1 outside the classes or not ``valid``."""
    if values.dtype == np.uint8:
        lut = np.full(256, -1, np.int16)
        lut[:plan.map_lut.size] = plan.map_lut
        out = lut[values]
    else:
        v = values.astype(np.int64)
        ok = (v >= 0) & (v < plan.map_lut.size)
        out = np.full(v.shape, -1, np.int16)
        out[ok] = plan.map_lut[v[ok]]
    if valid is not None:
        out[~valid] = -1
    return out


def _ref_idx(values: np.ndarray, valid: np.ndarray, plan: ClassPlan, tally: _Tally
             ) -> np.ndarray:
    """Evaluated classes of a block of reference codes (int16, -1 no class, -2 not
    ``valid``); unmapped codes counted in ``tally``. 8/16-bit codes go through a lookup
    table, others through np.unique."""
    if values.dtype.kind in "ui" and values.dtype.itemsize <= 2:
        offset = -int(np.iinfo(values.dtype).min)
        v = values.astype(np.int32) + offset if offset else values
        counts = np.bincount(v[valid], minlength=1)
        codes = np.flatnonzero(counts)
        lut = np.full(1 << (8 * values.dtype.itemsize), -2, np.int16)
        lut[codes] = [plan.ref_index(int(c) - offset) for c in codes]
        out = lut[v]
        counts, codes = counts[codes], codes - offset
    else:
        out = np.full(values.shape, -2, np.int16)
        codes, inv, counts = np.unique(values[valid], return_inverse=True, return_counts=True)
        target = np.array([plan.ref_index(c) for c in codes.tolist()], np.int16)
        out[valid] = target[inv.ravel()] if codes.size else -2
    out[~valid] = -2
    for c, n in zip(codes.tolist(), counts.tolist(), strict=True):
        if plan.ref_index(c) < 0:
            tally.unmapped[code_key(c)] += int(n)
    return out


def _same_grid(a: Any, b: Any) -> bool:
    """Same pixel grid; a raster without CRS (a label mask with no georeference) is taken
    as on the other's grid when the sizes match."""
    if (a.width, a.height) != (b.width, b.height):
        return False
    return a.crs is None or b.crs is None or (a.crs == b.crs
                                              and a.transform.almost_equals(b.transform))


def _raster_tally(mds: Any, rds: Any, plan: ClassPlan, on: str, ref_nodata: float | str | None,
                  block_rows: int) -> _Tally:
    """Map against a label raster, block by block on the map's (or the reference's) grid."""
    nodata = rds.nodata if ref_nodata == FILE_NODATA else ref_nodata
    grid, other = (mds, rds) if on == "map" else (rds, mds)
    if (grid.crs is None or other.crs is None) and not _same_grid(grid, other):
        no_crs = mds if mds.crs is None else rds
        raise InputError(f"{no_crs.name}: has no CRS, so it can only be compared pixel for "
                         f"pixel with a raster of its size ({grid.width}x{grid.height} vs "
                         f"{other.width}x{other.height})")
    src_nodata = {} if other is mds else {"src_nodata": -1 if nodata is None else nodata}
    warped = None if _same_grid(grid, other) else WarpedVRT(
        other, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
        resampling=Resampling.nearest, add_alpha=True, **src_nodata)
    tally = _Tally(len(plan.names))
    try:
        for row0, rows in row_blocks(grid.height, block_rows):
            win = ((row0, row0 + rows), (0, grid.width))
            g = grid.read(1, window=win)
            if warped is None:
                o, inside = other.read(1, window=win), None
            else:
                o, alpha = warped.read((1, other.count + 1), window=win)
                inside = alpha > 0
            mvals, rvals = (g, o) if grid is mds else (o, g)
            rvalid = np.ones(rvals.shape, bool) if inside is None or grid is rds else inside
            if nodata is not None:
                rvalid &= rvals != nodata
            if rvals.dtype.kind == "f":
                rvalid &= np.isfinite(rvals)
            map_inside = inside if grid is rds else None
            tally.add(_ref_idx(rvals, rvalid, plan, tally), _map_idx(mvals, plan, map_inside))
    finally:
        if warped is not None:
            warped.close()
    return tally


def _sample_tally(mds: Any, feats: Features, plan: ClassPlan, block_rows: int) -> _Tally:
    """Map against reference samples: each point one sample, each polygon its pixels."""
    tally = _Tally(len(plan.names))
    target = np.array([-2 if v is None or str(v).strip() == "" else plan.ref_index(v)
                       for v in feats.values], np.int64)
    inv = ~mds.transform
    pts: list[tuple[int, int, int]] = []            # (row, col, feature)
    polys: list[int] = []
    for i, g in enumerate(feats.geometries):
        if g["type"] in ("Point", "MultiPoint"):
            coords = [g["coordinates"]] if g["type"] == "Point" else g["coordinates"]
            for x, y, *_ in coords:
                c, r = inv @ (x, y)
                pts.append((math.floor(r), math.floor(c), i))
        else:
            polys.append(i)
    pts_arr = np.array(pts, np.int64).reshape(-1, 3)
    inside = ((pts_arr[:, 0] >= 0) & (pts_arr[:, 0] < mds.height) & (pts_arr[:, 1] >= 0)
              & (pts_arr[:, 1] < mds.width))
    out_fids = pts_arr[~inside, 2]
    tally.add(target[out_fids], np.full(out_fids.shape, -1, np.int64))
    _count_unmapped(tally, feats, target[out_fids], out_fids)
    pts_arr = pts_arr[inside]
    boxes = [bounds(feats.geometries[i]) for i in polys]
    for row0, rows in row_blocks(mds.height, block_rows):
        here = pts_arr[(pts_arr[:, 0] >= row0) & (pts_arr[:, 0] < row0 + rows)]
        box = window_bounds(mds.transform, row0, rows, mds.width)
        hits = [polys[j] for j in overlapping(boxes, box)]
        if not here.size and not hits:
            continue
        values = mds.read(1, window=((row0, row0 + rows), (0, mds.width)))
        if here.size:
            t = target[here[:, 2]]
            tally.add(t, _map_idx(values[here[:, 0] - row0, here[:, 1]], plan))
            _count_unmapped(tally, feats, t, here[:, 2])
        if hits:
            fid = burn([(feats.geometries[i], i + 1) for i in hits], mds.transform, row0, rows,
                       mds.width)
            sel = fid > 0
            t = target[fid[sel] - 1]
            tally.add(t, _map_idx(values[sel], plan))
            _count_unmapped(tally, feats, t, fid[sel] - 1)
    return tally


def _count_unmapped(tally: _Tally, feats: Features, target: np.ndarray, fids: np.ndarray
                    ) -> None:
    """Count the units of features whose code has no class, by code."""
    if not (target == -1).any():
        return
    for f, n in zip(*np.unique(fids[target == -1], return_counts=True), strict=True):
        tally.unmapped[code_key(feats.values[int(f)])] += int(n)


# ----------------------------------------------------------------------------- entry points


def is_samples(path: str | Path) -> bool:
    """True when ``path`` names reference samples (vector file or CSV), not a raster."""
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


@dataclass(frozen=True)
class EvalOptions:
    """How a map is compared with its reference.

    ``classes`` maps reference codes to the map's classes (``{"4": "Water"}``; default: codes
    are the map's class values or names); ``binary`` evaluates one class against the rest;
    ``on`` is the grid a label raster is compared on ("map" or "reference", nearest
    resampling); ``field`` the class column of samples, ``crs`` their CRS when the file has
    none (CSV: default EPSG:4326); ``reference_nodata`` overrides the label raster's nodata
    (a value, or None for none); ``stratified`` adds the Olofsson et al. (2014) estimates
    with the map's class areas as strata weights; ``block_rows`` bounds the memory.
    """

    classes: dict[str, str] | None = None
    binary: str | None = None
    on: str = "map"
    field: str = "class"
    crs: str | CRS | None = None
    reference_nodata: float | str | None = FILE_NODATA
    stratified: bool = False
    block_rows: int = 512

    def __post_init__(self) -> None:
        if self.on not in ("map", "reference"):
            raise ValueError(f"on must be 'map' or 'reference', got {self.on!r}")


def _tally(mds: Any, map_path: str | Path, reference: str | Path, plan: ClassPlan,
           opts: EvalOptions) -> tuple[_Tally, Features | None]:
    """The confusion tally of an open map against a reference (and the samples, if any)."""
    try:
        if not is_samples(reference):
            with open_map(reference) as rds:
                return _raster_tally(mds, rds, plan, opts.on, opts.reference_nodata,
                                     opts.block_rows), None
        if opts.on != "map":
            raise InputError(f"{reference}: samples are compared on the map's grid "
                             "(--on reference is for label rasters)")
        feats = read_features(reference, opts.field, opts.crs).to_crs(mds.crs)
        return _sample_tally(mds, feats, plan, opts.block_rows), feats
    except (RasterioError, OSError) as exc:
        raise InputError(f"{map_path} vs {reference}: cannot read ({one_line(exc)})") \
            from None


def evaluate(map_path: str | Path, reference: str | Path, options: EvalOptions | None = None,
             **fields: Any) -> Evaluation:
    """Compare a lulc-edge class map with a label raster or reference samples.

    ``options`` (:class:`EvalOptions`), or its fields as keywords (``classes=``, ``binary=``,
    ``on=``, ...), which override it. InputError names the file on bad input.
    """
    opts = replace(options or EvalOptions(), **fields)
    with open_map(map_path) as mds:
        map_names = map_classes(mds)
        try:
            plan = class_plan(map_names, opts.classes, opts.binary)
        except ValueError as exc:
            raise InputError(f"{map_path}: {exc}") from None
        tally, feats = _tally(mds, map_path, reference, plan, opts)
    mapped, unit = None, "ha"
    if opts.stratified:
        whole = class_areas(map_path, block_rows=opts.block_rows).whole
        per_value = np.array(whole.hectares if whole.hectares is not None else whole.pixels)
        unit = "ha" if whole.hectares is not None else "px"
        mapped = np.bincount(plan.map_lut, weights=per_value, minlength=len(plan.names))
    has_points = feats is not None and any(g["type"].endswith("Point")
                                           for g in feats.geometries)
    return scores(tally.matrix, plan.names, map_name=str(map_path), reference=str(reference),
                  unit="samples" if has_points else "pixels", left_out=tally.left_out(),
                  mapped_area=mapped, area_unit=unit)


def evaluate_pairs(pairs: Sequence[tuple[str | Path, str | Path]],
                   options: EvalOptions | None = None, **fields: Any) -> Report:
    """:func:`evaluate` on each (map, reference) pair; pooled when there are several."""
    opts = replace(options or EvalOptions(), **fields)
    evals = tuple(evaluate(m, r, opts) for m, r in pairs)
    return Report(evals, pool(evals) if len(evals) > 1 else None)
