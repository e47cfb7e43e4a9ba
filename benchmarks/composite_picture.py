"""docs/composite.png: the README's picture of a composite, from examples/season_dates.py.

    python examples/season_dates.py season/
    for i in 1 2 3; do lulc-edge run season/date-$i.tif -q; done
    lulc-edge composite season/date-*.tif -o season/summer.tif
    python benchmarks/composite_picture.py season/ docs/composite.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image, ImageDraw

EDGE, PAD = 256, 8
LEGEND = [("Barren_Land", 0), ("Built-up_Area", 1), ("Crop", 2), ("Forest", 3), ("Water", 4)]


def coloured(path: Path) -> tuple[Image.Image, dict]:
    """A class map in its own colour table (nodata black)."""
    with rasterio.open(path) as ds:
        classes, cmap = ds.read(1), ds.colormap(1)
    lut = np.zeros((256, 3), np.uint8)
    for value, rgba in cmap.items():
        lut[value] = rgba[:3]
    lut[255] = 0
    return Image.fromarray(lut[classes]), cmap


def main(folder: str, out: str) -> None:
    d = Path(folder)
    panels = [(coloured(d / f"date-{i}.lulc.tif")[0], f"date {i}") for i in (1, 2, 3)]
    composite, cmap = coloured(d / "summer.tif")
    panels.append((composite, "composite (--rule mean)"))
    with rasterio.open(d / "summer.counts.tif") as ds:
        n_valid = ds.read(1)
    grey = Image.fromarray((n_valid * 85).clip(0, 255).astype(np.uint8)).convert("RGB")
    panels.append((grey, "n_valid: 0 (black) .. 3 (white)"))
    img = Image.new("RGB", (len(panels) * (EDGE + PAD) + PAD, EDGE + 62), "white")
    draw = ImageDraw.Draw(img)
    for i, (panel, title) in enumerate(panels):
        x = PAD + i * (EDGE + PAD)
        img.paste(panel.resize((EDGE, EDGE), Image.NEAREST), (x, 22))
        draw.text((x, 6), title, fill="black")
    x, y = PAD, EDGE + 32
    keys = [(n, tuple(cmap[v][:3])) for n, v in LEGEND] + [
        ("Cloud (a date's own map)", (255, 255, 255)), ("nodata / no clear observation", (0, 0, 0))]
    for name, rgb in keys:
        draw.rectangle([x, y, x + 14, y + 14], fill=rgb, outline="black")
        draw.text((x + 20, y + 1), name, fill="black")
        x += 130 if len(name) < 16 else 200
    img.save(out, optimize=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
