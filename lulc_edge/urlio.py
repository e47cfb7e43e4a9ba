"""lulc_edge.urlio: URLs outside GDAL: signing, GDAL-style credentials, JSON and fingerprints.

Access follows GDAL's own conventions, read from the environment, so one set of settings
serves GDAL's reads and these requests: ``GDAL_HTTP_HEADERS``, and ``GDAL_HTTP_BEARER``
with ``GDAL_HTTP_AUTH=BEARER`` (:func:`auth_headers`; ``AWS_*`` reach ``s3://`` through
GDAL only). URLs that need a signature (Planetary Computer SAS tokens, presigned URLs)
go through a hook::

    import planetary_computer            # pip install planetary-computer
    from lulc_edge.urlio import register_signer
    register_signer(planetary_computer.sign)

A signer is called at every open and request, so a batch longer than a token's life (under
an hour for the Planetary Computer) signs again rather than failing;
``planetary_computer.sign`` caches its token until it is about to expire. (GDAL's own
``VSICURL_PC_URL_SIGNING=YES`` signs GDAL's reads only, not item JSON.) Messages and tags
show URLs without their query (:func:`shown`), which may hold a signature.
"""

from __future__ import annotations

import functools
import http.client
import importlib
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import InputError, one_line

#: A URL signer: takes a URL, returns the URL to request (query parameters added).
Signer = Callable[[str], str]
#: Signers applied in order to every URL opened or fetched (register_signer).
SIGNERS: list[Signer] = []
#: Environment variable naming a signer ``module:function`` applied after SIGNERS (what
#: ``lulc-edge run --sign`` sets, so the processes of ``--workers`` sign too).
SIGN_ENV = "LULC_EDGE_SIGN"
#: Seconds a JSON fetch or fingerprint request may take.
HTTP_TIMEOUT = 60
#: Schemes read as URLs (GDAL: /vsicurl/, /vsis3/, /vsigs/, /vsiaz/, /vsioss/, /vsiswift/).
URL_SCHEMES = frozenset({"http", "https", "s3", "gs", "az", "abfs", "oss", "swift"})


def is_url(src: str) -> bool:
    """Whether ``src`` is a URL (not a local or GDAL path) (``http(s)://``, ``s3://``...)."""
    return urlsplit(src).scheme.lower() in URL_SCHEMES


def shown(url: str) -> str:
    """``url`` for messages and tags: without its query, which may hold a signature."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) if parts.scheme else url


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


@functools.lru_cache(maxsize=4)
def _signer_named(spec: str) -> Signer:
    return signer_from_spec(spec)


def sign(url: str) -> str:
    """``url`` through every registered signer, then the one :data:`SIGN_ENV` names (URLs
    only; local paths unchanged)."""
    if not is_url(url):
        return url
    spec = os.environ.get(SIGN_ENV)
    named = _signer_named(spec) if spec else None
    for fn in [*SIGNERS, *([named] if named is not None and named not in SIGNERS else [])]:
        url = fn(url)
    return url


# --------------------------------------------------------------------------- plain HTTP

def auth_headers() -> dict[str, str]:
    """The HTTP headers GDAL would send: ``GDAL_HTTP_HEADERS`` (``Name: value`` lines or a
    comma-separated list) and, with ``GDAL_HTTP_AUTH=BEARER``, ``GDAL_HTTP_BEARER``; sent
    with JSON and fingerprint requests too."""
    headers = {}
    raw = os.environ.get("GDAL_HTTP_HEADERS", "")
    for item in re.split(r"\r?\n|,(?=\s*[\w-]+\s*:)", raw):
        name, sep, value = item.partition(":")
        if sep and name.strip():
            headers[name.strip()] = value.strip()
    if os.environ.get("GDAL_HTTP_AUTH", "").upper() == "BEARER" and \
            os.environ.get("GDAL_HTTP_BEARER"):
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


def http_probe(url: str) -> int | None:
    """The status of a one-byte request to ``url`` (None when it succeeds or is no HTTP)."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    try:
        http_request(url, headers={"Range": "bytes=0-0"})
    except InputError as e:
        m = re.search(r": HTTP (\d{3})", str(e))
        return int(m.group(1)) if m else None
    return None
