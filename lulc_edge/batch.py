"""lulc_edge.batch: many scenes: input lists, idempotence, per-input reports, local or Dask runs.

Every job of a batch runs with one ``RunSpec`` (picklable: it travels to worker processes and
Dask tasks); the older quartet (model, engine options, run options, source options) is still
accepted in its place.
"""

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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import sinks
from .aoi import AreaMissError
from .engine import Engine, EngineOptions
from .errors import InputError, LulcEdgeError, OutputError, one_line
from .journal import fingerprint_digest
from .paths import default_output
from .progress import Progress
from .raster import FINGERPRINT_TAG, OPTIONS_TAG
from .results import JobReport
from .runfile import segment_file
from .sinks.vector import check_batch
from .sources import fingerprint_of, is_remote
from .spec import RunSpec
from .styles import qml_path, write_qml

__all__ = ["Job", "JobReport", "expand_inputs", "plan_jobs", "report_dict", "run_dask",
           "run_job", "run_local"]

#: Environment variable naming a Dask scheduler, as ``--scheduler`` does.
SCHEDULER_ENV = "LULC_EDGE_SCHEDULER"
#: Seconds to wait for a Dask scheduler before giving up (``LULC_EDGE_CONNECT_TIMEOUT``).
CONNECT_TIMEOUT = 10.0
#: Times Dask reruns a scene whose worker died.
TASK_RETRIES = 2


def connect_timeout() -> float:
    """Seconds to wait for a Dask scheduler: ``LULC_EDGE_CONNECT_TIMEOUT``, read when used."""
    return float(os.environ.get("LULC_EDGE_CONNECT_TIMEOUT") or CONNECT_TIMEOUT)


@dataclass(frozen=True)
class Job:
    """One input and where its map goes."""

    input: str
    output: str


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


def plan_jobs(inputs: Sequence[str], out_dir: str | None, output: str | None = None,
              vector: str | None = None) -> list[Job]:
    """Pair inputs with outputs; refuse two inputs that would write the same file (a map, or
    the polygons file ``vector`` names: a batch's is an extension, ".gpkg")."""
    check_batch(vector, len(inputs))
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


def run_job(job: Job, engine: Engine, spec: RunSpec,
            on_tile: Callable[[int, int], None] | None = None) -> JobReport:
    """Run one job; never raises for a bad input, reports it instead.

    An existing output is skipped when every sink's files are there, complete, made from this
    version of the input and with the options that shape the outputs (``sinks.missing``);
    otherwise it is redone, with a warning saying why (a user who changed ``--confidence`` or
    ``--precision`` and reran the batch wants the maps those options make). A skipped map still
    gets its ``--qml`` style, and its polygons where they are missing or outdated
    (``sinks.remake``, with a note). A scene that misses the spec's area is skipped, with a note. A
    scene an interrupted batch (a power cut, a killed Dask worker) left half done continues from
    its journal (unless ``overwrite``): rerunning a batch is how a batch is resumed.
    """
    t0 = time.perf_counter()
    out = Path(job.output)
    notes = []
    if not spec.run.overwrite:
        spec = spec.replace(resume=True)
    if out.is_file() and not spec.run.overwrite:
        expect = {FINGERPRINT_TAG: fingerprint_digest(fingerprint_of(job.input)),
                  OPTIONS_TAG: spec.shaping(engine.contract.sha256, engine.precision)}
        why = sinks.missing(out, spec, expect)
        if why is None:
            try:
                if spec.run.qml and not qml_path(out).is_file():
                    write_qml(out, engine.contract.classes, engine.contract.nodata)
                notes += sinks.remake(out, spec, expect)
            except LulcEdgeError as exc:
                return JobReport(job.input, job.output, "failed", error=one_line(exc))
            return JobReport(job.input, job.output, "skipped", warnings=notes)
        # an incomplete, damaged or outdated output is replaced
        spec = spec.replace(overwrite=True)
        notes.append(f"{job.output}: existing output redone: {why}")
    try:
        res = segment_file(job.input, out, engine=engine, spec=spec, on_tile=on_tile)
    except AreaMissError as exc:  # not an error: this scene has nothing of the area
        return JobReport(job.input, job.output, "skipped", time.perf_counter() - t0,
                         warnings=[f"{one_line(exc)}: skipped, no map written"])
    except (LulcEdgeError, OSError, ValueError) as exc:
        return JobReport(job.input, job.output, "failed", time.perf_counter() - t0,
                         error=one_line(exc))
    except Exception as exc:  # noqa: BLE001 - one bad input never stops the batch
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        return JobReport(job.input, job.output, "failed", time.perf_counter() - t0,
                         error=f"{job.input}: unexpected {type(exc).__name__}: "
                               f"{one_line(exc)} ({Path(tb.filename).name}:{tb.lineno})")
    return JobReport(job.input, job.output, "done", res.seconds,
                     warnings=notes + res.warnings, result=res)


# -------------------------------------------------------------------------------- local


@lru_cache(maxsize=4)
def _cached_engine(model: str | None, engine_options: EngineOptions) -> Engine:
    """One model load per process (worker), reused for every scene it runs."""
    return Engine(model, engine_options)


def _worker_job(job: Job, spec: RunSpec) -> JobReport:
    return run_job(job, _cached_engine(spec.model, spec.engine), spec)


def run_local(jobs: Sequence[Job], spec: RunSpec, workers: int = 1,
              on_report: Callable[[JobReport], None] | None = None) -> list[JobReport]:
    """Run jobs one after another with all threads (workers=1) or in worker processes, each
    handed the spec."""
    check_batch(spec.run.vector, len(jobs))
    quiet = spec.replace(progress=False)
    reports: list[JobReport] = []
    bar = Progress(len(jobs), "scenes", spec.run.progress, unit="scenes")
    if workers <= 1:
        engine = _cached_engine(spec.model, spec.engine)
        for job in jobs:
            rep = run_job(job, engine, quiet, on_tile=lambda _n, px: bar.update(0, px))
            reports.append(rep)
            bar.update(1)
            if on_report:
                on_report(rep)
    else:
        # spawned, not forked: a caller that already holds inference thread pools (an Engine
        # in a notebook, a service) would fork their locks into the workers, which then hang
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futs = {pool.submit(_worker_job, j, quiet): j for j in jobs}
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


def run_dask(jobs: Sequence[Job], scheduler: str, spec: RunSpec,
             on_report: Callable[[JobReport], None] | None = None) -> list[JobReport]:
    """One task per scene on a running Dask distributed scheduler.

    Paths must be visible to every worker (shared filesystem or GDAL-readable URLs). Each
    worker process loads the model once (cached per process) and reuses it; a task whose worker
    dies is rerun elsewhere by Dask. Idempotence and per-input reports are as for local runs.
    """
    check_batch(spec.run.vector, len(jobs))
    try:
        from distributed import Client
    except ImportError:
        raise LulcEdgeError(
            "--scheduler needs Dask distributed: pip install 'lulc-edge[cluster]'"
        ) from None
    timeout = connect_timeout()
    try:
        client = Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise LulcEdgeError(f"cannot reach Dask scheduler {scheduler} within "
                            f"{timeout:g} s ({one_line(exc)})") from None
    bar = Progress(len(jobs), "scenes", spec.run.progress, unit="scenes")
    try:
        with client.as_current():
            return _gather(client, jobs, spec.replace(progress=False), bar, on_report)
    finally:
        bar.close()
        client.close()


def _gather(client: Any, jobs: Sequence[Job], spec: RunSpec, bar: Progress,
            on_report: Callable[[JobReport], None] | None) -> list[JobReport]:
    """Submit one task per job and collect reports as tasks finish."""
    from distributed import as_completed as dask_completed

    run_id = uuid.uuid4().hex[:8]  # keys must not collide with another batch's tasks
    futs = [client.submit(_worker_job, j, spec,
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
            "results": [r.as_dict() for r in reports]}
