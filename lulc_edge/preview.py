"""lulc_edge.preview: quicklook pictures of a class map (mask, overlay, annotated, stats).

Everything is read decimated (rasterio ``out_shape``; GDAL picks an overview where the file
has one), so a preview of a full 10980 px tile never holds the full-resolution map or scene:
only the class counts are exact, summed block by block. Needs Pillow (the ``serve`` extra).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from .contract import ClassInfo
from .errors import InputError, LulcEdgeError, OutputError, one_line
from .products import find_band_files
from .raster import band_counts, confidence_path, write_atomic, write_qml
from .sources import SourceOptions, is_remote, open_source
from .thumbnail import DEFAULT_SIZE, RGB_BANDS, out_shape, sample_index

#: The pictures, in the order they are written: NAME.<kind>.png.
KINDS = ("mask", "overlay", "annotated", "stats")
#: Longest side of the grid connected regions are searched on (enough to place a label).
REGION_SIZE = 512
#: GDAL block cache while drawing (bytes): a decimated read of a file without overviews
#: touches every block once, so caching them gains nothing and would hold GDAL's default 5 %
#: of RAM.
PREVIEW_CACHE_BYTES = 64 * 2**20


def _pil():  # noqa: ANN202 - the PIL modules
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise LulcEdgeError("pictures need Pillow: pip install 'lulc-edge[serve]'") from None
    return Image, ImageDraw, ImageFont


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
    """(raster, band index) of B4, B3, B2, found by the project's source reader."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no SCL etc.: irrelevant to a true-colour picture
        with open_source(scene, options=SourceOptions(scl_fill=0)) as src:
            tags = src.tags()
    used = json.loads(tags.get("BAND_SOURCES", "{}"))
    if tags.get("INPUT_KIND") == "stack":
        return [(scene, int(used[b].rsplit(":", 1)[1])) for b in RGB_BANDS]
    files = find_band_files(scene).files
    return [(files[b], 1) for b in RGB_BANDS]


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


def components(labels: np.ndarray) -> np.ndarray:
    """4-connected regions of equal value: each pixel's region id (the smallest flat index in
    its region). Union-find over all neighbour pairs at once: hook roots to the smaller root,
    then pointer jumping, until no pair crosses two regions (a few rounds in practice)."""
    h, w = labels.shape
    idx = np.arange(h * w).reshape(h, w)
    hor = labels[:, :-1] == labels[:, 1:]
    ver = labels[:-1] == labels[1:]
    p = np.concatenate([idx[:, :-1][hor], idx[:-1][ver]])
    q = np.concatenate([idx[:, 1:][hor], idx[1:][ver]])
    parent = idx.ravel().copy()
    while True:
        rp, rq = parent[p], parent[q]
        cross = rp != rq
        if not cross.any():
            return parent.reshape(h, w)
        lo, hi = np.minimum(rp, rq)[cross], np.maximum(rp, rq)[cross]
        np.minimum.at(parent, hi, lo)
        while True:
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt


@dataclass
class Region:
    """The largest connected region of one class: where to put its label."""

    cls: ClassInfo
    row: float  # in the picture's pixel grid
    col: float
    pixels: int
    confidence: float | None  # mean confidence (0..1) over the region


def largest_regions(view: MapView) -> list[Region]:
    """Each present class's largest connected region, searched on a grid of REGION_SIZE px."""
    h, w = view.classes.shape
    step = max(1, -(-max(h, w) // REGION_SIZE))
    small = view.classes[::step, ::step]
    conf = view.confidence[::step, ::step] if view.confidence is not None else None
    ids = components(small)
    out = []
    for c in view.legend:
        if c.value == view.nodata:
            continue
        mask = small == c.value
        if not mask.any():
            continue
        found, counts = np.unique(ids[mask], return_counts=True)
        region = ids == found[np.argmax(counts)]
        rows, cols = np.nonzero(region)
        cr, cc = rows.mean(), cols.mean()
        k = np.argmin((rows - cr) ** 2 + (cols - cc) ** 2)  # a pixel of the region itself
        mean_conf = float(np.nanmean(conf[region])) if conf is not None else None
        out.append(Region(c, (rows[k] + 0.5) * step, (cols[k] + 0.5) * step,
                          int(counts.max()) * step * step, mean_conf))
    return out


def _font(px: int):  # noqa: ANN202 - a PIL font
    _, _, ImageFont = _pil()
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def colour_lut(view: MapView) -> np.ndarray:
    """(256, 3) uint8 lookup from class value to colour; nodata and unknown values black."""
    lut = np.zeros((256, 3), np.uint8)
    for c in view.legend:
        lut[c.value] = c.rgb if c.value != view.nodata else (0, 0, 0)
    return lut


def _legend(image, view: MapView, title: str):  # noqa: ANN001, ANN202 - PIL images
    """The picture with a legend panel on its right: colour, name and % of each class."""
    Image, ImageDraw, _ = _pil()
    fs = max(12, min(28, image.height // 24))
    font, line = _font(fs), int(fs * 1.6)
    rows = [(c.rgb if c.value != view.nodata else (0, 0, 0), c.name,
             f"{view.percent[c.name]:.2f} %") for c in view.legend]
    draw0 = ImageDraw.Draw(image)
    text_w = max([draw0.textlength(f"{n}  {p}", font=font) for _, n, p in rows]
                 + [draw0.textlength(title, font=font)])
    width = int(text_w + 3 * fs)
    height = max(image.height, line * (len(rows) + 2))
    canvas = Image.new("RGB", (image.width + width, height), (255, 255, 255))
    canvas.paste(image, (0, 0))
    d = ImageDraw.Draw(canvas)
    x0 = image.width + fs // 2
    d.text((x0, fs // 2), title, fill=(0, 0, 0), font=font)
    for i, (rgb, name, pct) in enumerate(rows, start=1):
        y = fs // 2 + i * line
        d.rectangle([x0, y, x0 + fs, y + fs], fill=tuple(rgb), outline=(90, 90, 90))
        d.text((x0 + int(1.5 * fs), y), f"{name}  {pct}", fill=(0, 0, 0), font=font)
    return canvas


def render(view: MapView, rgb: np.ndarray | None) -> dict[str, object]:
    """The four pictures (PIL images) of a map view and its scene's true colour (or None)."""
    Image, ImageDraw, _ = _pil()
    lut = colour_lut(view)
    colours = lut[view.classes]
    valid = view.classes != view.nodata
    base = rgb if rgb is not None else np.zeros_like(colours)
    blend = np.where(valid[..., None],
                     (base.astype(np.uint16) + colours) // 2, 0).astype(np.uint8)
    pics: dict[str, object] = {
        "mask": _legend(Image.fromarray(colours), view, "Land cover"),
        "overlay": _legend(Image.fromarray(blend), view, "Land cover on true colour"),
    }
    ann = Image.fromarray(base if rgb is not None else colours)
    d = ImageDraw.Draw(ann)
    fs = max(11, min(24, ann.height // 30))
    font, r = _font(fs), max(4, fs // 2)
    for reg in largest_regions(view):
        x, y = reg.col, reg.row
        d.ellipse([x - r, y - r, x + r, y + r], fill=reg.cls.rgb, outline=(255, 255, 255),
                  width=2)
        text = reg.cls.name + (f" {100 * reg.confidence:.0f} %" if reg.confidence is not None
                               else "")
        tw = d.textlength(text, font=font)
        tx = min(max(0, x + r + 3), max(0, ann.width - tw - 2))
        ty = min(max(0, y - fs // 2), max(0, ann.height - fs - 2))
        d.rectangle([tx - 2, ty - 1, tx + tw + 2, ty + fs + 3], fill=(0, 0, 0))
        d.text((tx, ty), text, fill=(255, 255, 255), font=font)
    pics["annotated"] = ann
    pics["stats"] = stats_chart(view)
    return pics


def stats_chart(view: MapView, width: int = 900):  # noqa: ANN201 - a PIL image
    """Horizontal bars of each class's area: % of all pixels and hectares."""
    Image, ImageDraw, _ = _pil()
    fs = 20
    font, line = _font(fs), 2 * fs
    label_w, value_w = 190, 260
    height = line * (len(view.legend) + 2)
    img = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.text((10, fs // 2), "Class area", fill=(0, 0, 0), font=font)
    bar_max = width - label_w - value_w - 20
    top = max(max(view.percent.values()), 1e-9)  # the largest class fills the bar
    for i, c in enumerate(view.legend, start=1):
        y = i * line + fs // 2
        pct = view.percent[c.name]
        d.text((10, y), c.name, fill=(0, 0, 0), font=font)
        rgb = c.rgb if c.value != view.nodata else (0, 0, 0)
        d.rectangle([label_w, y, label_w + max(1, int(bar_max * pct / top)), y + fs],
                    fill=rgb, outline=(90, 90, 90))
        ha = f"  {view.hectares[c.name]:,.1f} ha" if view.hectares else ""
        d.text((label_w + bar_max + 10, y), f"{pct:6.2f} %{ha}", fill=(0, 0, 0), font=font)
    return img


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
    if true_colour is not None and true_colour.shape[1:] == view.classes.shape:
        return view, render(view, stretch(true_colour, view.classes != view.nodata))
    if scene is None and view.source_input is not None:
        scene = view.source_input
        if not is_remote(scene) and not os.path.exists(scene):
            raise InputError(f"{map_path}: its scene {scene} (LULC_EDGE_SOURCE_INPUT) is not "
                             "here; give it with --scene")
    rgb = None
    if scene is not None:
        rgb = read_true_colour(scene, view.classes.shape, view.classes != view.nodata)
    return view, render(view, rgb)


def png_bytes(image) -> bytes:  # noqa: ANN001 - a PIL image
    """A picture encoded as PNG."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=3)  # 6 (the default) is 10 % smaller, slower
    return buf.getvalue()


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
    if not folder.is_dir():
        raise OutputError(f"{folder}: output directory does not exist")
    view, pics = pictures(map_path, scene, size, true_colour)
    if qml:
        paths["qml"] = write_qml(Path(map_path),
                                 [c for c in view.legend if c.value != view.nodata],
                                 next(c for c in view.legend if c.value == view.nodata))
    for kind in KINDS:
        write_atomic(paths[kind], png_bytes(pics[kind]))
    return paths
