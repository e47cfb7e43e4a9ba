"""lulc_edge.tiling: pure tile planning (windows, halos, alignment); no I/O."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rasterio.windows import Window


def ceil_to(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= value."""
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class Tile:
    """One unit of work.

    ``core`` is the part of the scene this tile decides (scene pixel coordinates); ``read`` is
    what must be read and inferred for it (it may extend past the scene: those pixels are zero,
    i.e. nodata). ``windows`` lists model-window origins relative to ``read`` in window mode and
    is empty in seamless mode, where the whole read block goes through the model at once.
    """

    index: int
    core: Window
    read: Window
    windows: tuple[tuple[int, int], ...] = ()

    @property
    def core_in_read(self) -> tuple[slice, slice]:
        """Row and column slices of the core inside the read block."""
        r = int(self.core.row_off - self.read.row_off)
        c = int(self.core.col_off - self.read.col_off)
        return slice(r, r + int(self.core.height)), slice(c, c + int(self.core.width))

    @property
    def read_shape(self) -> tuple[int, int]:
        return int(self.read.height), int(self.read.width)


def _extent(height: int, width: int, within: Window | None, tile: int, step: int
            ) -> tuple[int, int, int, int, int]:
    """(r0, c0, r1, c1) of the part of the scene planned, and the tile: ``within`` (an area
    of interest, scene pixels, offsets multiples of ``step``) gets the smallest tile that
    covers its longer side in as many tiles as ``tile`` does (the maps never depend on it), so
    that its read blocks stay near its size and its halo: a 1040 px area reads 3 tiles of 348
    px, not 2 of 512 and one of 16 read as 560 px, which read and inferred 520 px beyond it."""
    if within is None:
        return 0, 0, height, width, tile
    r0, c0 = int(within.row_off), int(within.col_off)
    r1, c1 = r0 + int(within.height), c0 + int(within.width)
    if r0 % step or c0 % step or r0 < 0 or c0 < 0 or r1 > height or c1 > width or \
            r1 <= r0 or c1 <= c0:
        raise ValueError(f"window {within} must lie in the scene, offsets multiples of {step}")
    side = max(r1 - r0, c1 - c0)
    return r0, c0, r1, c1, min(tile, ceil_to(-(-side // -(-side // tile)), step))


def plan_seamless(height: int, width: int, tile: int, halo: int, alignment: int,
                  within: Window | None = None) -> list[Tile]:
    """Tiles whose interiors reproduce a whole-scene run exactly, all read as one block shape.

    The scene is virtually padded with zeros to a multiple of ``alignment`` (what a whole-scene
    run of the fully convolutional model needs anyway). Tile origins and sizes are multiples of
    ``alignment`` so pooling grids agree. Every read block has the same shape, the core grown by
    ``halo`` (>= the receptive-field radius) on each side, or the padded scene where that is
    smaller: blocks at the scene's edges slide inwards instead of shrinking, so they hold a
    wider margin on the inner side and the padded scene edge on the other, as a whole-scene run
    sees it. One shape per plan lets a backend serve every block from one compiled model (the
    same numbers for every tile, see backends.OpenVINOBackend) and batch any tiles together.
    ``within``: plan only that window of the scene (an area of interest), in scene pixels:
    blocks are those of the whole scene, so its pixels are the whole-scene run's.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"empty scene {width}x{height}")
    if tile <= 0 or tile % alignment:
        raise ValueError(f"tile size {tile} must be a positive multiple of {alignment}")
    if halo % alignment:
        raise ValueError(f"halo {halo} must be a multiple of {alignment}")
    top, left, bottom, right, tile = _extent(height, width, within, tile, alignment)
    ph, pw = ceil_to(height, alignment), ceil_to(width, alignment)
    rh, rw = min(ph, tile + 2 * halo), min(pw, tile + 2 * halo)
    tiles: list[Tile] = []
    for r0 in range(top, bottom, tile):
        rr0 = min(max(0, r0 - halo), ph - rh)
        for c0 in range(left, right, tile):
            core = Window(c0, r0, min(tile, right - c0), min(tile, bottom - r0))
            cc0 = min(max(0, c0 - halo), pw - rw)
            tiles.append(Tile(len(tiles), core, Window(cc0, rr0, rw, rh)))
    return tiles


def window_origins(size: int, window: int, stride: int) -> list[int]:
    """Origins of the original app's windows along one axis, plus one flush with the far edge.

    The original app stopped at the last full window and left the remaining pixels unpredicted;
    the extra edge window covers them. A scene smaller than one window gets a single window at 0
    (read boundless, i.e. zero padded).
    """
    if size <= window:
        return [0]
    origins = list(range(0, size - window + 1, stride))
    if origins[-1] != size - window:
        origins.append(size - window)
    return origins


def plan_windows(height: int, width: int, tile: int, window: int, stride: int,
                 within: Window | None = None) -> list[Tile]:
    """Tiles for the compatible mode: every pixel averages all windows that cover it.

    A pixel's average uses the same windows, in the same order, whatever the tile size, so the
    result does not depend on tiling. ``within``: plan only that window of the scene (offsets
    multiples of 4), with the whole scene's windows: its pixels are the whole-scene run's.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"empty scene {width}x{height}")
    if tile <= 0 or tile % stride:
        raise ValueError(f"tile size {tile} must be a positive multiple of the stride {stride}")
    top, left, bottom, right, tile = _extent(height, width, within, tile, 1)
    tile = ceil_to(tile, stride)
    oy, ox = window_origins(height, window, stride), window_origins(width, window, stride)
    tiles: list[Tile] = []
    for r0 in range(top, bottom, tile):
        r1 = min(bottom, r0 + tile)
        ys = [o for o in oy if r0 - window < o < r1]
        for c0 in range(left, right, tile):
            c1 = min(right, c0 + tile)
            xs = [o for o in ox if c0 - window < o < c1]
            read = Window(xs[0], ys[0], xs[-1] + window - xs[0], ys[-1] + window - ys[0])
            wins = tuple((y - ys[0], x - xs[0]) for y in ys for x in xs)
            core = Window(c0, r0, c1 - c0, r1 - r0)
            tiles.append(Tile(len(tiles), core, read, wins))
    return tiles


def batches(tiles: list[Tile], size: int) -> Iterator[list[Tile]]:
    """Consecutive groups of up to ``size`` tiles with the same read shape (one array each)."""
    group: list[Tile] = []
    for t in tiles:
        if group and (len(group) == size or group[0].read_shape != t.read_shape):
            yield group
            group = []
        group.append(t)
    if group:
        yield group
