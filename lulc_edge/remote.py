"""lulc_edge.remote: open rasters over HTTP(S) and object stores through GDAL, safely.

Remote band files are read through GDAL's ``/vsicurl/`` (``/vsis3/``, ``/vsigs/``, ``/vsiaz/``
for ``s3://``, ``gs://``, ``az://``) with the settings the best readers use (stackstac,
odc-stac, titiler), see :func:`gdal_remote_env`; credentials and URL signing follow
:mod:`lulc_edge.urlio` (GDAL's ``AWS_*``, ``GDAL_HTTP_HEADERS``, ``GDAL_HTTP_BEARER``, and
``register_signer``), every open signing afresh.

Never a silently wrong map: an open or read that fails is retried (:func:`with_retries`,
:class:`RemoteDataset`) after clearing GDAL's cache of that URL (GDAL caches a failed
request, and the next open says "not recognized as a supported file format", GDAL issue
8922), then fails with one line naming the URL (without its query, which may hold a
signature), the HTTP status and what to do. GDAL_NUM_THREADS is 1 for remote datasets
(:data:`FORCED`). Resume and batch idempotence use :func:`lulc_edge.urlio.remote_fingerprint`
(ETag, Last-Modified, size), so a changed remote file restarts its scene instead of mixing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError

from .errors import one_line
from .urlio import http_error, http_probe, shown, sign

T = TypeVar("T")
#: Opens and reads tried this many times in all before the run fails (each GDAL request is
#: itself retried GDAL_HTTP_MAX_RETRY times for 429 and 5xx).
TRIES = 3
#: Seconds between two tries (times the try number).
RETRY_DELAY = 1.0
_VSI = {"http": "/vsicurl/", "https": "/vsicurl/", "s3": "/vsis3/", "gs": "/vsigs/",
        "az": "/vsiaz/", "abfs": "/vsiaz/", "oss": "/vsioss/", "swift": "/vsiswift/"}
_STATUS = re.compile(r"HTTP (?:response )?(?:code|error|status)[: ]+(\d{3})", re.IGNORECASE)
_ERRORS = (RasterioError, CPLE_BaseError, OSError)
_GDAL: Any = None
#: Set for every remote open whatever the environment says. GDAL_NUM_THREADS=1: with more
#: threads GTiff fetches blocks in parallel, and a connection dropped mid-body fails the read
#: (one thread: GDAL's own retry recovers the same pixels, tests/test_remote.py), or has been
#: seen to complete it with duplicated or black rows (GDAL issue 11552). The runtime decodes
#: the band files in parallel itself, so one GDAL thread per file costs little.
FORCED = {"GDAL_NUM_THREADS": "1"}


def gdal_remote_env(cache_mb: int = 64) -> dict[str, str]:
    """GDAL settings for reading COGs over HTTP, each unless the environment sets it.

    ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`` (no listing of the "folder": one request per
    open); ``GDAL_HTTP_MAX_RETRY`` / ``GDAL_HTTP_RETRY_DELAY`` (429 and 5xx retried with a
    growing delay); merged consecutive ranges and HTTP/2 multiplexing (one request per run of
    blocks); ``VSI_CACHE`` with ``cache_mb`` per open file: a strip of 1024-row blocks of a
    10 m band (11 blocks of ~1.5 MB compressed) fits, so halo rows are not fetched twice;
    ``CPL_VSIL_CURL_CACHE_SIZE`` (GDAL's shared cache of downloaded regions) four times that;
    timeouts, so a server that stops answering fails the run instead of hanging it.
    Use as ``rasterio.Env(**gdal_remote_env())``; :func:`with_retries` adds :data:`FORCED`.
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
    try:
        from rasterio import cache  # type: ignore[attr-defined]

        cache.invalidate(shown(url))  # takes a URL, as rasterio.open does
        return True
    except (ImportError, AttributeError):
        pass
    prefix = vsi_path(shown(url))
    lib = _libgdal()
    if lib is None:
        return False
    lib.VSICurlPartialClearCache(prefix.encode())
    return True


def http_status(exc: BaseException) -> int | None:
    """The HTTP status a GDAL error message names, if any."""
    m = _STATUS.search(one_line(exc))
    return int(m.group(1)) if m else None


def with_retries(url: str, action: Callable[[str], T], tries: int = TRIES,
                 fresh: bool = False) -> T:
    """``action(vsi path of the freshly signed url)`` under :func:`gdal_remote_env` and
    :data:`FORCED`, tried ``tries`` times with GDAL's cache of ``url`` cleared in between
    (and before the first try if ``fresh``: after a failure seen elsewhere); then one
    InputError.

    401/403/404 are tried once more only, after the cache is cleared: the failure may be
    one GDAL cached from an earlier open. The status comes from GDAL's message, or from a one-byte
    request when GDAL's message has none ("not recognized as a supported file format").
    """
    status, detail = None, ""
    for attempt in range(1, tries + 1):
        env = {**gdal_remote_env(), **FORCED}
        if (attempt > 1 or fresh) and not clear_cache(url):
            env["CPL_VSIL_CURL_NON_CACHED"] = vsi_path(shown(url))
        try:
            with rasterio.Env(**env):
                return action(vsi_path(sign(url)))
        except _ERRORS as e:
            status, detail = http_status(e), one_line(e)
        if status is None:
            status = http_probe(url)
        if (status in (401, 403, 404) and attempt > 1) or attempt == tries:
            break
        time.sleep(RETRY_DELAY * attempt)
    clear_cache(url)  # a later run in this process starts clean
    raise http_error(url, status if status and status >= 400 else None, detail, tries)


def open_remote(url: str, tries: int = TRIES) -> rasterio.io.DatasetReader:
    """``rasterio.open`` of a remote raster with retries (:func:`with_retries`)."""
    return with_retries(url, rasterio.open, tries)


class RemoteDataset:
    """A remote raster whose reads are retried: after a failed ``read`` GDAL's cache of the
    URL is cleared and the URL opened (signed afresh) and read again, up to ``tries`` times,
    then one InputError (URL, HTTP status, ``--resume``). Other attributes are those of the
    open rasterio dataset (``width``, ``transform``, ``block_shapes`` ...), so it stands in
    for one where only ``read`` is called (lulc_edge.sources.strips' reader); a WarpedVRT
    needs ``.dataset``. Not thread-safe, as a rasterio dataset is not."""

    def __init__(self, url: str, tries: int = TRIES):
        self.url, self.tries = url, tries
        self.dataset = open_remote(url, tries)

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not open (yet): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.dataset.read(*args, **kwargs)
        except _ERRORS:
            pass

        def reopen_and_read(path: str) -> tuple[Any, Any]:
            ds = rasterio.open(path)
            try:
                return ds, ds.read(*args, **kwargs)
            except BaseException:
                ds.close()
                raise

        ds, data = with_retries(self.url, reopen_and_read, self.tries, fresh=True)
        self.dataset.close()
        self.dataset = ds
        return data

    def close(self) -> None:
        if "dataset" in self.__dict__:
            self.dataset.close()

    def __enter__(self) -> RemoteDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
