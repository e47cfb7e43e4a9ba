"""``lulc-edge composite``: a thin click layer over :mod:`lulc_edge.compositing`."""

from __future__ import annotations

import dataclasses
import json

import click

from ..batch import SCHEDULER_ENV, expand_inputs
from ..composite import RULES
from ..engine import Engine
from ..errors import LulcEdgeError
from ..spec import RunSpec
from .console import demo_note, fail, interrupted, setup_logging, warn, warn_cpus
from .options import (
    ENGINE,
    REPORT,
    SCENE,
    TILING,
    EngineArgs,
    Group,
    ReportArgs,
    SceneArgs,
    TilingArgs,
    use,
)
from .options_output import OUTPUTS, OutputArgs
from .preview import draw_pictures
from .run import _run_options, class_lines
from .stac_inputs import STAC, StacArgs, expand, searched, use_signer


@dataclasses.dataclass(frozen=True)
class GridArgs:
    """How scenes are combined and the grid they are combined on."""

    rule: str
    crs: str | None
    res: float | None
    scheduler: str | None


GRID = Group("grid", GridArgs, (
    click.option("--rule", type=click.Choice(RULES), default="mean", show_default=True,
                 help="mean: the class of the highest mean probability over the clear "
                      "observations; mode: the class most dates chose (ties: the higher mean "
                      "probability)."),
    click.option("--crs", default=None, metavar="CRS",
                 help="CRS of the composite's grid (default: the area's UTM zone with --bbox/"
                      "--aoi, else the first scene's CRS)."),
    click.option("--res", type=click.FloatRange(min=0, min_open=True), default=None,
                 metavar="METRES", help="Pixel size of the grid in its CRS's units (default: "
                                        "the first scene's; 10 m in another CRS, its size in "
                                        "degrees in a geographic one)."),
    click.option("--scheduler", envvar=SCHEDULER_ENV, default=None, metavar="ADDRESS",
                 help=f"Dask scheduler (tcp://host:8786): one task per row of tiles. Also from "
                      f"{SCHEDULER_ENV}."),
))


@click.command("composite")
@click.argument("inputs", nargs=-1, metavar="SCENE...")
@use(GRID, OUTPUTS, ENGINE, TILING, SCENE, STAC, REPORT)
def composite(inputs: tuple[str, ...], grid: GridArgs, outputs: OutputArgs, engine: EngineArgs,
              tiling: TilingArgs, scene: SceneArgs, stac: StacArgs, report: ReportArgs) -> None:
    """One land-cover map from several scenes: dates of a season, or adjacent tiles.

    Every SCENE (anything `lulc-edge run` maps: GeoTIFF, band folder, .SAFE/.zip, STAC item,
    URL; or the items a --stac-api search finds) is mapped on one grid with its clouds masked
    (SCL), and per pixel the clear observations are combined by --rule. Pixels no scene saw
    clear are nodata. Beside the map, MAP.counts.tif holds n_valid (clear observations) and
    n_total (scenes covering the pixel); --confidence writes the mean probability of the
    class chosen, --probs the mean probabilities.

    Scenes on other grids (another MGRS tile or UTM zone) are resampled (nearest) onto the
    composite's grid: the area given by --bbox/--aoi in its UTM zone, else the extent of all
    scenes on the first scene's grid. Memory is one row of tiles whatever the number of scenes.

    \b
    Examples:
      lulc-edge composite june.tif july.tif august.tif -o summer.tif
      lulc-edge composite 'season/*.zip' -o summer.tif --rule mode --confidence --preview
      lulc-edge composite T29RKH.SAFE T29RLH.SAFE --bbox -8.1,31.5,-7.9,31.7 -o area.tif
      lulc-edge composite --stac-api https://earth-search.aws.element84.com/v1 \\
          --collection sentinel-2-l2a --bbox -8.1,31.5,-7.9,31.7 \\
          --datetime 2024-06-01/2024-08-31 --max-cloud 40 -o summer.tif
      lulc-edge composite a.tif b.tif c.tif -o season.tif --resume   # after a crash
    """
    setup_logging(report.verbose)
    warn_cpus("--threads", engine.threads)
    if not outputs.output:
        raise click.UsageError("name the composite: -o FILE.tif")
    try:
        options = dataclasses.replace(_run_options(outputs, tiling, report), area=stac.area())
        spec = RunSpec.of(engine.model, engine.engine_options(), scene.apply(options),
                          scene.source_options())
        use_signer(stac)
        found = searched(stac, None, need_out_dir=False)
        names = expand([*(expand_inputs(inputs) if inputs or not found else []), *found])
        model = Engine(spec.model, spec.engine)
        res_ = _composite(names, outputs.output, spec, grid, model)
    except KeyboardInterrupt:
        interrupted(f"{outputs.output} stopped before it was finished; run the same command "
                    "with --resume to continue it")
    except LulcEdgeError as exc:
        fail(str(exc))
    for w in res_.warnings:
        warn(w)
    demo_note(model.contract.demo, report.quiet)
    if report.as_json:
        click.echo(json.dumps(res_.as_dict(), indent=2))
    elif not report.quiet:
        click.echo(summary(res_))
    if outputs.preview:
        draw_pictures(res_.output, None, report.quiet)


def _composite(names: list[str], output: str, spec: RunSpec, grid: GridArgs,
               engine: Engine):  # noqa: ANN202
    from ..compositing import CompositeOptions, composite_file

    return composite_file(names, output, spec=spec, engine=engine, scheduler=grid.scheduler,
                          options=CompositeOptions(grid.rule, grid.crs, grid.res))


def summary(res) -> str:  # noqa: ANN001 - a CompositeResult
    """The composite's table: grid, scenes, pixels, % and hectares per class."""
    lines = [f"{res.output}: {res.width}x{res.height} px, {len(res.scenes)} scenes, rule "
             f"{res.rule}, in {res.seconds:.1f} s ({res.device} {res.precision})"]
    lines += class_lines(res)
    lines.append(f"  no clear observation: {res.no_observation} px (nodata); clouds: "
                 f"{res.cloud_mask}")
    return "\n".join(lines)
