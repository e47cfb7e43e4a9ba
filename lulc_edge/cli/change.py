"""``lulc-edge change``: a thin click layer over :mod:`lulc_edge.change`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import LulcEdgeError
from .console import fail

#: Transitions listed in the printed summary.
SUMMARY_ROWS = 10


def _summary(res) -> None:  # noqa: ANN001 - a ChangeResult
    compared = int(res.pixels.sum())
    pct = 100.0 * res.changed / compared if compared else 0.0
    click.echo(f"{res.output}: {compared:,} px compared, {res.changed:,} changed ({pct:.2f} %), "
               f"{res.not_compared:,} not compared (nodata or cloud in either map)")
    if res.no_area:
        click.echo(f"  {res.no_area}")
    for r in res.transitions(changed_only=True)[:SUMMARY_ROWS]:
        if not r["pixels"]:
            break
        ha = "" if r["hectares"] is None else f"{r['hectares']:>14,.2f} ha"
        click.echo(f"  {r['from'] + ' -> ' + r['to']:<32}{r['pixels']:>12,} px{ha}")


@click.command("change")
@click.argument("before", metavar="A", type=click.Path(dir_okay=False))
@click.argument("after", metavar="B", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The change map (GeoTIFF): code from x K + to, nodata 255.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Write the transition matrix as JSON ('-': on stdout).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Write the transitions as CSV: from,to,code,pixels,hectares.")
@click.option("--picture", type=click.Path(dir_okay=False), default=None, metavar="PNG",
              help="Draw the change map with a legend of the largest transitions "
                   "(needs Pillow: pip install 'lulc-edge[serve]').")
@click.option("--overwrite", is_flag=True, help="Replace an existing change map.")
@click.option("-q", "--quiet", is_flag=True, help="No summary.")
def change(before: str, after: str, output: str, json_path: str | None, csv_path: str | None,
           picture: str | None, overwrite: bool, quiet: bool) -> None:
    """What became what between class maps A and B (same grid, same classes).

    Every pixel that holds a class in both maps gets the transition's code; pixels that are
    nodata or Cloud in either map are not compared. The change map names each code
    ("Forest -> Crop") in its tags and colours it as the class it became (unchanged: grey).
    Areas are each row's ground area (on the ellipsoid for geographic maps).

    \b
    Examples:
      lulc-edge change 2023.lulc.tif 2024.lulc.tif -o change.tif
      lulc-edge change 2023.lulc.tif 2024.lulc.tif -o change.tif \\
          --csv change.csv --json change.json --picture change.png
    """
    from ..change import change as run_change
    from ..change import change_picture
    from ..files import write_atomic

    try:
        if picture is not None:
            from ..preview import require_pillow

            require_pillow()  # before the work, not after it
        res = run_change(before, after, output, overwrite=overwrite)
        text = json.dumps(res.as_dict(), indent=2) + "\n"
        if json_path not in (None, "-"):
            write_atomic(Path(json_path), text)
        if csv_path is not None:
            write_atomic(Path(csv_path), res.to_csv())
        if picture is not None:
            change_picture(res.output, picture)
    except LulcEdgeError as exc:
        fail(str(exc))
    if json_path == "-":
        click.echo(text, nl=False)
    elif not quiet:
        _summary(res)
