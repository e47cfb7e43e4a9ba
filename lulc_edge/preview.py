"""lulc_edge.preview: quicklook pictures of a class map (mask, overlay, annotated, stats).

Everything is read decimated (rasterio ``out_shape``; GDAL picks an overview where the file
has one), so a preview of a full 10980 px tile never holds the full-resolution map or scene:
only the class counts are exact, summed block by block. Needs Pillow (the ``serve`` extra).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from .contract import ClassInfo
from .errors import InputError, OutputError, one_line
from .files import write_atomic
from .preview_draw import (
    _legend,
    _pil,
    colour_lut,
    enlarge,
    png_bytes,
    stats_chart,
    two_panels,
)
from .preview_labels import (
    Box,
    Label,
    Region,
    annotate,
    components,
    deepest,
    label_font_size,
    largest_regions,
    place_labels,
)
from .raster import band_counts, confidence_path
from .sources import SourceOptions, is_remote, open_source
from .spec import RunOptions
from .styles import write_qml
from .thumbnail import DEFAULT_SIZE, RGB_BANDS, out_shape, sample_index

#: The pictures, in the order they are written: NAME.<kind>.png.
KINDS = ("mask", "overlay", "annotated", "stats")
#: Pictures of maps smaller than this (longest side, px) are enlarged, nearest neighbour, so a
#: 48 px scene's labels and legend stay readable (never beyond the ``size`` asked for).
MIN_SIZE = 512
#: GDAL block cache while drawing (bytes): a decimated read of a file without overviews
#: touches every block once, so caching them gains nothing and would hold GDAL's default 5 %
#: of RAM.
PREVIEW_CACHE_BYTES = 64 * 2**20

__all__ = ["KINDS", "MIN_SIZE", "Box", "Label", "MapView", "Region", "annotate", "colour_lut",
           "components", "deepest", "enlarge", "label_font_size", "largest_regions",
           "out_shape", "pictures", "place_labels", "png_bytes", "preview_paths", "read_map",
           "read_true_colour", "render", "require_pillow", "stats_chart", "stretch",
           "two_panels", "with_pictures", "write_previews", "has_pictures"]


def require_pillow() -> None:
    """LulcEdgeError unless Pillow is installed: a run that will draw pictures checks it before
    it maps anything."""
    _pil()


@dataclass
class MapView:
    """A class map read for pictures: decimated arrays plus exact per-class statistics."""

    classes: np.ndarray            # (h, w) uint8, decimated (nearest)
    confidence: np.ndarray | None  # (h, w) float32 0..1 (NaN: nodata) when the map has one
    legend: list[ClassInfo]        # the classes, then nodata, from the map's tags and colours
    nodata: int
    pixels: dict[str, int]         # exact pixel counts per class name (nodata included)
    hectares: dict[str, float] | None
    area_note: str | None          # why ``hectares`` is None
    source_input: str | None       # the LULC_EDGE_SOURCE_INPUT tag

    @property
    def percent(self) -> dict[str, float]:
        total = max(sum(self.pixels.values()), 1)
        return {k: 100.0 * v / total for k, v in self.pixels.items()}


def read_map(path: str | os.PathLike, size: int = DEFAULT_SIZE) -> MapView:
    """Open a lulc-edge class map for pictures: decimated classes/confidence, exact counts."""
    try:
        ds = rasterio.open(path)
    except (rasterio.errors.RasterioError, OSError) as exc:
        if not os.path.exists(path):
            raise InputError(f"{path}: no such file") from None
        raise InputError(f"{path}: not a readable class map ({one_line(exc)})") from None
    with ds:
        if ds.dtypes[0] != "uint8":
            raise InputError(f"{path}: not a lulc-edge class map (band 1 is {ds.dtypes[0]})")
        tags = ds.tags()
        nodata = int(ds.nodata) if ds.nodata is not None else 255
        try:
            cmap = ds.colormap(1)
        except ValueError:
            cmap = {}
        values = sorted(int(k[6:]) for k in tags if k.startswith("CLASS_") and k[6:].isdigit())
        if not values:
            raise InputError(f"{path}: not a lulc-edge class map (no CLASS_<n> tags)")
        legend = [ClassInfo(v, tags[f"CLASS_{v}"], "#{:02x}{:02x}{:02x}".format(
            *cmap.get(v, (0, 0, 0))[:3])) for v in values if v != nodata]
        legend.append(ClassInfo(nodata, tags.get(f"CLASS_{nodata}", "Unclassified"), "#000000"))
        shape = out_shape(ds.width, ds.height, size)
        classes = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
        conf = None
        if ds.count >= 2 and (ds.descriptions[1] or "").lower() == "confidence":
            conf = ds.read(2, out_shape=shape, resampling=Resampling.nearest) / 255.0
            conf[classes == nodata] = np.nan  # maps before confidence files: 0..255 in band 2
        elif confidence_path(Path(path)).is_file():
            conf = read_confidence(confidence_path(Path(path)), shape)
        areas = band_counts(ds)
        pixels = {c.name: int(areas.counts[c.value]) for c in legend}
        hectares = areas.named_hectares({c.value: c.name for c in legend})
        return MapView(classes, conf, legend, nodata, pixels, hectares, areas.note(),
                       tags.get("LULC_EDGE_SOURCE_INPUT"))


def read_confidence(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A confidence file (percent, nodata 255) read decimated as fractions 0..1, NaN nodata."""
    try:
        with rasterio.open(path) as ds:
            pct = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
            return np.where(pct == ds.nodata, np.nan, pct / 100.0)
    except (rasterio.errors.RasterioError, OSError) as exc:
        raise InputError(f"{path}: not a readable confidence file ({one_line(exc)})") from None


def _rgb_locations(scene: str) -> list[tuple[str, int]]:
    """(raster, band index) of B4, B3, B2, as the scene's source says where they live."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no SCL etc.: irrelevant to a true-colour picture
        with open_source(scene, options=SourceOptions(scl_fill=0)) as src:
            where = src.band_locations()
    return [where[b] for b in RGB_BANDS]


def read_true_colour(scene: str | os.PathLike, shape: tuple[int, int],
                     valid: np.ndarray | None = None) -> np.ndarray:
    """(h, w, 3) uint8 true colour of B4/B3/B2 read decimated to ``shape`` (see ``stretch``)."""
    where = _rgb_locations(os.fspath(scene))
    by_raster: dict[str, list[int]] = {}
    for raster, index in where:
        by_raster.setdefault(raster, []).append(index)
    read: dict[tuple[str, int], np.ndarray] = {}
    for raster, indexes in by_raster.items():  # a stack's three bands in one decoding pass
        try:
            arr = read_decimated(raster, indexes, shape)
        except (rasterio.errors.RasterioError, OSError) as exc:
            raise InputError(f"{scene}: cannot read {raster} ({one_line(exc)})") from None
        read.update({(raster, i): a for i, a in zip(indexes, arr, strict=True)})
    return stretch(np.stack([read[loc] for loc in where]), valid)


def stretch(rgb: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(h, w, 3) uint8 from (3, h, w) B4/B3/B2 digital numbers, each band stretched from its 2nd
    to 98th percentile over valid pixels (nonzero, and ``valid`` where given)."""
    out = np.zeros((*rgb.shape[1:], 3), np.uint8)
    bands = [b.astype(np.float32) for b in rgb]
    ok = np.all([b > 0 for b in bands], axis=0)
    if valid is not None:
        ok &= valid
    if not ok.any():
        return out
    step = max(1, int(ok.sum()) // 1_000_000)  # percentiles of a million pixels are enough
    for i, b in enumerate(bands):
        lo, hi = np.percentile(b[ok][::step], (2, 98))
        scaled = (b - lo) * (255.0 / max(hi - lo, 1e-6))
        out[..., i] = np.where(ok, np.clip(scaled, 0, 255), 0).astype(np.uint8)
    return out


def read_decimated(path: str, indexes: list[int], shape: tuple[int, int],
                   strip: int = 256) -> np.ndarray:
    """Bands of a raster sampled (nearest) onto ``shape``: from the smallest overview at least
    that big, else the full resolution, read in strips of ``strip`` source rows holding all the
    bands at once, so a pixel-interleaved stack's blocks are decoded once (GDAL's resampled
    read goes band by band and, with a bounded block cache, decodes them once per band)."""
    with rasterio.open(path) as ds:
        level = -1
        for i, f in enumerate(ds.overviews(indexes[0])):
            if ds.width // f >= shape[1] and ds.height // f >= shape[0]:
                level = i
    with rasterio.open(path, overview_level=level) if level >= 0 else rasterio.open(path) as ds:
        rows, cols = sample_index(shape[0], ds.height), sample_index(shape[1], ds.width)
        out = np.empty((len(indexes), *shape), ds.dtypes[indexes[0] - 1])
        for start in range(0, ds.height, strip):
            sel = np.nonzero((rows >= start) & (rows < start + strip))[0]
            if not len(sel):
                continue
            lo, hi = int(rows[sel[0]]), int(rows[sel[-1]]) + 1
            block = ds.read(indexes, window=Window(0, lo, ds.width, hi - lo))
            out[:, sel] = block[:, rows[sel] - lo][:, :, cols]
        return out


def render(view: MapView, rgb: np.ndarray | None, min_size: int = MIN_SIZE
           ) -> dict[str, object]:
    """The pictures (PIL images) of a map view and its scene's true colour (or None): the
    four KINDS and ``true_colour``; a view smaller than ``min_size`` is enlarged first."""
    Image, _, _ = _pil()
    view, rgb = enlarge(view, rgb, min_size)
    lut = colour_lut(view)
    colours = lut[view.classes]
    valid = view.classes != view.nodata
    base = rgb if rgb is not None else np.zeros_like(colours)
    blend = np.where(valid[..., None],
                     (base.astype(np.uint16) + colours) // 2, 0).astype(np.uint8)
    return {
        "mask": _legend(Image.fromarray(colours), view, "Land cover"),
        "overlay": _legend(Image.fromarray(blend), view, "Land cover on true colour"),
        "annotated": annotate(view, base if rgb is not None else colours)[0],
        "stats": stats_chart(view),
        "true_colour": Image.fromarray(base),
    }


def pictures(map_path: str | os.PathLike, scene: str | os.PathLike | None = None,
             size: int = DEFAULT_SIZE, true_colour: np.ndarray | None = None
             ) -> tuple[MapView, dict[str, object]]:
    """Read a map (and its scene, by default the one its tags name) and draw the pictures.
    ``true_colour``: the scene's (3, h, w) B4/B3/B2 thumbnail gathered by the run that made
    the map (RunResult.true_colour), used instead of reading the scene again."""
    if size < 16:
        raise InputError(f"--size {size}: must be at least 16 px")
    env = {} if "GDAL_CACHEMAX" in os.environ else {"GDAL_CACHEMAX": PREVIEW_CACHE_BYTES}
    with rasterio.Env(**env):
        return _pictures(map_path, scene, size, true_colour)


def _pictures(map_path: str | os.PathLike, scene: str | os.PathLike | None,
              size: int, true_colour: np.ndarray | None) -> tuple[MapView, dict[str, object]]:
    view = read_map(map_path, size)
    least = min(MIN_SIZE, size)
    if true_colour is not None and true_colour.shape[1:] == view.classes.shape:
        return view, render(view, stretch(true_colour, view.classes != view.nodata), least)
    if scene is None and view.source_input is not None:
        scene = view.source_input
        if not is_remote(scene) and not os.path.exists(scene):
            raise InputError(f"{map_path}: its scene {scene} (LULC_EDGE_SOURCE_INPUT) is not "
                             "here; give it with --scene")
    rgb = None
    if scene is not None:
        rgb = read_true_colour(scene, view.classes.shape, view.classes != view.nodata)
    return view, render(view, rgb, least)


def preview_paths(map_path: str | os.PathLike, out_dir: str | os.PathLike | None = None
                  ) -> dict[str, Path]:
    """Where the pictures of a map go: NAME.<kind>.png beside it (or in ``out_dir``)."""
    p = Path(map_path)
    name = p.name[:-4] if p.name.lower().endswith(".tif") else p.name
    folder = Path(out_dir) if out_dir is not None else p.parent
    return {k: folder / f"{name}.{k}.png" for k in KINDS}


def write_previews(map_path: str | os.PathLike, scene: str | os.PathLike | None = None,
                   out_dir: str | os.PathLike | None = None,
                   size: int = DEFAULT_SIZE, qml: bool = False,
                   true_colour: np.ndarray | None = None) -> dict[str, Path]:
    """Write NAME.mask/overlay/annotated/stats.png for a class map; each written to a hidden
    temporary name and renamed, so a final name never holds a partial picture. ``qml`` adds
    the QGIS style NAME.qml beside the map (QGIS loads it with the map)."""
    paths = preview_paths(map_path, out_dir)
    folder = next(iter(paths.values())).parent
    view, pics = pictures(map_path, scene, size, true_colour)
    try:  # ``out_dir`` is made once there are pictures to put in it
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create output directory ({exc.strerror})") from None
    if qml:
        paths["qml"] = write_qml(Path(map_path),
                                 [c for c in view.legend if c.value != view.nodata],
                                 next(c for c in view.legend if c.value == view.nodata))
    for kind in KINDS:
        write_atomic(paths[kind], png_bytes(pics[kind]))
    return paths


# ---------------------------------------------------------------------------- after a run
def with_pictures(options: RunOptions, size: int = DEFAULT_SIZE) -> RunOptions:
    """A run's options for a map whose pictures will be drawn: the run keeps a ``size`` px
    true-colour thumbnail of the scene as it reads it (RunResult.true_colour), so the pictures
    need no second read; Pillow is checked now, before anything is mapped."""
    require_pillow()
    return replace(options, thumbnail=size)


def has_pictures(map_path: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> bool:
    """Whether a map's pictures are all there (a rerun of a batch draws the missing ones)."""
    return all(p.is_file() for p in preview_paths(map_path, out_dir).values())
