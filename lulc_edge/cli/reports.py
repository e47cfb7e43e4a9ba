"""The report of ``evaluate`` and ``stats``: a table on stdout, JSON, or a file by its ending."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import LulcEdgeError
from ..files import write_atomic
from .console import fail
from .options import TableArgs

#: Report formats of ``-o``, by file name ending.
FORMATS = {".json": "json", ".csv": "csv", ".md": "md", ".markdown": "md"}


def report_format(output: str | None) -> str | None:
    """The format ``-o`` asks for by its ending (checked before any work); None without -o."""
    if output is None:
        return None
    fmt = FORMATS.get(Path(output).suffix.lower())
    if fmt is None:
        raise click.BadParameter(f"{output}: unknown report format (use .json, .csv or .md)",
                                 param_hint="'-o' / '--output'")
    return fmt


def emit(result: Any, report: TableArgs) -> None:
    """Table on stdout (or JSON with --json), and the report file of ``-o`` by its ending."""
    output = report.output
    fmt = report_format(output)
    if output is not None:
        text = {"json": lambda: json.dumps(result.as_dict(), indent=2) + "\n",
                "csv": result.to_csv, "md": result.to_markdown}[fmt]()
        try:
            write_atomic(Path(output), text)
        except LulcEdgeError as exc:
            fail(str(exc))
    if report.as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    elif not report.quiet:
        click.echo(result.to_markdown(), nl=False)
    if output is not None and not report.quiet:
        click.echo(f"wrote   {output}", err=True)
