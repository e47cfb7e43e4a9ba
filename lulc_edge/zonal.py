"""lulc_edge.zonal: class areas of a class map, for the whole map and per zone (polygons).

The map is read in full-width row blocks (bounded memory on a whole 10980 x 10980 tile); each
zone is burnt onto the block's grid (pixel centres inside the polygon count, so overlapping
zones each get their pixels), and each block is added to each zone's ``areas.AreaSum``: pixel
counts per row become hectares with the ground area of each row (on the ellipsoid for
geographic CRSs). That sum is the one count of class areas: a run's (RunResult, the service's
jobs) and the pictures' add their blocks to it as well, so their numbers are these.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError

from .areas import AreaSum
from .clouds import CLOUD_CLASS, CLOUD_VALUE
from .errors import InputError, one_line
from .vectors import bounds, burn, overlapping, read_features, window_bounds

#: The key of the whole map among the zones.
WHOLE = "(whole map)"
#: The class name of a zone's nodata row in tables.
NODATA_ROW = "(nodata)"


def row_blocks(height: int, rows: int = 512) -> Iterator[tuple[int, int]]:
    """(first row, row count) of full-width blocks covering a raster."""
    for row0 in range(0, height, rows):
        yield row0, min(rows, height - row0)


def open_map(path: str | Path) -> Any:
    """A class map opened for reading (InputError naming the file when it cannot be)."""
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    try:
        return rasterio.open(path)
    except (RasterioError, OSError) as exc:
        raise InputError(f"{path}: not a readable raster ({one_line(exc)})") from None


def map_classes(ds: Any) -> tuple[str, ...]:
    """Class names of an open lulc-edge map: its CLASS_0, CLASS_1... tags, else the bundled
    model's classes (a map made elsewhere with the same class values). InputError when band 1
    is not uint8 (a scene or a probabilities raster given as the map)."""
    if ds.dtypes[0] != "uint8":
        raise InputError(f"{ds.name}: not a class map (band 1 is {ds.dtypes[0]}; lulc-edge "
                         "class maps are uint8)")
    tags = ds.tags()
    names: list[str] = []
    while f"CLASS_{len(names)}" in tags and len(names) != ds.nodata:
        names.append(tags[f"CLASS_{len(names)}"])
    if names:
        return tuple(names)
    from .engine import bundled_model, load_contract

    return tuple(c.name for c in load_contract(bundled_model()).classes)


@dataclass(frozen=True)
class ZoneAreas:
    """Class areas of one zone (or the whole map)."""

    zone: str
    pixels: tuple[int, ...]
    hectares: tuple[float, ...] | None
    nodata_pixels: int
    #: pixels masked as Cloud (``clouds.CLOUD_VALUE``), not counted as nodata, and their area
    cloud_pixels: int = 0
    cloud_hectares: float | None = None

    @property
    def percent(self) -> tuple[float | None, ...]:
        """Share of each class in the zone's classified area (hectares when defined)."""
        amounts = self.hectares if self.hectares is not None else self.pixels
        total = sum(amounts)
        return tuple(100.0 * a / total if total else None for a in amounts)

    def as_dict(self, classes: tuple[str, ...]) -> dict[str, Any]:
        ha = self.hectares
        return {"zone": self.zone, "nodata_pixels": self.nodata_pixels,
                "cloud_pixels": self.cloud_pixels, "cloud_hectares": self.cloud_hectares,
                "classes": {n: {"pixels": self.pixels[i],
                                "hectares": None if ha is None else ha[i],
                                "percent": self.percent[i]} for i, n in enumerate(classes)}}


@dataclass(frozen=True)
class ClassAreas:
    """Class areas of a map: the whole map, then each zone keyed by its field value."""

    map: str
    classes: tuple[str, ...]
    whole: ZoneAreas
    zones: tuple[ZoneAreas, ...]
    no_area: str | None = None   # why there are no hectares (no CRS...)

    def as_dict(self) -> dict[str, Any]:
        return {"map": self.map, "classes": list(self.classes), "no_area": self.no_area,
                "whole_map": self.whole.as_dict(self.classes),
                "zones": [z.as_dict(self.classes) for z in self.zones]}

    def rows(self) -> list[tuple[str, str, int, float | None, float | None]]:
        """(zone, class, pixels, hectares, percent) for the whole map then every zone, each
        zone's Cloud pixels (where the map has any; no percent: percentages are of the
        classified area) and nodata pixels last (class "(nodata)")."""
        out: list[tuple[str, str, int, float | None, float | None]] = []
        clouds = self.whole.cloud_pixels > 0
        for z in (self.whole, *self.zones):
            out += [(z.zone, name, z.pixels[i], None if z.hectares is None else z.hectares[i],
                     z.percent[i]) for i, name in enumerate(self.classes)]
            if clouds:
                out.append((z.zone, CLOUD_CLASS.name, z.cloud_pixels, z.cloud_hectares, None))
            out.append((z.zone, NODATA_ROW, z.nodata_pixels, None, None))
        return out

    def to_csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["zone", "class", "pixels", "hectares", "percent"])
        for zone, name, px, ha, pct in self.rows():
            w.writerow([zone, name, px, "" if ha is None else f"{ha:.4f}",
                        "" if pct is None else f"{pct:.4f}"])
        return out.getvalue()

    def to_markdown(self) -> str:
        lines = [f"Class areas of {self.map}"
                 + (f" (no hectares: {self.no_area})" if self.no_area else ""), "",
                 "| zone | class | pixels | hectares | % |", "|---|---|---:|---:|---:|"]
        for zone, name, px, ha, pct in self.rows():
            lines.append(f"| {zone} | {name} | {px} | {'–' if ha is None else f'{ha:.2f}'} | "
                         f"{'–' if pct is None else f'{pct:.2f}'} |")
        return "\n".join(lines) + "\n"


def _zone(name: str, acc: AreaSum, k: int) -> ZoneAreas:
    """A zone's areas from its sum: Cloud on its own, other values outside the ``k`` classes
    count as nodata."""
    ha = acc.hectares()
    cloud = int(acc.counts[CLOUD_VALUE])
    return ZoneAreas(name, tuple(int(n) for n in acc.counts[:k]),
                     None if ha is None else tuple(float(h) for h in ha[:k]),
                     int(acc.counts[k:].sum()) - cloud, cloud,
                     None if ha is None else float(ha[CLOUD_VALUE]))


def class_areas(map_path: str | Path, zones: str | Path | None = None, field: str = "name",
                crs: str | CRS | None = None, block_rows: int = 512) -> ClassAreas:
    """Pixels and hectares per class for the whole map and for each zone of ``zones``.

    Zones are the polygons of a vector file (any CRS: moved to the map's), grouped by their
    ``field`` value (features with the same value form one zone); ``crs`` is the zones' CRS
    when the file has none. Cloud pixels (254) have a row of their own; other map values
    outside the class range count as nodata.
    """
    with open_map(map_path) as ds:
        classes = map_classes(ds)
        k = len(classes)
        by_key: dict[str, list[tuple[dict[str, Any], tuple[float, ...]]]] = {}
        if zones is not None:
            feats = read_features(zones, field, crs or ds.crs).to_crs(ds.crs)
            for geom, value in zip(feats.geometries, feats.values, strict=True):
                by_key.setdefault(str(value), []).append((geom, bounds(geom)))
        keys, groups = list(by_key), list(by_key.values())
        boxes = [[b for _, b in group] for group in groups]
        sums = [AreaSum(ds.crs, ds.transform) for _ in range(len(keys) + 1)]
        try:
            for row0, rows in row_blocks(ds.height, block_rows):
                values = ds.read(1, window=((row0, row0 + rows), (0, ds.width)))
                box = window_bounds(ds.transform, row0, rows, ds.width)
                for z in range(len(keys) + 1):
                    mask = None
                    if z:
                        group = groups[z - 1]
                        hits = overlapping(boxes[z - 1], box)
                        if not hits:
                            continue
                        mask = burn([(group[i][0], 1) for i in hits], ds.transform, row0, rows,
                                    ds.width) > 0
                    sums[z].add(values, row0, mask)
        except (RasterioError, OSError) as exc:
            raise InputError(f"{map_path}: cannot read ({one_line(exc)})") from None
    return ClassAreas(str(map_path), classes, _zone(WHOLE, sums[0], k),
                      tuple(_zone(key, sums[i + 1], k) for i, key in enumerate(keys)),
                      sums[0].reason)
