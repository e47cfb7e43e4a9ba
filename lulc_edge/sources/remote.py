"""The opener of URLs and GDAL virtual paths (``https://...``, ``/vsis3/...``, ``/vsizip/...``):
a stack GDAL reads, never checked on the local filesystem. A catalogued (STAC) or remote
input with an area of interest would be its own opener beside this one."""

from __future__ import annotations

from .base import Opener
from .fingerprint import url_fingerprint
from .stack import StackSource


def is_url(path: str) -> bool:
    """A URL or GDAL virtual path: kept as a string (``Path`` would fold ``https://`` to
    ``https:/``)."""
    return "://" in path or path.startswith("/vsi")


class RemoteStackSource(StackSource):
    """A stack read through GDAL's network or virtual file systems."""

    def fingerprint(self) -> dict[str, list]:
        return url_fingerprint(self.path)


OPENER = Opener("url", is_url, RemoteStackSource, local=False)
