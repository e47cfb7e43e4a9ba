"""lulc_edge.synthetic_fields: what a synthetic scene is made of, before any pixel value.

:class:`SceneSpec`, the band and class constants, and the per-spec random fields of
:mod:`lulc_edge.synthetic` (which turns them into spectra): value-noise lattices for the classes,
the mixing parameter, crop parcels and clouds, the nodata holes. Every field is evaluated
elementwise at pixel coordinates, so a pixel never depends on the block it is computed in.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from rasterio.transform import Affine

from .contract import MODEL_BANDS

#: Band order of the model input (SCL sits between B9 and B11).
BAND_NAMES: tuple[str, ...] = MODEL_BANDS
#: The 12 spectral bands, in the order of the columns of synthetic's spectra tables.
SPECTRAL_BANDS: tuple[str, ...] = tuple(b for b in BAND_NAMES if b != "SCL")
SCL_INDEX = BAND_NAMES.index("SCL")
CLASS_NAMES: tuple[str, ...] = ("Barren_Land", "Built-up_Area", "Crop", "Forest", "Water")
NODATA_LABEL = 255
#: SCL value of a clear pixel of each class (ESA Sen2Cor meanings).
CLASS_SCL: tuple[int, ...] = (5, 5, 4, 4, 6)
SCL_SHADOW, SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH = 3, 8, 9

# Seed-sequence tags, one per random component, so adding a component never shifts another.
TAG_CLASS, TAG_DETAIL, TAG_VAR, TAG_PARCEL, TAG_CLOUD, TAG_HOLES, TAG_ROW = range(7)


@dataclass(frozen=True)
class SceneSpec:
    """Everything that determines a synthetic scene; equal specs give identical scenes.

    ``region_scale`` is the approximate size in px of class regions, ``noise`` the relative
    per-band multiplicative noise (std) and ``noise_dn`` the additive noise (std, in DN).
    ``cloud_fraction`` is the approximate share of cloudy pixels (an equal share of shadows
    follows); set it to 0 for clear scenes.
    """

    width: int = 512
    height: int = 512
    seed: int = 0
    nodata_border: int = 8
    nodata_holes: int = 2
    crs: str = "EPSG:32633"
    origin_x: float = 399960.0
    origin_y: float = 5000040.0
    pixel_size: float = 10.0
    noise: float = 0.03
    noise_dn: float = 30.0
    region_scale: float = 48.0
    cloud_fraction: float = 0.02
    dtype: str = "uint16"

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"scene size must be positive, got {self.width}x{self.height}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.nodata_border < 0 or self.nodata_holes < 0:
            raise ValueError("nodata_border and nodata_holes must be >= 0")
        if self.region_scale < 4:
            raise ValueError(f"region_scale must be >= 4 px, got {self.region_scale}")
        if not 0.0 <= self.cloud_fraction < 0.5:
            raise ValueError(f"cloud_fraction must be in [0, 0.5), got {self.cloud_fraction}")
        if self.noise < 0 or self.noise_dn < 0 or self.pixel_size <= 0:
            raise ValueError("noise, noise_dn must be >= 0 and pixel_size > 0")
        if self.dtype != "uint16":
            raise ValueError(f"only uint16 scenes are supported, got dtype={self.dtype!r}")

    @property
    def transform(self) -> Affine:
        """Affine transform of the scene grid (north-up, origin at the top-left corner)."""
        return Affine(self.pixel_size, 0.0, self.origin_x, 0.0, -self.pixel_size, self.origin_y)


# ----------------------------------------------------------------------------- value noise


class Grid:
    """Random values on a square lattice, evaluated anywhere by smoothstep-bilinear interpolation.

    Lattice node k along an axis sits at pixel coordinate (k - margin) * spacing. Evaluation is
    elementwise per row/column, so the value at a pixel never depends on the block it is in.
    """

    def __init__(self, values: np.ndarray, spacing: float, margin: int) -> None:
        self.values = np.ascontiguousarray(values, dtype=np.float32)
        self.spacing = float(spacing)
        self.margin = margin

    @classmethod
    def random(
        cls, rng: np.random.Generator, height: int, width: int, spacing: float, margin: int
    ) -> Grid:
        ny = int(math.ceil(height / spacing)) + 2 * margin + 2
        nx = int(math.ceil(width / spacing)) + 2 * margin + 2
        return cls(rng.random((ny, nx), dtype=np.float32), spacing, margin)

    def _axis(self, coords: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        u = coords / self.spacing + self.margin
        i0 = np.floor(u)
        f = u - i0
        w = (f * f * (3.0 - 2.0 * f)).astype(np.float32)
        i0 = i0.astype(np.intp)
        if i0.min() < 0 or i0.max() + 1 >= size:
            raise ValueError("value-noise lattice too small for the requested coordinates")
        return i0, w

    def eval(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Values at pixel coordinates ys (rows) x xs (cols), shape (len(ys), len(xs))."""
        iy, wy = self._axis(np.asarray(ys, dtype=np.float64), self.values.shape[0])
        ix, wx = self._axis(np.asarray(xs, dtype=np.float64), self.values.shape[1])
        g = self.values
        rows = g[iy] * (1.0 - wy)[:, None] + g[iy + 1] * wy[:, None]
        return rows[:, ix] * (1.0 - wx) + rows[:, ix + 1] * wx


def seeded_rng(spec: SceneSpec, *tags: int) -> np.random.Generator:
    """The generator of one random component (``tags``) of a spec's scene."""
    return np.random.default_rng([spec.seed & 0xFFFFFFFF, spec.seed >> 32, *tags])


@dataclass(frozen=True)
class ScenePlan:
    """The per-spec state shared by all blocks: lattices, cloud threshold, hole positions."""

    classes: tuple[Grid, ...]
    variation: Grid
    parcels: np.ndarray
    parcel_size: float
    cloud: Grid | None
    cloud_threshold: float
    cloud_ramp: float
    shadow_offset: tuple[float, float]
    holes: np.ndarray  # (n, 3): centre row, centre col, radius


@functools.lru_cache(maxsize=8)
def scene_plan(spec: SceneSpec) -> ScenePlan:
    """The fields of ``spec``'s scene, made once per spec (cached)."""
    h, w, s = spec.height, spec.width, float(spec.region_scale)
    # Class fields: a coarse lattice (spacing = region_scale) plus a 4x finer detail octave,
    # baked into one lattice at the fine spacing so a block needs one lookup per class.
    fine = max(2.0, s / 4.0)
    rng_c, rng_d = seeded_rng(spec, TAG_CLASS), seeded_rng(spec, TAG_DETAIL)
    classes = []
    for _ in CLASS_NAMES:
        coarse = Grid.random(rng_c, h, w, s, margin=2)
        base = Grid.random(rng_d, h, w, fine, margin=2)
        nodes_y = (np.arange(base.values.shape[0]) - base.margin) * fine
        nodes_x = (np.arange(base.values.shape[1]) - base.margin) * fine
        baked = coarse.eval(nodes_y, nodes_x) + 0.3 * (base.values - 0.5)
        classes.append(Grid(baked, fine, base.margin))
    variation = Grid.random(seeded_rng(spec, TAG_VAR), h, w, s / 2.0, margin=2)
    parcel_size = max(4.0, s / 3.0)
    ny, nx = int(h // parcel_size) + 2, int(w // parcel_size) + 2
    parcels = seeded_rng(spec, TAG_PARCEL).random((ny, nx), dtype=np.float32)

    cloud, threshold, ramp, offset = None, 2.0, 1.0, (0.0, 0.0)
    if spec.cloud_fraction > 0:
        cs = 1.5 * s
        offset = (0.6 * s, 0.4 * s)  # shadow displacement (rows, cols), sun from the north-west
        margin = 3 + int(math.ceil(max(offset) / cs))
        cloud = Grid.random(seeded_rng(spec, TAG_CLOUD), h, w, cs, margin=margin)
        # Threshold: the quantile of the interpolated field on a subsample of the scene, so the
        # cloud share is close to cloud_fraction whatever the lattice draw.
        sy = np.linspace(0, h - 1, min(h, 256)) + 0.5
        sx = np.linspace(0, w - 1, min(w, 256)) + 0.5
        sample = cloud.eval(sy, sx)
        threshold = float(np.quantile(sample, 1.0 - spec.cloud_fraction))
        ramp = max(1e-3, float(np.quantile(sample, 1.0)) - threshold) * 0.5
    rng_h = seeded_rng(spec, TAG_HOLES)
    holes = np.zeros((spec.nodata_holes, 3))
    if spec.nodata_holes:
        holes[:, 0] = rng_h.uniform(0, h, spec.nodata_holes)
        holes[:, 1] = rng_h.uniform(0, w, spec.nodata_holes)
        r_max = max(2.0, min(s / 4.0, min(h, w) / 16.0))  # small even on small scenes
        holes[:, 2] = rng_h.uniform(1.5, r_max, spec.nodata_holes)
    return ScenePlan(
        tuple(classes), variation, parcels, parcel_size, cloud, threshold, ramp, offset, holes
    )


def class_labels(plan: ScenePlan, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Argmax of the class fields (uint8), before nodata."""
    best = plan.classes[0].eval(ys, xs)
    labels = np.zeros(best.shape, dtype=np.uint8)
    for c in range(1, len(plan.classes)):
        f = plan.classes[c].eval(ys, xs)
        better = f > best
        labels[better] = c
        np.maximum(best, f, out=best)
    return labels


def mix_weights(labels_halo: np.ndarray) -> np.ndarray:
    """(5, H, W) class weights from a [1, 2, 1] x [1, 2, 1] / 16 kernel over a 1 px halo."""
    n = len(CLASS_NAMES)
    h, w = labels_halo.shape[0] - 2, labels_halo.shape[1] - 2
    out = np.empty((n, h, w), dtype=np.float32)
    for c in range(n):
        one = (labels_halo == c).astype(np.float32)
        v = one[:-2] + 2.0 * one[1:-1] + one[2:]
        out[c] = (v[:, :-2] + 2.0 * v[:, 1:-1] + v[:, 2:]) * (1.0 / 16.0)
    return out


def nodata_mask(spec: SceneSpec, plan: ScenePlan, row0: int, row1: int) -> np.ndarray:
    """Border of ``nodata_border`` px plus the round holes, for rows [row0, row1)."""
    rows = np.arange(row0, row1)[:, None]
    cols = np.arange(spec.width)[None, :]
    b = spec.nodata_border
    mask = (rows < b) | (rows >= spec.height - b) | (cols < b) | (cols >= spec.width - b)
    for cy, cx, rad in plan.holes:
        mask |= (rows + 0.5 - cy) ** 2 + (cols + 0.5 - cx) ** 2 <= rad**2
    return mask
