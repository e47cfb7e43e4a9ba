"""lulc_edge.synthetic: the one generator of synthetic Sentinel-2 L2A scenes with known labels.

Tests, benchmarks, demo training and the bundled example all draw their scenes from here, so a
scene is a pure function of its :class:`SceneSpec`: every pixel depends only on the seed and its
(row, col), never on how the scene was cut into blocks. That lets :func:`write_scene` stream a
10980 x 10980 scene to disk in row blocks with bounded memory and still produce the same bytes
as :func:`generate` would in one go.

How a scene is built (numpy only):

* five smooth random fields (value noise at two octaves, interpolated from coarse grids made
  once per spec); the argmax is the class map, giving coherent regions ~``region_scale`` px wide;
* per class, two end-member spectra and a per-pixel mixing parameter (crop growth stage per
  rectangular parcel, forest density, water turbidity, soil moisture, urban texture);
* mixed pixels: spectra blended with a separable [1, 2, 1] kernel over the one-hot class map, so
  pixels next to a boundary mix their neighbours' classes (a 2 px band);
* per-pixel multiplicative + additive noise, seeded per row;
* SCL consistent with the class (4 vegetation, 5 not vegetated, 6 water), a few soft clouds
  (SCL 8/9, brightened) with displaced shadows (SCL 3, darkened), a nodata border and a few
  nodata holes (all 13 bands 0, label 255).
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.windows import Window

from .contract import MODEL_BANDS

__all__ = [
    "BAND_NAMES",
    "CLASS_NAMES",
    "CLASS_SCL",
    "NODATA_LABEL",
    "SPECTRAL_BANDS",
    "SceneSpec",
    "generate",
    "generate_rows",
    "write_scene",
]

#: Band order of the model input (SCL sits between B9 and B11).
BAND_NAMES: tuple[str, ...] = MODEL_BANDS
#: The 12 spectral bands, in the order of the rows of the spectra tables below.
SPECTRAL_BANDS: tuple[str, ...] = tuple(b for b in BAND_NAMES if b != "SCL")
SCL_INDEX = BAND_NAMES.index("SCL")
CLASS_NAMES: tuple[str, ...] = ("Barren_Land", "Built-up_Area", "Crop", "Forest", "Water")
NODATA_LABEL = 255
#: SCL value of a clear pixel of each class (ESA Sen2Cor meanings).
CLASS_SCL: tuple[int, ...] = (5, 5, 4, 4, 6)
SCL_SHADOW, SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH = 3, 8, 9

# Per-class end-member spectra, L2A surface reflectance (x10000 gives the digital number), bands
# B1 B2 B3 B4 B5 B6 B7 B8 B8A B9 B11 B12. Each class is a line between end member A (t=0) and B
# (t=1). The numbers are hand-rounded approximations, not measurements: typical shapes of bare
# soil, urban materials, green/sparse crops, broadleaf/conifer canopy and clear/turbid inland
# water as shown by the USGS Spectral Library v7 (splib07, Kokaly et al. 2017) spectra resampled
# to the Sentinel-2 MSI bands, and the class spectral profiles of the ESA Sentinel-2 User
# Handbook (2015) and published L2A samples (e.g. EuroSAT, Helber et al. 2019). They reproduce
# the features a land-cover model relies on: red edge and NIR plateau of vegetation (NDVI ~0.8
# for forest/green crops), SWIR > NIR for soil and built-up (NDBI > 0), NIR/SWIR absorption of
# water (NDWI > 0.8), redder slope of soil than of built-up, B9 lowered by water vapour.
# fmt: off
_SPECTRA_A = np.array([
    # B1    B2     B3     B4     B5     B6     B7     B8     B8A    B9     B11    B12
    [0.060, 0.070, 0.095, 0.125, 0.145, 0.155, 0.165, 0.175, 0.185, 0.140, 0.245, 0.205],  # moist
    [0.070, 0.075, 0.085, 0.090, 0.100, 0.110, 0.115, 0.120, 0.125, 0.100, 0.150, 0.140],  # dense
    [0.050, 0.060, 0.090, 0.110, 0.140, 0.180, 0.200, 0.220, 0.230, 0.170, 0.270, 0.200],  # sparse
    [0.015, 0.020, 0.035, 0.018, 0.055, 0.150, 0.190, 0.200, 0.210, 0.150, 0.100, 0.045],  # conif.
    [0.050, 0.045, 0.040, 0.025, 0.020, 0.012, 0.010, 0.008, 0.007, 0.005, 0.004, 0.003],  # clear
], dtype=np.float32)
_SPECTRA_B = np.array([
    [0.100, 0.120, 0.160, 0.210, 0.240, 0.260, 0.270, 0.280, 0.290, 0.230, 0.360, 0.310],  # dry
    [0.130, 0.140, 0.160, 0.170, 0.190, 0.200, 0.210, 0.220, 0.225, 0.180, 0.260, 0.240],  # bright
    [0.030, 0.035, 0.070, 0.040, 0.100, 0.280, 0.360, 0.380, 0.390, 0.290, 0.200, 0.100],  # green
    [0.020, 0.025, 0.045, 0.025, 0.070, 0.200, 0.260, 0.280, 0.290, 0.210, 0.140, 0.065],  # broadl.
    [0.070, 0.070, 0.080, 0.070, 0.060, 0.030, 0.025, 0.020, 0.018, 0.010, 0.006, 0.004],  # turbid
], dtype=np.float32)
# fmt: on
# Thick cloud top (bright, flat in VNIR, lower in SWIR); shadows scale the ground by ~0.35.
_CLOUD_SPECTRUM = np.array(
    [0.45, 0.44, 0.44, 0.45, 0.45, 0.45, 0.45, 0.44, 0.44, 0.30, 0.30, 0.20], dtype=np.float32
)
_SHADOW_FACTOR = 0.65  # fraction of the signal removed in the core of a cloud shadow
_CHUNK_PIXELS = 1 << 16  # pixels generate_rows works on at a time
_DN = 10000.0  # L2A digital number per unit reflectance (harmonised, no BOA offset)

# Seed-sequence tags, one per random component, so adding a component never shifts another.
_TAG_CLASS, _TAG_DETAIL, _TAG_VAR, _TAG_PARCEL, _TAG_CLOUD, _TAG_HOLES, _TAG_ROW = range(7)


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


class _Grid:
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
    ) -> _Grid:
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


def _rng(spec: SceneSpec, *tags: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed & 0xFFFFFFFF, spec.seed >> 32, *tags])


@dataclass(frozen=True)
class _Plan:
    """The per-spec state shared by all blocks: lattices, cloud threshold, hole positions."""

    classes: tuple[_Grid, ...]
    variation: _Grid
    parcels: np.ndarray
    parcel_size: float
    cloud: _Grid | None
    cloud_threshold: float
    cloud_ramp: float
    shadow_offset: tuple[float, float]
    holes: np.ndarray  # (n, 3): centre row, centre col, radius


@functools.lru_cache(maxsize=8)
def _plan(spec: SceneSpec) -> _Plan:
    h, w, s = spec.height, spec.width, float(spec.region_scale)
    # Class fields: a coarse lattice (spacing = region_scale) plus a 4x finer detail octave,
    # baked into one lattice at the fine spacing so a block needs one lookup per class.
    fine = max(2.0, s / 4.0)
    rng_c, rng_d = _rng(spec, _TAG_CLASS), _rng(spec, _TAG_DETAIL)
    classes = []
    for _ in CLASS_NAMES:
        coarse = _Grid.random(rng_c, h, w, s, margin=2)
        base = _Grid.random(rng_d, h, w, fine, margin=2)
        nodes_y = (np.arange(base.values.shape[0]) - base.margin) * fine
        nodes_x = (np.arange(base.values.shape[1]) - base.margin) * fine
        baked = coarse.eval(nodes_y, nodes_x) + 0.3 * (base.values - 0.5)
        classes.append(_Grid(baked, fine, base.margin))
    variation = _Grid.random(_rng(spec, _TAG_VAR), h, w, s / 2.0, margin=2)
    parcel_size = max(4.0, s / 3.0)
    ny, nx = int(h // parcel_size) + 2, int(w // parcel_size) + 2
    parcels = _rng(spec, _TAG_PARCEL).random((ny, nx), dtype=np.float32)

    cloud, threshold, ramp, offset = None, 2.0, 1.0, (0.0, 0.0)
    if spec.cloud_fraction > 0:
        cs = 1.5 * s
        offset = (0.6 * s, 0.4 * s)  # shadow displacement (rows, cols), sun from the north-west
        margin = 3 + int(math.ceil(max(offset) / cs))
        cloud = _Grid.random(_rng(spec, _TAG_CLOUD), h, w, cs, margin=margin)
        # Threshold: the quantile of the interpolated field on a subsample of the scene, so the
        # cloud share is close to cloud_fraction whatever the lattice draw.
        sy = np.linspace(0, h - 1, min(h, 256)) + 0.5
        sx = np.linspace(0, w - 1, min(w, 256)) + 0.5
        sample = cloud.eval(sy, sx)
        threshold = float(np.quantile(sample, 1.0 - spec.cloud_fraction))
        ramp = max(1e-3, float(np.quantile(sample, 1.0)) - threshold) * 0.5
    rng_h = _rng(spec, _TAG_HOLES)
    holes = np.zeros((spec.nodata_holes, 3))
    if spec.nodata_holes:
        holes[:, 0] = rng_h.uniform(0, h, spec.nodata_holes)
        holes[:, 1] = rng_h.uniform(0, w, spec.nodata_holes)
        r_max = max(2.0, min(s / 4.0, min(h, w) / 16.0))  # small even on small scenes
        holes[:, 2] = rng_h.uniform(1.5, r_max, spec.nodata_holes)
    return _Plan(
        tuple(classes), variation, parcels, parcel_size, cloud, threshold, ramp, offset, holes
    )


# ----------------------------------------------------------------------------- generation


def _labels(plan: _Plan, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Argmax of the class fields (uint8), before nodata."""
    best = plan.classes[0].eval(ys, xs)
    labels = np.zeros(best.shape, dtype=np.uint8)
    for c in range(1, len(plan.classes)):
        f = plan.classes[c].eval(ys, xs)
        better = f > best
        labels[better] = c
        np.maximum(best, f, out=best)
    return labels


def _mix_weights(labels_halo: np.ndarray) -> np.ndarray:
    """(5, H, W) class weights from a [1, 2, 1] x [1, 2, 1] / 16 kernel over a 1 px halo."""
    n = len(CLASS_NAMES)
    h, w = labels_halo.shape[0] - 2, labels_halo.shape[1] - 2
    out = np.empty((n, h, w), dtype=np.float32)
    for c in range(n):
        one = (labels_halo == c).astype(np.float32)
        v = one[:-2] + 2.0 * one[1:-1] + one[2:]
        out[c] = (v[:, :-2] + 2.0 * v[:, 1:-1] + v[:, 2:]) * (1.0 / 16.0)
    return out


def _row_noise(spec: SceneSpec, row0: int, row1: int) -> np.ndarray:
    """(rows, 14, W) standard normals, one generator per row so blocks are independent."""
    out = np.empty((row1 - row0, 14, spec.width), dtype=np.float32)
    for i, r in enumerate(range(row0, row1)):
        _rng(spec, _TAG_ROW, r).standard_normal(out=out[i], dtype=np.float32)
    return out


def generate_rows(spec: SceneSpec, row0: int, row1: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [row0, row1) of the scene: bands (13, rows, W) uint16 and labels (rows, W) uint8.

    Deterministic and independent of how the scene is split: concatenating any row blocks gives
    exactly :func:`generate`'s arrays. Work is done in chunks of ~64k pixels, which keeps the
    temporaries in cache and memory at about the size of the two outputs.
    """
    if not 0 <= row0 <= row1 <= spec.height:
        raise ValueError(f"rows [{row0}, {row1}) outside the scene height {spec.height}")
    plan = _plan(spec)
    bands = np.empty((len(BAND_NAMES), row1 - row0, spec.width), dtype=np.uint16)
    labels = np.empty((row1 - row0, spec.width), dtype=np.uint8)
    step = max(1, _CHUNK_PIXELS // spec.width)
    for r0 in range(row0, row1, step):
        r1 = min(row1, r0 + step)
        bands[:, r0 - row0 : r1 - row0], labels[r0 - row0 : r1 - row0] = _chunk(spec, plan, r0, r1)
    return bands, labels


def _chunk(spec: SceneSpec, plan: _Plan, row0: int, row1: int) -> tuple[np.ndarray, np.ndarray]:
    """The work of :func:`generate_rows` for a few rows."""
    h, w = row1 - row0, spec.width
    ys = np.arange(row0, row1, dtype=np.float64) + 0.5
    xs = np.arange(w, dtype=np.float64) + 0.5
    halo = _labels(
        plan,
        np.arange(row0 - 1, row1 + 1, dtype=np.float64) + 0.5,
        np.arange(-1, w + 1, dtype=np.float64) + 0.5,
    )
    labels = np.ascontiguousarray(halo[1:-1, 1:-1])
    weights = _mix_weights(halo)  # (5, h, w)

    # Per-class mixing parameter t in [0, 1] between end members A and B.
    var = plan.variation.eval(ys, xs)  # smooth, ~uniform in [0, 1]
    noise = _row_noise(spec, row0, row1)
    pr = (np.arange(row0, row1) // plan.parcel_size).astype(np.intp)
    pc = (np.arange(w) // plan.parcel_size).astype(np.intp)
    stage = plan.parcels[pr][:, pc]  # crop growth stage, constant per rectangular parcel
    texture = np.clip(0.5 + 0.3 * noise[:, 13, :], 0.0, 1.0)  # built-up: per-pixel materials
    t = (var, texture, np.clip(stage + 0.15 * (var - 0.5), 0, 1), var, 1.0 - var)

    spectra_a, delta = _SPECTRA_A, _SPECTRA_B - _SPECTRA_A
    nb = len(SPECTRAL_BANDS)
    # Pure pixels (whole 3x3 neighbourhood one class): table lookups. Mixed pixels (the ~2 px
    # band along boundaries): the weighted blend of every class, on the compressed subset only.
    t_own = np.choose(labels, t)
    refl = np.empty((nb, h, w), dtype=np.float32)
    for b in range(nb):
        refl[b] = spectra_a[labels, b] + t_own * delta[labels, b]
    mixed = weights.max(axis=0) < 1.0
    if mixed.any():
        wm = weights[:, mixed]  # (5, n)
        acc = np.zeros((nb, wm.shape[1]), dtype=np.float32)
        for c in range(len(CLASS_NAMES)):
            wc = wm[c]
            wt = wc * t[c][mixed]
            for b in range(nb):
                acc[b] += wc * spectra_a[c, b] + wt * delta[c, b]
        refl[:, mixed] = acc

    scl = np.asarray(CLASS_SCL, dtype=np.uint8)[labels]
    if plan.cloud is not None:
        alpha = np.clip((plan.cloud.eval(ys, xs) - plan.cloud_threshold) / plan.cloud_ramp, 0, 1)
        dy, dx = plan.shadow_offset
        shade = np.clip(
            (plan.cloud.eval(ys - dy, xs - dx) - plan.cloud_threshold) / plan.cloud_ramp, 0, 1
        )
        shade *= 1.0 - alpha  # no shadow on top of a cloud
        hit = (alpha > 0) | (shade > 0)
        if hit.any():
            a, dim = alpha[hit], 1.0 - _SHADOW_FACTOR * shade[hit]
            sub = refl[:, hit]
            sub *= dim * (1.0 - a)
            sub += a * _CLOUD_SPECTRUM[:, None]
            refl[:, hit] = sub
        scl[shade > 0.5] = SCL_SHADOW
        scl[alpha > 0.3] = SCL_CLOUD_MEDIUM
        scl[alpha > 0.7] = SCL_CLOUD_HIGH

    # Noise: a per-pixel brightness factor (illumination) shared by all bands, and per band
    # independent multiplicative + additive noise folded into one normal draw.
    gain = 1.0 + spec.noise * noise[:, 12, :]
    bands = np.empty((len(BAND_NAMES), h, w), dtype=np.uint16)
    for b in range(nb):
        x = refl[b] * _DN
        sigma = np.sqrt((spec.noise * x) ** 2 + spec.noise_dn**2)
        x = x * gain + sigma * noise[:, b, :]
        np.clip(np.rint(x), 1, 65535, out=x)  # >= 1: a valid pixel is never all-zero
        bands[b if b < SCL_INDEX else b + 1] = x
    bands[SCL_INDEX] = scl

    nodata = _nodata_mask(spec, plan, row0, row1)
    bands[:, nodata] = 0
    labels[nodata] = NODATA_LABEL
    return bands, labels


def _nodata_mask(spec: SceneSpec, plan: _Plan, row0: int, row1: int) -> np.ndarray:
    """Border of ``nodata_border`` px plus the round holes, for rows [row0, row1)."""
    rows = np.arange(row0, row1)[:, None]
    cols = np.arange(spec.width)[None, :]
    b = spec.nodata_border
    mask = (rows < b) | (rows >= spec.height - b) | (cols < b) | (cols >= spec.width - b)
    for cy, cx, rad in plan.holes:
        mask |= (rows + 0.5 - cy) ** 2 + (cols + 0.5 - cx) ** 2 <= rad**2
    return mask


def _profiles(spec: SceneSpec) -> dict[str, Any]:
    crs = CRS.from_user_input(spec.crs)
    common = {
        "driver": "GTiff",
        "width": spec.width,
        "height": spec.height,
        "crs": crs,
        "transform": spec.transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 2,
        "zlevel": 1,  # noisy data: level 1 is as small as 6 here and ~30% cheaper
    }
    return {
        "profile": {**common, "count": len(BAND_NAMES), "dtype": "uint16", "nodata": None},
        "labels_profile": {**common, "count": 1, "dtype": "uint8", "nodata": NODATA_LABEL},
        "crs": crs,
        "transform": spec.transform,
        "band_names": BAND_NAMES,
        "class_names": CLASS_NAMES,
    }


def generate(spec: SceneSpec) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The whole scene in memory: bands (13, H, W) uint16, labels (H, W) uint8, and metadata.

    The dict holds ``profile`` (rasterio profile of the 13-band GeoTIFF), ``labels_profile``,
    ``crs``, ``transform``, ``band_names`` and ``class_names``. Use :func:`write_scene` for
    scenes too big for memory.
    """
    bands, labels = generate_rows(spec, 0, spec.height)
    return bands, labels, _profiles(spec)


def write_scene(
    path: str | Path,
    spec: SceneSpec,
    labels_path: str | Path | None = None,
    *,
    block_rows: int = 256,
) -> Path:
    """Write the scene as a tiled DEFLATE GeoTIFF (and the label GeoTIFF if asked); return path.

    Rows are generated and written ``block_rows`` at a time, so memory stays bounded (about
    0.2 KB per pixel of a block: ~600 MB for 256 rows of a 10980 px wide scene). Band
    descriptions are the model band names; no nodata value is set (all 13 bands 0 is the rule).
    """
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    path = Path(path)
    meta = _profiles(spec)
    profile = {k: v for k, v in meta["profile"].items() if k != "nodata"}
    with rasterio.open(path, "w", **profile) as dst:
        for i, name in enumerate(BAND_NAMES, start=1):
            dst.set_band_description(i, name)
        lab = None
        if labels_path is not None:
            lab = rasterio.open(Path(labels_path), "w", **meta["labels_profile"])
        try:
            for row0 in range(0, spec.height, block_rows):
                row1 = min(spec.height, row0 + block_rows)
                bands, labels = generate_rows(spec, row0, row1)
                window = Window(0, row0, spec.width, row1 - row0)
                dst.write(bands, window=window)
                if lab is not None:
                    lab.write(labels, 1, window=window)
        finally:
            if lab is not None:
                lab.close()
    return path


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lulc_edge.synthetic", description="Write a synthetic 13-band scene."
    )
    parser.add_argument("out", type=Path, help="output GeoTIFF")
    parser.add_argument("--size", type=int, default=512, help="width and height in px")
    parser.add_argument("--width", type=int, help="width in px (overrides --size)")
    parser.add_argument("--height", type=int, help="height in px (overrides --size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--region-scale", type=float, default=SceneSpec.region_scale)
    parser.add_argument("--cloud-fraction", type=float, default=SceneSpec.cloud_fraction)
    parser.add_argument("--labels", type=Path, help="also write the label GeoTIFF here")
    args = parser.parse_args(argv)
    spec = SceneSpec(
        width=args.width or args.size,
        height=args.height or args.size,
        seed=args.seed,
        region_scale=args.region_scale,
        cloud_fraction=args.cloud_fraction,
    )
    print(write_scene(args.out, spec, args.labels))


if __name__ == "__main__":
    _main()
