"""lulc_edge.batch: many scenes: input lists, idempotence, per-input reports, local or Dask runs."""

from __future__ import annotations

import glob
import multiprocessing
import os
import re
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from .engine import Engine, EngineOptions
from .errors import InputError, LulcEdgeError, OutputError, one_line
from .journal import fingerprint, fingerprint_digest
from .pipeline import RunOptions, default_output, segment_file, shaping_options
from .progress import Progress
from .raster import qml_path, verify_output, write_qml
from .sources import SourceOptions, is_remote

#: Environment variable naming a Dask scheduler, as ``--scheduler`` does.
SCHEDULER_ENV = "LULC_EDGE_SCHEDULER"
#: Seconds to wait for a Dask scheduler before giving up.
CONNECT_TIMEOUT = float(os.environ.get("LULC_EDGE_CONNECT_TIMEOUT", 10))
#: Times Dask reruns a scene whose worker died.
TASK_RETRIES = 2


@dataclass(frozen=True)
class Job:
    """One input and where its map goes."""

    input: str
    output: str


@dataclass
class JobReport:
    """Outcome of one job: done, skipped (already complete) or failed (with a one-line error)."""

    input: str
    output: str
    status: str
    seconds: float = 0.0
    pixels: int = 0
    class_pixels: dict[str, int] = field(default_factory=dict)
    class_hectares: dict[str, float] | None = None
    area_note: str | None = None
    tiles_inferred: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: the scene's B4/B3/B2 thumbnail when ``RunOptions.thumbnail`` asked for one (not in JSON)
    true_colour: Any = field(default=None, repr=False)


def expand_inputs(items: Iterable[str], from_list: str | None = None) -> list[str]:
    """Inputs from arguments (files, folders, products, local globs, URLs) and an optional list
    file."""
    raw = list(items)
    if from_list is not None:
        try:
            text = Path(from_list).read_text()
        except OSError as exc:
            raise InputError(f"{from_list}: cannot read input list ({exc.strerror})") from None
        raw += [item for item in map(_list_item, text.splitlines()) if item]
    out: list[str] = []
    for item in raw:
        if glob.has_magic(item) and not is_remote(item):  # a URL's ``?`` starts its query
            hits = sorted(glob.glob(item))
            if not hits:
                raise InputError(f"{item}: pattern matches no file")
            out += hits
        else:
            out.append(item)
    if not out:
        raise InputError("no inputs given")
    return out


def _list_item(line: str) -> str:
    """A --from-list line without its comment: ``#`` at the start or after a space or tab
    begins one (a ``#`` inside a name, ``scene#2.tif``, does not)."""
    return re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()


def plan_jobs(inputs: Sequence[str], out_dir: str | None, output: str | None = None) -> list[Job]:
    """Pair inputs with outputs; refuse two inputs that would write the same file."""
    if output is not None and len(inputs) > 1:
        raise OutputError(f"{output}: -o names one output, but {len(inputs)} inputs were given; "
                          "use --out-dir")
    if output is not None and out_dir is not None:
        raise OutputError(f"{output}: -o and --out-dir {out_dir} both say where the map goes; "
                          "give one")
    jobs: list[Job] = []
    seen: dict[str, str] = {}
    for src in inputs:
        dst = Path(output) if output else default_output(src)
        if out_dir is not None:
            dst = Path(out_dir) / dst.name
        key = str(dst.resolve())
        if key in seen:
            raise OutputError(f"{dst}: both {seen[key]} and {src} would write this output")
        seen[key] = src
        jobs.append(Job(str(src), str(dst)))
    if out_dir is not None:  # only once the plan holds: a refused batch leaves no folder
        try:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{out_dir}: cannot create output directory ({exc.strerror})") \
                from None
    return jobs


def run_job(job: Job, engine: Engine, options: RunOptions,
            source_options: SourceOptions,
            on_tile: Callable[[int, int], None] | None = None) -> JobReport:
    """Run one job; never raises for a bad input, reports it instead.

    An existing output is skipped when it is complete, made from this version of the input and
    with the options that shape the outputs (``shaping_options``); otherwise it is redone, with
    a warning saying why (a user who changed ``--confidence`` or ``--precision`` and reran the
    batch wants the maps those options make). A skipped map still gets its ``--qml`` style.
    """
    t0 = time.perf_counter()
    out = Path(job.output)
    opts, notes = options, []
    if out.is_file() and not options.overwrite:
        why = verify_output(out, fingerprint_digest(fingerprint(job.input)),
                            shaping_options(engine, options, source_options))
        if why is None:
            try:
                if options.qml and not qml_path(out).is_file():
                    write_qml(out, engine.contract.classes, engine.contract.nodata)
            except LulcEdgeError as exc:
                return JobReport(job.input, job.output, "failed", error=one_line(exc))
            return JobReport(job.input, job.output, "skipped")
        # an incomplete, damaged or outdated output is replaced
        opts = replace(options, overwrite=True)
        notes.append(f"{job.output}: existing output redone: {why}")
    try:
        res = segment_file(job.input, out, engine=engine, options=opts,
                           source_options=source_options, on_tile=on_tile)
    except (LulcEdgeError, OSError, ValueError) as exc:
        return JobReport(job.input, job.output, "failed", time.perf_counter() - t0,
                         error=one_line(exc))
    except Exception as exc:  # noqa: BLE001 - one bad input never stops the batch
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        return JobReport(job.input, job.output, "failed", time.perf_counter() - t0,
                         error=f"{job.input}: unexpected {type(exc).__name__}: "
                               f"{one_line(exc)} ({Path(tb.filename).name}:{tb.lineno})")
    return JobReport(job.input, job.output, "done", res.seconds, res.pixels, res.class_pixels,
                     res.class_hectares, res.area_note, res.tiles_inferred,
                     warnings=notes + res.warnings,
                     true_colour=res.true_colour)


# -------------------------------------------------------------------------------- local


@lru_cache(maxsize=4)
def _cached_engine(model: str | None, engine_options: EngineOptions) -> Engine:
    """One model load per process (worker), reused for every scene it runs."""
    return Engine(model, engine_options)


def _worker_job(job: Job, model: str | None, engine_options: EngineOptions,
                options: RunOptions, source_options: SourceOptions) -> JobReport:
    return run_job(job, _cached_engine(model, engine_options), options, source_options)


def run_local(jobs: Sequence[Job], model: str | None, engine_options: EngineOptions,
              options: RunOptions, source_options: SourceOptions, workers: int = 1,
              on_report: Callable[[JobReport], None] | None = None) -> list[JobReport]:
    """Run jobs one after another with all threads (workers=1) or in worker processes."""
    quiet = replace(options, progress=False)
    reports: list[JobReport] = []
    bar = Progress(len(jobs), "scenes", options.progress, unit="scenes")
    if workers <= 1:
        engine = _cached_engine(model, engine_options)
        for job in jobs:
            rep = run_job(job, engine, quiet, source_options,
                          on_tile=lambda _n, px: bar.update(0, px))
            reports.append(rep)
            bar.update(1)
            if on_report:
                on_report(rep)
    else:
        # spawned, not forked: a caller that already holds inference thread pools (an Engine
        # in a notebook, a service) would fork their locks into the workers, which then hang
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futs = {pool.submit(_worker_job, j, model, engine_options, quiet, source_options): j
                    for j in jobs}
            done: dict[Job, JobReport] = {}
            for fut in as_completed(futs):
                rep = fut.result()
                done[futs[fut]] = rep
                bar.update(1, rep.pixels)
                if on_report:
                    on_report(rep)
            reports = [done[j] for j in jobs]
    bar.close()
    return reports


# -------------------------------------------------------------------------------- Dask


def run_dask(jobs: Sequence[Job], scheduler: str, model: str | None,
             engine_options: EngineOptions, options: RunOptions,
             source_options: SourceOptions,
             on_report: Callable[[JobReport], None] | None = None) -> list[JobReport]:
    """One task per scene on a running Dask distributed scheduler.

    Paths must be visible to every worker (shared filesystem or GDAL-readable URLs). Each
    worker process loads the model once (cached per process) and reuses it; a task whose worker
    dies is rerun elsewhere by Dask. Idempotence and per-input reports are as for local runs.
    """
    try:
        from distributed import Client
    except ImportError:
        raise LulcEdgeError(
            "--scheduler needs Dask distributed: pip install 'lulc-edge[cluster]'"
        ) from None
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise LulcEdgeError(f"cannot reach Dask scheduler {scheduler} within "
                            f"{CONNECT_TIMEOUT:g} s ({one_line(exc)})") from None
    quiet = replace(options, progress=False)
    bar = Progress(len(jobs), "scenes", options.progress, unit="scenes")
    try:
        with client.as_current():
            return _gather(client, jobs, model, engine_options, quiet, source_options, bar,
                           on_report)
    finally:
        bar.close()
        client.close()


def _gather(client: Any, jobs: Sequence[Job], model: str | None,
            engine_options: EngineOptions, options: RunOptions,
            source_options: SourceOptions, bar: Progress,
            on_report: Callable[[JobReport], None] | None) -> list[JobReport]:
    """Submit one task per job and collect reports as tasks finish."""
    from distributed import as_completed as dask_completed

    run_id = uuid.uuid4().hex[:8]  # keys must not collide with another batch's tasks
    futs = [client.submit(_worker_job, j, model, engine_options, options, source_options,
                          key=f"lulc-edge-{run_id}-{i}-{Path(j.input).name}",
                          retries=TASK_RETRIES,
                          pure=False)
            for i, j in enumerate(jobs)]
    index = {f.key: i for i, f in enumerate(futs)}
    reports: list[JobReport | None] = [None] * len(jobs)
    for fut in dask_completed(futs):
        i = index[fut.key]
        try:
            rep = fut.result()
        except Exception as exc:  # noqa: BLE001 - e.g. every worker that ran it died
            rep = JobReport(jobs[i].input, jobs[i].output, "failed",
                            error=f"{jobs[i].input}: task failed on the cluster "
                                  f"({type(exc).__name__}: {one_line(exc)})")
        reports[i] = rep
        bar.update(1, rep.pixels)
        if on_report:
            on_report(rep)
    return [r for r in reports if r is not None]


def report_dict(reports: Sequence[JobReport], seconds: float) -> dict[str, Any]:
    """The batch as JSON: totals and one entry per input."""
    counts = {s: sum(r.status == s for r in reports) for s in ("done", "skipped", "failed")}
    pixels = sum(r.pixels for r in reports)
    return {"inputs": len(reports), **counts, "seconds": round(seconds, 3), "pixels": pixels,
            "mp_per_s": round(pixels / max(seconds, 1e-9) / 1e6, 4),
            "results": [{k: v for k, v in r.__dict__.items() if k != "true_colour"}
                        for r in reports]}
