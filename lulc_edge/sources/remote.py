"""The opener of URLs and GDAL virtual paths (``https://...``, ``/vsis3/...``, ``/vsizip/...``):
a stack GDAL reads, never checked on the local filesystem. A URL is opened and read through
:class:`lulc_edge.remote.RemoteDataset`, as a STAC item's band files are: GDAL's remote settings
(no listing of the URL's "folder", timeouts), retries, one line naming the URL on failure."""

from __future__ import annotations

import rasterio

from .. import urlio
from .base import Opener
from .fingerprint import url_fingerprint
from .stack import StackSource


def is_url(path: str) -> bool:
    """A URL or GDAL virtual path: kept as a string (``Path`` would fold ``https://`` to
    ``https:/``)."""
    return "://" in path or path.startswith("/vsi")


class RemoteStackSource(StackSource):
    """A stack read through GDAL's network or virtual file systems."""

    def _open(self) -> rasterio.io.DatasetReader:
        if not urlio.is_url(self.path):  # a /vsi path: GDAL's own
            return super()._open()
        from ..remote import RemoteDataset  # rasterio's GDAL, loaded on first remote use

        return RemoteDataset(self.path)

    def fingerprint(self) -> dict[str, list]:
        return url_fingerprint(self.path)


OPENER = Opener("url", is_url, RemoteStackSource, local=False)
