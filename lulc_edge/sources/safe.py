"""Per-band files of one scene in a folder, an unpacked ``.SAFE`` product or a zipped one."""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ..errors import InputError
from .metadata import (
    LEVEL_IN_NAME,
    NATIVE_RES,
    ProductMetadata,
    from_name,
    normalize_band,
    parse_mtd_xml,
    parse_stac_item,
    parse_tileinfo,
)

# a band token at the end of a file stem, optionally followed by a resolution suffix
_FILE_RE = re.compile(
    r"(?:^|[_\-.])(B0?[1-9]|B1[0-2]|B8A|SCL)(?:_(10|20|60)M)?$", re.IGNORECASE
)
_NOT_RASTER = {".json", ".xml", ".txt", ".md", ".html", ".ovr", ".aux", ".prj", ".tfw",
               ".j2w", ".wld", ".msk", ".zip", ".gml", ".py", ".csv"}


@dataclass(frozen=True)
class BandFiles:
    """Per-band raster files of one scene, as GDAL paths (``/vsizip/...`` inside zips)."""

    kind: str                         # "folder", "safe", "zip"
    files: Mapping[str, str]          # band name -> GDAL path
    metadata: ProductMetadata = field(default_factory=ProductMetadata)


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


def _pick_files(tree: _Tree, names: Iterable[str], where: str) -> dict[str, str]:
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
    files.pop("B10", None)  # not used by Sentinel-2 land-cover models
    return files


def _json(tree: _Tree, name: str) -> object | None:
    try:
        return json.loads(tree.read_text(name))
    except (ValueError, OSError, KeyError):
        return None


def _folder_metadata(tree: _Tree, folder: str, label: str) -> ProductMetadata:
    """Metadata in ``folder``: MTD_MSIL*.xml, STAC item.json (or other STAC json), tileInfo.json."""
    here = _files_in(tree, folder)
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
    guess = from_name(label, None)
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


def _find_safe(tree: _Tree, root: str, label: str) -> tuple[dict[str, str], ProductMetadata]:
    prefix = "" if root == "." else root + "/"
    img = [n for n in tree.names if n.startswith(prefix + "GRANULE/") and "/IMG_DATA/" in n]
    granules = sorted({n[len(prefix):].split("/")[1] for n in img})
    if not granules:
        raise InputError(f"{label}: a .SAFE layout without GRANULE/*/IMG_DATA band files")
    if len(granules) > 1:
        raise InputError(f"{label}: {len(granules)} granules ({', '.join(granules[:3])}...); "
                         "multi-granule products are not supported, pass one granule's IMG_DATA")
    files = _pick_files(tree, img, label)
    meta = _folder_metadata(tree, root, PurePosixPath(root).name or label)
    if meta.file is None and meta.baseline is None:
        meta = from_name(os.path.basename(label.rstrip("/")), None)
    return files, meta


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
            files, meta = _find_safe(tree, roots[0], path)
            kind = "safe" if is_dir else "zip"
        else:
            if path.rstrip("/\\").upper().endswith(".SAFE"):
                raise InputError(f"{path}: not a Sentinel-2 product (no GRANULE folder)")
            folder = _band_folder(tree, path)
            files = _pick_files(tree, _files_in(tree, folder), path)
            label = os.path.basename(os.path.abspath(path)) if folder == "." \
                else PurePosixPath(folder).name
            if not LEVEL_IN_NAME.search(label) and files:
                label = os.path.basename(sorted(files.values())[0])  # <patch>_B02.tif
            meta = _folder_metadata(tree, folder, label)
        if not files:
            what = "folder" if is_dir else "zip"
            raise InputError(
                f"{path}: not a Sentinel-2 product: this {what} has no band files "
                "(B01..B12, B8A, SCL; .SAFE GRANULE/*/IMG_DATA); for one raster inside a "
                "zip pass /vsizip/<zip>/<file>"
            )
        return BandFiles(kind=kind, files=files, metadata=meta)
    finally:
        tree.close()


def missing_bands(files: Mapping[str, str], wanted: Sequence[str]) -> list[str]:
    """Bands of ``wanted`` (other than SCL) that ``files`` lacks."""
    return [b for b in wanted if b != "SCL" and b not in files]
