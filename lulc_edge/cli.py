"""lulc_edge.cli: the ``lulc-edge`` command, a thin click layer over the Python API."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import textwrap
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import onnxruntime as ort
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from . import __version__
from . import options as opts
from .autotune import DEFAULT_MIN_AGREEMENT, report_lines
from .backends import PRECISION_CHOICES, cpu_info, versions
from .batch import (
    SCHEDULER_ENV,
    Job,
    JobReport,
    expand_inputs,
    plan_jobs,
    report_dict,
    run_dask,
    run_local,
)
from .commands_eval import evaluate as evaluate_command
from .commands_eval import stats as stats_command
from .commands_eval import vectorize as vectorize_command
from .engine import (
    CUDA_BATCH,
    CUDA_TILE,
    DEVICES,
    Engine,
    EngineOptions,
    available_devices,
    bundled_model,
    default_threads,
    load_contract,
)
from .errors import LulcEdgeError
from .pipeline import (
    DEFAULT_BATCH,
    DEFAULT_TILE,
    MODES,
    RunOptions,
    RunResult,
    check_output,
    default_output,
    segment_file,
)
from .preview import require_pillow
from .sources import RESAMPLINGS, SourceOptions, check_input
from .thumbnail import DEFAULT_SIZE as PREVIEW_SIZE

#: Ranges of the numeric options, checked by click when the command line is parsed; defined
#: once in lulc_edge.options, which the service checks a job's options with.
TILE_RANGE = opts.TILE.click_type()
BATCH_RANGE = opts.BATCH.click_type()
THREADS_RANGE = opts.THREADS.click_type()
WORKERS_RANGE = opts.WORKERS.click_type()
SCL_RANGE = opts.SCL_FILL.click_type()
OFFSET_RANGE = opts.BOA_OFFSET.click_type()
#: Exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

_shown: set[str] = set()


def _showwarning(message: Any, category: type, filename: str, lineno: int,
                 file: Any = None, line: Any = None) -> None:
    """Every warning as one ``lulc-edge: warning:`` line, each text once (rasterio repeats its
    warnings per dataset opened); no source paths of the library that raised it."""
    if issubclass(category, NotGeoreferencedWarning):
        return  # rasterio's names no file and comes per dataset: each source says it, named
    text = " ".join(str(message).split())
    if text not in _shown:
        _shown.add(text)
        click.echo(f"lulc-edge: warning: {text}", err=True)


def _hide_c_stderr() -> None:
    """libtiff prints some errors (``_tiffWriteProc: No space left on device.``) straight to
    file descriptor 2, past GDAL's and rasterio's handlers: point fd 2 at /dev/null and keep
    Python's ``sys.stderr`` (our messages, progress, warnings) on a copy of the real one."""
    try:
        if sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, ValueError):
        return  # a captured stream (tests): nothing at the C level to hide
    sys.stderr.flush()
    real = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding,
                           errors="backslashreplace")


def _setup_logging(verbose: int) -> None:
    """GDAL/libtiff messages reach Python logging through rasterio: hidden unless -v (then
    warnings, -vv everything), one line each, so a failure says one thing on stderr; what
    libtiff prints by itself is hidden too unless -v."""
    if not verbose:
        _hide_c_stderr()
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("lulc-edge: %(name)s: %(message)s"))
    else:
        handler = logging.NullHandler()  # no handler at all would print via lastResort
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


def _warn_cpus(option: str, value: int | None) -> None:
    """A legal but bad value: more threads or workers than this process may use."""
    cpus = default_threads()
    if value is not None and value > cpus:
        click.echo(f"lulc-edge: warning: {option} {value} is above the {cpus} CPUs available: "
                   "they will compete for them and run slower", err=True)


def _fail(msg: str) -> None:
    click.echo(f"lulc-edge: error: {msg}", err=True)
    sys.exit(1)


def _parse_bands(text: str | None) -> dict[str, int] | None:
    """``B1=1,B2=2,...`` -> {"B1": 1, ...}; the syntax, a name given twice and index 0 are
    refused here, what depends on the model and the file when the stack is opened."""
    if not text:
        return None
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, idx = part.partition("=")
        name = name.strip().upper()
        if not name or not idx.strip().isdigit():
            raise click.BadParameter(f"expected NAME=INDEX pairs, got {part!r}",
                                     param_hint="--bands")
        if name in out:
            raise click.BadParameter(f"{name} is given twice ({name}={out[name]}, {part})",
                                     param_hint="--bands")
        if int(idx) < 1:
            raise click.BadParameter(f"{part}: band indices start at 1", param_hint="--bands")
        out[name] = int(idx)
    return out


def _summary(res: RunResult) -> str:
    lines = [f"{res.output}: {res.width}x{res.height} px in {res.seconds:.1f} s "
             f"({res.pixels / max(res.seconds, 1e-9) / 1e6:.2f} MP/s, "
             f"{res.device} {res.precision}, {res.mode})"]
    total = max(res.pixels, 1)
    for name, n in res.class_pixels.items():
        area = f"{res.class_hectares[name]:>12.2f} ha" if res.class_hectares else ""
        lines.append(f"  {name:<16}{n:>12d} px {100 * n / total:6.2f} %{area}")
    if res.area_note:
        lines.append(f"  ({res.area_note})")
    return "\n".join(lines)


class _OneLineErrors(click.Group):
    """click, with a usage error (an option out of range...) said in one line, not four."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            cmd = exc.ctx.command_path if exc.ctx is not None else "lulc-edge"
            click.echo(f"lulc-edge: error: {exc.format_message()} (see {cmd} -h)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("lulc-edge: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lulc-edge")
def main() -> None:
    """Land-cover maps from Sentinel-2 scenes with an ONNX U-Net, no TensorFlow needed.

    \b
    lulc-edge run SCENE.tif               map a 13-band GeoTIFF to SCENE.lulc.tif
    lulc-edge run S2_PRODUCT.SAFE         a product folder, .zip or per-band folder works too
    lulc-edge info                        the bundled model, its provenance, the devices here
    """
    warnings.showwarning = _showwarning


@main.command()
@click.argument("inputs", nargs=-1, metavar="SCENE...")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Output GeoTIFF (default: SCENE.lulc.tif beside the input).")
@click.option("--model", type=click.Path(dir_okay=False),
              help="ONNX model exported by export/to_onnx.py (default: the bundled demo model).")
@click.option("--mode", type=click.Choice(MODES), default="seamless", show_default=True,
              help="seamless: large tiles with a halo, exact and fast. window: the original "
                   "app's 64x64 windows at stride 32 with averaged probabilities.")
@click.option("--tile", type=TILE_RANGE, default=None,
              help=f"Core tile edge in px (default {DEFAULT_TILE['seamless']}, "
                   f"{CUDA_TILE['seamless']} on cuda; multiple of 4, or "
                   "of 32 in window mode). Results do not depend on it.")
@click.option("--batch", type=BATCH_RANGE, default=None,
              help=f"Tiles per inference call (seamless, default {DEFAULT_BATCH['seamless']}) or "
                   f"64x64 windows per call (window, default {DEFAULT_BATCH['window']}; "
                   f"{CUDA_BATCH['window']} on cuda).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Backend: cpu, cuda, openvino (OpenVINO's runtime, else its onnxruntime "
                   "provider), openvino-ep; auto measures the installed ones, takes the fastest.")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto",
              show_default=True,
              help="fp32, bf16 (OpenVINO on CPUs with bf16), fp16 (GPUs), int8 (the quantized "
                   "model); auto: the fastest whose lowest stored agreement with fp32, on "
                   "synthetic and on real scenes, meets --min-agreement.")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=DEFAULT_MIN_AGREEMENT,
              show_default=True,
              help="Accuracy budget of --precision auto: the lowest stored argmax agreement "
                   "with fp32 (synthetic and real scenes) a precision must keep.")
@click.option("--threads", type=THREADS_RANGE, default=None,
              help="Inference threads (default: all CPUs).")
@click.option("--confidence", is_flag=True,
              help="Also write SCENE.lulc.confidence.tif: the chosen class's probability in "
                   "percent (0-100; 255 = nodata).")
@click.option("--probs", is_flag=True,
              help="Also write SCENE.lulc.probs.tif (float32 per class; NaN = nodata).")
@click.option("--qml", is_flag=True,
              help="Also write SCENE.lulc.qml, the QGIS style (class names, colours) QGIS loads "
                   "with the map.")
@click.option("--cog", is_flag=True, help="Write Cloud-Optimized GeoTIFFs (GDAL COG driver).")
@click.option("--bands", "bands_map", default=None, metavar="B1=1,...",
              help="Band positions (1-based) in a stack whose order differs from the model's.")
@click.option("--boa-offset", type=OFFSET_RANGE, default=None,
              help="BOA offset the values carry (e.g. -1000 for L2A baseline >= 04.00); default: "
                   "from product metadata, 0 for a plain GeoTIFF.")
@click.option("--scl-fill", type=SCL_RANGE, default=None,
              help="Run an input without SCL (L1C, 12 bands) with this SCL value everywhere.")
@click.option("--resampling", type=click.Choice(RESAMPLINGS),
              default="bilinear", show_default=True,
              help="Resampling of 20/60 m bands to the 10 m grid (SCL is always nearest).")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing output, or start over after an interrupted run.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its journal.")
@click.option("--out-dir", type=click.Path(file_okay=False), default=None,
              help="Write each input's map to DIR/<name>.lulc.tif (batch mode).")
@click.option("--from-list", type=click.Path(dir_okay=False), default=None,
              help="Read inputs from a file, one per line (# comments allowed).")
@click.option("--workers", type=WORKERS_RANGE, default=1, show_default=True,
              help="Scenes mapped in parallel processes (1: one scene at a time, all threads).")
@click.option("--scheduler", envvar=SCHEDULER_ENV, default=None, metavar="ADDRESS",
              help="Dask scheduler (tcp://host:8786): one task per scene on the cluster. "
                   f"Also from {SCHEDULER_ENV}.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary table.")
@click.option("--preview", is_flag=True,
              help="Also write the pictures of each map (see lulc-edge preview).")
@click.option("-v", "--verbose", count=True,
              help="Show GDAL/rasterio messages (-v warnings, -vv everything).")
def run(inputs: tuple[str, ...], output: str | None, model: str | None, mode: str,
        tile: int | None, batch: int | None, device: str, precision: str,
        min_agreement: float, threads: int | None,
        confidence: bool, probs: bool, qml: bool, cog: bool, bands_map: str | None,
        boa_offset: int | None, scl_fill: int | None, resampling: str, overwrite: bool,
        resume: bool, out_dir: str | None, from_list: str | None, workers: int,
        scheduler: str | None, as_json: bool, quiet: bool, verbose: int,
        preview: bool = False) -> None:
    """Map Sentinel-2 scenes to georeferenced land-cover class maps.

    SCENE is a 13-band GeoTIFF (bands B1..B9, B8A, SCL, B11, B12 in the model's order, or
    named by band descriptions), a GDAL VRT, a folder of per-band files, or an L2A .SAFE
    folder / .zip. The output is a tiled, DEFLATE-compressed uint8 GeoTIFF with the input's
    grid, a colour table, class names in its tags and nodata 255.

    Several inputs (or --out-dir, --from-list, globs) make a batch: finished outputs are
    skipped, a bad input is reported and the rest go on, the exit code says if any failed.

    \b
    Examples:
      lulc-edge run scene.tif
      lulc-edge run scene.tif -o map.tif --confidence --cog
      lulc-edge run S2B_MSIL2A_20230612.SAFE.zip --json
      lulc-edge run l1c_folder/ --scl-fill 4        # L1C has no SCL: say what to use
      lulc-edge run 'archive/*.zip' --out-dir maps/  # a batch; rerun to pick up failures
      lulc-edge run big.tif --resume                # after a crash or power cut
    """
    _setup_logging(verbose)
    if output == "":
        raise click.BadParameter("empty path", param_hint="'-o' / '--output'")
    _warn_cpus("--threads", threads)
    _warn_cpus("--workers", workers if workers > 1 else None)
    options = RunOptions(mode=mode, tile=tile, batch=batch, confidence=confidence,
                         probs=probs, cog=cog, overwrite=overwrite, resume=resume, qml=qml,
                         progress=False if quiet else None)
    engine_options = EngineOptions(device=device, threads=threads, precision=precision,
                                   min_agreement=min_agreement)
    src_opts = SourceOptions(bands=_parse_bands(bands_map), boa_offset=boa_offset,
                             scl_fill=scl_fill, resampling=resampling)
    reported: set[str] = set()
    jobs: list[Job] = []
    try:
        items = expand_inputs(inputs, from_list)
        batch_mode = len(items) > 1 or out_dir is not None or from_list is not None \
            or scheduler is not None
        if preview:  # each run keeps its scene's thumbnail: no second read of the scene
            require_pillow()  # before mapping, not after
            options = replace(options, thumbnail=PREVIEW_SIZE)
        if not batch_mode:
            res = _run_one(items[0], output, model, engine_options, options, src_opts, as_json,
                           quiet)
            if preview:
                _write_preview(res.output, items[0], quiet, true_colour=res.true_colour)
            return
        jobs = plan_jobs(items, out_dir, output)
        t0 = time.perf_counter()

        def show(rep: JobReport) -> None:
            reported.add(rep.input)
            if rep.status == "failed":
                click.echo(f"lulc-edge: error: {rep.error}", err=True)
            else:
                for w in rep.warnings:
                    click.echo(f"lulc-edge: warning: {w}", err=True)
                if not quiet and not as_json:
                    click.echo(f"{rep.status:<8}{rep.output}", err=True)
            if preview and (rep.status == "done" or rep.status == "skipped"
                            and not _has_pictures(rep.output)):
                _write_preview(rep.output, rep.input, quiet or as_json, fatal=False,
                               true_colour=rep.true_colour)

        if scheduler:
            reports = run_dask(jobs, scheduler, model, engine_options, options, src_opts,
                               on_report=show)
        else:
            reports = run_local(jobs, model, engine_options, options, src_opts, workers,
                                on_report=show)
    except LulcEdgeError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        left = [j.input for j in jobs if j.input not in reported]
        at = f" at {left[0]}" if left and workers <= 1 and not scheduler else ""
        _interrupted(f"batch stopped{at} with {len(jobs) - len(left)} of {len(jobs)} scenes "
                     "finished; run the same command with --resume to continue (finished maps "
                     "are skipped)")
    doc = report_dict(reports, time.perf_counter() - t0)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    elif not quiet:
        click.echo(f"{doc['done']} done, {doc['skipped']} skipped, {doc['failed']} failed "
                   f"of {doc['inputs']} inputs in {doc['seconds']:.1f} s")
    if doc["failed"]:
        sys.exit(1)


def _has_pictures(map_path: str) -> bool:
    """Whether a map's ``--preview`` pictures are all there (a rerun draws missing ones)."""
    from .preview import preview_paths

    return all(p.is_file() for p in preview_paths(map_path).values())


def _interrupted(msg: str) -> None:
    click.echo(f"\nlulc-edge: interrupted: {msg}", err=True)
    sys.exit(EXIT_INTERRUPTED)


def _run_one(src: str, output: str | None, model: str | None, engine_options: EngineOptions,
             options: RunOptions, src_opts: SourceOptions, as_json: bool,
             quiet: bool) -> RunResult:
    try:
        check_input(src)  # before loading and tuning a model
        check_output(src, Path(output) if output else default_output(src), options.overwrite,
                     options.probs, options.confidence)
        engine = Engine(model, engine_options)
        res = segment_file(src, output, engine=engine, options=options, source_options=src_opts)
    except KeyboardInterrupt:
        _interrupted(f"{src} stopped before its map was finished; run the same command with "
                     "--resume to continue it")
    except LulcEdgeError as exc:
        _fail(str(exc))
    except (RasterioError, OSError, ValueError) as exc:
        _fail(f"{src}: {exc}")
    for w in res.warnings:
        click.echo(f"lulc-edge: warning: {w}", err=True)
    if engine.contract.demo and not quiet:
        click.echo("lulc-edge: note: the model has DEMO weights trained on synthetic scenes, "
                   "not a real land-cover model (lulc-edge info; README)", err=True)
    if as_json:
        click.echo(json.dumps(res.as_dict(), indent=2))
    elif not quiet:
        click.echo(_summary(res))
    return res


@main.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=DEFAULT_MIN_AGREEMENT,
              show_default=True, help="Accuracy budget for the auto table.")
def info(model: str | None, as_json: bool, min_agreement: float) -> None:
    """Show a model's contract, provenance, the devices here and what auto chooses."""
    path = Path(model) if model else bundled_model()
    if not path.is_file():
        _fail(f"{path}: model file not found")
    try:
        c = load_contract(path)  # any precision's file: no backend needed to describe it
    except LulcEdgeError as exc:
        _fail(str(exc))
    try:
        auto = Engine(path,
                      EngineOptions(device="auto", precision="auto",
                                    min_agreement=min_agreement)).selection
        auto_doc: dict[str, Any] = auto.as_dict() if auto else {}
    except LulcEdgeError as exc:
        auto_doc = {"error": str(exc)}
    doc = {
        "model": c.path, "sha256": c.sha256, "precision": c.precision,
        "demo_weights": c.demo, "trained_on": c.trained_on,
        "bands": list(c.bands), "classes": [vars(k) for k in c.classes],
        "nodata": vars(c.nodata), "halo": c.halo, "alignment": c.alignment,
        "window": {"size": c.window_size, "stride": c.window_stride},
        "devices_available": available_devices(),
        "cpu": {"model": cpu_info()["model"], "threads": default_threads()},
        "auto": auto_doc,
        "versions": {**versions(), "rasterio": rasterio.__version__,
                     "gdal": rasterio.__gdal_version__},
        "metadata": c.metadata,
    }
    if as_json:
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    click.echo(f"model        {c.path}")
    click.echo(f"sha256       {c.sha256}")
    click.echo(f"precision    {c.precision}")
    demo = c.demo and not c.trained_on.upper().startswith("DEMO WEIGHTS")
    _echo_wrapped(f"weights      {'DEMO WEIGHTS: ' if demo else ''}{c.trained_on}")
    click.echo(f"bands        {', '.join(c.bands)}")
    click.echo("classes      " + ", ".join(f"{k.value} {k.name} {k.color}" for k in c.classes)
               + f", {c.nodata.value} {c.nodata.name}")
    click.echo(f"tiling       halo {c.halo} px, alignment {c.alignment}, window "
               f"{c.window_size}/{c.window_stride}")
    for key in ("source", "exporter", "parity", "calibration"):
        if key in c.metadata:
            click.echo(f"{key:<13}{json.dumps(c.metadata[key])}")
    click.echo(f"devices      {', '.join(available_devices())}")
    ov = f", openvino {doc['versions']['openvino']}" if "openvino" in doc["versions"] else ""
    click.echo(f"versions     onnxruntime {ort.__version__}{ov}, rasterio {rasterio.__version__}, "
               f"GDAL {rasterio.__gdal_version__}")
    click.echo(f"cpu          {cpu_info()['model']}, {doc['cpu']['threads']} threads")
    if "error" in auto_doc:
        click.echo(f"auto         error: {auto_doc['error']}")
        return
    for line in report_lines(auto_doc):
        _echo_wrapped(line)


def _echo_wrapped(line: str, indent: int = 13) -> None:
    """Echo a line whole; on a terminal, wrapped to its width (continuations indented)."""
    if sys.stdout.isatty():
        width = shutil.get_terminal_size().columns
        line = "\n".join(textwrap.wrap(line, max(width, indent + 20),
                                        subsequent_indent=" " * indent,
                                        break_on_hyphens=False)) or line
    click.echo(line)


def _write_preview(map_path: str | Path, scene: str | None, quiet: bool,
                   out_dir: str | None = None, size: int = PREVIEW_SIZE, fatal: bool = True,
                   qml: bool = False, true_colour: Any = None) -> None:
    """Write a map's pictures; an error is one line (and exit 1 unless ``fatal`` is False)."""
    from .preview import write_previews

    try:
        paths = write_previews(map_path, scene, out_dir, size, qml, true_colour)
    except LulcEdgeError as exc:
        if fatal:
            _fail(str(exc))
        click.echo(f"lulc-edge: error: {exc}", err=True)
        return
    if not quiet:
        for p in paths.values():
            click.echo(f"wrote   {p}", err=True)


@main.command()
@click.argument("map_path", metavar="MAP", type=click.Path(dir_okay=False))
@click.option("--scene", default=None,
              help="The scene the map was made from (default: the map's LULC_EDGE_SOURCE_INPUT).")
@click.option("-o", "--out-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the pictures, created if missing (default: beside the map).")
@click.option("--size", type=click.IntRange(16), default=PREVIEW_SIZE, show_default=True,
              help="Longest side of the pictures in px (decimated reads).")
@click.option("--qml", is_flag=True, help="Also write the QGIS style NAME.qml beside the map.")
@click.option("-q", "--quiet", is_flag=True, help="Do not list the files written.")
def preview(map_path: str, scene: str | None, out_dir: str | None, size: int, qml: bool,
            quiet: bool) -> None:
    """Pictures of a class map: NAME.mask.png, .overlay.png, .annotated.png, .stats.png.

    \b
    mask       class colours, nodata black, legend with names and %
    overlay    true colour (B4/B3/B2, 2-98 % stretch), classes blended at 50 %, legend
    annotated  true colour, each class labelled at its largest region (mean confidence
               when the map has a confidence band)
    stats      bars of class areas in % and ha
    """
    if not Path(map_path).is_file():
        _fail(f"{map_path}: no such file")
    _write_preview(map_path, scene, quiet, out_dir, size, qml=qml)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --token (or --insecure).")
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
              envvar="PORT", show_envvar=True, help="Port to listen on (also from $PORT).")
@click.option("--model", type=click.Path(dir_okay=False), help="ONNX model (default: bundled).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Backend, as for run.")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto",
              show_default=True, help="Precision, as for run.")
@click.option("--threads", type=THREADS_RANGE, default=None,
              help="Inference threads (default: all CPUs).")
@click.option("--data-root", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder whose scenes POST /jobs {\"path\": ...} may name (nothing outside it).")
@click.option("--jobs-dir", type=click.Path(file_okay=False), default="lulc-edge-jobs",
              show_default=True, help="Where jobs keep their state, maps and pictures.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=500,
              show_default=True, help="Larger files get 413 (the file, not the multipart "
                                      "envelope around it).")
@click.option("--body-timeout", type=click.FloatRange(min=0, min_open=True), default=30,
              show_default=True, help="Seconds a request body may send nothing; then 408.")
@click.option("--max-waiting", type=click.IntRange(1), default=None,
              help="/predict uploads received and not yet answered (waiting or running) at "
                   "most; more get 429 (default: available memory / 64 MiB, at least 8).")
@click.option("--token", envvar="LULC_EDGE_TOKEN", default=None,
              help="Require 'Authorization: Bearer TOKEN' (also from LULC_EDGE_TOKEN).")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without --token.")
@click.option("--queue", "queue_size", type=click.IntRange(1), default=8, show_default=True,
              help="Jobs waiting at most; more get 429.")
@click.option("--cors", default=None, metavar="ORIGIN",
              help="Allow this browser origin (default: no CORS headers).")
@click.option("--size", type=click.IntRange(16), default=PREVIEW_SIZE, show_default=True,
              help="Longest side of the pictures in px.")
def serve(host: str, port: int, model: str | None, device: str, precision: str,
          threads: int | None, data_root: str | None, jobs_dir: str, max_upload_mb: float,
          body_timeout: float, max_waiting: int | None, token: str | None, insecure: bool,
          queue_size: int, cors: str | None, size: int) -> None:
    """Serve the model over HTTP: the original app's /health and /predict, jobs, a web page.

    \b
    curl -F file=@scene.tif http://127.0.0.1:5000/predict
    curl -F file=@scene.tif http://127.0.0.1:5000/jobs        # then GET /jobs/ID
    Needs the serve extra: pip install 'lulc-edge[serve]'.
    """
    try:
        import uvicorn

        from .serve import ServeOptions, create_app, is_loopback
    except ImportError as exc:
        _fail(f"serve needs the serve extra ({exc.name} missing): pip install 'lulc-edge[serve]'")
    if not is_loopback(host) and not token and not insecure:
        _fail(f"--host {host} is not a loopback address: give --token (clients send "
              "'Authorization: Bearer TOKEN'), or --insecure to serve without one")
    try:
        Path(jobs_dir).mkdir(parents=True, exist_ok=True)
        engine = Engine(model, EngineOptions(device=device, precision=precision, threads=threads))
        app = create_app(engine, ServeOptions(
            jobs_dir=Path(jobs_dir), data_root=Path(data_root) if data_root else None,
            max_upload_mb=max_upload_mb, token=token, queue=queue_size, cors=cors, size=size,
            body_timeout=body_timeout, max_waiting=max_waiting))
    except (LulcEdgeError, OSError) as exc:
        _fail(str(exc))
    click.echo(f"lulc-edge: serving {engine.contract.path} ({engine.device} {engine.precision}) "
               f"on http://{host}:{port}/", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


main.add_command(evaluate_command, "evaluate")
main.add_command(stats_command, "stats")
main.add_command(vectorize_command, "vectorize")

if __name__ == "__main__":  # pragma: no cover
    main()
