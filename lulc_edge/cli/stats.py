"""``lulc-edge stats``: :mod:`lulc_edge.zonal`'s class areas on the command line."""

from __future__ import annotations

import click

from ..errors import LulcEdgeError
from .console import fail, setup_logging
from .options import TABLE, TableArgs, use
from .reports import emit, report_format


@click.command()
@click.argument("map_path", metavar="MAP", type=click.Path(dir_okay=False))
@click.option("--zones", type=click.Path(dir_okay=False), default=None,
              help="Polygons (GeoJSON, GeoPackage...; any CRS): class areas per zone too.")
@click.option("--field", default="name", show_default=True,
              help="Zone attribute that keys the zones (equal values form one zone).")
@click.option("--crs", default=None, metavar="CRS",
              help="CRS of zones whose file carries none (default: the map's).")
@use(TABLE)
def stats(map_path: str, zones: str | None, field: str, crs: str | None,
          report: TableArgs) -> None:
    """Class areas of a map in pixels, hectares and percent, whole and per zone.

    Hectares come from each row's pixel area (on the ellipsoid when the map's CRS is
    geographic); percent is the class's share of the zone's classified area. A pixel belongs
    to a zone when its centre lies inside the zone's polygons; values outside the classes
    (nodata 255...) are counted as nodata. Zones need the vector extra:
    pip install 'lulc-edge[vector]'.

    \b
    Examples:
      lulc-edge stats scene.lulc.tif
      lulc-edge stats scene.lulc.tif --zones regions.gpkg --field name
      lulc-edge stats scene.lulc.tif --zones districts.geojson --field id -o areas.csv
    """
    from ..zonal import class_areas

    setup_logging(0)
    report_format(report.output)
    try:
        result = class_areas(map_path, zones, field, crs)
    except LulcEdgeError as exc:
        fail(str(exc))
    emit(result, report)
