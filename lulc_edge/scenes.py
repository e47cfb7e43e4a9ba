"""lulc_edge.scenes: the scenes under a folder that ``run`` (and the service) can map.

The service's page lists them for its "scene on the server" picker. Each candidate is judged by
its opener (``lulc_edge.sources.scene_of``), cheaply (headers and file lists, no pixels): a
stack whose bands ``map_stack_bands`` finds, or a per-band folder, .SAFE folder or .zip product
whose band files ``find_band_files`` finds with none of the model's bands missing. Single band
files are not scenes; a folder that is a scene is listed once, not its files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rasterio.errors import RasterioError

from .errors import InputError
from .sources import scene_of
from .sources.safe import is_band_file

#: File names that may hold a scene (a stack, or a zipped product).
SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".zip")
#: How deep under the root scenes are searched, and how many are listed at most.
DEPTH, LIMIT = 3, 500


@dataclass(frozen=True)
class Scene:
    """A mappable input under the root: its path there (folders end with /), what it is
    (stack, folder, safe or zip) and whether it has the SCL band (else it needs an SCL fill)."""

    path: str
    kind: str
    scl: bool


def scene_kind(path: str | os.PathLike, band_names: Sequence[str]) -> tuple[str, bool] | None:
    """(kind, has SCL) when ``path`` holds every band of ``band_names`` but SCL, else None."""
    try:
        return scene_of(path, band_names)
    except (InputError, RasterioError, OSError, ValueError):
        return None


def _product_folder(folder: Path) -> bool:
    """A folder worth asking find_band_files about: a .SAFE, or one holding band files or a
    GRANULE folder (anything else is searched for scenes inside)."""
    if folder.name.upper().endswith(".SAFE"):
        return True
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return "GRANULE" in names or any(is_band_file(n) for n in names)


def list_scenes(root: Path, band_names: Sequence[str], depth: int = DEPTH,
                limit: int = LIMIT) -> list[Scene]:
    """The scenes under ``root`` (symlinks leading out of it skipped), sorted by path."""
    root = root.resolve()
    found: list[Scene] = []

    def add(p: Path, rel: str) -> bool:
        if not p.resolve().is_relative_to(root):
            return False
        kind = scene_kind(p, band_names)
        if kind is not None:
            found.append(Scene(rel, *kind))
        return kind is not None

    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        rel = here.relative_to(root)
        deeper = []
        for d in sorted(dirs):
            if d.startswith("."):
                continue
            if not (_product_folder(here / d) and add(here / d, f"{(rel / d).as_posix()}/")):
                deeper.append(d)
        dirs[:] = deeper if len(rel.parts) < depth - 1 else []
        for f in sorted(files):
            if f.lower().endswith(SUFFIXES) and not f.startswith(".") and ".lulc." not in f:
                add(here / f, (rel / f).as_posix())
        if len(found) >= limit:
            break
    return sorted(found, key=lambda s: s.path)[:limit]
