"""lulc_edge.spec: how to map a scene, as one frozen value.

``RunOptions`` (how one run goes: mode, tile, outputs, resume policy) stays the keyword API of
``segment_file``; ``RunSpec`` carries everything a run needs (model, device, precision, mode,
tile, batch, radiometry, outputs) as one picklable value for worker processes, Dask tasks and
service jobs, with a JSON round trip checked by the definitions in ``lulc_edge.options``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .engine import DEFAULT_MIN_AGREEMENT, EngineOptions
from .sources import SourceOptions


@dataclass(frozen=True)
class RunOptions:
    """How to map one scene; ``None`` means the mode's default."""

    mode: str = "seamless"
    tile: int | None = None
    batch: int | None = None
    confidence: bool = False
    probs: bool = False
    cog: bool = False
    #: replace an existing output; also start over where an interrupted run left a journal
    #: (without it or ``resume`` that run is refused, so its finished tiles are not lost)
    overwrite: bool = False
    resume: bool = False
    progress: bool | None = None
    #: longest side of a B4/B3/B2 thumbnail gathered while reading (the ``thumbnail`` sink's
    #: product, RunResult.true_colour); 0: none. Pictures then need no second read of a scene.
    thumbnail: int = 0
    #: also write the QGIS style NAME.qml beside the map
    qml: bool = False


_RUN = tuple(f.name for f in fields(RunOptions))
_ENGINE = tuple(f.name for f in fields(EngineOptions))
_SOURCE = tuple(f.name for f in fields(SourceOptions))


@dataclass(frozen=True)
class RunSpec:
    """Everything a run needs but its paths: model, engine, tiling, radiometry, outputs."""

    model: str | None = None
    # the engine (EngineOptions)
    device: str = "auto"
    threads: int | None = None
    precision: str = "fp32"
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    cuda_device_id: int = 0
    openvino_device_type: str = "CPU"
    openvino_cache_dir: str | None = None
    # the run (RunOptions)
    mode: str = "seamless"
    tile: int | None = None
    batch: int | None = None
    confidence: bool = False
    probs: bool = False
    cog: bool = False
    overwrite: bool = False
    resume: bool = False
    progress: bool | None = None
    thumbnail: int = 0
    qml: bool = False
    # the source's radiometry (SourceOptions); bands as sorted (name, index) pairs
    bands: tuple[tuple[str, int], ...] | None = None
    boa_offset: int | None = None
    scl_fill: int | None = None
    resampling: str = "bilinear"

    @classmethod
    def of(cls, model: str | None = None, engine: EngineOptions | None = None,
           run: RunOptions | None = None, source: SourceOptions | None = None) -> RunSpec:
        """The spec of the older quartet (model, engine, run and source options)."""
        values: dict[str, Any] = {"model": None if model is None else str(model)}
        for obj in (engine or EngineOptions(), run or RunOptions(), source or SourceOptions()):
            values.update({f.name: getattr(obj, f.name) for f in fields(obj)})
        if values["bands"] is not None:
            values["bands"] = tuple(sorted(dict(values["bands"]).items()))
        return cls(**values)

    @property
    def engine_options(self) -> EngineOptions:
        return EngineOptions(**{k: getattr(self, k) for k in _ENGINE})

    @property
    def run_options(self) -> RunOptions:
        return RunOptions(**{k: getattr(self, k) for k in _RUN})

    @property
    def source_options(self) -> SourceOptions:
        values = {k: getattr(self, k) for k in _SOURCE}
        values["bands"] = dict(self.bands) if self.bands is not None else None
        return SourceOptions(**values)

    def replace(self, **changes: Any) -> RunSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready values (``bands`` as an object)."""
        out = dataclasses.asdict(self)
        out["bands"] = dict(self.bands) if self.bands is not None else None
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> RunSpec:
        """A spec from ``to_dict``'s JSON (or a service job's fields): the options a job may
        carry are checked by ``lulc_edge.options``, the rest by their type; ValueError names
        the bad one."""
        from .options import JOB_OPTIONS, parse_job_options

        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(doc) - set(known))
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} (known: {', '.join(known)})")
        values = {k: v for k, v in doc.items() if k not in JOB_OPTIONS}
        values.update(parse_job_options({k: v for k, v in doc.items() if k in JOB_OPTIONS}))
        for key, value in values.items():
            _check_type(key, value, known[key].default)
        if values.get("bands") is not None:
            values["bands"] = tuple(sorted((str(k), int(v)) for k, v in
                                           dict(values["bands"]).items()))
        return cls(**values)

    def shaping(self, model_sha256: str, precision: str) -> str:
        """The options that shape a run's outputs, as the JSON of raster.OPTIONS_TAG: a batch
        redoes an output made with others. Tile and batch sizes are not among them (maps never
        depend on them), nor the device (its precision, given as used, is)."""
        return json.dumps({
            "model": model_sha256, "precision": precision, "mode": self.mode,
            "confidence": self.confidence, "probs": self.probs, "cog": self.cog,
            "bands": dict(self.bands) if self.bands else None, "boa_offset": self.boa_offset,
            "scl_fill": self.scl_fill, "resampling": self.resampling}, sort_keys=True)


def _check_type(key: str, value: Any, default: Any) -> None:
    """ValueError unless ``value`` has the type of the field's default (None where allowed)."""
    if value is None or key == "bands":
        if key == "bands" and value is not None and not isinstance(value, Mapping | list | tuple):
            raise ValueError(f"option bands: expected an object of band name -> index, "
                             f"got {value!r}")
        return
    kind = type(default) if default is not None else None
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool)) \
        if kind is not None else isinstance(value, int | str)
    if not ok:
        raise ValueError(f"option {key}: expected {kind.__name__ if kind else 'a value'}, "
                         f"got {value!r}")
