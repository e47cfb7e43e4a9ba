"""lulc_edge.preview_labels: where the annotated picture's labels go: each class's largest
connected region, a point deep inside it, and label boxes that overlap nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .contract import ClassInfo
from .preview_draw import _font, _pil

if TYPE_CHECKING:
    from .preview import MapView

#: Longest side of the grid connected regions are searched on (enough to place a label).
REGION_SIZE = 512
#: A label's box on a picture: x0, y0, x1, y1 in pixels, x1 and y1 excluded.
Box = tuple[int, int, int, int]


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
        known = conf[region][np.isfinite(conf[region])] if conf is not None else np.empty(0)
        mean_conf = float(known.mean()) if known.size else None  # Cloud has no confidence
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
