"""The opener of STAC items: a Sentinel-2 item read band by band from its assets' hrefs.

What it claims (decided by the input string alone, no request):

* ``item.json`` -- a local file whose name ends in ``.json`` (a STAC Item);
* ``https://.../item.json`` -- a URL whose path ends in ``.json``;
* ``stac:ANYTHING`` -- a path or URL read as a STAC item whatever its name (an API's item URL,
  ``stac:https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a/items/ID``): a
  bare URL not ending in ``.json`` stays a single raster (:mod:`.remote`);
* ``collection.json#ITEM_ID`` -- one item of an ItemCollection (``lulc-edge run`` expands a
  collection into one such input per item).

The source is a :class:`BandFolderSource` on the item's ``{band: href}``: remote hrefs are
read through :class:`lulc_edge.remote.RemoteDataset` (GDAL's remote settings, retries, one
line naming the URL on failure), local ones with rasterio. The radiometry is the one
:func:`lulc_edge.stac.decide_offset` decides (``--boa-offset`` wins), recorded with its
reason in the output's tags; the fingerprint is :func:`lulc_edge.stac.item_fingerprint`
(ETag / Last-Modified of every band file), so a changed file restarts a resume.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import rasterio

from ..errors import InputError
from ..urlio import fetch_json, is_url, shown
from .base import DEFAULT_BANDS, NO_OPTIONS, Opener, SourceOptions
from .folder import BandFolderSource
from .metadata import ProductMetadata
from .safe import BandFiles

PREFIX = "stac:"


def split(src: str) -> tuple[str, str | None]:
    """(where the JSON is, the item id after ``#`` or None), without the ``stac:`` prefix."""
    target = src[len(PREFIX):] if src.startswith(PREFIX) else src
    target, _, wanted = target.partition("#")
    return target, wanted or None


def is_stac(src: str) -> bool:
    """A STAC item input (see the module's docstring): by its name, no request made."""
    if src.startswith(PREFIX):
        return True
    target, _ = split(src)
    path = target.split("?", 1)[0] if is_url(target) else target
    return path.lower().endswith(".json")


def is_local_item(src: str) -> bool:
    """A plain local ``*.json`` (no prefix, no ``#id``): checked, globbed as a file."""
    return is_stac(src) and not src.startswith(PREFIX) and "#" not in src \
        and not is_url(src)


def item_doc(src: str) -> tuple[Mapping[str, Any], str]:
    """The Item JSON ``src`` addresses and where it was read (hrefs are relative to it)."""
    target, wanted = split(src)
    doc = fetch_json(target)
    if isinstance(doc, Mapping) and doc.get("type") == "FeatureCollection":
        feats = [f for f in doc.get("features") or () if isinstance(f, Mapping)]
        ids = [str(f.get("id")) for f in feats]
        if wanted is None:
            raise InputError(f"{shown(target)}: an ItemCollection of {len(feats)} items: "
                             f"address one as {shown(target)}#ITEM_ID (ids: "
                             f"{', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''})")
        if wanted not in ids:
            raise InputError(f"{shown(target)}: no item {wanted!r} in this ItemCollection")
        return feats[ids.index(wanted)], target
    if wanted is not None and isinstance(doc, Mapping) and str(doc.get("id")) != wanted:
        raise InputError(f"{shown(target)}: the item is {doc.get('id')!r}, not {wanted!r}")
    return doc, target


class StacItemSource(BandFolderSource):
    """One STAC item's band files on the finest band's grid (see the module docstring)."""

    def __init__(self, path: str, band_names: Sequence[str] = DEFAULT_BANDS,
                 options: SourceOptions = NO_OPTIONS):
        from ..stac import item_bands  # lulc_edge.stac imports this package

        doc, where = item_doc(path)
        self.item = item_bands(doc, where, band_names, options.boa_offset)
        props = doc.get("properties") or {}
        meta = ProductMetadata(level=_level(props, self.item.hrefs),
                               baseline=props.get("s2:processing_baseline"))
        found = BandFiles("stac", dict(self.item.hrefs), meta)
        super().__init__(path, band_names,
                         dataclasses.replace(options, boa_offset=self.item.boa_offset), found)

    def _setup(self) -> None:
        super()._setup()
        self._tags.update(self.item.tags)  # the item's id, datetime, full band URLs
        self._tags["BOA_OFFSET_SOURCE"] = self.item.boa_reason

    def _open_band(self, path: str, label: str) -> rasterio.io.DatasetReader:
        if not is_url(path):
            return super()._open_band(path, label)
        from ..remote import RemoteDataset  # rasterio's GDAL, loaded on first remote use

        return RemoteDataset(path)

    def fingerprint(self) -> dict[str, list]:
        from ..stac import item_fingerprint

        return item_fingerprint(self.item)


def _level(props: Mapping[str, Any], hrefs: Mapping[str, str]) -> str | None:
    kind = str(props.get("s2:product_type", "")).upper()
    if kind.endswith(("2A", "L2A")) or "SCL" in hrefs:
        return "L2A"
    return "L1C" if kind.endswith(("1C", "L1C")) else None


def output_name(src: str) -> str | None:
    """``<item id>.lulc.tif`` for a catalogue input, None for others. The id is the ``#ID``
    of a collection's item, the last path segment of a ``stac:`` URL not ending in ``.json``
    (a STAC API's ``/collections/C/items/ID``), else the item's own (its JSON read)."""
    if not is_stac(src):
        return None
    target, named = split(src)
    path = shown(target).rstrip("/")
    if named is None and src.startswith(PREFIX) and is_url(target) \
            and not path.lower().endswith(".json"):
        named = path.rsplit("/", 1)[-1]
    return f"{named or item_id(src)}.lulc.tif"


def stac_fingerprint(src: str, band_names: Sequence[str] = DEFAULT_BANDS) -> dict[str, list]:
    """The fingerprint of the item ``src`` addresses without opening its rasters (a batch's
    skip check): ETag / Last-Modified / size of each band file."""
    from ..stac import item_bands, item_fingerprint

    doc, where = item_doc(src)
    return item_fingerprint(item_bands(doc, where, band_names))


def item_id(src: str) -> str:
    """The id of the item ``src`` addresses (its JSON read)."""
    named = split(src)[1]
    if named:
        return named
    doc, _ = item_doc(src)
    return str(doc.get("id") if isinstance(doc, Mapping) else None)


#: Local item files: checked to exist, globbed by batches.
FILE = Opener("stac-file", is_local_item, StacItemSource, band_files=True,
              fingerprint=stac_fingerprint)
#: URLs, ``stac:`` inputs and ``collection.json#ID``: never checked on the local filesystem.
OPENER = Opener("stac", is_stac, StacItemSource, local=False, band_files=True,
                fingerprint=stac_fingerprint)
