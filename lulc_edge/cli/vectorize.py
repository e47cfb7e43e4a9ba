"""``lulc-edge vectorize``: :mod:`lulc_edge.vectorize`'s polygons of a class map."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import LulcEdgeError
from .console import fail, setup_logging
from .options_output import FORMATS, MIN_AREA, SIMPLIFY


@click.command()
@click.argument("map_path", metavar="MAP", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help=f"Polygons file, format by extension: {FORMATS} (default: MAP with "
                   ".gpkg).")
@MIN_AREA
@SIMPLIFY
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No summary.")
def vectorize(map_path: str, output: str | None, min_area: float, simplify: float,
              overwrite: bool, as_json: bool, quiet: bool) -> None:
    """Polygons of a class map, with fields class, class_id, area_ha and confidence.

    Regions are 4-connected; the map is polygonised in row chunks and regions cut by a chunk
    edge are merged, so the polygons do not depend on the chunks. area_ha is each polygon's
    pixels times their ground area (on the ellipsoid for geographic maps); confidence (mean %
    of the polygon's pixels) is there when MAP.confidence.tif is (run --confidence).
    --simplify keeps neighbours meeting exactly; areas stay those of the pixels. Needs the
    vector extra: pip install 'lulc-edge[vector]'.

    \b
    Examples:
      lulc-edge vectorize scene.lulc.tif                   # -> scene.lulc.gpkg
      lulc-edge vectorize scene.lulc.tif -o map.gpkg --min-area 0.5
      lulc-edge vectorize scene.lulc.tif -o map.fgb --simplify 10
    """
    from ..vectorize import vectorize as run_vectorize

    setup_logging(0)
    out = output or str(Path(map_path).with_suffix(".gpkg"))
    try:
        res = run_vectorize(map_path, out, min_area, overwrite, simplify_m=simplify)
    except LulcEdgeError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(res.as_dict(), indent=2))
    elif not quiet:
        click.echo(f"{res.output}: {sum(res.polygons)} polygons"
                   + (f", {res.sieved_pixels} px sieved" if min_area else ""))
        for i, name in enumerate(res.classes):
            ha = f"{res.hectares[i]:>12.2f} ha" if res.hectares is not None else ""
            click.echo(f"  {name:<16}{res.polygons[i]:>9d} polygons{ha}")
