"""export.reference: numpy reference of the feature recipe, feeding Keras in tests/benchmarks."""

from __future__ import annotations

import numpy as np

from export.graph import BANDS, EPS, INDICES


def features_nhwc(bands_nchw: np.ndarray) -> np.ndarray:
    """Features (N, H, W, 16) float32 from raw bands (N, 13, H, W) uint16, as the graph does.

    Channels [NDVI, NDBI, NDWI, B1..B12 with SCL at its place]; each index is
    (a - b) / ((a + b) + eps) in float32 with NaN/Inf set to 0. The runtime never calls this:
    the exported ONNX graph computes the same thing from the bands.
    """
    bands = np.asarray(bands_nchw)
    if bands.ndim != 4 or bands.shape[1] != len(BANDS):
        raise ValueError(f"expected bands (N, {len(BANDS)}, H, W), got {bands.shape}")
    x = bands.astype(np.float32)
    eps = np.float32(EPS)
    channels = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for a, b in INDICES.values():
            va, vb = x[:, BANDS.index(a)], x[:, BANDS.index(b)]
            idx = (va - vb) / ((va + vb) + eps)
            idx[~np.isfinite(idx)] = 0.0
            channels.append(idx[:, None])
    feats = np.concatenate(channels + [x], axis=1)
    return np.ascontiguousarray(feats.transpose(0, 2, 3, 1), dtype=np.float32)


def nodata_mask(bands_nchw: np.ndarray) -> np.ndarray:
    """(N, H, W) bool: True where all 13 bands are 0 (class value NODATA['value'])."""
    return ~np.any(np.asarray(bands_nchw) != 0, axis=1)


def synthetic_bands(n: int, h: int, w: int, seed: int = 0,
                    nodata_fraction: float = 0.02) -> np.ndarray:
    """Random bands at the data's real scale: DN up to 10000, SCL 0..11, some all-zero pixels.

    Reflectances are smooth fields plus noise (so the network sees spatial structure), an
    all-zero block in one corner and scattered all-zero pixels mark nodata.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, len(BANDS), h, w), dtype=np.uint16)
    for i in range(n):
        for c, name in enumerate(BANDS):
            if name == "SCL":
                out[i, c] = rng.integers(0, 12, size=(h, w))
                continue
            fx, fy, ph = rng.uniform(0.01, 0.2, 3)
            field = 0.5 + 0.5 * np.sin(fx * xx + ph * 6) * np.cos(fy * yy)
            noise = rng.uniform(-0.15, 0.15, (h, w))
            out[i, c] = np.clip((field + noise) * 10000, 0, 10000).astype(np.uint16)
        out[i, :, : h // 8, : w // 8] = 0
        holes = rng.random((h, w)) < nodata_fraction
        out[i, :, holes] = 0
    return out
