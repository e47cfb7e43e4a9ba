"""lulc_edge.runfile: ``segment_file``: one scene to its outputs, around ``core.run``.

What a run on files needs beyond the core: paths and their checks, the output lock, the GDAL
environment, the journal and the resume policy, the tags, and the result.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import aoi, clouds, core, sinks
from .engine import Engine
from .errors import InputError, LulcEdgeError, OutputError
from .gdalenv import open_for_run
from .journal import Journal, changed_files, fingerprint_digest, journal_path
from .locking import OutputLock
from .modes import Mode, get_mode
from .paths import check_output, default_output
from .progress import Progress
from .raster import FINGERPRINT_TAG, OPTIONS_TAG, Grid, write_error
from .results import RunResult
from .sources import Source, check_input, is_remote
from .sources.base import checks_within
from .spec import RunOptions, RunSpec
from .tiling import Tile


def output_names(confidence: bool, probabilities: bool) -> tuple[str, ...]:
    """The graph outputs a run asks for: ``class``, then the optional ones, in graph order."""
    return ("class",) + (("confidence",) if confidence else ()) + (
        ("probabilities",) if probabilities else ())


def check_tiling(options: RunOptions, tile: int, batch: int, halo: int) -> list[str]:
    """Refuse a tile or batch below 1 (the API has no click ranges); the mode's warnings for
    legal but bad values (a seamless tile so small that the halo multiplies the work)."""
    if tile < 1 or batch < 1:
        raise LulcEdgeError(f"tile ({tile}) and batch ({batch}) must be at least 1")
    return get_mode(options.mode).warnings(tile, halo)


@dataclass
class _Run:
    """One call of segment_file, once its arguments are checked."""

    src: str | Source
    name: str  # the input as given: a URL must not go through Path
    dst: Path
    spec: RunSpec
    engine: Engine
    mode: Mode
    tile: int
    batch: int
    on_tile: Callable[[int, int], None] | None
    extra: Sequence[sinks.Sink]
    t0: float = field(default_factory=time.perf_counter)
    warnings: list[str] = field(default_factory=list)
    #: the cloud mask step (None: nothing masked) and how clouds were masked, in words
    masker: clouds.TileMasker | None = None
    clouds: str = ""

    @property
    def outputs(self) -> tuple[str, ...]:
        return output_names(self.spec.run.confidence, self.spec.run.probs)


def segment_file(
    src: str | os.PathLike | Source,
    dst: str | os.PathLike | None = None,
    *,
    engine: Engine | None = None,
    options: RunOptions | None = None,
    on_tile: Callable[[int, int], None] | None = None,
    spec: RunSpec | None = None,
    extra_sinks: Sequence[sinks.Sink] = (),
    area: aoi.Area | str | os.PathLike | Sequence[float] | None = None,
) -> RunResult:
    """Map one scene (file, band folder, product, or an opened ``Source``) to a class-map
    GeoTIFF and whatever else the registered sinks (and ``extra_sinks``) make.

    ``spec`` (or, for the run options alone, ``options``) says how; ``engine`` defaults to
    the spec's model. ``on_tile(done, pixels)`` is called after each tile inferred (for batch
    progress). One run at a time writes an output: a second gets ``OutputError``. ``area``
    (an ``aoi.Area``, a vector file, or a bbox in EPSG:4326; else the spec's) maps only the
    area of interest: AreaMissError (an InputError) when it misses the scene.
    """
    spec = spec or RunSpec.of(None, None, options)
    if area is not None:
        spec = spec.replace(area=aoi.Area.of(area))
    engine = engine or Engine(spec.model, spec.engine)
    mode = get_mode(spec.run.mode)
    name = src.path if isinstance(src, Source) else os.fspath(src)
    dst_path = Path(dst) if dst is not None else default_output(name)
    if not isinstance(src, Source):
        check_input(name)  # before the output checks: their messages would mislead
    check_output(name, dst_path, spec.run.overwrite, spec.run.probs, spec.run.confidence)
    tile, batch, warnings = tiling_of(spec, mode, engine)
    run = _Run(src, name, dst_path, spec, engine, mode, tile, batch, on_tile, extra_sinks)
    run.warnings += warnings
    with OutputLock(dst_path):
        return _locked(run)


def tiling_of(spec: RunSpec, mode: Mode, engine: Engine) -> tuple[int, int, list[str]]:
    """The tile and batch of a run (the spec's, else the mode's defaults on the engine's
    device) and the warnings they deserve; LulcEdgeError for a cloud buffer wider than the
    context the mode reads."""
    tile = spec.run.tile if spec.run.tile is not None else mode.default_tile(engine.device)
    batch = spec.run.batch if spec.run.batch is not None else mode.default_batch(engine.device)
    warnings = check_tiling(spec.run, tile, batch, engine.contract.halo)
    try:
        clouds.check_buffer(spec.run.clouds, mode.context(engine.contract), mode.name)
    except ValueError as exc:
        raise LulcEdgeError(str(exc)) from None
    return tile, batch, warnings


def _locked(run: _Run) -> RunResult:
    """segment_file's work, once the output's lock is held."""
    area = run.spec.run.area  # the checks at open look only where the run reads
    with checks_within(aoi.checks_window(area)), \
            open_for_run(run.src, run.engine.contract.bands, run.spec.source) as opened:
        source, run.mode = aoi.restrict(opened, area, run.mode, run.engine)
        fp = source.fingerprint()
        scl_fill = source.radiometry.scl_fill
        run.masker = clouds.masker(run.spec.run.clouds, source.band_names, scl_fill,
                                   run.engine.contract.nodata.value)
        run.clouds = clouds.describe(run.spec.run.clouds,
                                     clouds.has_scl(source.band_names, scl_fill))
        tiles = run.mode.plan(source.height, source.width, run.tile, run.engine)
        journal = Journal(journal_path(run.dst), _header(run, source, fp))
        done = replay_tiles(journal, run.spec.run, run.name, run.dst, len(tiles), run.warnings)
        ctx = sinks.RunContext(run.name, run.dst, run.spec, run.engine, source,
                               Grid(source.width, source.height, source.crs, source.transform),
                               tiles, done, journal, run.masker is not None)
        made = sinks.build(run.spec)
        made.update({getattr(s, "name", "") or type(s).__name__: s for s in run.extra})
        try:
            sinks.open_all(made, ctx)
        except OSError as exc:
            raise write_error(run.dst, exc) from None
        try:
            inferred = _feed(run, ctx, list(made.values()))
            moved = changed_files(fp, source.fingerprint())
            if moved:
                raise InputError(f"{run.name}: the input changed while it was being read "
                                 f"({', '.join(moved[:3])}); nothing written, run again")
            tags = _run_tags(run, source)
            tags[FINGERPRINT_TAG] = fingerprint_digest(fp)
            tags[OPTIONS_TAG] = run.spec.shaping(run.engine.contract.sha256, run.engine.precision)
            products = sinks.finish_all(made, tags)
        except KeyboardInterrupt:
            sinks.abort_all(made, resumable=True)  # keep the journal: --resume continues
            raise
        except OSError as exc:  # reads raise InputError: this is the journal or the output
            sinks.abort_all(made)
            raise write_error(run.dst, exc) from None
        except BaseException:
            sinks.abort_all(made)
            raise
        run.warnings += source.warnings
    return _result(run, ctx, made, inferred, products)


def _feed(run: _Run, ctx: sinks.RunContext, fed: list[sinks.Sink]) -> int:
    """core.run with the progress bar and the caller's per-tile callback."""
    bar = Progress(len(ctx.tiles), Path(run.name).name, run.spec.run.progress)

    def on_tile(t: Tile, inferred: bool) -> None:
        px = int(t.core.width * t.core.height)
        bar.update(1, px)
        if inferred and run.on_tile is not None:
            run.on_tile(1, px)

    plan = core.Plan(ctx.tiles, run.batch, run.outputs, ctx.done, run.masker)
    n = core.run(ctx.source, run.engine, run.mode, fed, plan, on_tile)
    bar.close()
    return n


def _header(run: _Run, source: Source, fp: dict[str, list[int]]) -> dict[str, object]:
    """The journal's header: what must match for --resume to continue a run."""
    e = run.engine
    return {"version": 2, "input": run.name if is_remote(run.name)
            else str(Path(run.name).resolve()), "model": e.contract.sha256, "device": e.device,
            "precision": e.precision, "mode": run.spec.run.mode, "tile": run.tile,
            "width": source.width, "height": source.height,
            "outputs": list(run.outputs), "clouds": run.clouds,
            "source": source.tags(), "input_files": fp}


def replay_tiles(journal: Journal, options: RunOptions, name: str, dst: Path, n_tiles: int,
                 warnings: list[str]) -> dict[int, bytes]:
    """The resume policy: the finished tiles of an interrupted run with --resume (none when
    its journal is stale: then a warning in ``warnings`` says why); without --resume or
    --overwrite such a run is refused, so its finished tiles are not lost."""
    if options.resume:
        done = dict(journal.replay())
        stale = _stale_journal(journal, name)
        if stale:
            warnings.append(stale)
        return done
    if not options.overwrite and (left := journal.finished()):
        raise OutputError(f"{dst}: an interrupted run of this command left {left} of "
                          f"{n_tiles} tiles finished ({journal.path.name}): run it with "
                          "--resume to continue, or with --overwrite to start over")
    return {}


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


def engine_tags(engine: Engine, mode: str, tile: int, clouds_text: str) -> dict[str, str]:
    """The tags every map carries about how it was made: model, precision, device, mode, tile,
    halo and cloud mask (runs and composites alike)."""
    c = engine.contract
    return {
        "LULC_EDGE_MODEL": Path(c.path).name, "LULC_EDGE_MODEL_SHA256": c.sha256,
        "LULC_EDGE_WEIGHTS": c.trained_on, "LULC_EDGE_PRECISION": engine.precision,
        "LULC_EDGE_MODEL_PRECISION": c.precision, "LULC_EDGE_DEVICE": engine.device,
        "LULC_EDGE_MODE": mode, "LULC_EDGE_TILE": str(tile), "LULC_EDGE_HALO": str(c.halo),
        clouds.CLOUD_MASK_TAG: clouds_text,
    }


def _run_tags(run: _Run, source: Source) -> dict[str, str]:
    """The tags every output of a run carries: how it was made, and its source."""
    tags = engine_tags(run.engine, run.spec.run.mode, run.tile, run.clouds)
    tags.update({k if k.startswith("LULC_EDGE_") else f"LULC_EDGE_SOURCE_{k}": v
                 for k, v in source.tags().items()})
    return tags


def _result(run: _Run, ctx: sinks.RunContext, made: dict[str, sinks.Sink], inferred: int,
            products: dict[str, object]) -> RunResult:
    """The run's result, from its sinks (counts and areas, products)."""
    c, grid = run.engine.contract, ctx.grid
    areas = made["areas"].sum  # type: ignore[attr-defined]
    if areas.counts[c.nodata.value] == grid.width * grid.height:
        run.warnings.append(f"{run.name}: no valid pixel (all zero, NaN or nodata): the map "
                            f"is 100 % {c.nodata.name}")
    names = {cls.value: cls.name for cls in (*c.classes, c.nodata)}
    share = None
    if run.masker is not None:
        names[clouds.CLOUD_VALUE] = clouds.CLOUD_CLASS.name
        with_data = grid.width * grid.height - int(areas.counts[c.nodata.value])
        share = round(100.0 * int(areas.counts[clouds.CLOUD_VALUE]) / max(with_data, 1), 4)
    return RunResult(
        input=run.name, output=str(run.dst), width=grid.width, height=grid.height,
        seconds=time.perf_counter() - run.t0, device=run.engine.device,
        precision=run.engine.precision, mode=run.spec.run.mode, tiles_total=len(ctx.tiles),
        tiles_inferred=inferred, class_pixels={n: int(areas.counts[v]) for v, n in names.items()},
        class_hectares=areas.named_hectares(names), area_note=areas.note(),
        warnings=run.warnings, products=products, cloud_mask=run.clouds, cloud_percent=share)
