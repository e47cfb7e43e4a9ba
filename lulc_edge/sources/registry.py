"""The registry of openers: what an input string is gets decided here, by the openers' probes,
and nowhere else."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from ..errors import InputError
from . import folder, remote, stac_item, stack
from .base import DEFAULT_BANDS, NO_OPTIONS, Opener, Source, SourceOptions
from .fingerprint import file_fingerprint, url_fingerprint

#: Openers in the order their probes are asked; the stack opener takes anything left.
OPENERS: list[Opener] = [stac_item.FILE, stac_item.OPENER, remote.OPENER, folder.FOLDER,
                         folder.ZIP, stack.OPENER]


def register_opener(name: str, probe: Callable[[str], bool],
                    open: Callable[[str, Sequence[str], SourceOptions], Source], *,
                    local: bool = True, band_files: bool = False,
                    scene: Callable[[str, Sequence[str]], tuple[str, bool] | None] | None = None,
                    fingerprint: Callable[[str], dict[str, list]] | None = None) -> Opener:
    """Add an opener (see :class:`Opener`) ahead of the built-in ones, replacing one of the
    same name; returns it. ``local=False`` for inputs that are not paths on this machine."""
    opener = Opener(name, probe, open, local=local, band_files=band_files, scene=scene,
                    fingerprint=fingerprint)
    OPENERS[:] = [opener, *(o for o in OPENERS if o.name != name)]
    return opener


def opener_for(path: str | os.PathLike) -> Opener:
    """The first opener whose probe accepts ``path``."""
    p = os.fspath(path)
    return next(o for o in OPENERS if o.probe(p))


def open_source(path: str | os.PathLike | Source, band_names: Sequence[str] = DEFAULT_BANDS,
                options: SourceOptions = NO_OPTIONS) -> Source:
    """Open ``path`` with the opener that claims it (a folder, .SAFE or .zip: per-band files;
    a URL or ``/vsi`` path, or any other raster GDAL opens: a stack). An opened Source is
    returned as it is. Raises InputError (or MissingSCLError) with a one-line message naming
    the input."""
    if isinstance(path, Source):
        return path
    p = os.fspath(path)
    opener = opener_for(p)
    if opener.local:
        _check_local(p)
    return opener.open(p, band_names, options)


def fingerprint_of(path: str | os.PathLike) -> dict[str, list]:
    """What tells the content of input ``path`` apart from a changed one, without opening it
    (its opener's ``fingerprint``; else local files' size, mtime and inode, a URL's ETag)."""
    p = os.fspath(path)
    opener = opener_for(p)
    if opener.fingerprint is not None:
        return opener.fingerprint(p)
    return file_fingerprint(p) if opener.local else url_fingerprint(p)


def reads_band_files(path: str | os.PathLike) -> bool:
    """Whether ``path`` is read as per-band files (a folder, .SAFE or .zip), not one raster."""
    return opener_for(path).band_files


def is_remote(src: str | os.PathLike) -> bool:
    """Not a path on this machine (a URL, a GDAL virtual path, an input of a registered
    opener that says so): kept as a string and never checked on the local filesystem."""
    return not opener_for(src).local


def check_input(path: str | os.PathLike) -> None:
    """InputError unless ``path`` exists here or is not a local path (a URL or GDAL virtual
    path is checked later, when GDAL opens it)."""
    if not is_remote(path):
        _check_local(os.fspath(path))


def _check_local(p: str) -> None:
    if not os.path.exists(p):
        raise InputError(f"{p}: no such file or folder")
    if not (os.path.isfile(p) or os.path.isdir(p)):  # a FIFO would block the open forever
        raise InputError(f"{p}: not a regular file or folder (a FIFO, device or socket)")


def scene_of(path: str | os.PathLike, band_names: Sequence[str]) -> tuple[str, bool] | None:
    """(kind, has SCL) when ``path`` is a scene holding ``band_names`` (but SCL), judged by its
    opener from headers and file lists; None otherwise (InputError from a refusing opener)."""
    opener = opener_for(path)
    return None if opener.scene is None else opener.scene(os.fspath(path), band_names)
