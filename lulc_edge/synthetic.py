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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.windows import Window

from .synthetic_fields import (
    BAND_NAMES,
    CLASS_NAMES,
    CLASS_SCL,
    NODATA_LABEL,
    SCL_CLOUD_HIGH,
    SCL_CLOUD_MEDIUM,
    SCL_INDEX,
    SCL_SHADOW,
    SPECTRAL_BANDS,
    TAG_ROW,
    ScenePlan,
    SceneSpec,
    class_labels,
    mix_weights,
    nodata_mask,
    scene_plan,
    seeded_rng,
)

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


def _row_noise(spec: SceneSpec, row0: int, row1: int) -> np.ndarray:
    """(rows, 14, W) standard normals, one generator per row so blocks are independent."""
    out = np.empty((row1 - row0, 14, spec.width), dtype=np.float32)
    for i, r in enumerate(range(row0, row1)):
        seeded_rng(spec, TAG_ROW, r).standard_normal(out=out[i], dtype=np.float32)
    return out


def generate_rows(spec: SceneSpec, row0: int, row1: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [row0, row1) of the scene: bands (13, rows, W) uint16 and labels (rows, W) uint8.

    Deterministic and independent of how the scene is split: concatenating any row blocks gives
    exactly :func:`generate`'s arrays. Work is done in chunks of ~64k pixels, which keeps the
    temporaries in cache and memory at about the size of the two outputs.
    """
    if not 0 <= row0 <= row1 <= spec.height:
        raise ValueError(f"rows [{row0}, {row1}) outside the scene height {spec.height}")
    plan = scene_plan(spec)
    bands = np.empty((len(BAND_NAMES), row1 - row0, spec.width), dtype=np.uint16)
    labels = np.empty((row1 - row0, spec.width), dtype=np.uint8)
    step = max(1, _CHUNK_PIXELS // spec.width)
    for r0 in range(row0, row1, step):
        r1 = min(row1, r0 + step)
        bands[:, r0 - row0 : r1 - row0], labels[r0 - row0 : r1 - row0] = _chunk(spec, plan, r0, r1)
    return bands, labels

def _chunk(spec: SceneSpec, plan: ScenePlan, row0: int, row1: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """The work of :func:`generate_rows` for a few rows."""
    w = spec.width
    ys = np.arange(row0, row1, dtype=np.float64) + 0.5
    xs = np.arange(w, dtype=np.float64) + 0.5
    halo = class_labels(
        plan,
        np.arange(row0 - 1, row1 + 1, dtype=np.float64) + 0.5,
        np.arange(-1, w + 1, dtype=np.float64) + 0.5,
    )
    labels = np.ascontiguousarray(halo[1:-1, 1:-1])
    noise = _row_noise(spec, row0, row1)
    refl = _reflectance(plan, labels, mix_weights(halo), _mixing(plan, noise, ys, xs, row0))
    scl = np.asarray(CLASS_SCL, dtype=np.uint8)[labels]
    if plan.cloud is not None:
        _add_clouds(plan, refl, scl, ys, xs)
    bands = _digitize(spec, refl, noise)
    bands[SCL_INDEX] = scl
    nodata = nodata_mask(spec, plan, row0, row1)
    bands[:, nodata] = 0
    labels[nodata] = NODATA_LABEL
    return bands, labels


def _mixing(plan: ScenePlan, noise: np.ndarray, ys: np.ndarray, xs: np.ndarray, row0: int
            ) -> tuple[np.ndarray, ...]:
    """Per class, the mixing parameter t in [0, 1] between end members A and B."""
    var = plan.variation.eval(ys, xs)  # smooth, ~uniform in [0, 1]
    pr = (np.arange(row0, row0 + len(ys)) // plan.parcel_size).astype(np.intp)
    pc = (np.arange(len(xs)) // plan.parcel_size).astype(np.intp)
    stage = plan.parcels[pr][:, pc]  # crop growth stage, constant per rectangular parcel
    texture = np.clip(0.5 + 0.3 * noise[:, 13, :], 0.0, 1.0)  # built-up: per-pixel materials
    return (var, texture, np.clip(stage + 0.15 * (var - 0.5), 0, 1), var, 1.0 - var)


def _reflectance(plan: ScenePlan, labels: np.ndarray, weights: np.ndarray,
                 t: tuple[np.ndarray, ...]) -> np.ndarray:
    """(12, h, w) surface reflectance of the pure and mixed pixels."""
    spectra_a, delta = _SPECTRA_A, _SPECTRA_B - _SPECTRA_A
    nb, (h, w) = len(SPECTRAL_BANDS), labels.shape
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
    return refl


def _add_clouds(plan: ScenePlan, refl: np.ndarray, scl: np.ndarray, ys: np.ndarray,
                xs: np.ndarray) -> None:
    """Soft clouds and their displaced shadows, into ``refl`` and ``scl`` in place."""
    assert plan.cloud is not None
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


def _digitize(spec: SceneSpec, refl: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The 13 uint16 bands (SCL left to fill) of noisy digital numbers.

    Noise: a per-pixel brightness factor (illumination) shared by all bands, and per band
    independent multiplicative + additive noise folded into one normal draw.
    """
    nb, h, w = refl.shape
    gain = 1.0 + spec.noise * noise[:, 12, :]
    bands = np.empty((len(BAND_NAMES), h, w), dtype=np.uint16)
    for b in range(nb):
        x = refl[b] * _DN
        sigma = np.sqrt((spec.noise * x) ** 2 + spec.noise_dn**2)
        x = x * gain + sigma * noise[:, b, :]
        np.clip(np.rint(x), 1, 65535, out=x)  # >= 1: a valid pixel is never all-zero
        bands[b if b < SCL_INDEX else b + 1] = x
    return bands


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
