"""lulc_edge.change: what became what between two class maps of the same grid.

Both maps are read in full-width row blocks. Every pixel that holds a class in both maps
(values 0..K-1: not nodata 255, not Cloud 254) gets the code ``from * K + to`` in a paletted
uint8 GeoTIFF (nodata 255 elsewhere) whose tags name each code (``Forest -> Crop``); changed
codes take the colour of the class they became, unchanged ones a grey. The transition matrix
counts pixels and hectares (each row's ground area, :mod:`lulc_edge.areas`), and is written as
JSON or CSV; a picture of the change map with a legend of the largest transitions needs
Pillow (the ``serve`` extra).
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from .areas import AreaSum
from .contract import ClassInfo
from .errors import InputError
from .files import partial_path, place, write_atomic
from .raster import BLOCK, COMPLETE_TAG, write_error
from .styles import class_tags, colormap, pam_xml
from .zonal import map_classes, open_map, row_blocks

#: Change code of no comparison (nodata or Cloud in either map).
NODATA = 255
#: Most classes a change map can code in one byte (K * K codes below Cloud 254).
MAX_CLASSES = 15
#: Colour of unchanged pixels.
UNCHANGED_COLOR = "#c8c8c8"
#: Colour of the transitions a picture's legend has no room for.
OTHER_COLOR = "#808080"
#: The change map's nodata, named.
NOT_COMPARED = ClassInfo(NODATA, "Not compared", "#000000")
#: Tags naming the two maps of a change map.
FROM_TAG, TO_TAG = "LULC_EDGE_CHANGE_FROM", "LULC_EDGE_CHANGE_TO"


def code_name(classes: tuple[str, ...], code: int) -> str:
    """``From -> To`` of a change code."""
    k = len(classes)
    return f"{classes[code // k]} -> {classes[code % k]}"


@dataclass(frozen=True)
class ChangeResult:
    """The transitions between map ``a`` and map ``b``: ``pixels[i, j]`` pixels of class i in
    ``a`` are class j in ``b`` (``hectares`` likewise, None when the grid has no area, see
    ``no_area``); ``not_compared`` pixels are nodata or Cloud in either map."""

    a: str
    b: str
    output: str
    classes: tuple[str, ...]
    pixels: np.ndarray
    hectares: np.ndarray | None
    not_compared: int
    no_area: str | None = None

    @property
    def changed(self) -> int:
        """Pixels whose class differs."""
        return int(self.pixels.sum() - np.trace(self.pixels))

    def transitions(self, changed_only: bool = False) -> list[dict[str, Any]]:
        """Every (from, to) cell, largest first: code, names, pixels, hectares."""
        k = len(self.classes)
        rows = []
        for code in range(k * k):
            i, j = divmod(code, k)
            if changed_only and i == j:
                continue
            ha = None if self.hectares is None else round(float(self.hectares[i, j]), 4)
            rows.append({"code": code, "from": self.classes[i], "to": self.classes[j],
                         "pixels": int(self.pixels[i, j]), "hectares": ha})
        return sorted(rows, key=lambda r: (-r["pixels"], r["code"]))

    def as_dict(self) -> dict[str, Any]:
        ha = None if self.hectares is None else np.round(self.hectares, 4).tolist()
        return {"from": self.a, "to": self.b, "output": self.output,
                "classes": list(self.classes), "no_area": self.no_area,
                "compared_pixels": int(self.pixels.sum()), "changed_pixels": self.changed,
                "not_compared_pixels": self.not_compared,
                "matrix": {"pixels": self.pixels.tolist(), "hectares": ha},
                "transitions": self.transitions()}

    def to_csv(self) -> str:
        """One row per (from, to) cell: from,to,code,pixels,hectares."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["from", "to", "code", "pixels", "hectares"])
        for r in sorted(self.transitions(), key=lambda r: r["code"]):
            w.writerow([r["from"], r["to"], r["code"], r["pixels"],
                        "" if r["hectares"] is None else r["hectares"]])
        return buf.getvalue()


def _grid(ds: Any) -> str:
    return f"{ds.width}x{ds.height} px, {ds.crs or 'no CRS'}, origin {ds.transform.c:g} " \
           f"{ds.transform.f:g}, pixel {ds.transform.a:g} x {ds.transform.e:g}"


def _check_pair(a: Any, b: Any, a_path: str, b_path: str) -> tuple[str, ...]:
    """The class names both maps share; InputError naming both files when they differ in
    grid or classes."""
    same = ((a.width, a.height) == (b.width, b.height) and a.crs == b.crs
            and a.transform.almost_equals(b.transform))
    if not same:
        raise InputError(f"{a_path} and {b_path} are not on the same grid ({_grid(a)} vs "
                         f"{_grid(b)}); resample one onto the other first")
    names, other = map_classes(a), map_classes(b)
    if names != other:
        raise InputError(f"{a_path} and {b_path} have different classes ({', '.join(names)} "
                         f"vs {', '.join(other)})")
    if len(names) > MAX_CLASSES:
        raise InputError(f"{a_path}: {len(names)} classes; a change map codes at most "
                         f"{MAX_CLASSES} ({MAX_CLASSES}x{MAX_CLASSES} transitions in a byte)")
    return names


def _colours(ds: Any, names: tuple[str, ...]) -> list[tuple[int, int, int]]:
    """The map's colour of each class (its colour table; grey where it has none)."""
    try:
        cmap = ds.colormap(1)
    except ValueError:
        cmap = {}
    return [tuple(cmap.get(v, (128, 128, 128))[:3]) for v in range(len(names))]


def change_legend(names: tuple[str, ...], to_rgb: list[tuple[int, int, int]]
                  ) -> list[ClassInfo]:
    """The change codes as classes: ``From -> To``, coloured as the class they became,
    unchanged ones grey."""
    k, out = len(names), []
    for code in range(k * k):
        rgb = to_rgb[code % k]
        color = UNCHANGED_COLOR if code // k == code % k else "#{:02x}{:02x}{:02x}".format(*rgb)
        out.append(ClassInfo(code, code_name(names, code), color))
    return out


def _profile(ds: Any) -> dict[str, Any]:
    return {"driver": "GTiff", "width": ds.width, "height": ds.height, "count": 1,
            "dtype": "uint8", "crs": ds.crs, "transform": ds.transform, "nodata": NODATA,
            "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate"}


def codes(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Change codes of two blocks of class values: ``a * k + b`` where both are classes
    (0..k-1), NODATA elsewhere."""
    both = (a < k) & (b < k)
    return np.where(both, a.astype(np.uint16) * k + b, NODATA).astype(np.uint8)


def _write(out: Path, a: Any, b: Any, names: tuple[str, ...], tags: dict[str, str],
           block_rows: int) -> AreaSum:
    """Write the change map to a temporary name and rename it into place; its counts."""
    k, tmp = len(names), partial_path(out)
    areas = AreaSum(a.crs, a.transform)
    # the change codes as a contract's classes and nodata: the styles module's colour table,
    # class tags and GDAL PAM (category names, attribute table) serve them as they serve maps
    pam = SimpleNamespace(classes=tuple(change_legend(names, _colours(b, names))),
                          nodata=NOT_COMPARED)
    try:
        with rasterio.open(tmp, "w", **_profile(a)) as dst:
            dst.write_colormap(1, colormap(pam))  # type: ignore[arg-type]
            dst.set_band_description(1, "change")
            for row0, rows in row_blocks(a.height, block_rows):
                win = Window(0, row0, a.width, rows)
                block = codes(a.read(1, window=win), b.read(1, window=win), k)
                dst.write(block, 1, window=win)
                areas.add(block, row0)
            dst.update_tags(**class_tags(pam), **tags)  # type: ignore[arg-type]
            dst.update_tags(**{COMPLETE_TAG: "1"})
        place(tmp, out)
    except (RasterioError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(out, exc) from None
    write_atomic(out.with_name(out.name + ".aux.xml"), pam_xml(pam))  # type: ignore[arg-type]
    return areas


def change(a_path: str | os.PathLike, b_path: str | os.PathLike, out_path: str | os.PathLike,
           *, overwrite: bool = False, block_rows: int = 512) -> ChangeResult:
    """Map the transitions from class map ``a_path`` to class map ``b_path`` (same grid, same
    classes) into ``out_path``; the transition matrix in pixels and hectares."""
    from .paths import check_output

    out = Path(out_path)
    for src in (a_path, b_path):
        check_output(src, out, overwrite)
    with open_map(a_path) as a, open_map(b_path) as b:
        names = _check_pair(a, b, str(a_path), str(b_path))
        areas = _write(out, a, b, names, {FROM_TAG: str(a_path), TO_TAG: str(b_path)},
                       block_rows)
    k = len(names)
    ha = areas.hectares()
    return ChangeResult(
        str(a_path), str(b_path), str(out), names,
        areas.counts[: k * k].reshape(k, k).copy(),
        None if ha is None else ha[: k * k].reshape(k, k).copy(),
        int(areas.counts[NODATA]), areas.note())


def change_picture(change_path: str | os.PathLike, png_path: str | os.PathLike,
                   top: int = 8, size: int = 1024) -> Path:
    """A PNG of a change map: changes in the colour of their new class, unchanged pixels grey,
    with a legend of the ``top`` largest transitions (the others drawn and listed together as
    "other changes"). Needs Pillow."""
    from dataclasses import replace

    from .preview import MIN_SIZE, _legend, _pil, colour_lut, enlarge, png_bytes, read_map

    Image, _, _ = _pil()
    view, _ = enlarge(read_map(change_path, size), None, MIN_SIZE)
    lut = colour_lut(view)
    nodata = next(c for c in view.legend if c.value == view.nodata)
    k = math.isqrt(len(view.legend) - 1)
    same = [c for c in view.legend if c is not nodata and c.value // k == c.value % k]
    moved = sorted((c for c in view.legend if c not in same and c is not nodata
                    and view.pixels[c.name]), key=lambda c: -view.pixels[c.name])
    legend, pixels = moved[:top], {c.name: view.pixels[c.name] for c in moved[:top]}
    if moved[top:]:
        other = ClassInfo(-1, "other changes", OTHER_COLOR)
        lut[[c.value for c in moved[top:]]] = other.rgb
        legend.append(other)
        pixels[other.name] = sum(view.pixels[c.name] for c in moved[top:])
    legend += [ClassInfo(-2, "unchanged", UNCHANGED_COLOR), nodata]
    pixels["unchanged"] = sum(view.pixels[c.name] for c in same)
    pixels[nodata.name] = view.pixels[nodata.name]
    picture = _legend(Image.fromarray(lut[view.classes]),
                      replace(view, legend=legend, pixels=pixels), "Changes")
    path = Path(png_path)
    write_atomic(path, png_bytes(picture))
    return path
