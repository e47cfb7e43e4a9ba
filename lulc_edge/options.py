"""lulc_edge.options: one definition of each run option's type and range.

The CLI turns them into click types (checked when the command line is parsed) and the service
checks a job's fields with them when the job is submitted, so both refuse the same values with
the same range in the message.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import click

from .aoi import DEFAULT_CRS, Area
from .clouds import DEFAULT_BUFFER, CloudMask, check_buffer
from .contract import Contract
from .modes import MODES
from .sources import RESAMPLINGS, SCL_MAX

#: The smallest core tile: the smallest multiple of the window stride (32) whose halo re-reads
#: stay under the 4x work of modes.HALO_WORK_WARN with the model's 24 px halo
#: ((64 + 48) / 64) ** 2 = 3.1x; a tile of 4 read and inferred 169x the pixels it mapped and
#: held the service's one engine for minutes on a small scene.
TILE_MIN = 64


@dataclass(frozen=True)
class Option:
    """A run option: its Python name (``--name-with-dashes`` on the CLI), type and range."""

    name: str
    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        """The values allowed, in words."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind is float:
            return f"a number of at least {self.low:g}" if self.high is None \
                else f"a number from {self.low:g} to {self.high:g}"
        return f"an integer from {self.low} to {self.high}"

    def parse(self, value: Any) -> Any:
        """``value`` (JSON or a form field's text) as this option's type; ValueError naming the
        option and what it allows."""
        try:
            out = _convert(self.kind, value)
        except (TypeError, ValueError):
            out = None
        ok = out is not None and (not self.choices or out in self.choices) and \
            (self.low is None or out >= self.low) and (self.high is None or out <= self.high)
        if not ok:
            raise ValueError(f"option {self.name}: expected {self.allowed()}, got {value!r}")
        return out

    def click_type(self) -> click.ParamType:
        """The click type that checks the same range on the command line."""
        if self.choices:
            return click.Choice(self.choices)
        if self.kind is float:
            return click.FloatRange(self.low, self.high)
        return click.IntRange(self.low, self.high)


def _convert(kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        s = str(value).strip().lower()
        return {"1": True, "true": True, "yes": True, "on": True,
                "0": False, "false": False, "no": False, "off": False}.get(s)
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and value != int(value)):
            return None
        return int(value)
    if kind is float:
        out = None if isinstance(value, bool) else float(value)
        return out if out is not None and math.isfinite(out) else None
    return value if isinstance(value, str) else None


TILE = Option("tile", int, TILE_MIN, 16384)
BATCH = Option("batch", int, 1, 4096)
THREADS = Option("threads", int, 1, 4096)
WORKERS = Option("workers", int, 1, 1024)
SCL_FILL = Option("scl_fill", int, 0, SCL_MAX)
#: BOA offsets seen in Sentinel-2 L2A are 0 and -1000; beyond +-2000 a map is meaningless.
BOA_OFFSET = Option("boa_offset", int, -2000, 2000)
MODE = Option("mode", str, choices=tuple(MODES))
RESAMPLING = Option("resampling", str, choices=RESAMPLINGS)
CLOUD_MASK = Option("cloud_mask", bool)
#: The largest cloud buffer any run may ask for; a run also needs it within the context its
#: mode reads around a tile (``check_cloud_buffer``: 24 px seamless, 32 px window with the
#: bundled model).
CLOUD_BUFFER = Option("cloud_buffer", int, 0, 256)
MASK_SNOW = Option("mask_snow", bool)
#: The polygons' sieve (hectares) and simplification (metres): ``vectorize``, ``run --vector``.
VECTOR_MIN_AREA = Option("vector_min_area", float, 0)
VECTOR_SIMPLIFY = Option("vector_simplify", float, 0)

#: The options a service job may carry, by their Python names.
JOB_OPTIONS: dict[str, Option] = {o.name: o for o in (
    MODE, TILE, BATCH, Option("confidence", bool), Option("probs", bool), Option("cog", bool),
    SCL_FILL, BOA_OFFSET, RESAMPLING, CLOUD_MASK, CLOUD_BUFFER, MASK_SNOW)}


def check_tile_step(tile: int | None, mode: str | None, contract: Contract) -> None:
    """A tile the model can plan in ``mode`` (a multiple of the mode's step: the alignment in
    seamless mode, the window stride in window mode); ValueError naming the step otherwise."""
    mode = mode or "seamless"
    step = MODES[mode].tile_step(contract)
    if tile is not None and tile % step:
        raise ValueError(f"option tile: expected a multiple of {step} in {mode} mode, got {tile}")


#: A job's area of interest (lulc_edge.aoi): ``bbox`` ([minx, miny, maxx, maxy] or its text)
#: in ``bbox_crs``, or ``aoi`` (a GeoJSON geometry, Feature or FeatureCollection, or its text)
#: in ``aoi_crs`` (both default EPSG:4326); they make the job's ``area`` option.
AREA_FIELDS = ("bbox", "bbox_crs", "aoi", "aoi_crs")


def parse_area(fields: dict[str, Any]) -> dict[str, Any] | None:
    """The ``area`` (Area.to_json) of a job's area fields; None without any; ValueError."""
    got = {k: fields[k] for k in AREA_FIELDS if fields.get(k) not in (None, "")}
    if not got:
        return None
    if ("bbox" in got) == ("aoi" in got):
        raise ValueError("option area: give bbox or aoi (one of them)")
    if "bbox" in got:
        return Area.from_bbox(got["bbox"], got.get("bbox_crs") or DEFAULT_CRS).to_json()
    try:
        return Area.from_geojson(got["aoi"], got.get("aoi_crs") or DEFAULT_CRS).to_json()
    except (TypeError, json.JSONDecodeError, AttributeError) as exc:
        raise ValueError(f"option aoi: expected a GeoJSON geometry ({exc})") from None


def check_cloud_buffer(buffer: int | None, mode: str | None, contract: Contract,
                       enabled: bool = True) -> None:
    """A cloud buffer within the context ``mode`` reads around each tile with this model
    (the mask is then computed on the blocks already read); ValueError naming the most."""
    mode = mode or "seamless"
    mask = CloudMask(enabled, DEFAULT_BUFFER if buffer is None else buffer)
    check_buffer(mask, MODES[mode].context(contract), mode)


def parse_job_options(fields: dict[str, Any]) -> dict[str, Any]:
    """A job's options from JSON or form fields, each checked; ValueError names the bad one."""
    out: dict[str, Any] = {}
    if (area := parse_area(fields)) is not None:
        out["area"] = area
    for key, value in fields.items():
        if key in AREA_FIELDS:
            continue
        opt = JOB_OPTIONS.get(key)
        if opt is None:
            raise ValueError(f"unknown option {key!r} (known: "
                             f"{', '.join([*JOB_OPTIONS, *AREA_FIELDS])})")
        if value is not None and value != "":
            out[key] = opt.parse(value)
    return out
