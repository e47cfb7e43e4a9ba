"""lulc_edge.preview: quicklook pictures of a class map (mask, overlay, annotated, stats).

Everything is read decimated (rasterio ``out_shape``; GDAL picks an overview where the file
has one), so a preview of a full 10980 px tile never holds the full-resolution map or scene:
only the class counts are exact, summed block by block. Needs Pillow (the ``serve`` extra).
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from .contract import ClassInfo
from .errors import InputError, LulcEdgeError, OutputError, one_line
from .raster import band_counts, confidence_path, write_atomic, write_qml
from .sources import SourceOptions, is_remote, open_source
from .thumbnail import DEFAULT_SIZE, RGB_BANDS, out_shape, sample_index

#: The pictures, in the order they are written: NAME.<kind>.png.
KINDS = ("mask", "overlay", "annotated", "stats")
#: Longest side of the grid connected regions are searched on (enough to place a label).
REGION_SIZE = 512
#: Pictures of maps smaller than this (longest side, px) are enlarged, nearest neighbour, so a
#: 48 px scene's labels and legend stay readable (never beyond the ``size`` asked for).
MIN_SIZE = 512
#: A label's box on a picture: x0, y0, x1, y1 in pixels, x1 and y1 excluded.
Box = tuple[int, int, int, int]
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
        row, col = deepest(region)
        mean_conf = float(np.nanmean(conf[region])) if conf is not None else None
        out.append(Region(c, (row + 0.5) * step, (col + 0.5) * step,
                          int(counts.max()) * step * step, mean_conf))
    return out


def deepest(region: np.ndarray) -> tuple[int, int]:
    """(row, col) of a pixel of ``region`` the most 4-connected erosions away from its edge
    (the picture's border is an edge): a marker there sits well inside its region, so two
    regions' markers stay apart. Of those pixels, the one nearest their centre."""
    rows, cols = np.nonzero(region)
    r0, c0 = int(rows.min()), int(cols.min())
    m = region[r0: int(rows.max()) + 1, c0: int(cols.max()) + 1]
    while True:  # a box's border pixels are edge pixels: nothing of the region lies beyond
        e = m.copy()
        e[1:] &= m[:-1]
        e[:-1] &= m[1:]
        e[:, 1:] &= m[:, :-1]
        e[:, :-1] &= m[:, 1:]
        e[[0, -1]] = False
        e[:, [0, -1]] = False
        if not e.any():
            break
        m = e
    rows, cols = np.nonzero(m)
    k = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
    return int(rows[k]) + r0, int(cols[k]) + c0


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


def enlarge(view: MapView, rgb: np.ndarray | None, size: int
            ) -> tuple[MapView, np.ndarray | None]:
    """The view (and true colour) repeated k x k, nearest neighbour, so the longest side is
    ``size`` at least; unchanged when it already is."""
    k = -(-size // max(view.classes.shape))
    if k <= 1:
        return view, rgb

    def up(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a.repeat(k, 0).repeat(k, 1)

    return replace(view, classes=up(view.classes), confidence=up(view.confidence)), up(rgb)


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


@dataclass
class Label:
    """A class's label on the annotated picture: its text, box and the marker it names."""

    text: str
    box: Box | None  # None: no room left on the picture
    x: float         # the marker's centre
    y: float


def label_font_size(height: int) -> int:
    """The annotated picture's label font size (px) for a picture ``height`` px high."""
    return max(11, min(24, height // 30))


def annotate(view: MapView, picture: np.ndarray):  # noqa: ANN201 - (PIL image, labels)
    """``picture`` (h, w, 3) with a marker on each class's largest region and a label naming
    the class (and its mean confidence) placed by ``place_labels``; returns the image and
    the labels."""
    Image, ImageDraw, _ = _pil()
    img = Image.fromarray(picture)
    d = ImageDraw.Draw(img)
    fs = label_font_size(img.height)
    font, r, pad = _font(fs), max(4, fs // 2), 3
    regions = largest_regions(view)
    texts = [g.cls.name + (f" {100 * g.confidence:.0f} %" if g.confidence is not None else "")
             for g in regions]
    ink = [d.textbbox((0, 0), t, font=font) for t in texts]  # (left, top, right, bottom)
    sizes = [(int(b[2] - b[0]) + 2 * pad, int(b[3] - b[1]) + 2 * pad) for b in ink]
    boxes = place_labels([(g.col, g.row) for g in regions], sizes, img.width, img.height, r)
    labels = [Label(t, b, g.col, g.row) for t, b, g in zip(texts, boxes, regions, strict=True)]
    for lab in labels:  # leader lines first: markers and labels are drawn over them
        if lab.box is not None:
            x0, y0, x1, y1 = lab.box
            nx, ny = min(max(lab.x, x0), x1 - 1), min(max(lab.y, y0), y1 - 1)
            if (nx - lab.x) ** 2 + (ny - lab.y) ** 2 > (r + 8) ** 2:
                d.line([(lab.x, lab.y), (nx, ny)], fill=(255, 255, 255), width=2)
    for g in regions:
        d.ellipse([g.col - r, g.row - r, g.col + r, g.row + r], fill=g.cls.rgb,
                  outline=(255, 255, 255), width=2)
    for lab, b in zip(labels, ink, strict=True):
        if lab.box is not None:
            x0, y0, x1, y1 = lab.box
            d.rectangle([x0, y0, x1 - 1, y1 - 1], fill=(0, 0, 0))
            d.text((x0 + pad - b[0], y0 + pad - b[1]), lab.text, fill=(255, 255, 255),
                   font=font)
    return img, labels


def _label_candidates(x: float, y: float, w: int, h: int, near: int, width: int,
                      height: int) -> np.ndarray:
    """(n, 4) boxes of w x h for a label of a marker at (x, y), best first: the eight places
    ``near`` px beside it, then every place on a grid of the picture, nearest first."""
    xl, xc, xr = x - near - w, x - w / 2, x + near
    yt, yc, yb = y - near - h, y - h / 2, y + near
    beside = [(xr, yc), (xl, yc), (xc, yt), (xc, yb), (xr, yt), (xr, yb), (xl, yt), (xl, yb)]
    step = max(2, h // 2)
    gx = np.unique(np.r_[np.arange(0, width - w + 1, step), max(width - w, 0)])
    gy = np.unique(np.r_[np.arange(0, height - h + 1, step), max(height - h, 0)])
    grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2).astype(np.float64)
    dist = (grid[:, 0] + w / 2 - x) ** 2 + (grid[:, 1] + h / 2 - y) ** 2
    xy = np.vstack([np.floor(beside), grid[np.argsort(dist, kind="stable")]]).astype(np.int64)
    return np.column_stack([xy, xy + (w, h)])


def place_labels(anchors: list[tuple[float, float]], sizes: list[tuple[int, int]],
                 width: int, height: int, radius: int, gap: int = 3) -> list[Box | None]:
    """Boxes for labels of ``sizes`` (w, h) naming markers of ``radius`` at ``anchors`` (x, y)
    on a ``width`` x ``height`` picture, placed in order: each inside the picture, ``gap`` px
    clear of every marker and of the labels before it; beside its marker where there is room,
    else at the free place nearest it (drawn with a leader line); None when none is left."""
    taken = [(int(np.floor(x - radius)), int(np.floor(y - radius)),
              int(np.ceil(x + radius)) + 1, int(np.ceil(y + radius)) + 1) for x, y in anchors]
    out: list[Box | None] = []
    for (x, y), (w, h) in zip(anchors, sizes, strict=True):
        c = _label_candidates(x, y, w, h, radius + gap + 2, width, height)
        ok = (c[:, 0] >= 0) & (c[:, 1] >= 0) & (c[:, 2] <= width) & (c[:, 3] <= height)
        for t in taken:
            ok &= ~((c[:, 0] < t[2] + gap) & (t[0] - gap < c[:, 2])
                    & (c[:, 1] < t[3] + gap) & (t[1] - gap < c[:, 3]))
        hit = np.flatnonzero(ok)
        box = tuple(int(v) for v in c[hit[0]]) if len(hit) else None
        if box is not None:
            taken.append(box)
        out.append(box)
    return out


def two_panels(left, right, titles: tuple[str, str]):  # noqa: ANN001, ANN201 - PIL images
    """``left`` and ``right`` side by side, each under its title: the original app's
    /predict overlay (true colour | overlay), which its page's "RGB + Overlay" tab shows."""
    Image, ImageDraw, _ = _pil()
    fs = max(12, min(28, max(left.height, right.height) // 24))
    font, top, gap = _font(fs), int(fs * 1.8), fs
    canvas = Image.new("RGB", (left.width + gap + right.width,
                               top + max(left.height, right.height)), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    for x, pic, title in ((0, left, titles[0]), (left.width + gap, right, titles[1])):
        canvas.paste(pic, (x, top))
        d.text((x + fs // 2, fs // 3), title, fill=(0, 0, 0), font=font)
    return canvas


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
