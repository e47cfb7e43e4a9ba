"""``lulc-edge run``'s catalogue inputs: STAC items, ItemCollections and item searches.

An ItemCollection given to ``run`` becomes one input per item (``collection.json#ID``), most
recent first; ``--stac-api`` searches a STAC API and adds one input per item found
(``stac:API/collections/C/items/ID``, which a rerun or ``--resume`` finds again). Each
catalogue input's map is named ``<item id>.lulc.tif`` (in ``--out-dir``, else the working
directory), so the same item always lands on the same output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click
from rasterio.crs import CRS

from .. import stac, urlio
from ..batch import Job
from ..errors import InputError, OutputError
from ..sources.stac_item import PREFIX, is_stac, output_name, split
from .options import AREA, AreaArgs, Group


@dataclass(frozen=True)
class StacArgs(AreaArgs):
    """The area of interest (``AreaArgs``: --bbox, --bbox-crs, --aoi), a STAC API search
    (``stac_api`` None: no search) and the URL signer. A search looks for items covering the
    area; the maps are clipped to it."""

    stac_api: str | None
    collection: str | None
    datetime: str | None
    max_cloud: float | None
    sign: str | None

    def search_bbox(self) -> tuple[float, float, float, float] | None:
        """The area's bounds in lon/lat (what a STAC search takes), None without an area."""
        area = self.area()
        return None if area is None else area.bounds(CRS.from_epsg(4326))


STAC = Group("stac", StacArgs, AREA.options + (
    click.option("--stac-api", metavar="URL", default=None,
                 help="Search this STAC API and map every item found (needs --collection and "
                      "--out-dir), e.g. https://earth-search.aws.element84.com/v1 or "
                      "https://planetarycomputer.microsoft.com/api/stac/v1."),
    click.option("--collection", metavar="NAME", default=None,
                 help="Collection searched, e.g. sentinel-2-l2a."),
    click.option("--datetime", metavar="A/B", default=None,
                 help="Dates searched (RFC 3339 interval), e.g. 2024-06-01/2024-08-31."),
    click.option("--max-cloud", type=click.FloatRange(0, 100), default=None,
                 help="Only items with eo:cloud_cover <= this percentage."),
    click.option("--sign", metavar="MODULE:FUNCTION", default=None, envvar=urlio.SIGN_ENV,
                 help="Sign every URL read with this function (url -> signed url), e.g. "
                      f"planetary_computer:sign for the Planetary Computer. Also from "
                      f"{urlio.SIGN_ENV}."),
))


def use_signer(args: StacArgs) -> None:
    """Sign with ``--sign``'s function from now on, in this process and the batch's worker
    processes (through :data:`lulc_edge.urlio.SIGN_ENV`); InputError naming it when it cannot
    be loaded."""
    if args.sign:
        urlio.signer_from_spec(args.sign)
        os.environ[urlio.SIGN_ENV] = args.sign


def searched(args: StacArgs, out_dir: str | None, need_out_dir: bool = True) -> list[str]:
    """The inputs a ``--stac-api`` search finds, most recent first ([] without a search);
    ``need_out_dir``: each becomes its own map, so --out-dir must say where."""
    given = [n for n, v in (("--collection", args.collection), ("--datetime", args.datetime),
                            ("--max-cloud", args.max_cloud)) if v is not None]
    if args.stac_api is None:
        if given:
            raise click.UsageError(f"{', '.join(given)} describe a search: give --stac-api URL")
        return []
    if args.collection is None:
        raise click.UsageError("--stac-api needs --collection (e.g. sentinel-2-l2a)")
    if out_dir is None and need_out_dir:
        raise click.UsageError("--stac-api maps every item found: give --out-dir DIR")
    api = args.stac_api.rstrip("/")
    found = stac.search(api, args.collection, args.search_bbox(), args.datetime,
                        args.max_cloud)
    if not found:
        raise InputError(f"{urlio.shown(api)}: no {args.collection} item found for this search")
    return [f"{PREFIX}{api}/collections/{args.collection}/items/{it.id}" for it in found]


def expand(inputs: Sequence[str]) -> list[str]:
    """Each ItemCollection among ``inputs`` as one ``PATH#ID`` input per item, most recent
    first; other inputs as they are."""
    out: list[str] = []
    for src in inputs:
        target, wanted = split(src)
        if not is_stac(src) or wanted is not None:
            out.append(src)
            continue
        doc = urlio.fetch_json(target)
        if not (isinstance(doc, dict) and doc.get("type") == "FeatureCollection"):
            out.append(src)
            continue
        feats = [f for f in doc.get("features") or () if isinstance(f, dict)]
        if not feats:
            raise InputError(f"{urlio.shown(target)}: an ItemCollection without items")
        feats.sort(key=lambda f: str((f.get("properties") or {}).get("datetime") or ""),
                   reverse=True)
        out += [f"{src}#{f.get('id')}" for f in feats]
    return out


def name_jobs(jobs: Sequence[Job], out_dir: str | None, output: str | None) -> list[Job]:
    """Catalogue inputs' outputs renamed ``<item id>.lulc.tif`` (in ``out_dir``, else the
    working directory) unless ``-o`` names it; OutputError when two inputs would write one
    file."""
    out, seen = [], {}
    for job in jobs:
        name = None if output else output_name(job.input)
        dst = Path(out_dir or ".") / name if name else Path(job.output)
        key = str(dst.resolve())
        if key in seen:
            raise OutputError(f"{dst}: both {seen[key]} and {job.input} would write this output")
        seen[key] = job.input
        out.append(Job(job.input, str(dst)))
    return out

