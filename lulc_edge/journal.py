"""lulc_edge.journal: crash-safe record of finished tiles, so a killed run can resume."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .files import partial_path, place

MAGIC = b"LEJ1"
_HEAD = struct.Struct("<4sIII")  # magic, tile index, payload length, crc32


def journal_path(final: Path) -> Path:
    """Journal file beside the output's temporary file."""
    return partial_path(final, ".journal")


def fingerprint_digest(fp: dict[str, list[int]]) -> str:
    """A short stable digest of a fingerprint, for the output's LULC_EDGE_INPUT_FINGERPRINT tag."""
    return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:32]


def changed_files(old: dict[str, list[int]], new: dict[str, list[int]]) -> list[str]:
    """Names of files added, removed or changed between two fingerprints."""
    return sorted(os.path.basename(f) for f in set(old) | set(new) if old.get(f) != new.get(f))


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

    def previous_header(self) -> dict[str, Any] | None:
        """The header of the journal on disk, or None when there is none (or it is unreadable)."""
        try:
            with open(self.path, "rb") as f:
                head = json.loads(f.readline())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return head if isinstance(head, dict) else None

    def replay(self) -> Iterator[tuple[int, bytes]]:
        """Yield (tile index, payload) of intact records of a previous run with the same header.

        Yields nothing when there is no journal or it belongs to a different run.
        """
        for index, body in self._records():
            yield index, zlib.decompress(body)

    def finished(self) -> int:
        """How many tiles a previous run with the same header recorded: what --resume keeps."""
        return sum(1 for _ in self._records())

    def _records(self) -> Iterator[tuple[int, bytes]]:
        """(tile index, compressed payload) of ``replay``'s records."""
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
                yield index, payload

    def start(self, keep: list[tuple[int, bytes]]) -> None:
        """Begin writing: a fresh file holding the header and the records being kept."""
        tmp = self.path.with_name(self.path.name + ".new")
        with open(tmp, "wb") as f:
            f.write(json.dumps(self.header, sort_keys=True).encode() + b"\n")
            for index, payload in keep:
                f.write(self._record(index, payload))
        place(tmp, self.path)
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
        """Close the file; a failing flush (disk full) is ignored: every record that counts was
        fsynced by ``append``, and a torn last one is dropped on replay."""
        if self._f is not None:
            f, self._f = self._f, None
            try:
                f.close()
            except OSError:
                pass

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
