"""lulc_edge.modes: how a scene is cut into tiles and each group of tiles inferred.

A mode is an object in ``MODES`` (name -> mode), as rasterio.merge keeps MERGE_METHODS: it knows
its default tile and batch per device, plans a scene's tiles from the model's contract and infers
a group of read blocks. A new mode is one class here (or in a module of its own) and one line in
``MODES``; nothing else tests a mode's name.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
from rasterio import windows

from .contract import Contract
from .engine import CUDA_BATCH, CUDA_TILE, Engine
from .errors import LulcEdgeError
from .stitch import Prediction, infer_seamless, infer_windows
from .tiling import Tile, plan_seamless, plan_windows

#: Warn when the halo makes a seamless run read (and infer) this many times the pixels it maps.
HALO_WORK_WARN = 4.0
#: Default core tile edge per mode on CPUs (pixels); see the README's throughput section.
#: ``LULC_EDGE_TILE`` overrides the seamless one, read when a run picks its default.
DEFAULT_TILE = {"seamless": 512, "window": 512}
#: Default batch: tiles per run in seamless mode, 64x64 windows per run in window mode.
DEFAULT_BATCH = {"seamless": 1, "window": 32}


class Mode:
    """What the modes share: defaults per device; subclasses plan and infer."""

    name = ""

    def default_tile(self, device: str) -> int:
        """Core tile edge when the caller gives none: bigger on a GPU (docs/backends.md)."""
        return (CUDA_TILE if device == "cuda" else DEFAULT_TILE)[self.name]

    def default_batch(self, device: str) -> int:
        """Tiles (windows) per inference call when the caller gives none."""
        return (CUDA_BATCH if device == "cuda" else DEFAULT_BATCH)[self.name]

    #: the contract's field a tile edge must be a multiple of (``tile_step``)
    step = "alignment"

    def tile_step(self, contract: Contract) -> int:
        """What a tile edge must be a multiple of for this mode to plan it."""
        return int(getattr(contract, self.step))

    def plan(self, height: int, width: int, tile: int, engine: Engine,
             within: windows.Window | None = None) -> list[Tile]:
        """The tiles of a ``height`` x ``width`` scene (only of its window ``within``: an
        area of interest, in scene pixels, offsets multiples of the alignment)."""
        raise NotImplementedError

    def block_sizes(self, tiles: list[Tile], engine: Engine) -> list[tuple[int, int]]:
        """The read-block shapes the backend is prepared for."""
        raise NotImplementedError

    def group_size(self, batch: int) -> int:
        """Tiles read and inferred together."""
        return 1

    def infer(self, engine: Engine, group: list[Tile], bands: np.ndarray,
              outputs: tuple[str, ...], batch: int) -> list[Prediction]:
        raise NotImplementedError

    def warnings(self, tile: int, halo: int) -> list[str]:
        """Warnings for a legal but bad tile size."""
        return []

    def context(self, contract: Contract) -> int:
        """Pixels every tile's read block holds around its core inside the scene (what a
        per-tile step such as the cloud mask's dilation may look at)."""
        raise NotImplementedError


class Seamless(Mode):
    """Each tile read with the model's halo and inferred whole; its core kept (exact)."""

    name = "seamless"

    def default_tile(self, device: str) -> int:
        if device != "cuda" and os.environ.get("LULC_EDGE_TILE"):
            return int(os.environ["LULC_EDGE_TILE"])
        return super().default_tile(device)

    def plan(self, height: int, width: int, tile: int, engine: Engine,
             within: windows.Window | None = None) -> list[Tile]:
        c = engine.contract
        return plan_seamless(height, width, tile, c.halo, c.alignment, within)

    def block_sizes(self, tiles: list[Tile], engine: Engine) -> list[tuple[int, int]]:
        """Most frequent first (ties by size), from the whole plan, so a resumed run prepares
        the backend exactly as the uninterrupted one did."""
        counts = Counter(t.read_shape for t in tiles)
        return sorted(counts, key=lambda hw: (-counts[hw], hw))

    def group_size(self, batch: int) -> int:
        return batch

    def context(self, contract: Contract) -> int:
        return contract.halo

    def infer(self, engine: Engine, group: list[Tile], bands: np.ndarray,
              outputs: tuple[str, ...], batch: int) -> list[Prediction]:
        return infer_seamless(engine, group, bands, outputs)

    def warnings(self, tile: int, halo: int) -> list[str]:
        factor = ((tile + 2 * halo) / tile) ** 2
        if factor < HALO_WORK_WARN:
            return []
        return [f"--tile {tile} is far below the model's halo ({halo} px each side): every tile "
                f"reads and infers {factor:.0f}x the pixels it maps; use --tile 256 or more"]


class Window(Mode):
    """The original app's method: the model's windows slid over each tile, averaged."""

    name = "window"
    step = "window_stride"

    def plan(self, height: int, width: int, tile: int, engine: Engine,
             within: windows.Window | None = None) -> list[Tile]:
        c = engine.contract
        return plan_windows(height, width, tile, c.window_size, c.window_stride, within)

    def block_sizes(self, tiles: list[Tile], engine: Engine) -> list[tuple[int, int]]:
        size = engine.contract.window_size
        return [(size, size)]

    def context(self, contract: Contract) -> int:
        return contract.window_size - contract.window_stride

    def infer(self, engine: Engine, group: list[Tile], bands: np.ndarray,
              outputs: tuple[str, ...], batch: int) -> list[Prediction]:
        return [infer_windows(engine, t, a, outputs, batch)
                for t, a in zip(group, bands, strict=True)]


#: The modes by name.
MODES: dict[str, Mode] = {"seamless": Seamless(), "window": Window()}


def get_mode(mode: str | Mode) -> Mode:
    """The mode object of a name (a mode object as is); LulcEdgeError naming the choices."""
    if isinstance(mode, Mode):
        return mode
    try:
        return MODES[mode]
    except (KeyError, TypeError):
        raise LulcEdgeError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}") from None


def default_tile(mode: str, device: str) -> int:
    """The default core tile edge of a mode on a device."""
    return get_mode(mode).default_tile(device)


def default_batch(mode: str, device: str) -> int:
    """The default batch of a mode on a device."""
    return get_mode(mode).default_batch(device)


def plan(mode: str | Mode, height: int, width: int, tile: int, engine: Engine) -> list[Tile]:
    """The tiles of a scene for a mode, from the model's contract."""
    return get_mode(mode).plan(height, width, tile, engine)
