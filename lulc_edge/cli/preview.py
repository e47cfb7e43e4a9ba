"""``lulc-edge preview``, and the pictures ``run --preview`` draws after each map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import LulcEdgeError
from ..preview import write_previews
from .console import error, fail
from .options import PREVIEW_SIZE, SIZE


def draw_pictures(map_path: str | Path, scene: str | None, quiet: bool,
                  out_dir: str | None = None, size: int = PREVIEW_SIZE, fatal: bool = True,
                  qml: bool = False, true_colour: Any = None) -> None:
    """Write a map's pictures, list them unless ``quiet``; an error is one line (and exit 1
    unless ``fatal`` is False: a batch goes on)."""
    try:
        paths = write_previews(map_path, scene, out_dir, size, qml, true_colour)
    except LulcEdgeError as exc:
        if fatal:
            fail(str(exc))
        error(str(exc))
        return
    if not quiet:
        for p in paths.values():
            click.echo(f"wrote   {p}", err=True)


@click.command()
@click.argument("map_path", metavar="MAP", type=click.Path(dir_okay=False))
@click.option("--scene", default=None,
              help="The scene the map was made from (default: the map's LULC_EDGE_SOURCE_INPUT).")
@click.option("-o", "--out-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the pictures, created if missing (default: beside the map).")
@SIZE
@click.option("--qml", is_flag=True, help="Also write the QGIS style NAME.qml beside the map.")
@click.option("-q", "--quiet", is_flag=True, help="Do not list the files written.")
def preview(map_path: str, scene: str | None, out_dir: str | None, size: int, qml: bool,
            quiet: bool) -> None:
    """Pictures of a class map: NAME.mask.png, .overlay.png, .annotated.png, .stats.png.

    \b
    mask       class colours, nodata black, legend with names and %
    overlay    true colour (B4/B3/B2, 2-98 % stretch), classes blended at 50 %, legend
    annotated  true colour, each class labelled at its largest region (mean confidence
               when the map has a confidence file)
    stats      bars of class areas in % and ha
    """
    draw_pictures(map_path, scene, quiet, out_dir, size, qml=qml)
