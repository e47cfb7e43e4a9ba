"""lulc_edge.describe: one description of a model, rendered by ``lulc-edge info`` (text and
JSON) and by the service's ``GET /info``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import rasterio

from .budget import DEFAULT_MIN_AGREEMENT
from .contract import Contract
from .devices import cpu_info, versions
from .engine import (
    Engine,
    EngineOptions,
    available_devices,
    bundled_model,
    default_threads,
    load_contract,
)
from .errors import LulcEdgeError, ModelError


def describe(model: str | os.PathLike | Contract | None = None, *, host: bool = False,
             min_agreement: float = DEFAULT_MIN_AGREEMENT) -> dict[str, Any]:
    """A model's contract and provenance as a JSON-able dict (default: the bundled model;
    any precision's file, no backend built). ``host`` adds this machine: the devices, the CPU,
    what ``--device auto --precision auto`` chooses under ``min_agreement`` (or the error
    that prevents it) and the library versions."""
    if isinstance(model, Contract):
        c = model
    else:
        path = Path(model) if model is not None else bundled_model()
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        c = load_contract(path)
    doc: dict[str, Any] = {
        "model": c.path, "sha256": c.sha256, "precision": c.precision,
        "demo_weights": c.demo, "trained_on": c.trained_on,
        "bands": list(c.bands), "classes": [vars(k) for k in c.classes],
        "nodata": vars(c.nodata), "halo": c.halo, "alignment": c.alignment,
        "window": {"size": c.window_size, "stride": c.window_stride},
    }
    if host:
        doc.update(_host(Path(c.path), min_agreement))
    doc["metadata"] = c.metadata
    return doc


def _host(path: Path, min_agreement: float) -> dict[str, Any]:
    """The machine's part of ``describe(host=True)``."""
    try:
        auto = Engine(path, EngineOptions(device="auto", precision="auto",
                                          min_agreement=min_agreement)).selection
        auto_doc: dict[str, Any] = auto.as_dict() if auto else {}
    except LulcEdgeError as exc:
        auto_doc = {"error": str(exc)}
    return {
        "devices_available": available_devices(),
        "cpu": {"model": cpu_info()["model"], "threads": default_threads()},
        "auto": auto_doc,
        "versions": {**versions(), "rasterio": rasterio.__version__,
                     "gdal": rasterio.__gdal_version__},
    }


def served(doc: dict[str, Any], device: str, precision: str) -> dict[str, Any]:
    """What the service's ``GET /info`` says of the model it serves: no server path, the
    classes with nodata (the page's legend), the backend it runs on."""
    return {"model": Path(doc["model"]).name, "sha256": doc["sha256"],
            "demo_weights": doc["demo_weights"], "trained_on": doc["trained_on"],
            "device": device, "precision": precision,
            "classes": [*doc["classes"], doc["nodata"]]}
