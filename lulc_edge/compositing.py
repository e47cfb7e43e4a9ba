"""lulc_edge.compositing: ``composite_file``: several scenes (dates, or adjacent tiles) to one
map on one grid.

The scenes are opened by their openers, put on one target grid (:mod:`lulc_edge.regrid`) and
mapped row of tiles by row of tiles: for each row, every scene's tiles go through the run's own
path (``composite.composite_tiles``: ``stream.infer_plan``, the cloud mask step) into one
accumulator per tile, and the row's composite tiles go to the usual sinks (class map,
confidence and mean probabilities files, areas, QGIS style, resume journal) plus the counts
file (``sinks.counts``). A killed composite continues with ``--resume`` from its journal, whose
header fingerprints every input, so changed inputs start it over rather than mix. On a Dask
cluster each row is a task (``composite_dask``), fed to the same sinks as it lands.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from . import clouds, sinks
from .aoi import inside_polygon
from .composite import RULES, CompositePrediction, composite_tiles, scene_masks
from .engine import Engine
from .errors import InputError, LulcEdgeError
from .gdalenv import open_for_run
from .journal import Journal, changed_files, fingerprint_digest, journal_path
from .locking import OutputLock
from .modes import Mode, get_mode
from .paths import check_output
from .progress import Progress
from .raster import FINGERPRINT_TAG, OPTIONS_TAG, write_error
from .regrid import RegriddedSource, TargetGrid, target_grid
from .results import json_products
from .runfile import engine_tags, replay_tiles, tiling_of
from .sinks.counts import Counts
from .sources import Source, check_input
from .spec import RunSpec
from .stream import Feeder
from .tiling import Tile


@dataclass(frozen=True)
class CompositeOptions:
    """How scenes are combined: ``rule`` (``mean`` of the probabilities, or ``mode`` of the
    labels) and the target grid's CRS and resolution (None: see ``regrid.target_grid``)."""

    rule: str = "mean"
    crs: str | None = None
    res: float | None = None


@dataclass
class CompositeResult:
    """What a composite did: its grid, the scenes used, pixels and areas per class, and the
    pixels no scene observed clear (nodata)."""

    inputs: list[str]
    output: str
    width: int
    height: int
    seconds: float
    rule: str
    device: str
    precision: str
    mode: str
    tiles_total: int
    tiles_inferred: int
    scenes: list[str]
    class_pixels: dict[str, int]
    class_hectares: dict[str, float] | None
    area_note: str | None
    no_observation: int
    grid: dict[str, Any]
    cloud_mask: str
    warnings: list[str] = field(default_factory=list)
    #: what sinks hand back (``vector``: the polygons of ``--vector``)
    products: dict[str, Any] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "products"}
        return {**out, **json_products(self.products)}


def composite_file(inputs: Sequence[str | os.PathLike], dst: str | os.PathLike, *,
                   spec: RunSpec | None = None, options: CompositeOptions = CompositeOptions(),
                   engine: Engine | None = None, scheduler: str | None = None,
                   on_tile: Callable[[int], None] | None = None) -> CompositeResult:
    """The composite of ``inputs`` (anything ``run`` maps: files, folders, products, STAC
    items, URLs) written to ``dst`` (and ``NAME.counts.tif`` beside it). ``spec`` says how
    each scene is mapped (model, device, precision, tile, cloud mask, area of interest,
    confidence, probs, resume/overwrite); ``scheduler``: a Dask scheduler's address, one task
    per row of tiles. ``on_tile(n)`` after each n tiles composited."""
    spec = (spec or RunSpec()).replace(thumbnail=0)
    names = [os.fspath(s) for s in inputs]
    if not names:
        raise InputError("composite: no scene given")
    if options.rule not in RULES:
        raise LulcEdgeError(f"unknown composite rule {options.rule!r} (use "
                            f"{', '.join(RULES)})")
    engine = engine or Engine(spec.model, spec.engine)
    mode = get_mode(spec.run.mode)
    dst = Path(dst)
    for name in names:
        check_input(name)
        check_output(name, dst, spec.run.overwrite, spec.run.probs, spec.run.confidence)
    tile, batch, warnings = tiling_of(spec, mode, engine)
    job = _Job(names, dst, spec, options, engine, mode, tile, batch, warnings, scheduler,
               on_tile)
    with OutputLock(dst), contextlib.ExitStack() as stack:
        opened = [stack.enter_context(open_for_run(n, engine.contract.bands, spec.source))
                  for n in names]
        return job.run(opened)


@dataclass
class _Job:
    names: list[str]
    dst: Path
    spec: RunSpec
    options: CompositeOptions
    engine: Engine
    mode: Mode
    tile: int
    batch: int
    warnings: list[str]
    scheduler: str | None
    on_tile: Callable[[int], None] | None
    t0: float = field(default_factory=time.perf_counter)

    def scenes(self, opened: list[Source]) -> tuple[TargetGrid, list[RegriddedSource]]:
        """The target grid and the scenes that have pixels on it (a note for the others)."""
        grid = target_grid(opened, self.options.crs, self.options.res, self.spec.run.area,
                           self.engine.contract.alignment)
        used = []
        for s in (RegriddedSource(o, grid) for o in opened):
            if s.covers:
                used.append(s)
            else:
                self.warnings.append(f"{s.path}: has no pixel on the composite's grid: left "
                                     "out")
        if not used:
            raise InputError("none of the scenes has a pixel on the composite's grid (the "
                             "area of interest misses them)")
        return grid, used

    def header(self, grid: TargetGrid, used: list[RegriddedSource], fp: dict[str, list],
               described: str) -> dict[str, Any]:
        """The journal's header: what must match for --resume to continue."""
        e, r = self.engine, self.spec.run
        return {"version": 1, "kind": "composite", "input": [s.path for s in used],
                "input_files": fp, "model": e.contract.sha256, "precision": e.precision,
                "mode": r.mode, "tile": self.tile, "rule": self.options.rule,
                "grid": grid.to_json(), "clouds": described,
                "area": r.area.to_json() if r.area is not None else None,
                "outputs": [r.confidence, r.probs]}

    def run(self, opened: list[Source]) -> CompositeResult:
        grid, used = self.scenes(opened)
        nodata = self.engine.contract.nodata.value
        masks = scene_masks(self.spec.run.clouds, used, nodata)
        described = clouds.describe(self.spec.run.clouds, any(m is not None for m in masks))
        for s, m in zip(used, masks, strict=True):
            if m is None and self.spec.run.cloud_mask:
                self.warnings.append(f"{s.path}: no SCL band: its clouds are not masked (they "
                                     "count as clear observations)")
        fp = _fingerprint(used)
        tiles = self.mode.plan(grid.height, grid.width, self.tile, self.engine)
        for s in used:  # the window each scene is read in: a strip reader decodes only that
            mine = [t.read for t in tiles if s.overlaps(t.core)]
            if mine:
                c0, r0 = min(int(w.col_off) for w in mine), min(int(w.row_off) for w in mine)
                s.limit(Window(c0, r0, max(int(w.col_off + w.width) for w in mine) - c0,
                               max(int(w.row_off + w.height) for w in mine) - r0))
        journal = Journal(journal_path(self.dst), self.header(grid, used, fp, described))
        done = replay_tiles(journal, self.spec.run, used[0].path, self.dst, len(tiles),
                            self.warnings)
        ctx = sinks.RunContext(used[0].path, self.dst, self.spec, self.engine, used[0],
                               grid.grid(), tiles, done, journal, False)
        made = sinks.build(self.spec)
        made["counts"] = Counts()
        try:
            sinks.open_all(made, ctx)
        except OSError as exc:
            raise write_error(self.dst, exc) from None
        try:
            inferred = self.feed(ctx, list(made.values()), used, masks, grid)
            moved = changed_files(fp, _fingerprint(used))
            if moved:
                raise InputError(f"{used[0].path}: an input changed while it was being read "
                                 f"({', '.join(moved[:3])}); nothing written, run again")
            products = sinks.finish_all(made, self.tags(grid, used, fp, described))
        except KeyboardInterrupt:
            sinks.abort_all(made, resumable=True)
            raise
        except OSError as exc:
            sinks.abort_all(made)
            raise write_error(self.dst, exc) from None
        except BaseException:
            sinks.abort_all(made)
            raise
        for s in used:
            self.warnings += [w for w in s.warnings if w not in self.warnings]
        res = self.result(ctx, made["areas"], used, inferred, described)
        res.products = products
        return res

    def feed(self, ctx: sinks.RunContext, fed: list[sinks.Sink], used: list[RegriddedSource],
             masks: list, grid: TargetGrid) -> int:
        """Every row of tiles composited (or replayed from the journal) into the sinks."""
        k = self.engine.contract.n_classes
        clip = _Clip(self.spec.run.area, grid, self.engine.contract.nodata.value)
        bar = Progress(len(ctx.tiles), f"composite of {len(used)}", self.spec.run.progress)
        feeder, inferred = Feeder(fed), 0
        try:
            for t in ctx.tiles:
                if t.index in ctx.done:
                    feeder.put(t, CompositePrediction.from_record(ctx.done[t.index], t, k))
                    bar.update(1, int(t.core.width * t.core.height))
            for t, pred in self.composited([t for t in ctx.tiles if t.index not in ctx.done],
                                           used, masks, grid):
                feeder.put(t, clip(t, pred))
                inferred += 1
                bar.update(1, int(t.core.width * t.core.height))
                if self.on_tile is not None:
                    self.on_tile(1)
        finally:
            feeder.close()
            bar.close()
        return inferred

    def composited(self, tiles: list[Tile], used: list[RegriddedSource], masks: list,
                   grid: TargetGrid):
        """(tile, composite) for every tile, row by row: here, or rows as Dask tasks."""
        rows = _rows(tiles)
        if self.scheduler is not None:
            from .composite_dask import composite_rows

            yield from composite_rows(self.scheduler, self.names, self.spec,
                                      self.options.rule, grid, rows, self.batch)
            return
        probs = self.spec.run.probs
        for row in rows:
            yield from zip(row, composite_tiles(used, self.engine, self.mode, row, self.batch,
                                                self.options.rule, probs, masks), strict=True)

    def tags(self, grid: TargetGrid, used: list[RegriddedSource], fp: dict[str, list],
             described: str) -> dict[str, str]:
        e = self.engine
        shaping = json.loads(self.spec.shaping(e.contract.sha256, e.precision))
        shaping.update(rule=self.options.rule, grid=grid.to_json())
        return {
            **engine_tags(e, self.spec.run.mode, self.tile, described),
            "LULC_EDGE_COMPOSITE_RULE": self.options.rule,
            "LULC_EDGE_COMPOSITE_INPUTS": json.dumps([s.path for s in used]),
            "LULC_EDGE_COMPOSITE_REGRID": json.dumps({s.path: s.tags()["REGRID"]
                                                      for s in used}),
            FINGERPRINT_TAG: fingerprint_digest(fp),
            OPTIONS_TAG: json.dumps(shaping, sort_keys=True),
        }

    def result(self, ctx: sinks.RunContext, areas: Any, used: list[RegriddedSource],
               inferred: int, described: str) -> CompositeResult:
        c, g = self.engine.contract, ctx.grid
        names = {cls.value: cls.name for cls in (*c.classes, c.nodata)}
        return CompositeResult(
            inputs=self.names, output=str(self.dst), width=g.width, height=g.height,
            seconds=time.perf_counter() - self.t0, rule=self.options.rule,
            device=self.engine.device, precision=self.engine.precision,
            mode=self.spec.run.mode, tiles_total=len(ctx.tiles), tiles_inferred=inferred,
            scenes=[s.path for s in used],
            class_pixels={n: int(areas.sum.counts[v]) for v, n in names.items()},
            class_hectares=areas.sum.named_hectares(names), area_note=areas.sum.note(),
            no_observation=int(areas.sum.counts[c.nodata.value]),
            grid=TargetGrid(g.crs.to_string(), tuple(g.transform)[:6], g.width,
                            g.height).to_json(),
            cloud_mask=described, warnings=self.warnings)


def _rows(tiles: list[Tile]) -> list[list[Tile]]:
    """The tiles grouped by row (their core's top), in plan order."""
    rows: dict[int, list[Tile]] = {}
    for t in tiles:
        rows.setdefault(int(t.core.row_off), []).append(t)
    return list(rows.values())


def _fingerprint(used: Sequence[Source]) -> dict[str, list]:
    out: dict[str, list] = {}
    for s in used:
        out.update(s.fingerprint())
    return out


class _Clip:
    """Pixels outside the area's polygon made nodata (counts 0); nothing for a box."""

    def __init__(self, area: Any, grid: TargetGrid, nodata: int) -> None:
        self.grid, self.nodata = grid, nodata
        self.polygon = area.geojson(grid.grid().crs) if area is not None else None

    def __call__(self, tile: Tile, pred: CompositePrediction) -> CompositePrediction:
        if self.polygon is None:
            return pred
        inside = inside_polygon(self.polygon, tile.core, self.grid.affine)
        if inside is not None:
            pred.classes = np.where(inside, pred.classes, self.nodata).astype(np.uint8)
            pred.confidence = np.where(inside, pred.confidence, 0).astype(np.uint8)
            pred.counts = np.where(inside, pred.counts, 0).astype(np.uint16)
            if pred.probabilities is not None:
                pred.probabilities = np.where(inside, pred.probabilities, np.float32(np.nan))
        return pred


