"""lulc_edge.paths: where a run's map goes and whether it may go there."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import OutputError
from .raster import confidence_path, probs_path
from .sources import is_remote

#: Extensions an output may have: lulc-edge writes GeoTIFF only.
OUTPUT_EXTENSIONS = (".tif", ".tiff")


def default_output(src: str | os.PathLike) -> Path:
    """``SCENE.lulc.tif`` beside the input (in the working directory for a URL); products and
    folders lose their extension."""
    text = os.fspath(src).rstrip("/")
    name = text.rsplit("/", 1)[-1].split("?", 1)[0] if is_remote(text) else Path(text).name
    for ext in (".zip", ".safe", ".tif", ".tiff", ".vrt", ".jp2", ".img"):
        if name.lower().endswith(ext) and len(name) > len(ext):
            name = name[: -len(ext)]  # S2A_....SAFE.zip -> S2A_...
    if is_remote(text):
        return Path(f"{name}.lulc.tif")
    if name in ("", ".", ".."):  # `run .` in a band folder: beside it, under its real name
        name = Path(text or "/").resolve().name
        return Path(os.path.normpath(os.path.join(text or "/", "..", f"{name}.lulc.tif")))
    return Path(text).parent / f"{name}.lulc.tif"


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"))


def _not_regular(path: Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file (following a symlink)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def check_output(src: str | os.PathLike, dst: Path, overwrite: bool,
                 probs: bool = False, confidence: bool = False) -> None:
    """Refuse an output that is not a GeoTIFF name, equals the input or lies inside a folder
    input, is anything but a regular file (a device, FIFO, socket, directory: never replaced),
    exists without ``overwrite``, or cannot be created."""
    if str(dst) in ("", "."):
        raise OutputError("empty output path")
    if _not_regular(dst) == "a directory":
        raise OutputError(f"{dst}: is a directory; name the output file (e.g. {dst}/map.tif), "
                          "or use --out-dir for a folder of maps")
    if dst.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise OutputError(f"{dst}: unknown output extension {dst.suffix or '(none)'!r}; "
                          "lulc-edge writes GeoTIFF: name it .tif or .tiff")
    local = not is_remote(src)
    if local and dst.resolve() == Path(src).resolve():
        raise OutputError(f"{dst}: output would overwrite the input")
    if local and Path(src).is_dir() and dst.resolve().is_relative_to(Path(src).resolve()):
        raise OutputError(f"{dst}: output inside the input folder {src}; write it elsewhere")
    for path in [dst] + [probs_path(dst)] * probs + [confidence_path(dst)] * confidence:
        what = _not_regular(path)
        if what is not None:
            raise OutputError(f"{path}: is {what}; only a regular file can be replaced by "
                              "an output")
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst}: output exists (use --overwrite to replace it)")
    parent = dst.parent
    if not parent.is_dir():
        raise OutputError(f"{dst}: output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{dst}: output directory {parent} is not writable")
