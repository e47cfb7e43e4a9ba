"""``lulc-edge run``: one scene, or a batch (several inputs, --out-dir, --from-list, Dask)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Any

import click
from rasterio.errors import RasterioError

from ..batch import JobReport, expand_inputs, plan_jobs, report_dict, run_dask, run_local
from ..engine import Engine
from ..errors import LulcEdgeError
from ..preview import has_pictures, with_pictures
from ..results import RunResult
from ..runfile import segment_file
from ..spec import RunOptions, RunSpec
from .console import demo_note, error, fail, interrupted, setup_logging, warn, warn_cpus
from .options import (
    BATCH,
    ENGINE,
    REPORT,
    SCENE,
    TILING,
    BatchArgs,
    EngineArgs,
    RadiometryArgs,
    ReportArgs,
    SceneArgs,
    TilingArgs,
    use,
)
from .options_output import OUTPUTS, OutputArgs
from .preview import draw_pictures
from .stac_inputs import (
    STAC,
    StacArgs,
    expand,
    name_jobs,
    output_name,
    searched,
    use_signer,
)


@click.command()
@click.argument("inputs", nargs=-1, metavar="SCENE...")
@use(OUTPUTS, ENGINE, TILING, SCENE, BATCH, STAC, REPORT)
def run(inputs: tuple[str, ...], outputs: OutputArgs, engine: EngineArgs, tiling: TilingArgs,
        scene: SceneArgs, batch: BatchArgs, stac: StacArgs,
        report: ReportArgs) -> None:
    """Map Sentinel-2 scenes to georeferenced land-cover class maps.

    SCENE is a 13-band GeoTIFF (bands B1..B9, B8A, SCL, B11, B12 in the model's order, or
    named by band descriptions), a GDAL VRT, a folder of per-band files, or an L2A .SAFE
    folder / .zip, or a STAC item (item.json, an https://...json URL, stac:URL for an API's
    item URL, collection.json#ITEM_ID). The output is a tiled, DEFLATE-compressed uint8
    GeoTIFF with the input's grid, a colour table, class names in its tags and nodata 255.

    Several inputs (or --out-dir, --from-list, globs) make a batch: finished outputs are
    skipped (missing polygons are made from the finished map), a bad input is reported and
    the rest go on, the exit code says if any failed.
    An ItemCollection is a batch of its items, most recent first; --stac-api searches a STAC
    API and maps each item found to DIR/<item id>.lulc.tif (a STAC item's map is named after
    its id). Item radiometry (BOA offset) is decided from the item and recorded in the map's
    tags; --boa-offset overrides it.

    \b
    Examples:
      lulc-edge run scene.tif
      lulc-edge run scene.tif -o map.tif --confidence --cog
      lulc-edge run S2B_MSIL2A_20230612.SAFE.zip --json
      lulc-edge run l1c_folder/ --scl-fill 4        # L1C has no SCL: say what to use
      lulc-edge run 'archive/*.zip' --out-dir maps/  # a batch; rerun to pick up failures
      lulc-edge run big.tif --resume                # after a crash or power cut
      lulc-edge run item.json                       # a STAC item: <item id>.lulc.tif
      lulc-edge run stac:https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a/items/S2A_29RKH_20200219_0_L2A
      lulc-edge run --stac-api https://earth-search.aws.element84.com/v1 \\
        --collection sentinel-2-l2a --bbox -8.1,31.5,-7.9,31.7 \\
        --datetime 2024-06-01/2024-08-31 --max-cloud 20 --out-dir maps/
      lulc-edge run --stac-api https://planetarycomputer.microsoft.com/api/stac/v1 \\
        --collection sentinel-2-l2a --bbox 10,45,10.1,45.1 --datetime 2024-07 \\
        --sign planetary_computer:sign --out-dir maps/
      lulc-edge run scene.tif --aoi field.geojson   # only that area
      lulc-edge run scene.tif --vector scene.gpkg --min-area 0.5   # and its polygons
      lulc-edge run 'archive/*.zip' --out-dir maps/ --vector .gpkg  # maps/NAME.lulc.gpkg
    """
    setup_logging(report.verbose)
    if outputs.output == "":
        raise click.BadParameter("empty path", param_hint="'-o' / '--output'")
    warn_cpus("--threads", engine.threads)
    warn_cpus("--workers", batch.workers if batch.workers > 1 else None)
    try:
        options = dataclasses.replace(_run_options(outputs, tiling, report), area=stac.area())
        plan = Plan(engine, scene.apply(options), scene, outputs, report)
        use_signer(stac)
        found = searched(stac, batch.out_dir)
        items = expand([*(expand_inputs(inputs, batch.from_list)
                          if inputs or batch.from_list or not found else []), *found])
        if len(items) > 1 or batch.out_dir is not None or batch.from_list is not None \
                or batch.scheduler is not None:
            _run_batch(items, plan, batch)
        else:
            _run_one(items[0], plan)
    except LulcEdgeError as exc:
        fail(str(exc))


def _run_options(outputs: OutputArgs, tiling: TilingArgs, report: ReportArgs) -> RunOptions:
    options = outputs.apply(RunOptions(
        mode=tiling.mode, tile=tiling.tile, batch=tiling.batch, confidence=outputs.confidence,
        probs=outputs.probs, cog=outputs.cog, overwrite=outputs.overwrite, resume=outputs.resume,
        qml=outputs.qml, progress=False if report.quiet else None))
    if outputs.preview:  # each run keeps its scene's thumbnail: no second read of the scene
        options = with_pictures(options)  # Pillow checked before mapping, not after
    return options


class Plan:
    """What every scene of a run is mapped with (one RunSpec), and how it is reported."""

    def __init__(self, engine: EngineArgs, options: RunOptions, radiometry: RadiometryArgs,
                 outputs: OutputArgs, report: ReportArgs) -> None:
        self.spec = RunSpec.of(engine.model, engine.engine_options(), options,
                               radiometry.source_options())
        self.outputs, self.report = outputs, report


def _run_one(src: str, plan: Plan) -> None:
    """One scene to ``-o`` (or beside it), its summary printed."""
    report = plan.report
    try:
        engine = Engine(plan.spec.model, plan.spec.engine)
        res = segment_file(src, plan.outputs.output or output_name(src),
                           engine=engine, spec=plan.spec)
    except KeyboardInterrupt:
        interrupted(f"{src} stopped before its map was finished; run the same command with "
                    "--resume to continue it")
    except LulcEdgeError as exc:
        fail(str(exc))
    except (RasterioError, OSError, ValueError) as exc:
        fail(f"{src}: {exc}")
    for w in res.warnings:
        warn(w)
    demo_note(engine.contract.demo, report.quiet)
    if report.as_json:
        click.echo(json.dumps(res.as_dict(), indent=2))
    elif not report.quiet:
        click.echo(summary(res))
    if plan.outputs.preview:
        draw_pictures(res.output, src, report.quiet, true_colour=res.true_colour)


def _run_batch(items: list[str], plan: Plan, batch: BatchArgs) -> None:
    """Each input to its own map; one line per scene, the counts at the end, exit 1 if any
    failed."""
    report, reported = plan.report, set()
    jobs = name_jobs(plan_jobs(items, batch.out_dir, plan.outputs.output,
                               plan.spec.run.vector), batch.out_dir, plan.outputs.output)
    t0 = time.perf_counter()

    def show(rep: JobReport) -> None:
        reported.add(rep.input)
        _show(rep, plan)

    try:
        if batch.scheduler:
            reports = run_dask(jobs, batch.scheduler, plan.spec, on_report=show)
        else:
            reports = run_local(jobs, plan.spec, batch.workers, on_report=show)
    except KeyboardInterrupt:
        left = [j.input for j in jobs if j.input not in reported]
        at = f" at {left[0]}" if left and batch.workers <= 1 and not batch.scheduler else ""
        interrupted(f"batch stopped{at} with {len(jobs) - len(left)} of {len(jobs)} scenes "
                    "finished; run the same command with --resume to continue (finished maps "
                    "are skipped)")
    doc = report_dict(reports, time.perf_counter() - t0)
    if report.as_json:
        click.echo(json.dumps(doc, indent=2))
    elif not report.quiet:
        click.echo(f"{doc['done']} done, {doc['skipped']} skipped, {doc['failed']} failed "
                   f"of {doc['inputs']} inputs in {doc['seconds']:.1f} s")
    if doc["failed"]:
        sys.exit(1)


def _show(rep: JobReport, plan: Plan) -> None:
    """A batch's line for one scene as it finishes; its pictures, unless all are there."""
    quiet = plan.report.quiet or plan.report.as_json
    if rep.status == "failed":
        error(str(rep.error))
    else:
        for w in rep.warnings:
            warn(w)
        if not quiet:
            click.echo(f"{rep.status:<8}{rep.output}", err=True)
    if plan.outputs.preview and (rep.status == "done" or rep.status == "skipped"
                                 and not has_pictures(rep.output)):
        draw_pictures(rep.output, rep.input, quiet, fatal=False, true_colour=rep.true_colour)


def class_lines(res: Any) -> list[str]:
    """A map's pixels, % and hectares per class, why it has no hectares, and its polygons: the
    body of a run's or a composite's summary (``RunResult``, ``CompositeResult``)."""
    total = max(res.width * res.height, 1)
    lines = []
    for name, n in res.class_pixels.items():
        area = f"{res.class_hectares[name]:>12.2f} ha" if res.class_hectares else ""
        lines.append(f"  {name:<16}{n:>12d} px {100 * n / total:6.2f} %{area}")
    if res.area_note:
        lines.append(f"  ({res.area_note})")
    if (vector := res.products.get("vector")) is not None:
        lines.append(f"  polygons: {vector.output} ({vector.features} features)")
    return lines


def summary(res: RunResult) -> str:
    """A run's table: size, speed, backend; pixels, % and hectares per class."""
    lines = [f"{res.output}: {res.width}x{res.height} px in {res.seconds:.1f} s "
             f"({res.pixels / max(res.seconds, 1e-9) / 1e6:.2f} MP/s, "
             f"{res.device} {res.precision}, {res.mode})"]
    lines += class_lines(res)
    if res.cloud_mask:
        share = f": {res.cloud_percent:.2f} % of the pixels with data" \
            if res.cloud_percent is not None else ""
        lines.append(f"  clouds: {res.cloud_mask}{share}")
    return "\n".join(lines)

