"""lulc_edge.remote: open rasters over HTTP(S) and object stores through GDAL, safely.

Remote band files are read through GDAL's ``/vsicurl/`` (``/vsis3/``, ``/vsigs/``, ``/vsiaz/``
for ``s3://``, ``gs://``, ``az://``) with the settings the best readers use (stackstac,
odc-stac, titiler), see :func:`gdal_remote_env`. Access goes through GDAL's own conventions,
read from the environment: ``AWS_*`` for S3, ``GDAL_HTTP_HEADERS`` / ``GDAL_HTTP_BEARER`` for
HTTP (also sent with the JSON this module fetches), and a URL-signing hook::

    import planetary_computer            # pip install planetary-computer
    from lulc_edge.remote import register_signer
    register_signer(planetary_computer.sign)

A signer is called at every open, so a batch longer than a SAS token's life (under an hour
for the Planetary Computer) signs again rather than failing; ``planetary_computer.sign``
caches its token until it is about to expire.

Never a silently wrong map: an open or read that fails is retried (:func:`with_retries`)
after clearing GDAL's cache of that URL (GDAL caches a failed request, and the next open
says "not recognized as a supported file format", GDAL issue 8922), then fails with one
line naming the URL (without its query, which may hold a signature), the HTTP status and
what to do. Resume and batch idempotence use :func:`remote_fingerprint` (ETag,
Last-Modified, size), so a changed remote file restarts its scene instead of mixing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import http.client
import importlib
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError

from .errors import InputError, one_line

T = TypeVar("T")
#: A URL signer: takes a URL, returns the URL to request (query parameters added).
Signer = Callable[[str], str]
#: Signers applied in order to every URL this module opens or fetches (register_signer).
SIGNERS: list[Signer] = []
#: Opens and reads tried this many times in all before the run fails (each GDAL request is
#: itself retried GDAL_HTTP_MAX_RETRY times for 429 and 5xx).
TRIES = 3
#: Seconds between two tries (times the try number).
RETRY_DELAY = 1.0
#: Seconds a JSON fetch or fingerprint request may take.
HTTP_TIMEOUT = 60
_VSI = {"http": "/vsicurl/", "https": "/vsicurl/", "s3": "/vsis3/", "gs": "/vsigs/",
        "az": "/vsiaz/", "abfs": "/vsiaz/", "oss": "/vsioss/", "swift": "/vsiswift/"}
_STATUS = re.compile(r"HTTP (?:response )?(?:code|error|status)[: ]+(\d{3})", re.IGNORECASE)
_ERRORS = (RasterioError, CPLE_BaseError, OSError)
_GDAL: Any = None


def gdal_remote_env(cache_mb: int = 64) -> dict[str, str]:
    """GDAL settings for reading COGs over HTTP, each unless the environment sets it.

    ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`` (no listing of the "folder": one request per
    open); ``GDAL_HTTP_MAX_RETRY`` / ``GDAL_HTTP_RETRY_DELAY`` (429 and 5xx retried with a
    growing delay); merged consecutive ranges and HTTP/2 multiplexing (one request per run of
    blocks); ``VSI_CACHE`` with ``cache_mb`` per open file: a strip of 1024-row blocks of a
    10 m band (11 blocks of ~1.5 MB compressed) fits, so halo rows are not fetched twice;
    ``CPL_VSIL_CURL_CACHE_SIZE`` (GDAL's shared cache of downloaded regions) four times that;
    timeouts, so a server that stops answering fails the run instead of hanging it.
    Use as ``rasterio.Env(**gdal_remote_env())``.
    """
    wanted = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "GDAL_HTTP_MAX_RETRY": "5",
        "GDAL_HTTP_RETRY_DELAY": "1",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "GDAL_HTTP_MULTIPLEX": "YES",
        "GDAL_HTTP_VERSION": "2",
        "GDAL_HTTP_CONNECTTIMEOUT": "30",
        "GDAL_HTTP_TIMEOUT": "300",
        "VSI_CACHE": "TRUE",
        "VSI_CACHE_SIZE": str(cache_mb * 2**20),
        "CPL_VSIL_CURL_CACHE_SIZE": str(4 * cache_mb * 2**20),
    }
    return {k: v for k, v in wanted.items() if k not in os.environ}


def is_url(src: str) -> bool:
    """Whether ``src`` is a URL this module reads (``http(s)://``, ``s3://``...)."""
    return urlsplit(src).scheme.lower() in _VSI


def vsi_path(url: str) -> str:
    """GDAL's path for ``url``: ``/vsicurl/https://...``, ``s3://b/k`` -> ``/vsis3/b/k``.

    GDAL paths (``/vsi...``) and local paths come back unchanged.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return "/vsicurl/" + url
    if scheme in _VSI:
        return _VSI[scheme] + url.split("://", 1)[1]
    return url


def shown(url: str) -> str:
    """``url`` for messages and tags: without its query, which may hold a signature."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) if parts.scheme else url


# --------------------------------------------------------------------------- signing

def register_signer(fn: Signer) -> Signer:
    """Sign every URL opened from now on with ``fn`` (``url -> signed url``); returns ``fn``."""
    if fn not in SIGNERS:
        SIGNERS.append(fn)
    return fn


def signer_from_spec(spec: str) -> Signer:
    """A signer named ``module:function`` (``planetary_computer:sign``), for a CLI option."""
    mod, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(mod), name or "sign")
    except (ImportError, AttributeError) as e:
        raise InputError(f"URL signer {spec!r}: cannot be loaded ({one_line(e)})") from None
    if not callable(fn):
        raise InputError(f"URL signer {spec!r}: not a function")
    return fn


def sign(url: str) -> str:
    """``url`` through every registered signer (URLs only; local paths unchanged)."""
    if not is_url(url):
        return url
    for fn in SIGNERS:
        url = fn(url)
    return url


# --------------------------------------------------------------------------- plain HTTP

def auth_headers() -> dict[str, str]:
    """The HTTP headers GDAL would send: ``GDAL_HTTP_HEADERS`` (``Name: value`` lines or a
    comma-separated list) and ``GDAL_HTTP_BEARER``; used for JSON and fingerprints too."""
    headers = {}
    raw = os.environ.get("GDAL_HTTP_HEADERS", "")
    for item in re.split(r"\r?\n|,(?=\s*[\w-]+\s*:)", raw):
        name, sep, value = item.partition(":")
        if sep and name.strip():
            headers[name.strip()] = value.strip()
    if os.environ.get("GDAL_HTTP_BEARER"):
        headers["Authorization"] = "Bearer " + os.environ["GDAL_HTTP_BEARER"]
    return headers


def http_error(url: str, status: int | None, detail: str = "", tries: int = 1) -> InputError:
    """One line naming ``url``, the HTTP status and what to do about it."""
    where = shown(url)
    if status in (401, 403):
        return InputError(f"{where}: HTTP {status}: access denied: credentials or signing are "
                          "needed (AWS_*, GDAL_HTTP_HEADERS, GDAL_HTTP_BEARER or a URL signer)")
    if status == 404:
        return InputError(f"{where}: HTTP 404: not found")
    what = f"HTTP {status}" if status else (detail or "read failed")
    return InputError(f"{where}: {what} after {tries} tries; the server or the connection "
                      "failed: run again with --resume")


def http_request(url: str, data: bytes | None = None, headers: Mapping[str, str] | None = None,
                 method: str | None = None) -> tuple[dict[str, str], bytes]:
    """(response headers, body) of a signed request to ``url``; InputError on failure."""
    req = urllib.request.Request(sign(url), data=data, method=method,
                                 headers={**auth_headers(), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
            return {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        raise http_error(url, e.code) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise http_error(url, None, f"unreachable ({reason})") from None


def fetch_json(src: str, payload: Mapping[str, Any] | None = None) -> Any:
    """A JSON document from a local file or a URL (POSTed ``payload`` if given)."""
    try:
        if not is_url(src):
            with open(src, "rb") as f:
                return json.load(f)
        data = json.dumps(payload).encode() if payload is not None else None
        hdrs = {"Accept": "application/json"}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        return json.loads(http_request(src, data, hdrs)[1])
    except OSError as e:
        raise InputError(f"{src}: cannot be read ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{shown(src)}: not JSON ({one_line(e)})") from None


def remote_fingerprint(url: str) -> dict[str, Any]:
    """What identifies a remote file's content: ETag, Last-Modified and size.

    A one-byte ranged GET, not a HEAD: a presigned URL is signed for GET only. Keyed by
    the unsigned URL, which stays the same when the signature changes. Object-store URLs
    (``s3://``...) that plain HTTP cannot reach get the URL alone.
    """
    doc: dict[str, Any] = {"url": shown(url)}
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return doc
    headers, _ = http_request(url, headers={"Range": "bytes=0-0"})
    total = headers.get("content-range", "").rpartition("/")[2]
    size = total if total.isdigit() else headers.get("content-length")
    doc.update({"etag": headers.get("etag"), "last_modified": headers.get("last-modified"),
                "size": int(size) if size and size.isdigit() else None})
    return doc


# --------------------------------------------------------------------------- GDAL

def _libgdal() -> Any:
    """The GDAL library rasterio runs on, through ctypes (None where it cannot be found)."""
    global _GDAL
    if _GDAL is None:
        here = os.path.dirname(os.path.dirname(rasterio.__file__))
        names = glob.glob(os.path.join(here, "rasterio.libs", "libgdal*")) + glob.glob(
            os.path.join(os.path.dirname(rasterio.__file__), ".dylibs", "libgdal*"))
        names += [n for n in [ctypes.util.find_library("gdal")] if n]
        _GDAL = False
        for name in names:
            try:
                lib = ctypes.CDLL(name)
                lib.VSICurlPartialClearCache.argtypes = [ctypes.c_char_p]
                _GDAL = lib
                break
            except (OSError, AttributeError):
                continue
    return _GDAL or None


def clear_cache(url: str) -> bool:
    """Forget what GDAL cached about ``url`` (and its signed variants): sizes, regions and
    failures. rasterio >= 1.5 has ``rasterio.cache.invalidate``; older ones reach
    ``VSICurlPartialClearCache`` of the same GDAL library. False when neither is there (the
    retry then opens with ``CPL_VSIL_CURL_NON_CACHED``, see :func:`with_retries`)."""
    prefix = vsi_path(shown(url))
    try:
        from rasterio import cache  # type: ignore[attr-defined]

        cache.invalidate(prefix)
        return True
    except (ImportError, AttributeError):
        pass
    lib = _libgdal()
    if lib is None:
        return False
    lib.VSICurlPartialClearCache(prefix.encode())
    return True


def http_status(exc: BaseException) -> int | None:
    """The HTTP status a GDAL error message names, if any."""
    m = _STATUS.search(one_line(exc))
    return int(m.group(1)) if m else None


def with_retries(url: str, action: Callable[[str], T], tries: int = TRIES) -> T:
    """``action(vsi path of the freshly signed url)`` under :func:`gdal_remote_env`, tried
    ``tries`` times with GDAL's cache of ``url`` cleared in between; then one InputError.

    401/403/404 are tried once more only, after the cache is cleared: the failure may be
    one GDAL cached from an earlier open. The status comes from GDAL's message, or from a one-byte
    request when GDAL's message has none ("not recognized as a supported file format").
    """
    status, detail = None, ""
    for attempt in range(1, tries + 1):
        env = gdal_remote_env()
        if attempt > 1 and not clear_cache(url):
            env["CPL_VSIL_CURL_NON_CACHED"] = vsi_path(shown(url))
        try:
            with rasterio.Env(**env):
                return action(vsi_path(sign(url)))
        except _ERRORS as e:
            status, detail = http_status(e), one_line(e)
        if status is None:
            status = _probe(url)
        if (status in (401, 403, 404) and attempt > 1) or attempt == tries:
            break
        time.sleep(RETRY_DELAY * attempt)
    clear_cache(url)  # a later run in this process starts clean
    raise http_error(url, status if status and status >= 400 else None, detail, tries)


def _probe(url: str) -> int | None:
    """The status of a one-byte request to ``url`` (None when it succeeds or is no HTTP)."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    try:
        http_request(url, headers={"Range": "bytes=0-0"})
    except InputError as e:
        m = re.search(r": HTTP (\d{3})", str(e))
        return int(m.group(1)) if m else None
    return None


def open_remote(url: str, tries: int = TRIES) -> rasterio.io.DatasetReader:
    """``rasterio.open`` of a remote raster with retries (:func:`with_retries`)."""
    return with_retries(url, rasterio.open, tries)
