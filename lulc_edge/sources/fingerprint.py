"""What tells an input's content apart from a changed one: resumes and a batch's skip check
compare it. Local files: size, mtime (ns) and inode of every file the input reads, by absolute
path (the resume journal's format). URLs: the place for ETag / Last-Modified."""

from __future__ import annotations

import os

import rasterio
from rasterio.errors import RasterioError


def input_files(src: str) -> list[str]:
    """The local files a source made from ``src`` can read: every file of a folder (.SAFE), the
    .zip itself, or a raster's GDAL file list (a VRT's band files too). Empty for URLs and
    ``/vsi`` paths, which cannot be checked here."""
    if os.path.isdir(src):
        return sorted(os.path.join(d, f) for d, _, names in os.walk(src) for f in names)
    if not os.path.isfile(src):
        return []
    try:
        with rasterio.open(src) as ds:
            listed = [f for f in ds.files if not f.startswith("/vsi") and os.path.isfile(f)]
    except (RasterioError, OSError):
        listed = []  # a zip, or not a raster (the source refuses it)
    return sorted({os.path.abspath(src), *map(os.path.abspath, listed)})


def file_fingerprint(src: str) -> dict[str, list[int]]:
    """Size, mtime (ns) and inode of every file of ``input_files(src)``, by absolute path."""
    out: dict[str, list[int]] = {}
    for f in input_files(src):
        try:
            st = os.stat(f)
        except OSError:
            continue
        out[os.path.abspath(f)] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return out


def url_fingerprint(url: str) -> dict[str, list]:
    """A URL's fingerprint: its ETag, Last-Modified and size as the server states them (one
    one-byte request, ``lulc_edge.urlio.remote_fingerprint``), keyed by the URL without its
    query (a re-signed URL is the same input). Empty for GDAL ``/vsi`` paths that are not URLs
    and when the server cannot be asked: the input is then taken as unchanged."""
    from ..errors import LulcEdgeError
    from ..urlio import remote_fingerprint

    try:
        doc = remote_fingerprint(url)
    except (LulcEdgeError, OSError):
        return {}
    if set(doc) == {"url"}:
        return {}
    return {doc["url"]: [doc.get("etag"), doc.get("last_modified"), doc.get("size")]}
