"""``lulc-edge evaluate``: :mod:`lulc_edge.evaluate`'s accuracy report on the command line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from ..errors import LulcEdgeError
from .console import fail, setup_logging
from .options import TABLE, Group, TableArgs, use
from .reports import emit, report_format


@dataclass(frozen=True)
class CompareArgs:
    """How maps are compared with their references."""

    classes_text: str | None
    binary: str | None
    on: str
    field: str
    crs: str | None
    reference_nodata: str | None
    stratified: bool


COMPARE = Group("compare", CompareArgs, (
    click.option("--classes", "classes_text", default=None, metavar="CODE=CLASS,...",
                 help="Reference codes to the map's classes (names or values), e.g. "
                      "4=Water,1=Built-up_Area; codes not given are left out and counted. "
                      "Default: codes are the map's class values (or names, for samples)."),
    click.option("--binary", default=None, metavar="CLASS",
                 help="Evaluate CLASS against the rest (every other map class); reference "
                      "codes may map to 'rest', e.g. --classes 4=Water,0=rest."),
    click.option("--on", type=click.Choice(["map", "reference"]), default="map",
                 show_default=True,
                 help="Grid a label raster is compared on (nearest resampling of the other)."),
    click.option("--field", default="class", show_default=True,
                 help="Class column of reference samples."),
    click.option("--crs", default=None, metavar="CRS",
                 help="CRS of CSV coordinates (default EPSG:4326), or of vector files that "
                      "carry none."),
    click.option("--reference-nodata", default=None, metavar="VALUE|none",
                 help="Override the label raster's nodata value ('none': every value counts)."),
    click.option("--stratified", is_flag=True,
                 help="Samples drawn by map class: add area-weighted accuracies and class area "
                      "estimates with standard errors (Olofsson et al. 2014)."),
))


@click.command()
@click.argument("pairs", nargs=-1, metavar="MAP REFERENCE [MAP REFERENCE]...")
@use(COMPARE, TABLE)
def evaluate(pairs: tuple[str, ...], compare: CompareArgs, report: TableArgs) -> None:
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
    from ..evaluate import evaluate_pairs, parse_classes

    setup_logging(0)
    if not pairs or len(pairs) % 2:
        raise click.UsageError("expected MAP REFERENCE pairs"
                               + (f", got {len(pairs)} paths" if pairs else ""))
    report_format(report.output)
    try:
        mapping = parse_classes(compare.classes_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--classes") from None
    try:
        result = evaluate_pairs(list(zip(pairs[::2], pairs[1::2], strict=True)),
                                classes=mapping, binary=compare.binary, on=compare.on,
                                field=compare.field, crs=compare.crs,
                                reference_nodata=_nodata(compare.reference_nodata),
                                stratified=compare.stratified)
    except LulcEdgeError as exc:
        fail(str(exc))
    emit(result, report)


def _nodata(text: str | None) -> Any:
    """--reference-nodata: a number, 'none' (None: every value counts) or, not given, the
    file's own nodata."""
    from ..evaluate import FILE_NODATA

    if text is None:
        return FILE_NODATA
    try:
        return None if text.lower() == "none" else float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a number or 'none'",
                                 param_hint="--reference-nodata") from None
