"""lulc_edge.journal: crash-safe record of finished tiles, so a killed run can resume."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .raster import partial_path

MAGIC = b"LEJ1"
_HEAD = struct.Struct("<4sIII")  # magic, tile index, payload length, crc32


def journal_path(final: Path) -> Path:
    """Journal file beside the output's temporary file."""
    return partial_path(final, ".journal")


class Journal:
    """Append-only file of finished tiles' results, fsynced as tiles land.

    The first line is a JSON header fingerprinting the run (input, model, mode, tiling, outputs);
    each record holds one tile's results, zlib-compressed with a CRC, so a torn last record from
    a power cut is detected and dropped. The output GeoTIFF itself is not crash-safe while open,
    so resuming rebuilds it from these records.
    """

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        self._f: Any = None

    def replay(self) -> Iterator[tuple[int, bytes]]:
        """Yield (tile index, payload) of intact records of a previous run with the same header.

        Yields nothing when there is no journal or it belongs to a different run.
        """
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            line = f.readline()
            try:
                if json.loads(line) != self.header:
                    return
            except (json.JSONDecodeError, UnicodeDecodeError):
                return
            while True:
                head = f.read(_HEAD.size)
                if len(head) < _HEAD.size:
                    return
                magic, index, length, crc = _HEAD.unpack(head)
                payload = f.read(length)
                if magic != MAGIC or len(payload) < length or zlib.crc32(payload) != crc:
                    return
                yield index, zlib.decompress(payload)

    def start(self, keep: list[tuple[int, bytes]]) -> None:
        """Begin writing: a fresh file holding the header and the records being kept."""
        tmp = self.path.with_name(self.path.name + ".new")
        with open(tmp, "wb") as f:
            f.write(json.dumps(self.header, sort_keys=True).encode() + b"\n")
            for index, payload in keep:
                f.write(self._record(index, payload))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._f = open(self.path, "ab")  # noqa: SIM115 - closed in close()

    @staticmethod
    def _record(index: int, payload: bytes) -> bytes:
        body = zlib.compress(payload, 1)
        return _HEAD.pack(MAGIC, index, len(body), zlib.crc32(body)) + body

    def append(self, index: int, arrays: list[np.ndarray]) -> None:
        """Durably record one finished tile."""
        payload = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)
        self._f.write(self._record(index, payload))
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
