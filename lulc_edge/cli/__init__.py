"""lulc_edge.cli: the ``lulc-edge`` command, a thin click layer over the Python API.

One module per command (run, composite, info, preview, serve, evaluate, stats, vectorize,
change), the options they share in :mod:`lulc_edge.cli.options`, what they print in
:mod:`lulc_edge.cli.console`.
A new command is a module with a ``click.command`` and a line in ``COMMANDS``.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import click

from .. import __version__
from .change import change
from .composite import composite
from .console import EXIT_INTERRUPTED, _shown, showwarning
from .evaluate import evaluate
from .info import info
from .options import TILE_RANGE
from .preview import preview
from .run import run
from .serve import serve
from .stats import stats
from .vectorize import vectorize

#: The commands, in the order ``lulc-edge -h`` lists them.
COMMANDS = (run, composite, info, preview, serve, evaluate, stats, vectorize, change)

__all__ = ["COMMANDS", "TILE_RANGE", "_shown", "main", "run"]


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
    lulc-edge composite A B C -o S.tif    one map of several dates (clouds left out) or tiles
    lulc-edge info                        the bundled model, its provenance, the devices here
    lulc-edge preview MAP.tif             pictures of a map (PNG) and its QGIS style
    lulc-edge serve                       the web page and the original app's HTTP API
    lulc-edge evaluate MAP.tif REF        accuracy against reference labels or samples
    lulc-edge stats MAP.tif --zones F     class areas per region
    lulc-edge vectorize MAP.tif           polygons of each class (GeoPackage)
    lulc-edge change A.tif B.tif -o C.tif what became what between two maps
    """
    warnings.showwarning = showwarning


for _command in COMMANDS:
    main.add_command(_command)
