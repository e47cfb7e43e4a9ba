"""lulc_edge.commands_eval: ``lulc-edge evaluate`` and ``lulc-edge stats``, thin click layers
over :mod:`lulc_edge.evaluate` and :mod:`lulc_edge.zonal` (registered by cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import click

from .errors import LulcEdgeError
from .raster import write_atomic

#: Report formats of ``-o``, by file name ending.
FORMATS = {".json": "json", ".csv": "csv", ".md": "md", ".markdown": "md"}


def _fail(msg: str) -> NoReturn:
    from .cli import _fail as fail

    fail(msg)
    raise SystemExit(1)  # pragma: no cover - _fail exits


def _format(output: str | None) -> str | None:
    if output is None:
        return None
    fmt = FORMATS.get(Path(output).suffix.lower())
    if fmt is None:
        raise click.BadParameter(f"{output}: unknown report format (use .json, .csv or .md)",
                                 param_hint="'-o' / '--output'")
    return fmt


def _emit(report: Any, output: str | None, as_json: bool, quiet: bool) -> None:
    """Table on stdout (or JSON with --json), and the report file of ``-o`` by its ending."""
    fmt = _format(output)
    if output is not None:
        text = {"json": lambda: json.dumps(report.as_dict(), indent=2) + "\n",
                "csv": report.to_csv, "md": report.to_markdown}[fmt]()
        try:
            write_atomic(Path(output), text)
        except LulcEdgeError as exc:
            _fail(str(exc))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    elif not quiet:
        click.echo(report.to_markdown(), nl=False)
    if output is not None and not quiet:
        click.echo(f"wrote   {output}", err=True)


def _setup() -> None:
    from .cli import _setup_logging

    _setup_logging(0)


@click.command()
@click.argument("pairs", nargs=-1, metavar="MAP REFERENCE [MAP REFERENCE]...")
@click.option("--classes", "classes_text", default=None, metavar="CODE=CLASS,...",
              help="Reference codes to the map's classes (names or values), e.g. "
                   "4=Water,1=Built-up_Area; codes not given are left out and counted. "
                   "Default: codes are the map's class values (or names, for samples).")
@click.option("--binary", default=None, metavar="CLASS",
              help="Evaluate CLASS against the rest (every other map class); reference "
                   "codes may map to 'rest', e.g. --classes 4=Water,0=rest.")
@click.option("--on", type=click.Choice(["map", "reference"]), default="map",
              show_default=True,
              help="Grid a label raster is compared on (nearest resampling of the other).")
@click.option("--field", default="class", show_default=True,
              help="Class column of reference samples.")
@click.option("--crs", default=None, metavar="CRS",
              help="CRS of CSV coordinates (default EPSG:4326), or of vector files that "
                   "carry none.")
@click.option("--reference-nodata", default=None, metavar="VALUE|none",
              help="Override the label raster's nodata value ('none': every value counts).")
@click.option("--stratified", is_flag=True,
              help="Samples drawn by map class: add area-weighted accuracies and class area "
                   "estimates with standard errors (Olofsson et al. 2014).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Also write the report: .json, .csv (long format) or .md, by extension.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing (with -o: only the file).")
def evaluate(pairs: tuple[str, ...], classes_text: str | None, binary: str | None, on: str,
             field: str, crs: str | None, reference_nodata: str | None, stratified: bool,
             output: str | None, as_json: bool, quiet: bool) -> None:
    """Accuracy of class maps against reference labels.

    REFERENCE is a label raster (any grid and CRS) or reference samples: points or polygons
    in a GeoJSON, GeoPackage or other vector file (the vector extra: pip install
    'lulc-edge[vector]') or a CSV with columns x,y or lon,lat and a class column. Prints the
    confusion matrix (rows reference, columns map), overall accuracy, Cohen's kappa, per-class
    precision (user's accuracy), recall (producer's accuracy), F1, IoU and support, and their
    macro and support-weighted averages. Map nodata, reference nodata and unmapped codes are
    left out and counted. Several MAP REFERENCE pairs give a report each and a pooled one.

    \b
    Examples:
      lulc-edge evaluate scene.lulc.tif labels.tif
      lulc-edge evaluate scene.lulc.tif labels.tif --classes 10=Forest,40=Crop,80=Water
      lulc-edge evaluate flood.lulc.tif flood.labels.tif --binary Water \\
          --classes 4=Water,255=rest --reference-nodata none
      lulc-edge evaluate map.tif samples.gpkg --field lc --stratified -o report.md
      lulc-edge evaluate map.tif points.csv --crs EPSG:32633 --json
      lulc-edge evaluate a.lulc.tif a.labels.tif b.lulc.tif b.labels.tif -o all.csv
    """
    from .evaluate import FILE_NODATA, evaluate_pairs, parse_classes

    _setup()
    if not pairs or len(pairs) % 2:
        raise click.UsageError("expected MAP REFERENCE pairs"
                               + (f", got {len(pairs)} paths" if pairs else ""))
    _format(output)
    try:
        mapping = parse_classes(classes_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--classes") from None
    nodata: Any = FILE_NODATA
    if reference_nodata is not None:
        try:
            nodata = None if reference_nodata.lower() == "none" else float(reference_nodata)
        except ValueError:
            raise click.BadParameter(f"{reference_nodata!r} is not a number or 'none'",
                                     param_hint="--reference-nodata") from None
    try:
        report = evaluate_pairs(list(zip(pairs[::2], pairs[1::2], strict=True)),
                                classes=mapping, binary=binary, on=on, field=field, crs=crs,
                                reference_nodata=nodata, stratified=stratified)
    except LulcEdgeError as exc:
        _fail(str(exc))
    _emit(report, output, as_json, quiet)


@click.command()
@click.argument("map_path", metavar="MAP", type=click.Path(dir_okay=False))
@click.option("--zones", type=click.Path(dir_okay=False), default=None,
              help="Polygons (GeoJSON, GeoPackage...; any CRS): class areas per zone too.")
@click.option("--field", default="name", show_default=True,
              help="Zone attribute that keys the zones (equal values form one zone).")
@click.option("--crs", default=None, metavar="CRS",
              help="CRS of zones whose file carries none (default: the map's).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Also write the table: .json, .csv or .md, by extension.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing (with -o: only the file).")
def stats(map_path: str, zones: str | None, field: str, crs: str | None, output: str | None,
          as_json: bool, quiet: bool) -> None:
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
    from .zonal import class_areas

    _setup()
    _format(output)
    try:
        result = class_areas(map_path, zones, field, crs)
    except LulcEdgeError as exc:
        _fail(str(exc))
    _emit(result, output, as_json, quiet)


@click.command()
@click.argument("map_path", metavar="MAP", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Polygons file: .gpkg (default: MAP with .gpkg), .geojson, .fgb or .shp.")
@click.option("--min-area", type=click.FloatRange(min=0), default=0.0, show_default=True,
              metavar="HA",
              help="First sieve regions smaller than this (hectares) into their largest "
                   "neighbour.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No summary.")
def vectorize(map_path: str, output: str | None, min_area: float, overwrite: bool,
              as_json: bool, quiet: bool) -> None:
    """Polygons of a class map, with fields class, class_id and area_ha.

    Regions are 4-connected; the map is polygonised in row chunks and regions cut by a chunk
    edge are merged, so the polygons do not depend on the chunks. area_ha is each polygon's
    pixels times their ground area (on the ellipsoid for geographic maps). Needs the vector
    extra: pip install 'lulc-edge[vector]'.

    \b
    Examples:
      lulc-edge vectorize scene.lulc.tif                   # -> scene.lulc.gpkg
      lulc-edge vectorize scene.lulc.tif -o map.gpkg --min-area 0.5
    """
    from .vectorize import vectorize as run_vectorize

    _setup()
    out = output or str(Path(map_path).with_suffix(".gpkg"))
    try:
        res = run_vectorize(map_path, out, min_area, overwrite)
    except LulcEdgeError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(res.as_dict(), indent=2))
    elif not quiet:
        click.echo(f"{res.output}: {sum(res.polygons)} polygons"
                   + (f", {res.sieved_pixels} px sieved" if min_area else ""))
        for i, name in enumerate(res.classes):
            ha = f"{res.hectares[i]:>12.2f} ha" if res.hectares is not None else ""
            click.echo(f"  {name:<16}{res.polygons[i]:>9d} polygons{ha}")
