"""lulc_edge.pipeline: read -> infer -> stitch -> write, with prefetch and a resume journal."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from .engine import CUDA_BATCH, CUDA_TILE, Engine
from .errors import LulcEdgeError, OutputError
from .journal import Journal, journal_path
from .progress import Progress
from .raster import Grid, OutputWriter
from .sources import Source, SourceOptions, check_input, open_source
from .stitch import TileResult, infer_seamless, infer_windows
from .tiling import Tile, batches, plan_seamless, plan_windows

MODES = ("seamless", "window")
#: Default core tile edge per mode (pixels); see the README's throughput section for why.
DEFAULT_TILE = {"seamless": int(os.environ.get("LULC_EDGE_TILE", 512)), "window": 512}
#: Default batch: tiles per run in seamless mode, 64x64 windows per run in window mode.
DEFAULT_BATCH = {"seamless": 1, "window": 32}

#: Read-ahead depth of the prefetch thread (batches held in memory at once).
PREFETCH = 2
#: GDAL block cache while mapping a scene, in bytes, unless GDAL_CACHEMAX is set: enough for the
#: blocks of one row of tiles of a 10980 px wide scene (halo re-reads hit the cache), instead of
#: GDAL's default of 5% of RAM, which held 1.2 GB of decoded input on a 24 GB machine.
GDAL_CACHE_BYTES = int(os.environ.get("LULC_EDGE_GDAL_CACHE_BYTES", 256 * 2**20))


def gdal_settings() -> dict[str, Any]:
    """GDAL settings of a run, each unless the environment sets it: a bounded block cache, and
    block decoding on all cores (GTiff decodes a window's blocks in parallel; a GPU run is
    bound by it, a CPU run spends the same core-seconds sooner)."""
    defaults = {"GDAL_CACHEMAX": GDAL_CACHE_BYTES, "GDAL_NUM_THREADS": "ALL_CPUS"}
    return {k: v for k, v in defaults.items() if k not in os.environ}


def default_batch(mode: str, device: str) -> int:
    """Tiles (windows) per inference call when the caller gives none."""
    return (CUDA_BATCH if device == "cuda" else DEFAULT_BATCH)[mode]


def default_tile(mode: str, device: str) -> int:
    """Core tile edge when the caller gives none: bigger on a GPU (docs/backends.md)."""
    return (CUDA_TILE if device == "cuda" else DEFAULT_TILE)[mode]


@dataclass(frozen=True)
class RunOptions:
    """How to map one scene; ``None`` means the mode's default."""

    mode: str = "seamless"
    tile: int | None = None
    batch: int | None = None
    confidence: bool = False
    probs: bool = False
    cog: bool = False
    overwrite: bool = False
    resume: bool = False
    progress: bool | None = None


@dataclass
class RunResult:
    """What a run did: sizes, time, per-class pixel counts and areas."""

    input: str
    output: str
    width: int
    height: int
    seconds: float
    device: str
    precision: str
    mode: str
    tiles_total: int
    tiles_inferred: int
    class_pixels: dict[str, int]
    class_hectares: dict[str, float] | None
    warnings: list[str] = field(default_factory=list)

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["pixels"] = self.pixels
        return d


def default_output(src: Path) -> Path:
    """``SCENE.lulc.tif`` beside the input; products and folders lose their extension."""
    name = src.name.rstrip("/")
    for ext in (".zip", ".safe", ".tif", ".tiff", ".vrt", ".jp2", ".img"):
        if name.lower().endswith(ext) and len(name) > len(ext):
            name = name[: -len(ext)]  # S2A_....SAFE.zip -> S2A_...
    return src.parent / f"{name}.lulc.tif"


def check_output(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse an output that equals the input, exists, or cannot be created."""
    if dst.resolve() == src.resolve():
        raise OutputError(f"{dst}: output would overwrite the input")
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst}: output exists (use --overwrite to replace it)")
    parent = dst.parent
    if not parent.is_dir():
        raise OutputError(f"{dst}: output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{dst}: output directory {parent} is not writable")


def plan(mode: str, height: int, width: int, tile: int, engine: Engine) -> list[Tile]:
    """The tiles of a scene for a mode, from the model's contract."""
    c = engine.contract
    if mode == "seamless":
        return plan_seamless(height, width, tile, c.halo, c.alignment)
    if mode == "window":
        return plan_windows(height, width, tile, c.window_size, c.window_stride)
    raise LulcEdgeError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")


def block_sizes(tiles: list[Tile]) -> list[tuple[int, int]]:
    """The read-block sizes of a plan, most frequent first (ties by size): from the whole plan,
    so a resumed run prepares the backend exactly as the uninterrupted one did."""
    counts = Counter(t.read_shape for t in tiles)
    return sorted(counts, key=lambda hw: (-counts[hw], hw))


def _prefetch(read: Callable[[Window], np.ndarray], groups: list[list[Tile]]
              ) -> Iterator[tuple[list[Tile], np.ndarray]]:
    """Read tile groups in a background thread so inference never waits on disk."""
    q: queue.Queue[Any] = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()

    def work() -> None:
        try:
            for group in groups:
                blocks = [read(t.read) for t in group]
                arr = blocks[0][None] if len(blocks) == 1 else np.stack(blocks)
                while not stop.is_set():
                    try:
                        q.put((group, arr), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(None)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    th = threading.Thread(target=work, name="lulc-edge-read", daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        th.join()


def infer_plan(engine: Engine, mode: str, read: Callable[[Window], np.ndarray],
               tiles: list[Tile], outputs: tuple[str, ...], batch: int
               ) -> Iterator[tuple[Tile, TileResult]]:
    """Each tile's result, in plan order: the one data path of files and arrays alike.

    Blocks are read ahead in a thread (``read(window)`` of the scene's grid, zero outside) and
    up to ``engine.in_flight`` groups are inferred at once (OpenVINO's CPU streams), so reading,
    inference and writing overlap on few cores.
    """
    c = engine.contract
    engine.prepare(block_sizes(tiles) if mode == "seamless"
                   else [(c.window_size, c.window_size)])
    groups = list(batches(tiles, batch if mode == "seamless" else 1))
    pending: deque[tuple[list[Tile], Future]] = deque()
    with ThreadPoolExecutor(engine.in_flight, thread_name_prefix="lulc-edge-infer") as pool:
        for group, arr in _prefetch(read, groups):
            pending.append((group, pool.submit(infer_tiles, engine, mode, group, arr, outputs,
                                               batch)))
            if len(pending) >= engine.in_flight:
                group, fut = pending.popleft()
                yield from zip(group, fut.result(), strict=True)
        while pending:
            group, fut = pending.popleft()
            yield from zip(group, fut.result(), strict=True)


class _Writer:
    """Writes results in a background thread (compression overlaps inference)."""

    def __init__(self, out: OutputWriter, journal: Journal) -> None:
        self.out, self.journal = out, journal
        self.q: queue.Queue[Any] = queue.Queue(maxsize=PREFETCH + 1)
        self.error: BaseException | None = None
        self.th = threading.Thread(target=self._work, name="lulc-edge-write", daemon=True)
        self.th.start()

    def _work(self) -> None:
        while (item := self.q.get()) is not None:
            if self.error is not None:
                continue
            try:
                tile, res, record = item
                self.out.write(tile.core, res.classes, res.confidence, res.probabilities)
                if record:
                    self.journal.append(tile.index, res.arrays())
            except BaseException as exc:
                self.error = exc

    def put(self, tile: Tile, res: TileResult, record: bool = True) -> None:
        if self.error is not None:
            raise self.error
        self.q.put((tile, res, record))

    def close(self) -> None:
        self.q.put(None)
        self.th.join()
        if self.error is not None:
            raise self.error


def segment_file(
    src: str | os.PathLike,
    dst: str | os.PathLike | None = None,
    *,
    engine: Engine | None = None,
    options: RunOptions | None = None,
    source_options: SourceOptions | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Map one scene (file, band folder, product) to a class-map GeoTIFF.

    ``on_tile(done, pixels)`` is called after each tile (for batch progress).
    """
    t0 = time.perf_counter()
    options = options or RunOptions()
    engine = engine or Engine()
    src_path = Path(src)
    dst_path = Path(dst) if dst is not None else default_output(src_path)
    if options.mode not in MODES:
        raise LulcEdgeError(f"unknown mode {options.mode!r}; choose one of {', '.join(MODES)}")
    check_input(src_path)  # before the output checks: their messages would mislead
    check_output(src_path, dst_path, options.overwrite)
    tile = options.tile or default_tile(options.mode, engine.device)
    batch = options.batch or default_batch(options.mode, engine.device)
    cache = rasterio.Env(**gdal_settings())
    with cache, open_source(src_path, engine.contract.bands,
                            source_options or SourceOptions()) as source:
        tiles = plan(options.mode, source.height, source.width, tile, engine)
        grid = Grid(source.width, source.height, source.crs, source.transform)
        outputs = output_names(options.confidence, options.probs)
        header = {
            "version": 1, "input": str(src_path.resolve()), "model": engine.contract.sha256,
            "device": engine.device, "precision": engine.precision, "mode": options.mode,
            "tile": tile, "width": source.width, "height": source.height,
            "outputs": list(outputs), "source": source.tags(),
        }
        journal = Journal(journal_path(dst_path), header)
        done: dict[int, bytes] = dict(journal.replay()) if options.resume else {}
        out = OutputWriter(dst_path, grid, engine.contract, confidence=options.confidence,
                           probs=options.probs)
        counts = np.zeros(256, np.int64)
        todo = [t for t in tiles if t.index not in done]
        bar = Progress(len(tiles), src_path.name, options.progress)
        try:
            journal.start(sorted(done.items()))
            writer = _Writer(out, journal)
            try:
                for t in tiles:
                    if t.index in done:
                        res = TileResult.from_bytes(done[t.index], t, outputs,
                                                    engine.contract.n_classes)
                        writer.put(t, res, record=False)
                        counts += np.bincount(res.classes.ravel(), minlength=256)
                        bar.update(1, int(t.core.width * t.core.height))
                for t, res in infer_plan(engine, options.mode, source.read, todo, outputs,
                                         batch):
                    writer.put(t, res)
                    counts += np.bincount(res.classes.ravel(), minlength=256)
                    px = int(t.core.width * t.core.height)
                    bar.update(1, px)
                    if on_tile is not None:
                        on_tile(1, px)
            finally:
                writer.close()
            bar.close()
            tags = _run_tags(engine, options, tile, source)
            out.finish(tags, cog=options.cog)
        except KeyboardInterrupt:
            out.close()  # keep the journal: --resume continues from here
            journal.close()
            raise
        except BaseException:
            out.abort()
            journal.remove()
            raise
        journal.remove()
        warnings = list(source.warnings)
    named = _named_counts(counts, engine)
    return RunResult(
        input=str(src_path), output=str(dst_path), width=grid.width, height=grid.height,
        seconds=time.perf_counter() - t0, device=engine.device, precision=engine.precision,
        mode=options.mode,
        tiles_total=len(tiles), tiles_inferred=len(todo),
        class_pixels=named, class_hectares=_hectares(named, grid),
        warnings=warnings,
    )


def output_names(confidence: bool, probabilities: bool) -> tuple[str, ...]:
    """The graph outputs a run asks for: ``class``, then the optional ones, in graph order."""
    return ("class",) + (("confidence",) if confidence else ()) + (
        ("probabilities",) if probabilities else ())


def infer_tiles(engine: Engine, mode: str, group: list[Tile], arr: np.ndarray,
                outputs: tuple[str, ...], batch: int) -> list[TileResult]:
    """Results for a group of tiles read as one array, in the mode's way."""
    if mode == "seamless":
        return infer_seamless(engine, group, arr, outputs)
    return [infer_windows(engine, t, a, outputs, batch) for t, a in zip(group, arr, strict=True)]


def _run_tags(engine: Engine, options: RunOptions, tile: int, source: Source) -> dict[str, str]:
    c = engine.contract
    tags = {
        "LULC_EDGE_MODEL": Path(c.path).name,
        "LULC_EDGE_MODEL_SHA256": c.sha256,
        "LULC_EDGE_WEIGHTS": c.trained_on,
        "LULC_EDGE_PRECISION": engine.precision,
        "LULC_EDGE_MODEL_PRECISION": c.precision,
        "LULC_EDGE_DEVICE": engine.device,
        "LULC_EDGE_MODE": options.mode,
        "LULC_EDGE_TILE": str(tile),
        "LULC_EDGE_HALO": str(c.halo),
    }
    tags.update({k if k.startswith("LULC_EDGE_") else f"LULC_EDGE_SOURCE_{k}": v
                 for k, v in source.tags().items()})
    return tags


def _named_counts(counts: np.ndarray, engine: Engine) -> dict[str, int]:
    c = engine.contract
    named = {cls.name: int(counts[cls.value]) for cls in c.classes}
    named[c.nodata.name] = int(counts[c.nodata.value])
    return named


def _hectares(named: dict[str, int], grid: Grid) -> dict[str, float] | None:
    """Class areas in hectares, when the CRS is projected in metres (else None)."""
    crs = grid.crs
    if crs is None or not crs.is_projected:
        return None
    try:
        unit = crs.linear_units_factor[1]
    except Exception:  # noqa: BLE001 - CRS without linear unit information
        return None
    t = grid.transform
    px_m2 = abs(t.a * t.e - t.b * t.d) * unit * unit
    return {k: round(v * px_m2 / 1e4, 4) for k, v in named.items()}
