"""lulc_edge.stream: the threads that keep reading, inference and writing overlapped.

``infer_plan`` reads tile groups ahead in one thread and infers up to ``engine.in_flight``
groups at once; ``Feeder`` hands results to the sinks in another (compression overlaps
inference). The one data path of files and in-memory arrays alike.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import rasterio

from .engine import Engine
from .modes import Mode
from .stitch import Prediction
from .tiling import Tile, batches

#: Read-ahead depth of the prefetch thread (batches held in memory at once).
PREFETCH = 2


def prefetch(read: Callable[[Tile], np.ndarray], groups: list[list[Tile]]
             ) -> Iterator[tuple[list[Tile], np.ndarray]]:
    """Read tile groups in a background thread so inference never waits on disk."""
    q: queue.Queue[Any] = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()

    def work() -> None:
        try:
            for group in groups:
                blocks = [read(t) for t in group]
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
        while (item := q.get()) is not None:
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


def infer_plan(engine: Engine, mode: Mode, read: Callable[[Tile], np.ndarray],
               tiles: list[Tile], outputs: tuple[str, ...], batch: int
               ) -> Iterator[tuple[Tile, Prediction, np.ndarray]]:
    """Each tile's prediction and read block (bands, h, w), in plan order.

    Blocks are read ahead in a thread (``read(tile)``: its read window of the scene's grid,
    zero outside; in one thread, in plan order) and
    up to ``engine.in_flight`` groups are inferred at once (OpenVINO's CPU streams), so reading,
    inference and writing overlap on few cores.
    """
    engine.prepare(mode.block_sizes(tiles, engine))
    groups = list(batches(tiles, mode.group_size(batch)))
    pending: deque[tuple[list[Tile], np.ndarray, Future]] = deque()
    with ThreadPoolExecutor(engine.in_flight, thread_name_prefix="lulc-edge-infer") as pool:
        for group, arr in prefetch(read, groups):
            pending.append((group, arr, pool.submit(mode.infer, engine, group, arr, outputs,
                                                    batch)))
            if len(pending) >= engine.in_flight:
                group, arr, fut = pending.popleft()
                yield from zip(group, fut.result(), arr, strict=True)
        while pending:
            group, arr, fut = pending.popleft()
            yield from zip(group, fut.result(), arr, strict=True)


class Feeder:
    """Feeds each tile's result to the sinks in a background thread; the first error is
    raised by the next ``put`` or by ``close``."""

    def __init__(self, sinks: Sequence[Any]) -> None:
        self.sinks = sinks
        self.q: queue.Queue[Any] = queue.Queue(maxsize=PREFETCH + 1)
        self.error: BaseException | None = None
        self.th = threading.Thread(target=self._work, name="lulc-edge-write", daemon=True)
        self.th.start()

    def _work(self) -> None:
        with rasterio.Env():  # GDAL's error handler is per thread: route this one's to logging
            while (item := self.q.get()) is not None:
                if self.error is not None:
                    continue
                try:
                    for sink in self.sinks:
                        sink.add(*item)
                except BaseException as exc:
                    self.error = exc

    def put(self, tile: Tile, result: Prediction, bands: np.ndarray | None = None) -> None:
        if self.error is not None:
            raise self.error
        self.q.put((tile, result, bands))

    def close(self) -> None:
        self.q.put(None)
        self.th.join()
        if self.error is not None:
            raise self.error
