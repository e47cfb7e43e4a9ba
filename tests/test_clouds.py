"""The SCL cloud mask: classes masked, dilation against brute force, tiles with a halo."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.windows import Window

from lulc_edge.clouds import (
    CLOUD_SCL,
    CLOUD_VALUE,
    DEFAULT_BUFFER,
    CloudMask,
    apply_cloud_mask,
    block_cloud_mask,
    cloud_mask,
    describe,
    dilate,
    needed_halo,
)
from lulc_edge.synthetic import SCL_INDEX, SceneSpec, generate
from lulc_edge.tiling import Tile, plan_seamless, plan_windows


def brute_dilate(m: np.ndarray, r: int, disc: bool) -> np.ndarray:
    """Dilation by looping over every offset of the structuring element."""
    h, w = m.shape
    out = np.zeros_like(m)
    ys, xs = np.nonzero(m)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if disc and dy * dy + dx * dx > r * r:
                continue
            y, x = ys + dy, xs + dx
            ok = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            out[y[ok], x[ok]] = True
    return out


def test_mask_takes_the_cloud_classes_only() -> None:
    scl = np.arange(12, dtype=np.uint16).reshape(3, 4)
    valid = np.ones_like(scl, bool)
    got = cloud_mask(scl, CloudMask(buffer_px=0), valid)
    assert sorted(scl[got].tolist()) == sorted(CLOUD_SCL)
    snow = cloud_mask(scl, CloudMask(buffer_px=0, snow=True), valid)
    assert sorted(scl[snow].tolist()) == sorted(CLOUD_SCL + (11,))
    assert not cloud_mask(scl, CloudMask(enabled=False), valid).any()


def test_pixels_without_data_are_neither_seeds_nor_masked() -> None:
    """Zeros beyond the scene (SCL 0, no reflectance) do not grow clouds into it."""
    scl = np.full((20, 20), 4, np.uint16)
    valid = np.ones_like(scl, bool)
    scl[:, :5] = 0
    valid[:, :5] = False
    assert not cloud_mask(scl, CloudMask(buffer_px=3), valid).any()
    scl[10, 10] = 9
    got = cloud_mask(scl, CloudMask(buffer_px=3), valid)
    assert got[10, 7] and got[10, 13] and got[7, 10] and not got[10, 6]


@pytest.mark.parametrize("disc", [True, False])
@pytest.mark.parametrize("r", [0, 1, 2, 3, 5, 10])
def test_dilation_equals_brute_force_including_array_edges(r: int, disc: bool) -> None:
    rng = np.random.default_rng(r)
    m = rng.random((37, 29)) < 0.02
    m[0, 0] = m[-1, 5] = m[3, -1] = True  # seeds on the edges
    np.testing.assert_array_equal(dilate(m, r, disc), brute_dilate(m, r, disc))


def boundless(arr: np.ndarray, win: Window) -> np.ndarray:
    """A window of a (B, H, W) array, zeros outside it (as the runtime reads scenes)."""
    r0, c0, h, w = int(win.row_off), int(win.col_off), int(win.height), int(win.width)
    out = np.zeros((arr.shape[0], h, w), arr.dtype)
    ys, xs = slice(max(r0, 0), min(r0 + h, arr.shape[1])), slice(max(c0, 0),
                                                                  min(c0 + w, arr.shape[2]))
    out[:, ys.start - r0: ys.stop - r0, xs.start - c0: xs.stop - c0] = arr[:, ys, xs]
    return out


def tiled_mask(bands: np.ndarray, mask: CloudMask, tiles: list[Tile]) -> np.ndarray:
    out = np.zeros(bands.shape[1:], bool)
    for t in tiles:
        core = block_cloud_mask(boundless(bands, t.read), SCL_INDEX, mask, t.core_in_read)
        out[int(t.core.row_off): int(t.core.row_off + t.core.height),
            int(t.core.col_off): int(t.core.col_off + t.core.width)] = core
    return out


@pytest.mark.parametrize("buffer", [1, 4, DEFAULT_BUFFER])
def test_tiles_with_a_halo_of_the_buffer_equal_the_whole_array(buffer: int) -> None:
    rng = np.random.default_rng(7)
    scl = rng.choice(np.array([4, 5, 6, 8, 9, 3], np.uint16), size=(96, 80),
                     p=[0.4, 0.3, 0.27, 0.01, 0.01, 0.01])
    bands = np.stack([np.full(scl.shape, 500, np.uint16)] * SCL_INDEX + [scl])
    bands[:SCL_INDEX, :, 70:] = 0  # the scene ends inside the last tiles
    valid = np.ones(scl.shape, bool)
    valid[:, 70:] = False
    mask = CloudMask(buffer_px=buffer)
    whole = cloud_mask(scl, mask, valid)
    halo, tile = needed_halo(mask), 32
    tiles = [Tile(0, Window(c0, r0, min(tile, 80 - c0), min(tile, 96 - r0)),
                  Window(c0 - halo, r0 - halo, tile + 2 * halo, tile + 2 * halo))
             for r0 in range(0, 96, tile) for c0 in range(0, 80, tile)]
    np.testing.assert_array_equal(tiled_mask(bands, mask, tiles), whole)
    assert whole.sum() > (np.isin(scl, CLOUD_SCL) & valid).sum()


@pytest.mark.parametrize("mode", ["seamless", "window"])
def test_the_runtimes_tiles_hold_the_default_buffers_context(mode: str) -> None:
    """Both modes' read blocks (bundled model: halo 24, windows 64 / 32) give the whole
    scene's mask at the default buffer, so the mask needs no read of its own."""
    bands, _, _ = generate(SceneSpec(200, 168, seed=3, cloud_fraction=0.2, region_scale=16))
    tiles = (plan_seamless(168, 200, 64, 24, 4) if mode == "seamless"
             else plan_windows(168, 200, 64, 64, 32))
    mask = CloudMask()
    valid = np.any(np.delete(bands, SCL_INDEX, axis=0) != 0, axis=0)
    whole = cloud_mask(bands[SCL_INDEX], mask, valid)
    assert 0.2 < whole.mean() < 0.8
    np.testing.assert_array_equal(tiled_mask(bands, mask, tiles), whole)


def test_apply_keeps_nodata_and_sets_the_cloud_value() -> None:
    classes = np.array([[0, 1, 255], [2, 3, 4]], np.uint8)
    masked = np.array([[True, False, True], [False, True, False]])
    got = apply_cloud_mask(classes, masked)
    assert got.dtype == np.uint8
    assert got.tolist() == [[CLOUD_VALUE, 1, 255], [2, CLOUD_VALUE, 4]]


def test_negative_buffer_is_refused() -> None:
    with pytest.raises(ValueError, match="cloud buffer"):
        CloudMask(buffer_px=-1)


def test_describe_says_when_nothing_is_masked() -> None:
    assert describe(CloudMask()) == "SCL 0,1,3,8,9,10 as Cloud (254), dilated 10 px (disc)"
    assert "no SCL" in describe(CloudMask(), has_scl=False)
    assert describe(CloudMask(enabled=False)).startswith("none")
