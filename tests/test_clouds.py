"""The SCL cloud mask: classes masked, dilation against brute force, tiles with a halo."""

from __future__ import annotations

import numpy as np
import pytest

from lulc_edge.clouds import (
    CLOUD_SCL,
    CLOUD_VALUE,
    DEFAULT_BUFFER,
    CloudMask,
    apply_cloud_mask,
    cloud_mask,
    dilate,
    needed_halo,
)


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


@pytest.mark.parametrize("buffer", [1, 4, DEFAULT_BUFFER])
def test_tiles_with_a_halo_of_the_buffer_equal_the_whole_array(buffer: int) -> None:
    rng = np.random.default_rng(7)
    scl = rng.choice(np.array([4, 5, 6, 8, 9, 3], np.uint16), size=(96, 80),
                     p=[0.4, 0.3, 0.27, 0.01, 0.01, 0.01])
    valid = np.ones(scl.shape, bool)
    valid[:, 70:] = False  # the scene ends inside the last tiles
    mask = CloudMask(buffer_px=buffer)
    whole = cloud_mask(scl, mask, valid)
    halo, tile = needed_halo(mask), 32
    tiled = np.zeros_like(whole)
    for r0 in range(0, 96, tile):
        for c0 in range(0, 80, tile):
            # a boundless block: beyond the array SCL is 0 and nothing is valid
            b_scl = np.zeros((tile + 2 * halo, tile + 2 * halo), np.uint16)
            b_valid = np.zeros(b_scl.shape, bool)
            ys, xs = slice(max(r0 - halo, 0), r0 + tile + halo), slice(max(c0 - halo, 0),
                                                                        c0 + tile + halo)
            dy, dx = ys.start - (r0 - halo), xs.start - (c0 - halo)
            part = scl[ys, xs]
            b_scl[dy: dy + part.shape[0], dx: dx + part.shape[1]] = part
            b_valid[dy: dy + part.shape[0], dx: dx + part.shape[1]] = valid[ys, xs]
            core = cloud_mask(b_scl, mask, b_valid)[halo: halo + tile, halo: halo + tile]
            tiled[r0: r0 + tile, c0: c0 + tile] = core[: 96 - r0, : 80 - c0]
    np.testing.assert_array_equal(tiled, whole)
    assert whole.sum() > (np.isin(scl, CLOUD_SCL) & valid).sum()


def test_apply_keeps_nodata_and_sets_the_cloud_value() -> None:
    classes = np.array([[0, 1, 255], [2, 3, 4]], np.uint8)
    masked = np.array([[True, False, True], [False, True, False]])
    got = apply_cloud_mask(classes, masked)
    assert got.dtype == np.uint8
    assert got.tolist() == [[CLOUD_VALUE, 1, 255], [2, CLOUD_VALUE, 4]]


def test_negative_buffer_is_refused() -> None:
    with pytest.raises(ValueError, match="cloud buffer"):
        CloudMask(buffer_px=-1)
