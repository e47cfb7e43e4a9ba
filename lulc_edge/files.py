"""lulc_edge.files: hidden temporary names and atomic, durable placement of written files.

Every output (maps, sidecars, journals, pictures, job records) reaches its final name the same
way: written under a hidden temporary name, flushed to the disk, renamed, the rename made
durable; so a crash or power cut leaves the final name absent or whole, never partial.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import OutputError


def partial_path(final: Path, suffix: str = ".partial.tif") -> Path:
    """Temporary name beside the final output, hidden, so a crash never leaves a final name."""
    return final.with_name(f".{final.name}{suffix}")


def fsync_file(path: Path) -> None:
    """Flush a closed file's data to the disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make renames in a directory durable (as databases do after an atomic rename)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # e.g. a filesystem that cannot open directories: nothing more can be done
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def place(tmp: Path, final: Path, *, sync: bool = True) -> None:
    """Rename a finished temporary file to its final name; with ``sync`` the data reaches the
    disk before the rename and the rename before we return."""
    if sync:
        fsync_file(tmp)
    os.replace(tmp, final)
    if sync:
        fsync_dir(final.parent)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a small file (text as UTF-8) through a hidden temporary name, so the final name
    never holds a partial file; OutputError on failure."""
    tmp = partial_path(path, ".partial")
    try:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        place(tmp, path, sync=False)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
