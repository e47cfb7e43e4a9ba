"""lulc_edge.stac: Sentinel-2 STAC items, item collections and item searches -> band hrefs.

An item (a local ``item.json`` or an ``http(s)://`` URL, fetched with the URL signers and
GDAL's HTTP headers of :mod:`lulc_edge.urlio`) becomes an :class:`ItemBands`: the model's
band names mapped to asset hrefs, and the BOA offset to add to the digital numbers with the
evidence for it. Both asset conventions are read: Earth Search (``coastal``, ``blue`` ...
``nir08``, ``swir22``, ``scl``, and their ``-jp2`` twins) and the Planetary Computer
(``B01`` ... ``B12``, ``B8A``, ``SCL``); a cloud-optimised GeoTIFF is preferred to a JPEG 2000.

Radiometry: from processing baseline 04.00 on, L1C/L2A digital numbers carry +1000, so the
offset to add is -1000 (the sign of ``BOA_ADD_OFFSET`` and of ``--boa-offset``). Catalogues
are known to disagree with their files here, so every statement an item makes is read and
recorded (:func:`decide_offset`); the caller's ``--boa-offset`` wins over all of them.

Searches (:func:`search`) speak the STAC API item-search protocol with urllib (one POST,
then the ``next`` links): no extra dependency for what is a JSON request and a loop.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from .errors import InputError
from .sources.fingerprint import file_fingerprint
from .sources.metadata import (
    DEFAULT_OFFSET,
    KNOWN_BANDS,
    OFFSET_BASELINE,
    normalize_band,
    parse_baseline,
)
from .sources.safe import missing_bands
from .urlio import fetch_json, is_url, remote_fingerprint, shown

#: Earth Search asset keys (their ``-jp2`` twins too) -> band names.
EARTH_SEARCH_KEYS: Mapping[str, str] = {
    "coastal": "B1", "blue": "B2", "green": "B3", "red": "B4", "rededge1": "B5",
    "rededge2": "B6", "rededge3": "B7", "nir": "B8", "nir08": "B8A", "nir09": "B9",
    "cirrus": "B10", "swir16": "B11", "swir22": "B12", "scl": "SCL",
}
#: Items a search returns at most (pages followed until then).
MAX_ITEMS = 500
_SEARCH_PAGE = 100


@dataclass(frozen=True)
class ItemBands:
    """One STAC item as the runtime needs it: band name -> href, and its radiometry."""

    id: str
    datetime: str | None
    hrefs: Mapping[str, str]          # "B2" -> "https://.../B02.tif" (unsigned)
    boa_offset: int                   # added to digital numbers (-1000 or 0)
    boa_reason: str                   # why, with every piece of evidence the item gives
    epsg: int | None = None
    bbox: tuple[float, ...] | None = None
    cloud_cover: float | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- assets

def _band_of(key: str, asset: Mapping[str, Any]) -> str | None:
    base = key[:-4] if key.lower().endswith("-jp2") else key
    band = EARTH_SEARCH_KEYS.get(base.lower()) or normalize_band(base)
    if band is None:  # other catalogues: the asset's single eo:bands name
        eo = asset.get("eo:bands")
        if isinstance(eo, list) and len(eo) == 1 and isinstance(eo[0], Mapping):
            band = normalize_band(str(eo[0].get("name", "")))
    return band if band in KNOWN_BANDS else None


def _rank(key: str, asset: Mapping[str, Any]) -> int:
    """Lower is better: a COG, then any GeoTIFF, then JPEG 2000 and the rest."""
    mtype = str(asset.get("type", "")).lower()
    href = str(asset.get("href", "")).lower().split("?")[0]
    if "cloud-optimized" in mtype:
        return 0
    if "tiff" in mtype or href.endswith((".tif", ".tiff")):
        return 1
    return 3 if key.lower().endswith("-jp2") or href.endswith(".jp2") else 2


def band_assets(doc: Mapping[str, Any], base: str | None = None
                ) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Band name -> (href, asset) of the best asset per band; relative hrefs resolved
    against ``base`` (the item's own URL or path)."""
    best: dict[str, tuple[int, str, Mapping[str, Any]]] = {}
    assets = doc.get("assets")
    for key, asset in (assets.items() if isinstance(assets, Mapping) else ()):
        if not isinstance(asset, Mapping) or not asset.get("href"):
            continue
        band = _band_of(str(key), asset)
        if band is None:
            continue
        rank = _rank(str(key), asset)
        if band not in best or rank < best[band][0]:
            best[band] = (rank, _resolve(str(asset["href"]), base), asset)
    return {b: (href, asset) for b, (_r, href, asset) in best.items()}


def _resolve(href: str, base: str | None) -> str:
    if is_url(href) or href.startswith("/") or base is None:
        return href
    if is_url(base):
        return urljoin(base, href)
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(base)), href))


# --------------------------------------------------------------------------- radiometry

def _raster_offsets(assets: Mapping[str, tuple[str, Mapping[str, Any]]]) -> set[int]:
    """DN offsets the reflectance assets' ``raster:bands`` state (offset / scale)."""
    found = set()
    for band, (_href, asset) in assets.items():
        rb = asset.get("raster:bands")
        if band == "SCL" or not isinstance(rb, list) or not rb or not isinstance(rb[0], Mapping):
            continue
        off, scale = rb[0].get("offset"), rb[0].get("scale") or 1
        if isinstance(off, (int, float)) and isinstance(scale, (int, float)) and scale:
            found.add(round(off / scale))
    return found


def decide_offset(props: Mapping[str, Any], assets: Mapping[str, tuple[str, Mapping[str, Any]]],
                  option: int | None = None) -> tuple[int, str]:
    """The offset to add to digital numbers and a sentence giving every piece of evidence.

    Order: ``option`` (``--boa-offset``); ``earthsearch:boa_offset_applied: true`` -> 0; one
    offset stated by the reflectance assets' ``raster:bands`` (offset / scale: -0.1 at 0.0001
    is -1000); ``s2:processing_baseline`` >= 04.00 -> -1000, older -> 0; no evidence -> 0.
    """
    evidence: list[tuple[str, int | None]] = []
    if option is not None:
        evidence.append(("stated by the caller (--boa-offset)", int(option)))
    applied = props.get("earthsearch:boa_offset_applied")
    if applied is not None:
        evidence.append((f"earthsearch:boa_offset_applied {str(applied).lower()}",
                         0 if applied is True else None))
    stated = _raster_offsets(assets)
    if stated:
        shown_offsets = "/".join(str(v) for v in sorted(stated))
        evidence.append((f"raster:bands offset {shown_offsets}",
                         stated.pop() if len(stated) == 1 else None))
    baseline = props.get("s2:processing_baseline")
    parsed = parse_baseline(str(baseline)) if baseline is not None else None
    if parsed is not None:
        newer = parsed >= OFFSET_BASELINE
        evidence.append((f"s2:processing_baseline {baseline} {'>=' if newer else '<'} 04.00",
                         DEFAULT_OFFSET if newer else 0))
    decided = [(what, v) for what, v in evidence if v is not None]
    if not decided:
        return 0, "no radiometric evidence in the item: values taken as harmonised"
    what, value = decided[0]
    others = [f"{w} ({'agrees' if v == value else 'disagrees' if v is not None else 'no claim'})"
              for w, v in evidence if w != what]
    return value, f"{what} -> {value}" + (f"; {'; '.join(others)}" if others else "")


# --------------------------------------------------------------------------- items

def item_bands(doc: Mapping[str, Any], base: str | None = None,
               band_names: Sequence[str] | None = None,
               boa_offset: int | None = None) -> ItemBands:
    """An :class:`ItemBands` from a parsed STAC Item; InputError naming the item when it is
    not one or lacks assets for ``band_names`` (SCL may be missing: ``--scl-fill`` decides)."""
    if not isinstance(doc, Mapping):
        doc = {}
    label = shown(base) if base else str(doc.get("id", "STAC item"))
    if doc.get("type") != "Feature" or not isinstance(doc.get("properties"), Mapping):
        raise InputError(f"{label}: not a STAC Item (no \"type\": \"Feature\" with properties)")
    props: Mapping[str, Any] = doc["properties"]
    assets = band_assets(doc, base)
    hrefs = {b: href for b, (href, _a) in assets.items()}
    miss = missing_bands(hrefs, band_names or ())
    if miss:
        raise InputError(f"{label}: item {doc.get('id')} has no assets for {', '.join(miss)} "
                         f"(bands found: {', '.join(sorted(hrefs)) or 'none'})")
    offset, reason = decide_offset(props, assets, boa_offset)
    epsg = _number(props.get("proj:epsg"), int)
    raw_bbox = doc.get("bbox")
    bbox = tuple(_number(v) for v in raw_bbox) if isinstance(raw_bbox, list) else ()
    tags = {"STAC_ITEM": str(doc.get("id")), "STAC_DATETIME": str(props.get("datetime")),
            "BOA_OFFSET": str(offset), "BOA_OFFSET_REASON": reason,
            "PROCESSING_BASELINE": str(props.get("s2:processing_baseline", "unknown")),
            "BAND_SOURCES": json.dumps({b: shown(h) for b, h in sorted(hrefs.items())})}
    if base:
        tags["STAC_ITEM_SOURCE"] = shown(base)
    return ItemBands(
        id=str(doc.get("id")), datetime=props.get("datetime"), hrefs=hrefs,
        boa_offset=offset, boa_reason=reason, epsg=epsg,
        bbox=bbox if bbox and None not in bbox else None,
        cloud_cover=_cloud(doc), tags=tags,
    )


def _number(value: Any, kind: type = float) -> Any:
    """``kind(value)``, or None for a missing or malformed value (metadata, not data)."""
    try:
        return kind(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _cloud(doc: Any) -> float | None:
    props = doc.get("properties") if isinstance(doc, Mapping) else None
    return _number(props.get("eo:cloud_cover")) if isinstance(props, Mapping) else None


def item_fingerprint(item: ItemBands) -> dict[str, list[Any]]:
    """What a resume or a batch's skip check compares to know an item's files are the same:
    per band file, ``[size, ETag, Last-Modified]`` for a URL (one one-byte request each,
    :func:`lulc_edge.urlio.remote_fingerprint`; ``s3://`` and the like: the URL alone) and
    what :func:`lulc_edge.sources.fingerprint.file_fingerprint` gives a local file, keyed by the
    href without
    its query."""
    out: dict[str, list[Any]] = {}
    for href in sorted(set(item.hrefs.values())):
        if is_url(href):
            fp = remote_fingerprint(href)
            out[fp["url"]] = [fp.get("size"), fp.get("etag"), fp.get("last_modified")]
        else:
            out.update(file_fingerprint(href))
    return out


def _most_recent_first(items: Iterable[ItemBands]) -> list[ItemBands]:
    return sorted(items, key=lambda it: it.datetime or "", reverse=True)


def read_items(src: str, band_names: Sequence[str] | None = None,
               boa_offset: int | None = None) -> list[ItemBands]:
    """The items of a STAC Item or ItemCollection at ``src`` (a path or URL), in file order."""
    doc = fetch_json(src)
    if not isinstance(doc, Mapping):
        raise InputError(f"{shown(src)}: not a STAC Item or ItemCollection")
    if doc.get("type") == "FeatureCollection":
        feats = doc.get("features")
        if not isinstance(feats, list) or not feats:
            raise InputError(f"{shown(src)}: an ItemCollection without items")
        return [item_bands(f, src, band_names, boa_offset) for f in feats]
    return [item_bands(doc, src, band_names, boa_offset)]


def search(api_url: str, collection: str, bbox: Sequence[float] | None = None,
           datetime: str | None = None, max_cloud: float | None = None,
           band_names: Sequence[str] | None = None, boa_offset: int | None = None,
           max_items: int = MAX_ITEMS) -> list[ItemBands]:
    """Items of ``collection`` a STAC API finds (POST ``/search``, ``next`` links followed up
    to ``max_items``), most recent first. ``max_cloud`` is sent as a ``query`` on
    ``eo:cloud_cover`` and checked again here, for APIs that ignore it."""
    body: dict[str, Any] = {"collections": [collection], "limit": _SEARCH_PAGE}
    if bbox is not None:
        body["bbox"] = [float(v) for v in bbox]
    if datetime:
        body["datetime"] = datetime
    if max_cloud is not None:
        body["query"] = {"eo:cloud_cover": {"lte": max_cloud}}
    url: str | None = api_url.rstrip("/") + "/search"
    post: dict[str, Any] | None = body
    found: list[ItemBands] = []
    seen = 0
    while url and seen < max_items:
        page = fetch_json(url, post)
        feats = page.get("features") if isinstance(page, Mapping) else None
        if not isinstance(feats, list):
            raise InputError(f"{shown(url)}: not a STAC item search response")
        for f in feats[: max_items - seen]:
            cloud = _cloud(f)
            if max_cloud is None or cloud is None or cloud <= max_cloud:
                found.append(item_bands(f, url, band_names, boa_offset))
        seen += len(feats)
        url, post = _next_page(page, post) if feats else (None, post)
    return _most_recent_first(found)


def _next_page(page: Mapping[str, Any], body: dict[str, Any] | None
               ) -> tuple[str | None, dict[str, Any] | None]:
    """The ``next`` link of a search page: its URL and the body to POST there (None: GET)."""
    for link in page.get("links") or ():
        if isinstance(link, Mapping) and link.get("rel") == "next" and link.get("href"):
            nxt = link.get("body")
            if str(link.get("method", "POST")).upper() == "GET":
                return str(link["href"]), None
            merged = {**(body or {}), **nxt} if link.get("merge") and nxt else (nxt or body)
            return str(link["href"]), merged
    return None, body
