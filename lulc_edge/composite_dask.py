"""lulc_edge.composite_dask: a composite's rows of tiles as tasks on a Dask cluster.

Each task opens the scenes itself (paths and URLs must be visible to every worker), puts them
on the target grid and runs ``composite.composite_tiles`` on its row: the code a local
composite runs. The caller feeds the rows to its sinks as they land; a task whose worker dies
is rerun elsewhere by Dask, and the journal keeps what landed for ``--resume``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from .batch import TASK_RETRIES, _cached_engine, connect_timeout
from .composite import CompositePrediction, composite_tiles, scene_masks
from .errors import LulcEdgeError, one_line
from .gdalenv import open_for_run
from .modes import get_mode
from .regrid import RegriddedSource, TargetGrid
from .spec import RunSpec
from .tiling import Tile


def row_task(names: Sequence[str], spec: RunSpec, rule: str, grid: TargetGrid,
             row: list[Tile], batch: int) -> list[CompositePrediction]:
    """One row of tiles composited on a worker (the model loaded once per worker)."""
    engine = _cached_engine(spec.model, spec.engine)
    nodata = engine.contract.nodata.value
    with contextlib.ExitStack() as stack:
        scenes = [RegriddedSource(stack.enter_context(
            open_for_run(n, engine.contract.bands, spec.source)), grid) for n in names]
        scenes = [s for s in scenes if s.covers]
        masks = scene_masks(spec.run.clouds, scenes, nodata)
        return composite_tiles(scenes, engine, get_mode(spec.run.mode), row, batch, rule,
                               spec.run.probs, masks)


def composite_rows(scheduler: str, names: Sequence[str], spec: RunSpec, rule: str,
                   grid: TargetGrid, rows: list[list[Tile]], batch: int
                   ) -> Iterator[tuple[Tile, CompositePrediction]]:
    """(tile, composite) of every row, as the cluster finishes them."""
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise LulcEdgeError("--scheduler needs Dask distributed: pip install "
                            "'lulc-edge[cluster]'") from None
    try:
        client = Client(scheduler, timeout=connect_timeout(), set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise LulcEdgeError(f"cannot reach Dask scheduler {scheduler} ({one_line(exc)})"
                            ) from None
    run_id = uuid.uuid4().hex[:8]
    quiet = spec.replace(progress=False)
    try:
        with client.as_current():
            futs: dict[Any, list[Tile]] = {
                client.submit(row_task, list(names), quiet, rule, grid, row, batch,
                              key=f"lulc-edge-composite-{run_id}-{i}", retries=TASK_RETRIES,
                              pure=False): row for i, row in enumerate(rows)}
            for fut in dask_completed(list(futs)):
                try:
                    preds = fut.result()
                except LulcEdgeError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every worker that ran it died
                    raise LulcEdgeError(f"a composite task failed on the cluster "
                                        f"({type(exc).__name__}: {one_line(exc)})") from None
                yield from zip(futs[fut], preds, strict=True)
    finally:
        client.close()
