"""lulc_edge.spec: how to map a scene, as one frozen value.

``RunOptions`` (how one run goes: mode, tile, outputs, resume policy) stays the keyword API of
``segment_file``; ``RunSpec`` carries everything a run needs (model, device, precision, mode,
tile, batch, radiometry, outputs) as one picklable value for worker processes, Dask tasks and
service jobs, with a JSON round trip checked by the definitions in ``lulc_edge.options``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .aoi import Area
from .clouds import DEFAULT_BUFFER, CloudMask
from .engine import EngineOptions
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
    #: map only this area of interest (lulc_edge.aoi): its bounding window, outside a polygon
    #: nodata; None: the whole scene
    area: Area | None = None
    #: SCL cloud, shadow, cirrus and defective pixels as Cloud (``lulc_edge.clouds``), the
    #: mask dilated by ``cloud_buffer`` px; snow and ice too with ``mask_snow``
    cloud_mask: bool = True
    cloud_buffer: int = DEFAULT_BUFFER
    mask_snow: bool = False
    #: also write the map's polygons (``lulc_edge.vectorize``, the ``vector`` sink): a file, or
    #: an extension (".gpkg") for NAME.gpkg beside each map (a batch's form); None: none.
    #: ``vector_min_area`` (ha) and ``vector_simplify`` (m) as vectorize's options. They shape
    #: the polygons, not the map: not in ``RunSpec.shaping`` (the file records them).
    vector: str | None = None
    vector_min_area: float = 0.0
    vector_simplify: float = 0.0

    @property
    def clouds(self) -> CloudMask:
        """The cloud mask these options ask for."""
        return CloudMask(self.cloud_mask, self.cloud_buffer, self.mask_snow)


_PARTS = {"engine": EngineOptions, "run": RunOptions, "source": SourceOptions}


@dataclass(frozen=True)
class RunSpec:
    """Everything a run needs but its paths: the model, how to run it (``engine``), how to map
    (``run``: mode, tile, batch, outputs, resume policy) and how to read (``source``:
    radiometry). Flat in JSON: each field's name says which part it belongs to."""

    model: str | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)
    run: RunOptions = field(default_factory=RunOptions)
    source: SourceOptions = field(default_factory=SourceOptions)

    @classmethod
    def of(cls, model: str | os.PathLike | None = None, engine: EngineOptions | None = None,
           run: RunOptions | None = None, source: SourceOptions | None = None) -> RunSpec:
        """The spec of the older quartet (model, engine, run and source options; None: the
        defaults)."""
        return cls(None if model is None else os.fspath(model), engine or EngineOptions(),
                   run or RunOptions(), source or SourceOptions())

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with fields of any part changed, by their names (``overwrite=True``)."""
        parts: dict[str, Any] = {}
        if "model" in changes:
            parts["model"] = changes.pop("model")
        for part, kind in _PARTS.items():
            mine = {k: changes.pop(k) for k in [f.name for f in fields(kind)] if k in changes}
            if mine:
                parts[part] = dataclasses.replace(getattr(self, part), **mine)
        if changes:
            raise TypeError(f"RunSpec has no option {next(iter(changes))!r}")
        return dataclasses.replace(self, **parts)

    def to_dict(self) -> dict[str, Any]:
        """The spec as flat JSON-ready values (``bands`` as an object)."""
        out: dict[str, Any] = {"model": self.model}
        for part in _PARTS:
            out.update(dataclasses.asdict(getattr(self, part)))
        out["bands"] = dict(self.source.bands) if self.source.bands is not None else None
        out["area"] = self.run.area.to_json() if self.run.area is not None else None
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> RunSpec:
        """A spec from ``to_dict``'s JSON (or a service job's fields): the options a job may
        carry are checked by ``lulc_edge.options``, the rest by their type; ValueError names
        the bad one."""
        from .options import JOB_OPTIONS, parse_job_options

        defaults = RunSpec().to_dict()
        unknown = sorted(set(doc) - set(defaults))
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} (known: {', '.join(defaults)})")
        values = {k: v for k, v in doc.items() if k not in JOB_OPTIONS}
        values.update(parse_job_options({k: v for k, v in doc.items() if k in JOB_OPTIONS}))
        for key, value in values.items():
            _check_type(key, value, defaults[key])
        if values.get("bands") is not None:
            values["bands"] = {str(k): int(v) for k, v in dict(values["bands"]).items()}
        if values.get("area") is not None:
            values["area"] = Area.from_json(values["area"])
        return RunSpec().replace(**values)

    def shaping(self, model_sha256: str, precision: str) -> str:
        """The options that shape a run's outputs, as the JSON of raster.OPTIONS_TAG: a batch
        redoes an output made with others. Tile and batch sizes are not among them (maps never
        depend on them), nor the device (its precision, given as used, is)."""
        r, so = self.run, self.source
        area = {"area": {k: v for k, v in r.area.to_json().items() if k != "label"}} \
            if r.area is not None else {}
        return json.dumps({**area,
            "model": model_sha256, "precision": precision, "mode": r.mode,
            "confidence": r.confidence, "probs": r.probs, "cog": r.cog,
            "bands": dict(so.bands) if so.bands else None, "boa_offset": so.boa_offset,
            "scl_fill": so.scl_fill, "resampling": so.resampling,
            "clouds": [r.cloud_buffer, r.mask_snow] if r.cloud_mask else None}, sort_keys=True)


def _check_type(key: str, value: Any, default: Any) -> None:
    """ValueError unless ``value`` has the type of the field's default (None where allowed)."""
    if value is None or key in ("bands", "area"):
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
