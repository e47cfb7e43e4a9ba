"""Tile planning: coverage, alignment, halos, the compatible window grid."""

from __future__ import annotations

import numpy as np
import pytest

from lulc_edge.tiling import batches, plan_seamless, plan_windows, window_origins


def _coverage(tiles, h, w):
    cover = np.zeros((h, w), int)
    for t in tiles:
        rs = slice(int(t.core.row_off), int(t.core.row_off + t.core.height))
        cs = slice(int(t.core.col_off), int(t.core.col_off + t.core.width))
        cover[rs, cs] += 1
    return cover


@pytest.mark.parametrize("h,w,tile", [(100, 132, 32), (513, 257, 128), (7, 5, 64), (64, 64, 64)])
def test_seamless_cores_cover_every_pixel_once(h, w, tile):
    tiles = plan_seamless(h, w, tile, halo=24, alignment=4)
    assert (_coverage(tiles, h, w) == 1).all()


def test_seamless_read_blocks_are_aligned_and_hold_the_halo():
    h, w = 517, 303
    ph, pw = 520, 304  # padded to the alignment
    for t in plan_seamless(h, w, 128, halo=24, alignment=4):
        assert t.read.row_off % 4 == 0 and t.read.col_off % 4 == 0
        assert t.read.height % 4 == 0 and t.read.width % 4 == 0
        assert t.read.row_off + t.read.height <= ph and t.read.col_off + t.read.width <= pw
        rs, cs = t.core_in_read
        # at least the halo around the core, unless the (padded) scene edge is closer
        assert rs.start >= min(24, t.core.row_off) and cs.start >= min(24, t.core.col_off)
        assert t.read.height - rs.stop >= min(24, ph - (t.core.row_off + t.core.height))
        assert t.read.width - cs.stop >= min(24, pw - (t.core.col_off + t.core.width))
        assert t.read_shape == (128 + 48, 128 + 48)  # one block shape for the whole plan


def test_whole_scene_tile_reads_the_padded_scene():
    (t,) = plan_seamless(101, 99, 1024, halo=24, alignment=4)
    assert (t.read.width, t.read.height) == (100, 104)


def test_bad_tile_sizes_are_refused():
    with pytest.raises(ValueError):
        plan_seamless(100, 100, 30, halo=24, alignment=4)
    with pytest.raises(ValueError):
        plan_windows(100, 100, 48, window=64, stride=32)
    with pytest.raises(ValueError):
        plan_seamless(0, 100, 32, halo=24, alignment=4)


def test_window_origins_cover_the_far_edge():
    assert window_origins(64, 64, 32) == [0]
    assert window_origins(40, 64, 32) == [0]
    assert window_origins(128, 64, 32) == [0, 32, 64]
    assert window_origins(130, 64, 32) == [0, 32, 64, 66]


@pytest.mark.parametrize("tile", [32, 64, 96, 512])
def test_window_plan_uses_the_same_windows_for_every_pixel_whatever_the_tile(tile):
    h, w = 150, 130
    ref = {}
    for t in plan_windows(h, w, 1024, 64, 32):
        for y, x in t.windows:
            ref.setdefault("all", set()).add((y + t.read.row_off, x + t.read.col_off))
    got = set()
    cover = _coverage(plan_windows(h, w, tile, 64, 32), h, w)
    assert (cover == 1).all()
    for t in plan_windows(h, w, tile, 64, 32):
        for y, x in t.windows:
            got.add((y + t.read.row_off, x + t.read.col_off))
            # every window listed for a tile touches its core
            assert y + t.read.row_off < t.core.row_off + t.core.height
            assert y + t.read.row_off + 64 > t.core.row_off
    assert got == ref["all"]


def test_batches_group_same_shapes_in_order():
    tiles = plan_seamless(300, 300, 128, halo=24, alignment=4)
    groups = list(batches(tiles, 4))
    assert [t.index for g in groups for t in g] == [t.index for t in tiles]
    for g in groups:
        assert len(g) <= 4 and len({t.read_shape for t in g}) == 1
