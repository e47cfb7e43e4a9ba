"""Options shared by the commands, as rasterio's ``rio/options.py``, in groups.

A group is click options plus the frozen value a command receives them as: ``use(ENGINE,
TILING)`` adds the options to a command and hands its function ``engine=EngineArgs(...)``,
``tiling=TilingArgs(...)`` instead of one keyword per option. Types and ranges come from
:mod:`lulc_edge.options`, which the service checks a job's options with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import click

from .. import options as opts
from ..aoi import DEFAULT_CRS, Area
from ..batch import SCHEDULER_ENV
from ..budget import DEFAULT_MIN_AGREEMENT
from ..clouds import DEFAULT_BUFFER
from ..devices import PRECISION_CHOICES
from ..engine import CUDA_BATCH, CUDA_TILE, DEVICES, EngineOptions
from ..errors import InputError
from ..modes import DEFAULT_BATCH, DEFAULT_TILE, MODES
from ..sources import RESAMPLINGS, SourceOptions
from ..spec import RunOptions
from ..thumbnail import DEFAULT_SIZE as PREVIEW_SIZE

#: Ranges of the numeric options, checked by click when the command line is parsed.
TILE_RANGE = opts.TILE.click_type()
BATCH_RANGE = opts.BATCH.click_type()
THREADS_RANGE = opts.THREADS.click_type()
WORKERS_RANGE = opts.WORKERS.click_type()
SCL_RANGE = opts.SCL_FILL.click_type()
OFFSET_RANGE = opts.BOA_OFFSET.click_type()

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


@dataclass(frozen=True)
class Group:
    """Click options and the frozen value (a dataclass whose fields are the options' names)
    a command's function receives them as, under ``name``."""

    name: str
    value: type
    options: tuple[Decorator, ...]


def use(*groups: Group) -> Decorator:
    """Add the groups' options to a command (in order) and pack each group's values into its
    frozen value; the other parameters (arguments, own options) pass through."""
    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def packed(**kw: Any) -> Any:
            for g in groups:
                kw[g.name] = g.value(**{x.name: kw.pop(x.name) for x in fields(g.value)
                                        if x.name in kw})
            return f(**kw)

        for g in reversed(groups):
            for option in reversed(g.options):
                packed = option(packed)
        return packed
    return decorate


# ---------------------------------------------------------------------------- the model
MODEL = click.option("--model", type=click.Path(dir_okay=False),
                     help="ONNX model exported by export/to_onnx.py (default: the bundled "
                          "demo model).")
DEVICE = click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                      help="Backend: cpu, cuda, openvino (OpenVINO's runtime, else its "
                           "onnxruntime provider), openvino-ep; auto measures the installed "
                           "ones, takes the fastest.")
PRECISION = click.option(
    "--precision", type=click.Choice(PRECISION_CHOICES), default="auto", show_default=True,
    help="fp32, bf16 (OpenVINO on CPUs with bf16), fp16 (GPUs), int8 (the quantized model); "
         "auto: the fastest whose lowest stored agreement with fp32, on synthetic and on real "
         "scenes, meets --min-agreement.")
MIN_AGREEMENT = click.option(
    "--min-agreement", type=click.FloatRange(0, 1), default=DEFAULT_MIN_AGREEMENT,
    show_default=True,
    help="Accuracy budget of --precision auto: the lowest stored argmax agreement with fp32 "
         "(synthetic and real scenes) a precision must keep.")
THREADS = click.option("--threads", type=THREADS_RANGE, default=None,
                       help="Inference threads (default: all CPUs).")


@dataclass(frozen=True)
class EngineArgs:
    """Which model, on which backend."""

    model: str | None
    device: str
    precision: str
    threads: int | None
    min_agreement: float = DEFAULT_MIN_AGREEMENT

    def engine_options(self) -> EngineOptions:
        return EngineOptions(device=self.device, threads=self.threads, precision=self.precision,
                             min_agreement=self.min_agreement)


ENGINE = Group("engine", EngineArgs, (MODEL, DEVICE, PRECISION, MIN_AGREEMENT, THREADS))
#: The service's: no --min-agreement (its engine is chosen once, as given).
SERVED_ENGINE = Group("engine", EngineArgs, (MODEL, DEVICE, PRECISION, THREADS))


# ---------------------------------------------------------------------------- tiling
@dataclass(frozen=True)
class TilingArgs:
    mode: str
    tile: int | None
    batch: int | None


TILING = Group("tiling", TilingArgs, (
    click.option("--mode", type=click.Choice(tuple(MODES)), default="seamless", show_default=True,
                 help="seamless: large tiles with a halo, exact and fast. window: the original "
                      "app's 64x64 windows at stride 32 with averaged probabilities."),
    click.option("--tile", type=TILE_RANGE, default=None,
                 help=f"Core tile edge in px (default {DEFAULT_TILE['seamless']}, "
                      f"{CUDA_TILE['seamless']} on cuda; multiple of 4, or "
                      "of 32 in window mode). Results do not depend on it."),
    click.option("--batch", type=BATCH_RANGE, default=None,
                 help=f"Tiles per inference call (seamless, default {DEFAULT_BATCH['seamless']})"
                      f" or 64x64 windows per call (window, default {DEFAULT_BATCH['window']}; "
                      f"{CUDA_BATCH['window']} on cuda)."),
))


# ---------------------------------------------------------------------------- radiometry
def parse_bands(text: str | None) -> dict[str, int] | None:
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


@dataclass(frozen=True)
class RadiometryArgs:
    bands_map: str | None
    boa_offset: int | None
    scl_fill: int | None
    resampling: str

    def source_options(self) -> SourceOptions:
        return SourceOptions(bands=parse_bands(self.bands_map), boa_offset=self.boa_offset,
                             scl_fill=self.scl_fill, resampling=self.resampling)


RADIOMETRY = Group("radiometry", RadiometryArgs, (
    click.option("--bands", "bands_map", default=None, metavar="B1=1,...",
                 help="Band positions (1-based) in a stack whose order differs from the "
                      "model's."),
    click.option("--boa-offset", type=OFFSET_RANGE, default=None,
                 help="BOA offset the values carry (e.g. -1000 for L2A baseline >= 04.00); "
                      "default: from product metadata, 0 for a plain GeoTIFF."),
    click.option("--scl-fill", type=SCL_RANGE, default=None,
                 help="Run an input without SCL (L1C, 12 bands) with this SCL value "
                      "everywhere."),
    click.option("--resampling", type=click.Choice(RESAMPLINGS), default="bilinear",
                 show_default=True,
                 help="Resampling of 20/60 m bands to the 10 m grid (SCL is always nearest)."),
))


# ---------------------------------------------------------------------------- clouds
@dataclass(frozen=True)
class CloudArgs:
    """The SCL cloud mask (lulc_edge.clouds)."""

    no_cloud_mask: bool
    cloud_buffer: int
    mask_snow: bool

    def apply(self, options: RunOptions) -> RunOptions:
        """``options`` with these settings."""
        return replace(options, cloud_mask=not self.no_cloud_mask,
                       cloud_buffer=self.cloud_buffer, mask_snow=self.mask_snow)


CLOUDS = Group("clouds", CloudArgs, (
    click.option("--no-cloud-mask", is_flag=True,
                 help="Keep the model's classes everywhere (default: pixels whose SCL says "
                      "no data, defective, cloud shadow, cloud or cirrus become Cloud, 254)."),
    click.option("--cloud-buffer", type=opts.CLOUD_BUFFER.click_type(), default=DEFAULT_BUFFER,
                 show_default=True, metavar="PX",
                 help="Grow the cloud mask by PX pixels (SCL misses cloud edges and shadows); "
                      "at most the context a tile is read with: 24 px seamless, 32 px window "
                      "with the bundled model."),
    click.option("--mask-snow", is_flag=True, help="Also mask SCL snow and ice (11) as Cloud."),
))


@dataclass(frozen=True)
class SceneArgs(CloudArgs, RadiometryArgs):
    """How a scene's bands are taken (radiometry) and its SCL used (the cloud mask)."""


SCENE = Group("scene", SceneArgs, RADIOMETRY.options + CLOUDS.options)


# ---------------------------------------------------------------------------- area of interest
@dataclass(frozen=True)
class AreaArgs:
    """The area of interest: a box (in ``bbox_crs``) or a vector file, or neither."""

    bbox: str | None
    bbox_crs: str
    aoi: str | None

    def area(self) -> Area | None:
        """The Area; InputError (one line) for a bad box, both given, or an unreadable file."""
        if self.bbox is not None and self.aoi is not None:
            raise InputError(f"--bbox and --aoi {self.aoi} both give the area: give one")
        if self.aoi is not None:
            return Area.from_file(self.aoi)
        if self.bbox is None:
            return None
        try:
            return Area.from_bbox(self.bbox, self.bbox_crs)
        except ValueError as exc:
            raise InputError(f"--{exc}") from None


AREA = Group("area", AreaArgs, (
    click.option("--bbox", default=None, metavar="MINX,MINY,MAXX,MAXY",
                 help="Map only this box (in --bbox-crs): its bounding window on the input's "
                      "grid, every pixel as in the whole-scene map; with --stac-api also the "
                      "area searched."),
    click.option("--bbox-crs", default=DEFAULT_CRS, show_default=True, metavar="CRS",
                 help="CRS of --bbox (EPSG:32633, ...)."),
    click.option("--aoi", type=click.Path(dir_okay=False), default=None, metavar="FILE",
                 help="Map only this area: a vector file OGR reads (GeoJSON, GeoPackage...), "
                      "any CRS; pixels outside its polygons are nodata."),
))


# ---------------------------------------------------------------------------- batches
@dataclass(frozen=True)
class BatchArgs:
    out_dir: str | None
    from_list: str | None
    workers: int
    scheduler: str | None


BATCH = Group("batch", BatchArgs, (
    click.option("--out-dir", type=click.Path(file_okay=False), default=None,
                 help="Write each input's map to DIR/<name>.lulc.tif (batch mode)."),
    click.option("--from-list", type=click.Path(dir_okay=False), default=None,
                 help="Read inputs from a file, one per line (# comments allowed)."),
    click.option("--workers", type=WORKERS_RANGE, default=1, show_default=True,
                 help="Scenes mapped in parallel processes (1: one scene at a time, all "
                      "threads)."),
    click.option("--scheduler", envvar=SCHEDULER_ENV, default=None, metavar="ADDRESS",
                 help="Dask scheduler (tcp://host:8786): one task per scene on the cluster. "
                      f"Also from {SCHEDULER_ENV}."),
))


# ---------------------------------------------------------------------------- what is printed
@dataclass(frozen=True)
class ReportArgs:
    """What a command prints: JSON, nothing, or GDAL's messages too."""

    as_json: bool
    quiet: bool
    verbose: int = 0


@dataclass(frozen=True)
class TableArgs:
    """A table printed (or as JSON), and written to ``output`` by its file name ending."""

    output: str | None
    as_json: bool
    quiet: bool


JSON = click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
VERBOSE = click.option("-v", "--verbose", count=True,
                       help="Show GDAL/rasterio messages (-v warnings, -vv everything).")
REPORT = Group("report", ReportArgs, (
    JSON, click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary table."),
    VERBOSE))
#: evaluate's and stats': a table printed, and written with -o by its file name ending.
TABLE = Group("report", TableArgs, (
    click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
                 help="Also write the report: .json, .csv (long format) or .md, by extension."),
    click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout."),
    click.option("-q", "--quiet", is_flag=True,
                 help="Print nothing (with -o: only the file)."),
))
SIZE = click.option("--size", type=click.IntRange(16), default=PREVIEW_SIZE, show_default=True,
                    help="Longest side of the pictures in px (decimated reads).")
