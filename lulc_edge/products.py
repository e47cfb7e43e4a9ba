"""lulc_edge.products: find Sentinel-2 band files and product metadata (folder, .SAFE, .zip)."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from .errors import InputError

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
# a band token at the end of a file stem, optionally followed by a resolution suffix
_FILE_RE = re.compile(
    r"(?:^|[_\-.])(B0?[1-9]|B1[0-2]|B8A|SCL)(?:_(10|20|60)M)?$", re.IGNORECASE
)
_NOT_RASTER = {".json", ".xml", ".txt", ".md", ".html", ".ovr", ".aux", ".prj", ".tfw",
               ".j2w", ".wld", ".msk", ".zip", ".gml", ".py", ".csv"}
_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})(?:_|$)")
_LEVEL_IN_NAME = re.compile(r"MSI(L1C|L2A)", re.IGNORECASE)


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


@dataclass(frozen=True)
class BandFiles:
    """Per-band raster files of one scene, as GDAL paths (``/vsizip/...`` inside zips)."""

    kind: str                         # "folder", "safe", "zip"
    files: Mapping[str, str]          # band name -> GDAL path
    metadata: ProductMetadata = field(default_factory=ProductMetadata)
    ignored: tuple[str, ...] = ()     # bands found but not used (B10...)


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
        m = _LEVEL_IN_NAME.search(os.path.basename(file))
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
    return _from_name(name, file)


def _from_name(name: str, file: str | None) -> ProductMetadata:
    lm = _LEVEL_IN_NAME.search(name)
    bm = _BASELINE_IN_NAME.search(name)
    return ProductMetadata(
        file=file, level=lm.group(1).upper() if lm else None,
        baseline=f"{bm.group(1)}.{bm.group(2)}" if bm else None,
    )


# --------------------------------------------------------------------------- discovery

class _Tree:
    """A read-only file tree: a directory or a zip, listed once, files named relative to root."""

    def __init__(self, path: str):
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if os.path.isdir(path):
            names = []
            for dirpath, _dirs, files in os.walk(path):
                rel = os.path.relpath(dirpath, path)
                names += [f if rel == "." else f"{rel}/{f}".replace(os.sep, "/") for f in files]
            self.names = sorted(names)
        else:
            try:
                self.zip = zipfile.ZipFile(path)
                self.names = sorted(n for n in self.zip.namelist() if not n.endswith("/"))
            except (zipfile.BadZipFile, OSError) as e:
                raise InputError(f"{path}: not a readable zip file ({e})") from None

    def gdal_path(self, name: str) -> str:
        if self.zip is not None:
            return f"/vsizip/{os.path.abspath(self.path)}/{name}"
        return os.path.join(self.path, *name.split("/"))

    def read_text(self, name: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(name)
        with open(self.gdal_path(name), "rb") as f:
            return f.read()

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def _band_of(name: str) -> tuple[str, int | None] | None:
    p = PurePosixPath(name)
    if p.suffix.lower() in _NOT_RASTER or p.name.startswith("."):
        return None
    m = _FILE_RE.search(p.stem)
    if not m:
        return None
    band = normalize_band(m.group(1))
    return (band, int(m.group(2)) if m.group(2) else None) if band else None


def is_band_file(name: str) -> bool:
    """Whether a file name names one Sentinel-2 band (``B02.tif``, ``..._B8A_20m.jp2``)."""
    return _band_of(name) is not None


def _pick_files(tree: _Tree, names: Iterable[str], where: str) -> tuple[dict[str, str], tuple]:
    cands: dict[str, list[tuple[str, int | None]]] = {}
    for n in names:
        hit = _band_of(n)
        if hit:
            cands.setdefault(hit[0], []).append((n, hit[1]))
    files: dict[str, str] = {}
    for band, lst in cands.items():
        if len(lst) > 1:
            native = [c for c in lst if c[1] == NATIVE_RES[band]]
            with_res = sorted((c for c in lst if c[1] is not None), key=lambda c: c[1])
            if len(native) == 1:
                lst = native
            elif not native and with_res and len(with_res) == len(lst):
                lst = with_res[:1]
            else:
                shown = ", ".join(PurePosixPath(c[0]).name for c in lst)
                raise InputError(f"{where}: several files for band {band} ({shown})")
        files[band] = tree.gdal_path(lst[0][0])
    ignored = tuple(sorted(b for b in files if b == "B10"))
    files.pop("B10", None)
    return files, ignored


def _json(tree: _Tree, name: str) -> object | None:
    try:
        return json.loads(tree.read_text(name))
    except (ValueError, OSError, KeyError):
        return None


def _folder_metadata(tree: _Tree, folder: str, label: str) -> ProductMetadata:
    """Metadata in ``folder``: MTD_MSIL*.xml, STAC item.json (or other STAC json), tileInfo.json."""
    here = [n for n in tree.names if str(PurePosixPath(n).parent) == folder]
    by_name = {PurePosixPath(n).name: n for n in here}
    for mtd in ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml"):
        if mtd in by_name:
            return parse_mtd_xml(tree.read_text(by_name[mtd]), tree.gdal_path(by_name[mtd]))
    jsons = sorted(n for n in here if n.lower().endswith(".json"))
    jsons.sort(key=lambda n: PurePosixPath(n).name not in ("item.json", "tileInfo.json"))
    for n in jsons:
        doc = _json(tree, n)
        if not isinstance(doc, Mapping):
            continue
        meta = parse_stac_item(doc, tree.gdal_path(n)) or parse_tileinfo(doc, tree.gdal_path(n))
        if meta is not None:
            return meta
    guess = _from_name(label, None)
    if guess.baseline:
        return ProductMetadata(file=label, level=guess.level, baseline=guess.baseline)
    return ProductMetadata(level=guess.level)


def _safe_roots(tree: _Tree) -> list[str]:
    """Tree-relative product roots: folders that hold a GRANULE/ folder."""
    roots = set()
    for n in tree.names:
        parts = n.split("/")
        if "GRANULE" in parts:
            roots.add("/".join(parts[: parts.index("GRANULE")]) or ".")
    return sorted(roots)


def _find_safe(tree: _Tree, root: str, label: str) -> tuple[dict[str, str], tuple, ProductMetadata]:
    prefix = "" if root == "." else root + "/"
    img = [n for n in tree.names if n.startswith(prefix + "GRANULE/") and "/IMG_DATA/" in n]
    granules = sorted({n[len(prefix):].split("/")[1] for n in img})
    if not granules:
        raise InputError(f"{label}: a .SAFE layout without GRANULE/*/IMG_DATA band files")
    if len(granules) > 1:
        raise InputError(f"{label}: {len(granules)} granules ({', '.join(granules[:3])}...); "
                         "multi-granule products are not supported, pass one granule's IMG_DATA")
    files, ignored = _pick_files(tree, img, label)
    meta = _folder_metadata(tree, root, PurePosixPath(root).name or label)
    if meta.file is None and meta.baseline is None:
        meta = _from_name(os.path.basename(label.rstrip("/")), None)
    return files, ignored, meta


def _files_in(tree: _Tree, folder: str) -> list[str]:
    return [n for n in tree.names if str(PurePosixPath(n).parent) == folder]


def _band_folder(tree: _Tree, path: str) -> str:
    """Where the band files are: the top, else the one folder holding them (``zip -r f.zip
    folder`` stores them under ``folder/``)."""
    holding = sorted({str(PurePosixPath(n).parent) for n in tree.names if _band_of(n)})
    if not holding or "." in holding:
        return "."
    if len(holding) > 1:
        shown = ", ".join(f"{h}/" for h in holding[:3]) + (", ..." if len(holding) > 3 else "")
        raise InputError(f"{path}: band files in {len(holding)} folders ({shown}); "
                         "pass one scene's folder")
    return holding[0]


def find_band_files(path: str) -> BandFiles:
    """Discover the per-band files of a folder, an unpacked .SAFE product or a zipped one.

    Band files are named by band (``B02.tif``, ``T33UUP_..._B02_10m.jp2``, ``<patch>_B02.tif``);
    where a product holds a band at several resolutions the native one is used; B10 is ignored.
    Raises InputError when nothing here looks like Sentinel-2 band files.
    """
    is_dir = os.path.isdir(path)
    tree = _Tree(path)
    try:
        kind = "folder" if is_dir else "zip"
        roots = _safe_roots(tree)
        if len(roots) > 1:
            raise InputError(f"{path}: holds {len(roots)} products ({', '.join(roots[:3])})")
        if roots:
            files, ignored, meta = _find_safe(tree, roots[0], path)
            kind = "safe" if is_dir else "zip"
        else:
            if path.rstrip("/\\").upper().endswith(".SAFE"):
                raise InputError(f"{path}: not a Sentinel-2 product (no GRANULE folder)")
            folder = _band_folder(tree, path)
            files, ignored = _pick_files(tree, _files_in(tree, folder), path)
            label = os.path.basename(os.path.abspath(path)) if folder == "." \
                else PurePosixPath(folder).name
            if not _LEVEL_IN_NAME.search(label) and files:
                label = os.path.basename(sorted(files.values())[0])  # <patch>_B02.tif
            meta = _folder_metadata(tree, folder, label)
        if not files:
            what = "folder" if is_dir else "zip"
            raise InputError(
                f"{path}: not a Sentinel-2 product: this {what} has no band files "
                "(B01..B12, B8A, SCL; .SAFE GRANULE/*/IMG_DATA); for one raster inside a "
                "zip pass /vsizip/<zip>/<file>"
            )
        return BandFiles(kind=kind, files=files, metadata=meta, ignored=ignored)
    finally:
        tree.close()


def missing_bands(files: Mapping[str, str], wanted: Sequence[str]) -> list[str]:
    """Bands of ``wanted`` (other than SCL) that ``files`` lacks."""
    return [b for b in wanted if b != "SCL" and b not in files]
