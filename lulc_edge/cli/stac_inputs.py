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

from .. import stac, urlio
from ..batch import Job
from ..errors import InputError, OutputError
from ..sources.stac_item import PREFIX, is_stac, output_name, split
from .options import Group


@dataclass(frozen=True)
class StacArgs:
    """A STAC API search (all None: no search) and the URL signer."""

    stac_api: str | None
    collection: str | None
    bbox: tuple[float, ...] | None
    datetime: str | None
    max_cloud: float | None
    sign: str | None


def _bbox(_ctx: click.Context, _param: click.Parameter, text: str | None
          ) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
        raise click.BadParameter(f"expected W,S,E,N in degrees (west < east, south < north), "
                                 f"got {text!r}")
    return box


STAC = Group("stac", StacArgs, (
    click.option("--stac-api", metavar="URL", default=None,
                 help="Search this STAC API and map every item found (needs --collection and "
                      "--out-dir), e.g. https://earth-search.aws.element84.com/v1 or "
                      "https://planetarycomputer.microsoft.com/api/stac/v1."),
    click.option("--collection", metavar="NAME", default=None,
                 help="Collection searched, e.g. sentinel-2-l2a."),
    click.option("--bbox", metavar="W,S,E,N", default=None, callback=_bbox,
                 help="Area searched, in degrees (EPSG:4326), e.g. -8.1,31.5,-7.9,31.7."),
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


def searched(args: StacArgs, out_dir: str | None) -> list[str]:
    """The inputs a ``--stac-api`` search finds, most recent first ([] without a search)."""
    given = [n for n, v in (("--collection", args.collection), ("--bbox", args.bbox),
                            ("--datetime", args.datetime), ("--max-cloud", args.max_cloud))
             if v is not None]
    if args.stac_api is None:
        if given:
            raise click.UsageError(f"{', '.join(given)} describe a search: give --stac-api URL")
        return []
    if args.collection is None:
        raise click.UsageError("--stac-api needs --collection (e.g. sentinel-2-l2a)")
    if out_dir is None:
        raise click.UsageError("--stac-api maps every item found: give --out-dir DIR")
    api = args.stac_api.rstrip("/")
    found = stac.search(api, args.collection, args.bbox, args.datetime, args.max_cloud)
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

