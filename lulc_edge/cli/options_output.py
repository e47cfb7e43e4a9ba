"""The options of what ``run`` writes (the map, the files beside it, the polygons), and the
polygons' options shared with ``vectorize``; a group as in :mod:`lulc_edge.cli.options`."""

from __future__ import annotations

from dataclasses import dataclass, replace

import click

from .. import options as opts
from ..errors import InputError
from ..spec import RunOptions
from .options import Group

MIN_AREA = click.option(
    "--min-area", type=opts.VECTOR_MIN_AREA.click_type(), default=0.0, show_default=True,
    metavar="HA", help="Polygons: first sieve regions smaller than this (hectares) into their "
                       "largest neighbour.")
SIMPLIFY = click.option(
    "--simplify", type=opts.VECTOR_SIMPLIFY.click_type(), default=0.0, show_default=True,
    metavar="METRES", help="Polygons: simplify boundaries by about this distance, shared "
                           "edges kept shared (0: pixel edges, exact).")
#: The polygon formats, in words for a help text.
FORMATS = ".gpkg, .parquet (GeoParquet, where GDAL has the driver), .fgb, .geojson"


# ---------------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class OutputArgs:
    output: str | None
    confidence: bool
    probs: bool
    qml: bool
    cog: bool
    overwrite: bool
    resume: bool
    preview: bool
    vector: str | None = None
    min_area: float = 0.0
    simplify: float = 0.0

    def apply(self, options: RunOptions) -> RunOptions:
        """``options`` with the polygons asked for; InputError for their options without
        ``--vector``."""
        if self.vector is None:
            if self.min_area or self.simplify:
                raise InputError("--min-area and --simplify shape the polygons of --vector: "
                                 "give --vector too (or use lulc-edge vectorize)")
            return options
        if self.vector == "":
            raise InputError("--vector: empty path")
        return replace(options, vector=self.vector, vector_min_area=self.min_area,
                       vector_simplify=self.simplify)


OUTPUTS = Group("outputs", OutputArgs, (
    click.option("-o", "--output", type=click.Path(dir_okay=False),
                 help="Output GeoTIFF (default: SCENE.lulc.tif beside the input; a STAC "
                      "item's: <item id>.lulc.tif in the working directory)."),
    click.option("--confidence", is_flag=True,
                 help="Also write SCENE.lulc.confidence.tif: the chosen class's probability in "
                      "percent (0-100; 255 = nodata)."),
    click.option("--probs", is_flag=True,
                 help="Also write SCENE.lulc.probs.tif (float32 per class; NaN = nodata)."),
    click.option("--qml", is_flag=True,
                 help="Also write SCENE.lulc.qml, the QGIS style (class names, colours) QGIS "
                      "loads with the map."),
    click.option("--cog", is_flag=True, help="Write Cloud-Optimized GeoTIFFs (GDAL COG driver)."),
    click.option("--overwrite", is_flag=True,
                 help="Replace an existing output, or start over after an interrupted run."),
    click.option("--resume", is_flag=True, help="Continue an interrupted run from its journal."),
    click.option("--preview", is_flag=True,
                 help="Also write the pictures of each map (see lulc-edge preview)."),
    click.option("--vector", default=None, metavar="FILE|.EXT",
                 help="Also write the map's polygons (as lulc-edge vectorize) to FILE, format "
                      f"by extension ({FORMATS}); an extension alone (--vector .gpkg) writes "
                      "SCENE.lulc.gpkg beside each map: a batch's form (FILE only for one "
                      "input). The map stays if they fail."),
    MIN_AREA, SIMPLIFY,
))
