"""Three cloudy "dates" of the example scene, to try ``lulc-edge composite`` on.

Each date is the example scene with its own illumination noise and a thick cloud planted
somewhere else (bright, flat reflectances; SCL 9, cloud high probability, with an 8 rim), as a
real season's scenes are cloudy in different places. Run from the repository root:

    python examples/season_dates.py season/
    lulc-edge composite season/date-*.tif -o season/summer.tif --preview
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio

SCENE = Path(__file__).parent / "data" / "example-scene.tif"
SCL = 10  # the SCL band's index in the model's band order (B1..B9, B8A, SCL, B11, B12)
#: (rows, cols) of each date's cloud
CLOUDS = [(slice(60, 220), slice(300, 470)), (slice(250, 420), slice(60, 260)),
          (slice(330, 480), slice(280, 440))]


def date(bands: np.ndarray, box: tuple[slice, slice], seed: int) -> np.ndarray:
    """One date: noise on the reflectances, a cloud in ``box``."""
    out = bands.copy()
    refl = [b for b in range(len(out)) if b != SCL]
    data = np.any(out[refl] != 0, axis=0)
    gain = 1 + 0.03 * np.random.default_rng(seed).standard_normal(data.shape)
    for b in refl:
        out[b] = np.where(data, np.clip(out[b] * gain, 1, 65535), 0)
    cloud = np.zeros(data.shape, bool)
    cloud[box] = True
    cloud &= data
    for b in refl:
        out[b][cloud] = 4400 if b < 9 else 2500
    rim = cloud & ~np.pad(cloud[4:-4, 4:-4], 4)
    out[SCL][cloud] = 9
    out[SCL][rim] = 8
    return out


def main(out_dir: str) -> None:
    dst = Path(out_dir)
    dst.mkdir(parents=True, exist_ok=True)
    with rasterio.open(SCENE) as src:
        bands, profile, descriptions = src.read(), src.profile, src.descriptions
    for i, box in enumerate(CLOUDS, 1):
        path = dst / f"date-{i}.tif"
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(date(bands, box, i))
            ds.descriptions = descriptions
        print(f"wrote   {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "season")
