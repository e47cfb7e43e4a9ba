"""lulc_edge.preview_draw: the drawing of :mod:`lulc_edge.preview`'s pictures with Pillow:
colours, the legend panel, the stats chart, side-by-side panels, PNG bytes."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .errors import LulcEdgeError

if TYPE_CHECKING:
    from .preview import MapView


def _pil():  # noqa: ANN202 - the PIL modules
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise LulcEdgeError("pictures need Pillow: pip install 'lulc-edge[serve]'") from None
    return Image, ImageDraw, ImageFont


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


def png_bytes(image) -> bytes:  # noqa: ANN001 - a PIL image
    """A picture encoded as PNG."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=3)  # 6 (the default) is 10 % smaller, slower
    return buf.getvalue()
