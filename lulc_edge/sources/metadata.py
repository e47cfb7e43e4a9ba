"""Sentinel-2 band names and product metadata: level, processing baseline, additive offset."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import InputError

#: Every Sentinel-2 MSI band in the order of the product metadata's ``band_id`` (0..12).
S2_BANDS: tuple[str, ...] = (
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12",
)
#: Names a model may ask for: the 13 MSI bands and the L2A scene classification.
KNOWN_BANDS: frozenset[str] = frozenset((*S2_BANDS, "SCL"))
#: Native resolution (m) of each band: picks the file where a product has several (L2A R10m...).
NATIVE_RES: Mapping[str, int] = {
    "B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20, "B8": 10,
    "B8A": 20, "B9": 60, "B10": 60, "B11": 20, "B12": 20, "SCL": 20,
}
#: Processing baselines from this one on store L1C/L2A DN with an additive offset of -1000.
OFFSET_BASELINE = (4, 0)
DEFAULT_OFFSET = -1000

_BAND_RE = re.compile(r"^B0?([1-9]|1[0-2])$|^B(8A)$|^(SCL)$", re.IGNORECASE)
_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})(?:_|$)")
LEVEL_IN_NAME = re.compile(r"MSI(L1C|L2A)", re.IGNORECASE)


def normalize_band(name: str) -> str | None:
    """Canonical band name ("B01", "b1", " B8a " -> "B1", "B8A"; "scl" -> "SCL"), or None."""
    m = _BAND_RE.match(name.strip())
    if not m:
        return None
    if m.group(1):
        return f"B{int(m.group(1))}"
    return "B8A" if m.group(2) else "SCL"


@dataclass(frozen=True)
class ProductMetadata:
    """What the product's metadata says about level, baseline and the additive offset."""

    file: str | None = None            # metadata file it came from (for tags and messages)
    level: str | None = None           # "L1C" / "L2A"
    baseline: str | None = None        # "04.00"
    offsets: Mapping[str, int] | None = None  # explicit per-band additive offsets
    offset_applied: bool | None = None  # the distributor already removed the offset


def parse_baseline(text: str) -> tuple[int, int] | None:
    """"04.00" / "4.0" / "N0400" -> (4, 0)."""
    m = re.search(r"(\d{1,2})\.(\d{1,2})", text) or re.search(r"N?(\d{2})(\d{2})", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def resolve_offset(meta: ProductMetadata, option: int | None) -> tuple[int | dict[str, int], str]:
    """The additive offset to bring DN to the harmonised scale, and a sentence saying why.

    Order: an explicit ``option``; offsets listed in the metadata (BOA_ADD_OFFSET /
    RADIO_ADD_OFFSET); ``boa_offset_applied`` true -> 0; processing baseline >= 04.00 -> -1000,
    older -> 0; no metadata -> 0 (taken as harmonised).
    """
    if option is not None:
        return int(option), "stated by the caller (--boa-offset)"
    src = os.path.basename(meta.file) if meta.file else "product metadata"
    if meta.offsets:
        values = set(meta.offsets.values())
        off: int | dict[str, int] = values.pop() if len(values) == 1 else dict(meta.offsets)
        return off, f"{src}: offset values listed in the metadata"
    if meta.offset_applied:
        return 0, f"{src}: offset already applied by the distributor"
    if meta.baseline:
        b = parse_baseline(meta.baseline)
        if b is not None and b >= OFFSET_BASELINE:
            return DEFAULT_OFFSET, f"{src}: processing baseline {meta.baseline} >= 04.00"
        return 0, f"{src}: processing baseline {meta.baseline} < 04.00"
    return 0, "no product metadata: values taken as harmonised"


# --------------------------------------------------------------------------- metadata parsers

def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_mtd_xml(text: bytes | str, file: str) -> ProductMetadata:
    """MTD_MSIL2A.xml / MTD_MSIL1C.xml: PROCESSING_BASELINE, BOA_ADD_OFFSET / RADIO_ADD_OFFSET."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise InputError(f"{file}: unreadable product metadata ({e})") from None
    baseline = level = None
    offsets: dict[str, int] = {}
    for el in root.iter():
        tag = _local(el.tag)
        if tag == "PROCESSING_BASELINE" and el.text and baseline is None:
            baseline = el.text.strip()
        elif tag in ("PROCESSING_LEVEL", "PRODUCT_TYPE") and el.text and level is None:
            m = re.search(r"(L1C|L2A|1C|2A)", el.text.upper())
            level = ("L" + m.group(1)[-2:]) if m else None
        elif tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET") and el.text:
            try:
                offsets[S2_BANDS[int(el.get("band_id", ""))]] = int(float(el.text))
            except (ValueError, IndexError):
                continue
    if level is None:
        m = LEVEL_IN_NAME.search(os.path.basename(file))
        level = m.group(1).upper() if m else None
    return ProductMetadata(file=file, level=level, baseline=baseline, offsets=offsets or None)


def parse_stac_item(doc: Mapping[str, object], file: str) -> ProductMetadata | None:
    """STAC item (``item.json``): ``s2:processing_baseline``, ``earthsearch:boa_offset_applied``."""
    props = doc.get("properties")
    if not isinstance(props, Mapping) or "stac_version" not in doc:
        return None
    baseline = props.get("s2:processing_baseline")
    applied = props.get("earthsearch:boa_offset_applied")
    ptype = str(props.get("s2:product_type", "")) + str(props.get("s2:product_uri", ""))
    level = "L2A" if "2A" in ptype else "L1C" if "1C" in ptype else None
    return ProductMetadata(
        file=file, level=level, baseline=str(baseline) if baseline is not None else None,
        offset_applied=bool(applied) if applied is not None else None,
    )


def parse_tileinfo(doc: Mapping[str, object], file: str) -> ProductMetadata | None:
    """AWS ``tileInfo.json``: level and baseline from ``productName`` (..._N0205_...)."""
    name = doc.get("productName")
    if not isinstance(name, str):
        return None
    return from_name(name, file)


def from_name(name: str, file: str | None) -> ProductMetadata:
    lm = LEVEL_IN_NAME.search(name)
    bm = _BASELINE_IN_NAME.search(name)
    return ProductMetadata(
        file=file, level=lm.group(1).upper() if lm else None,
        baseline=f"{bm.group(1)}.{bm.group(2)}" if bm else None,
    )
