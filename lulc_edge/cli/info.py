"""``lulc-edge info``: :func:`lulc_edge.describe.describe` as text or JSON."""

from __future__ import annotations

import json
from typing import Any

import click

from ..budget import DEFAULT_MIN_AGREEMENT, report_lines
from ..describe import describe
from ..errors import LulcEdgeError
from .console import echo_wrapped, fail


@click.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=DEFAULT_MIN_AGREEMENT,
              show_default=True, help="Accuracy budget for the auto table.")
def info(model: str | None, as_json: bool, min_agreement: float) -> None:
    """Show a model's contract, provenance, the devices here and what auto chooses."""
    try:
        doc = describe(model, host=True, min_agreement=min_agreement)
    except LulcEdgeError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(doc, indent=2, default=str))
    else:
        for line in text(doc):
            echo_wrapped(line)


def text(doc: dict[str, Any]) -> list[str]:
    """``describe(host=True)``'s lines for a terminal."""
    demo = doc["demo_weights"] and not doc["trained_on"].upper().startswith("DEMO WEIGHTS")
    nodata, window, v = doc["nodata"], doc["window"], doc["versions"]
    lines = [
        f"model        {doc['model']}",
        f"sha256       {doc['sha256']}",
        f"precision    {doc['precision']}",
        f"weights      {'DEMO WEIGHTS: ' if demo else ''}{doc['trained_on']}",
        f"bands        {', '.join(doc['bands'])}",
        "classes      " + ", ".join(f"{k['value']} {k['name']} {k['color']}"
                                    for k in doc["classes"])
        + f", {nodata['value']} {nodata['name']}",
        f"tiling       halo {doc['halo']} px, alignment {doc['alignment']}, window "
        f"{window['size']}/{window['stride']}",
    ]
    lines += [f"{key:<13}{json.dumps(doc['metadata'][key])}"
              for key in ("source", "exporter", "parity", "calibration") if key in doc["metadata"]]
    ov = f", openvino {v['openvino']}" if "openvino" in v else ""
    lines += [f"devices      {', '.join(doc['devices_available'])}",
              f"versions     onnxruntime {v['onnxruntime']}{ov}, rasterio {v['rasterio']}, "
              f"GDAL {v['gdal']}",
              f"cpu          {doc['cpu']['model']}, {doc['cpu']['threads']} threads"]
    auto = doc["auto"]
    if "error" in auto:
        return [*lines, f"auto         error: {auto['error']}"]
    return lines + report_lines(auto)

