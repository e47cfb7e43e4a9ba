"""lulc_edge.pipeline: read -> infer -> stitch -> write, with prefetch and a resume journal."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import stat
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from .areas import AreaSum
from .engine import CUDA_BATCH, CUDA_TILE, Engine, default_threads
from .errors import InputError, LulcEdgeError, OutputError
from .journal import Journal, changed_files, fingerprint, fingerprint_digest, journal_path
from .locking import OutputLock
from .progress import Progress
from .raster import (
    COUNTS_TAG,
    FINGERPRINT_TAG,
    OPTIONS_TAG,
    Grid,
    OutputWriter,
    class_counts,
    confidence_path,
    probs_path,
    write_qml,
)
from .sources import (
    Source,
    SourceOptions,
    check_input,
    is_remote,
    open_source,
    reads_band_files,
)
from .sources import strips as bandread
from .stitch import TileResult, infer_seamless, infer_windows
from .thumbnail import TrueColour
from .tiling import Tile, batches, plan_seamless, plan_windows

MODES = ("seamless", "window")
#: Extensions an output may have: lulc-edge writes GeoTIFF only.
OUTPUT_EXTENSIONS = (".tif", ".tiff")
#: Warn when the halo makes a seamless run read (and infer) this many times the pixels it maps.
HALO_WORK_WARN = 4.0
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
#: The same for inputs read in strips of their own (per-band files: folders, .SAFE, .zip; and
#: stacks whose strips fit, lulc_edge.sources.STACK_STRIP_BYTES): the strips hold the decoded
#: blocks, so the cache needs room only for the strips being decoded (bandread.cache_bytes:
#: 64 MB on 2 to 11 cores; a stack's 256 MB only double-buffered its strips, 190 MB of peak
#: RSS on a full tile); unset, bandread's figure.
GDAL_CACHE_BYTES_BANDS = int(os.environ.get("LULC_EDGE_GDAL_CACHE_BYTES_BANDS", 0))


def gdal_settings(strips: bool = False) -> dict[str, Any]:
    """GDAL settings of a run, each unless the environment sets it: a bounded block cache
    (smaller for inputs read in strips, see GDAL_CACHE_BYTES_BANDS), and block decoding on all
    cores (GTiff decodes a window's blocks in parallel, JPEG 2000 its tiles; a GPU run is bound
    by it, a CPU run spends the same core-seconds sooner)."""
    cache = (GDAL_CACHE_BYTES_BANDS or bandread.cache_bytes(default_threads())) if strips \
        else GDAL_CACHE_BYTES
    defaults = {"GDAL_CACHEMAX": cache, "GDAL_NUM_THREADS": "ALL_CPUS"}
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
    #: replace an existing output; also start over where an interrupted run left a journal
    #: (without it or ``resume`` that run is refused, so its finished tiles are not lost)
    overwrite: bool = False
    resume: bool = False
    progress: bool | None = None
    #: longest side of a B4/B3/B2 thumbnail gathered while reading (RunResult.true_colour);
    #: 0: none. Pictures of a scene without overviews then need no second read of it.
    thumbnail: int = 0
    #: also write the QGIS style NAME.qml beside the map
    qml: bool = False


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
    #: why ``class_hectares`` is None (e.g. the map has no CRS); None when there are areas
    area_note: str | None = None
    warnings: list[str] = field(default_factory=list)
    true_colour: np.ndarray | None = field(default=None, repr=False)  # RunOptions.thumbnail

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("true_colour")
        d["pixels"] = self.pixels
        return d


def default_output(src: str | os.PathLike) -> Path:
    """``SCENE.lulc.tif`` beside the input (in the working directory for a URL); products and
    folders lose their extension."""
    text = os.fspath(src).rstrip("/")
    name = text.rsplit("/", 1)[-1].split("?", 1)[0] if is_remote(text) else Path(text).name
    for ext in (".zip", ".safe", ".tif", ".tiff", ".vrt", ".jp2", ".img"):
        if name.lower().endswith(ext) and len(name) > len(ext):
            name = name[: -len(ext)]  # S2A_....SAFE.zip -> S2A_...
    if is_remote(text):
        return Path(f"{name}.lulc.tif")
    if name in ("", ".", ".."):  # `run .` in a band folder: beside it, under its real name
        name = Path(text or "/").resolve().name
        return Path(os.path.normpath(os.path.join(text or "/", "..", f"{name}.lulc.tif")))
    return Path(text).parent / f"{name}.lulc.tif"


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"))


def _not_regular(path: Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file (following a symlink)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def check_output(src: str | os.PathLike, dst: Path, overwrite: bool,
                 probs: bool = False, confidence: bool = False) -> None:
    """Refuse an output that is not a GeoTIFF name, equals the input or lies inside a folder
    input, is anything but a regular file (a device, FIFO, socket, directory: never replaced),
    exists without ``overwrite``, or cannot be created."""
    if str(dst) in ("", "."):
        raise OutputError("empty output path")
    if _not_regular(dst) == "a directory":
        raise OutputError(f"{dst}: is a directory; name the output file (e.g. {dst}/map.tif), "
                          "or use --out-dir for a folder of maps")
    if dst.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise OutputError(f"{dst}: unknown output extension {dst.suffix or '(none)'!r}; "
                          "lulc-edge writes GeoTIFF: name it .tif or .tiff")
    local = not is_remote(src)
    if local and dst.resolve() == Path(src).resolve():
        raise OutputError(f"{dst}: output would overwrite the input")
    if local and Path(src).is_dir() and dst.resolve().is_relative_to(Path(src).resolve()):
        raise OutputError(f"{dst}: output inside the input folder {src}; write it elsewhere")
    for path in [dst] + [probs_path(dst)] * probs + [confidence_path(dst)] * confidence:
        what = _not_regular(path)
        if what is not None:
            raise OutputError(f"{path}: is {what}; only a regular file can be replaced by "
                              "an output")
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst}: output exists (use --overwrite to replace it)")
    parent = dst.parent
    if not parent.is_dir():
        raise OutputError(f"{dst}: output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{dst}: output directory {parent} is not writable")


def check_tiling(options: RunOptions, tile: int, batch: int, halo: int) -> list[str]:
    """Refuse a tile or batch below 1 (the API has no click ranges); warnings for legal but
    bad values: a seamless tile so small that the halo multiplies the work."""
    if tile < 1 or batch < 1:
        raise LulcEdgeError(f"tile ({tile}) and batch ({batch}) must be at least 1")
    factor = ((tile + 2 * halo) / tile) ** 2
    if options.mode == "seamless" and factor >= HALO_WORK_WARN:
        return [f"--tile {tile} is far below the model's halo ({halo} px each side): every tile "
                f"reads and infers {factor:.0f}x the pixels it maps; use --tile 256 or more"]
    return []


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
        while th.is_alive():  # a consumer that stopped early (a write failed) frees the reader's
            try:              # last put, which would block the join forever
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        th.join()


def infer_plan(engine: Engine, mode: str, read: Callable[[Window], np.ndarray],
               tiles: list[Tile], outputs: tuple[str, ...], batch: int,
               on_block: Callable[[Tile, np.ndarray], None] | None = None
               ) -> Iterator[tuple[Tile, TileResult]]:
    """Each tile's result, in plan order: the one data path of files and arrays alike.

    Blocks are read ahead in a thread (``read(window)`` of the scene's grid, zero outside) and
    up to ``engine.in_flight`` groups are inferred at once (OpenVINO's CPU streams), so reading,
    inference and writing overlap on few cores. ``on_block(tile, bands)`` sees each tile's
    read block (e.g. for a thumbnail).
    """
    c = engine.contract
    engine.prepare(block_sizes(tiles) if mode == "seamless"
                   else [(c.window_size, c.window_size)])
    groups = list(batches(tiles, batch if mode == "seamless" else 1))
    pending: deque[tuple[list[Tile], Future]] = deque()
    with ThreadPoolExecutor(engine.in_flight, thread_name_prefix="lulc-edge-infer") as pool:
        for group, arr in _prefetch(read, groups):
            if on_block is not None:
                for t, block in zip(group, arr, strict=True):
                    on_block(t, block)
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
        with rasterio.Env():  # GDAL's error handler is per thread: route this one's to logging
            self._drain()

    def _drain(self) -> None:
        while (item := self.q.get()) is not None:
            if self.error is not None:
                continue
            try:
                tile, res, record = item
                self.out.write(tile.core, res.classes, res.confidence, res.probabilities)
                if record:
                    self.journal.append(tile.index, res.arrays())
            except OSError as exc:  # the journal's disk is full...
                self.error = self.out.write_error(exc)
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

    ``on_tile(done, pixels)`` is called after each tile (for batch progress). One run at a time
    writes an output: a second gets ``OutputError`` (``locking.OutputLock``).
    """
    t0 = time.perf_counter()
    options = options or RunOptions()
    engine = engine or Engine()
    src_name = os.fspath(src)  # as given: a URL must not go through Path
    dst_path = Path(dst) if dst is not None else default_output(src_name)
    if options.mode not in MODES:
        raise LulcEdgeError(f"unknown mode {options.mode!r}; choose one of {', '.join(MODES)}")
    check_input(src_name)  # before the output checks: their messages would mislead
    check_output(src_name, dst_path, options.overwrite, options.probs, options.confidence)
    tile = options.tile if options.tile is not None else default_tile(options.mode,
                                                                        engine.device)
    batch = options.batch if options.batch is not None else default_batch(options.mode,
                                                                          engine.device)
    warnings = check_tiling(options, tile, batch, engine.contract.halo)
    with OutputLock(dst_path):
        return _segment_locked(src_name, dst_path, engine, options, source_options, on_tile,
                               tile, batch, warnings, t0)


def shaping_options(engine: Engine, options: RunOptions,
                    source_options: SourceOptions | None) -> str:
    """The options that shape a run's outputs, as the JSON of OPTIONS_TAG: a batch redoes an
    output made with others. The tile and batch sizes are not among them (maps never depend on
    them), nor the device (its precision is)."""
    so = source_options or SourceOptions()
    return json.dumps({
        "model": engine.contract.sha256, "precision": engine.precision, "mode": options.mode,
        "confidence": options.confidence, "probs": options.probs, "cog": options.cog,
        "bands": dict(so.bands) if so.bands else None, "boa_offset": so.boa_offset,
        "scl_fill": so.scl_fill, "resampling": so.resampling}, sort_keys=True)


def _segment_locked(src_name: str, dst_path: Path, engine: Engine, options: RunOptions,
                    source_options: SourceOptions | None,
                    on_tile: Callable[[int, int], None] | None, tile: int, batch: int,
                    warnings: list[str], t0: float) -> RunResult:
    """segment_file's work, once the output's lock is held."""
    fp = fingerprint(src_name)
    with open_for_run(src_name, engine.contract.bands, source_options) as source:
        tiles = plan(options.mode, source.height, source.width, tile, engine)
        grid = Grid(source.width, source.height, source.crs, source.transform)
        outputs = output_names(options.confidence, options.probs)
        header = {
            "version": 2, "input": src_name if is_remote(src_name)
            else str(Path(src_name).resolve()), "model": engine.contract.sha256,
            "device": engine.device, "precision": engine.precision, "mode": options.mode,
            "tile": tile, "width": source.width, "height": source.height,
            "outputs": list(outputs), "source": source.tags(), "input_files": fp,
        }
        journal = Journal(journal_path(dst_path), header)
        done: dict[int, bytes] = {}
        if options.resume:
            done = dict(journal.replay())
            stale = _stale_journal(journal, src_name)
            if stale:
                warnings.append(stale)
        elif not options.overwrite and (left := journal.finished()):
            raise OutputError(f"{dst_path}: an interrupted run of this command left "
                              f"{left} of {len(tiles)} tiles finished "
                              f"({journal.path.name}): run it with --resume to continue, or "
                              "with --overwrite to start over")
        out = OutputWriter(dst_path, grid, engine.contract, confidence=options.confidence,
                           probs=options.probs)
        areas = AreaSum(grid.crs, grid.transform)
        todo = [t for t in tiles if t.index not in done]
        bar = Progress(len(tiles), Path(src_name).name, options.progress)
        try:
            journal.start(sorted(done.items()))
            writer = _Writer(out, journal)
            try:
                for t in tiles:
                    if t.index in done:
                        res = TileResult.from_bytes(done[t.index], t, outputs,
                                                    engine.contract.n_classes)
                        writer.put(t, res, record=False)
                        areas.add(res.classes, t.core.row_off)
                        bar.update(1, int(t.core.width * t.core.height))
                thumb = (TrueColour(source.width, source.height, options.thumbnail,
                                    source.band_names) if options.thumbnail else None)
                if thumb is not None and done:
                    for t in tiles:  # resumed: the finished tiles' samples are read again
                        if t.index in done:
                            thumb.add(t, source.read(t.read))
                for t, res in infer_plan(engine, options.mode, source.read, todo, outputs,
                                         batch, thumb.add if thumb is not None else None):
                    writer.put(t, res)
                    areas.add(res.classes, t.core.row_off)
                    px = int(t.core.width * t.core.height)
                    bar.update(1, px)
                    if on_tile is not None:
                        on_tile(1, px)
            finally:
                writer.close()
            bar.close()
            moved = changed_files(fp, fingerprint(src_name))
            if moved:
                raise InputError(f"{src_name}: the input changed while it was being read "
                                 f"({', '.join(moved[:3])}); nothing written, run again")
            tags = _run_tags(engine, options, tile, source)
            tags[FINGERPRINT_TAG] = fingerprint_digest(fp)
            tags[COUNTS_TAG] = class_counts(areas.counts)
            tags[OPTIONS_TAG] = shaping_options(engine, options, source_options)
            out.finish(tags, cog=options.cog)
            if options.qml:
                write_qml(dst_path, engine.contract.classes, engine.contract.nodata)
        except KeyboardInterrupt:
            out.close()  # keep the journal: --resume continues from here
            journal.close()
            raise
        except OSError as exc:  # reads raise InputError: this is the journal or the output
            out.abort()
            journal.remove()
            raise out.write_error(exc) from None
        except BaseException:
            out.abort()
            journal.remove()
            raise
        journal.remove()
        warnings += source.warnings
    c = engine.contract
    if areas.counts[c.nodata.value] == grid.width * grid.height:
        warnings.append(f"{src_name}: no valid pixel (all zero, NaN or nodata): the map is "
                        f"100 % {c.nodata.name}")
    names = {cls.value: cls.name for cls in (*c.classes, c.nodata)}
    return RunResult(
        input=src_name, output=str(dst_path), width=grid.width, height=grid.height,
        seconds=time.perf_counter() - t0, device=engine.device, precision=engine.precision,
        mode=options.mode,
        tiles_total=len(tiles), tiles_inferred=len(todo),
        class_pixels={n: int(areas.counts[v]) for v, n in names.items()},
        class_hectares=areas.named_hectares(names), area_note=areas.note(),
        warnings=warnings, true_colour=thumb.image if thumb is not None else None,
    )


@contextlib.contextmanager
def open_for_run(src_name: str, bands: Sequence[str],
                 source_options: SourceOptions | None = None) -> Iterator[Source]:
    """``open_source`` under a run's GDAL settings (``gdal_settings``): per-band files get the
    strips' smaller cache from the start, a stack once it is open and known to read in strips.
    What ``segment_file`` reads through, and what a benchmark of the reader alone should."""
    with rasterio.Env(**gdal_settings(reads_band_files(src_name))), \
            open_source(src_name, bands, source_options or SourceOptions()) as source:
        strips = {k: v for k, v in gdal_settings(True).items() if k == "GDAL_CACHEMAX"} \
            if source.in_strips else {}
        with rasterio.Env(**strips):
            yield source


def _stale_journal(journal: Journal, src: str) -> str | None:
    """Why a journal on disk cannot be resumed (so the run starts over), or None."""
    old = journal.previous_header()
    if old is None or old == journal.header:
        return None
    if old.get("input") == journal.header["input"] and old.get("input_files") != \
            journal.header["input_files"]:
        moved = changed_files(old.get("input_files") or {}, journal.header["input_files"])
        return (f"{src}: the input changed since the interrupted run ({', '.join(moved[:3])} "
                "differ in size or time): --resume starts over, so the map never mixes two "
                "versions of the input")
    keys = sorted(k for k in journal.header if old.get(k) != journal.header[k])
    return (f"{src}: the interrupted run differs ({', '.join(keys)}): --resume starts over")


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
