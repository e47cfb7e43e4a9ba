"""lulc_edge.sinks.vector: the map's polygons (``run --vector``), made from the finished map by
:func:`lulc_edge.vectorize.vectorize` once it is in place; a batch whose map is current makes
them again (``remake``) without mapping the scene again."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import options as opts
from ..errors import InputError, LulcEdgeError, OutputError
from ..spec import RunSpec
from .base import RunContext, Sink


def is_extension(vector: str) -> bool:
    """Whether ``vector`` is an extension (".gpkg": NAME.gpkg beside each map), not a file."""
    from ..vectorfile import DRIVERS

    return vector.lower() in DRIVERS


def vector_path(dst: Path, vector: str) -> Path:
    """Where the polygons of the map ``dst`` go: the file ``vector``, or for an extension the
    map's name with it (scene.lulc.tif -> scene.lulc.gpkg)."""
    return Path(dst).with_suffix(vector) if is_extension(vector) else Path(vector)


def check_batch(vector: str | None, inputs: int) -> None:
    """OutputError when ``vector`` names one file but ``inputs`` maps would each write it."""
    if vector is not None and inputs > 1 and not is_extension(vector):
        raise OutputError(f"{vector}: --vector FILE names one file, but {inputs} inputs were "
                          "given; give an extension instead (--vector .gpkg writes NAME.gpkg "
                          "beside each map)")


def _options(spec: RunSpec) -> dict[str, float]:
    """The vectorize options of a spec, as the polygons file records them (``made_with``)."""
    try:
        return {"min_area_ha": opts.VECTOR_MIN_AREA.parse(spec.run.vector_min_area),
                "simplify_m": opts.VECTOR_SIMPLIFY.parse(spec.run.vector_simplify)}
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _check(dst: Path, spec: RunSpec) -> None:
    """Refuse, before anything is mapped, polygons that could not be written: no vector extra,
    an unknown format (a .tif too: never the map's name), an existing file (without ``overwrite`` or
    ``resume``), a missing or read-only folder."""
    from ..vectorize import check_output

    path = vector_path(dst, str(spec.run.vector))
    check_output(path, _options(spec)["simplify_m"], who="--vector")
    if path.exists() and not (spec.run.overwrite or spec.run.resume):
        raise OutputError(f"{path}: exists (use --overwrite to replace it)")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        why = "is not writable" if path.parent.is_dir() else "does not exist"
        raise OutputError(f"{path}: vector output directory {path.parent} {why}")


def _write(dst: Path, spec: RunSpec) -> Any:
    """The polygons of the finished map ``dst``; OutputError naming the polygons file, saying
    the map stays (no partial polygons file is left)."""
    from ..vectorize import vectorize

    path = vector_path(dst, str(spec.run.vector))
    o = _options(spec)
    try:
        return vectorize(dst, path, o["min_area_ha"], overwrite=True, simplify_m=o["simplify_m"])
    except LulcEdgeError as exc:
        raise OutputError(f"{exc}; the map {dst} is complete (lulc-edge vectorize {dst} -o "
                          f"{path} makes its polygons)") from None


class Vector(Sink):
    """The map's polygons (``RunOptions.vector``), written after the map is in place; the
    product is the ``VectorizeResult`` (file, polygons per class)."""

    derived = True

    @classmethod
    def wanted(cls, spec: RunSpec) -> bool:
        return spec.run.vector is not None

    @classmethod
    def missing(cls, dst: Path, spec: RunSpec, expect: dict[str, str]) -> str | None:
        from ..vectorfile import made_with

        path = vector_path(dst, str(spec.run.vector))
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_mtime_ns < dst.stat().st_mtime_ns:
            return f"{path} is older than the map"
        was, now = made_with(path), _options(spec)
        if was is not None and was != now:
            return f"{path} was made with other options ({was} -> {now})"
        return None

    @classmethod
    def remake(cls, dst: Path, spec: RunSpec) -> Any:
        return _write(dst, spec)

    def open(self, ctx: RunContext) -> None:
        self.ctx = ctx
        _check(ctx.dst, ctx.spec)

    def finish(self, tags: dict[str, str]) -> None:
        self.product = _write(self.ctx.dst, self.ctx.spec)
