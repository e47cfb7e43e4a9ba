"""lulc_edge.clouds: the cloud mask of a scene from its Sentinel-2 SCL band.

Pixels whose SCL is no data (0), saturated or defective (1), cloud shadow (3), cloud of medium
or high probability (8, 9) or thin cirrus (10), optionally snow or ice (11), get the output
value :data:`CLOUD_VALUE` instead of the model's class; the mask is grown by ``buffer_px``
pixels, because SCL misses cloud edges and the faint part of shadows.

Only inputs with a real SCL are masked: an L1C run with ``--scl-fill`` has one SCL class
everywhere and no cloud information.

Tiles: the dilation of a pixel looks ``buffer_px`` pixels away, so the mask of a tile's core
is exact when computed on a block reaching at least ``buffer_px`` beyond the core on every side
(the grid's own edges need nothing: beyond them there is no cloud). The seamless mode reads each
tile with the model's halo (24 px for the bundled model), the window mode with window - stride
(32 px): with ``buffer_px`` within that, the mask is computed on the block already read and
cropped to the core (:func:`block_cloud_mask`), with no extra read; a larger buffer needs the
SCL band read with a halo of ``buffer_px`` (:func:`needed_halo`).
Dilation is pure numpy (scipy is not a core dependency).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .contract import ClassInfo
from .stitch import Prediction
from .tiling import Tile

#: SCL classes masked as cloud: no data, saturated/defective, cloud shadow, cloud medium and
#: high probability, thin cirrus (ESA Sen2Cor scene classification).
CLOUD_SCL: tuple[int, ...] = (0, 1, 3, 8, 9, 10)
#: SCL class snow/ice, masked on request (CloudMask.snow).
SNOW_SCL: tuple[int, ...] = (11,)
#: Default dilation radius, px. SCL is classified at 20 m and misses the thin, soft edges of
#: clouds and shadows; WorldCereal's inference dilates by 21 px at 10 m (210 m), which also
#: throws away a wide ring of clear ground around every small cumulus. 10 px (100 m at 10 m,
#: five 20 m SCL pixels) covers those edges with less than half that radius, and stays within
#: both modes' context (seamless: the bundled model's 24 px halo; window: window - stride,
#: 32 px), so an edge device computes the mask on the block it has already read (no extra
#: I/O); a disc of radius 10 costs 21 row passes over a boolean tile.
DEFAULT_BUFFER = 10
#: Output value of masked pixels in class maps: next to nodata (255), outside any model's
#: classes (0..K-1), so it means the same for every model, and the change matrix, zonal
#: tallies and evaluation, which count values 0..K-1 as classes, leave it out as they leave
#: nodata out, while the colour table, category names and statistics name it.
CLOUD_VALUE = 254
#: How the class map describes masked pixels (colour table, category names, statistics).
CLOUD_CLASS = ClassInfo(CLOUD_VALUE, "Cloud", "#ffffff")
#: Tag of a class map saying how clouds were masked (``describe``).
CLOUD_MASK_TAG = "LULC_EDGE_CLOUD_MASK"


@dataclass(frozen=True)
class CloudMask:
    """What to mask: ``enabled`` False keeps the model's classes everywhere
    (``--no-cloud-mask``); ``buffer_px`` the dilation radius (``--cloud-buffer``);
    ``snow`` also masks snow and ice; ``disc`` False dilates by a square instead."""

    enabled: bool = True
    buffer_px: int = DEFAULT_BUFFER
    snow: bool = False
    disc: bool = True

    def __post_init__(self) -> None:
        if self.buffer_px < 0:
            raise ValueError(f"cloud buffer must be >= 0 px, got {self.buffer_px}")

    @property
    def scl_classes(self) -> tuple[int, ...]:
        """The SCL classes masked."""
        return CLOUD_SCL + (SNOW_SCL if self.snow else ())


def describe(mask: CloudMask, has_scl: bool = True) -> str:
    """How clouds were masked, in words, for the map's CLOUD_MASK_TAG and the run's summary;
    an input without a real SCL (L1C with ``--scl-fill``) is said to be unmasked."""
    if not mask.enabled:
        return "none (--no-cloud-mask)"
    if not has_scl:
        return "none: the input has no SCL (filled with --scl-fill), clouds are not masked"
    shape = "disc" if mask.disc else "square"
    codes = ",".join(str(v) for v in mask.scl_classes)
    return f"SCL {codes} as Cloud ({CLOUD_VALUE}), dilated {mask.buffer_px} px ({shape})"


def needed_halo(mask: CloudMask) -> int:
    """Pixels of context the mask of a tile's core needs on every side."""
    return mask.buffer_px if mask.enabled else 0


def _any_within(m: np.ndarray, r: int, axis: int) -> np.ndarray:
    """True where ``m`` is True within ``r`` pixels along ``axis`` (outside the array: False),
    by a cumulative sum: O(1) per pixel whatever ``r``."""
    if r <= 0:
        return m.copy()
    n = m.shape[axis]
    c = np.cumsum(m, axis=axis, dtype=np.int32)
    pad = [(0, 0)] * m.ndim
    pad[axis] = (1, 0)
    c = np.pad(c, pad)  # c[i] = count of m[:i]
    hi = np.minimum(np.arange(n) + r + 1, n)
    lo = np.maximum(np.arange(n) - r, 0)
    return (np.take(c, hi, axis=axis) - np.take(c, lo, axis=axis)) > 0


def dilate(m: np.ndarray, radius: int, disc: bool = True) -> np.ndarray:
    """Binary dilation of a 2-D mask by a disc (pixels with dy^2 + dx^2 <= radius^2) or a
    square of side 2 radius + 1; pixels outside the array count as False."""
    m = np.asarray(m, dtype=bool)
    if radius <= 0 or not m.any():
        return m.copy()
    if not disc:
        return _any_within(_any_within(m, radius, 1), radius, 0)
    h = m.shape[0]
    out = np.zeros_like(m)
    rows: dict[int, np.ndarray] = {}
    for dy in range(-radius, radius + 1):
        half = int(np.floor(np.sqrt(radius * radius - dy * dy)))
        if half not in rows:
            rows[half] = _any_within(m, half, 1)
        src = rows[half]
        # out[y] |= src[y + dy]
        if dy >= 0:
            out[: h - dy] |= src[dy:]
        else:
            out[-dy:] |= src[: h + dy]
    return out


def cloud_mask(scl: np.ndarray, mask: CloudMask, valid: np.ndarray) -> np.ndarray:
    """Pixels to mask as cloud: SCL in the masked classes where the scene has data
    (``valid``: any reflectance band non-zero), dilated, and kept to ``valid`` (pixels without
    data stay nodata; the zeros a boundless read gives beyond the scene are not SCL no-data)."""
    valid = np.asarray(valid, dtype=bool)
    if scl.shape != valid.shape:
        raise ValueError(f"SCL shape {scl.shape} differs from the valid mask's {valid.shape}")
    if not mask.enabled:
        return np.zeros(valid.shape, bool)
    seeds = np.isin(scl, mask.scl_classes) & valid
    return dilate(seeds, mask.buffer_px, mask.disc) & valid


def block_cloud_mask(block: np.ndarray, scl_index: int, mask: CloudMask,
                     core: tuple[slice, slice]) -> np.ndarray:
    """The cloud mask of a tile's core from its read block (bands, h, w) in the model's band
    order (``core``: the core's slices in the block, ``Tile.core_in_read``). Exact when the
    block reaches ``needed_halo(mask)`` beyond the core on every side inside the grid; both
    modes' blocks do for buffers up to the model's halo (seamless: the halo, 24 px for the
    bundled model; window: window - stride, 32 px)."""
    refl = np.delete(block, scl_index, axis=0)
    valid = np.any(refl != 0, axis=0)
    return cloud_mask(block[scl_index], mask, valid)[core]


def apply_cloud_mask(classes: np.ndarray, masked: np.ndarray, cloud_value: int = CLOUD_VALUE,
                     nodata: int = 255) -> np.ndarray:
    """The class map with ``cloud_value`` where ``masked`` (nodata pixels stay nodata)."""
    return np.where(masked & (classes != nodata), np.uint8(cloud_value), classes).astype(
        classes.dtype)


def mask_prediction(res: Prediction, masked: np.ndarray, nodata: int = 255) -> Prediction:
    """``res`` with the ``masked`` pixels (that have data) as Cloud: class ``CLOUD_VALUE``,
    confidence 0 (as the graph gives at nodata), probabilities NaN (as the files' nodata)."""
    hit = masked & (res.classes != nodata)
    if not hit.any():
        return res
    conf = probs = None
    if res.confidence is not None:
        conf = np.where(hit, np.uint8(0), res.confidence)
    if res.probabilities is not None:
        probs = np.where(hit[None], np.float32(np.nan), res.probabilities)
    return Prediction(apply_cloud_mask(res.classes, hit, CLOUD_VALUE, nodata), conf, probs)


@dataclass(frozen=True)
class TileMasker:
    """The cloud mask step of a run, between inference and the sinks: each tile's prediction
    masked from its read block's SCL (``scl_index`` in the model's band order)."""

    mask: CloudMask
    scl_index: int
    nodata: int = 255

    def __call__(self, tile: Tile, res: Prediction, block: np.ndarray) -> Prediction:
        core = block_cloud_mask(block, self.scl_index, self.mask, tile.core_in_read)
        return mask_prediction(res, core, self.nodata)


def has_scl(band_names: tuple[str, ...], scl_fill: int | None) -> bool:
    """Whether a source's SCL band is real (an input whose SCL was filled with ``--scl-fill``
    has none, nor a model that takes no SCL)."""
    return "SCL" in band_names and scl_fill is None


def masker(mask: CloudMask, band_names: tuple[str, ...], scl_fill: int | None,
           nodata: int = 255) -> TileMasker | None:
    """The run's mask step, or None where nothing is masked (``--no-cloud-mask``, no real
    SCL)."""
    if not mask.enabled or not has_scl(band_names, scl_fill):
        return None
    return TileMasker(mask, list(band_names).index("SCL"), nodata)


def check_buffer(mask: CloudMask, context: int, mode: str) -> None:
    """ValueError unless the buffer fits in the context ``mode`` reads around each tile (the
    mask of a tile is then computed on the block already read, exactly)."""
    if needed_halo(mask) > context:
        raise ValueError(f"--cloud-buffer {mask.buffer_px}: {mode} mode reads {context} px of "
                         f"context around each tile with this model, a buffer needs as many "
                         f"as its radius: use --cloud-buffer {context} or less")
