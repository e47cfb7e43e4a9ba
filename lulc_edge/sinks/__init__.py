"""lulc_edge.sinks: what a run produces, each a sink fed tile by tile.

``SINKS`` maps a name to a sink class (see ``base.Sink``); a run opens every sink its spec
wants, in this order, and is complete when each has finished. A new output (polygons,
composites) is a module with a ``Sink`` subclass and one line here (or ``SINKS[name] = cls``
from outside the package).
"""

from __future__ import annotations

from pathlib import Path

from ..spec import RunSpec
from .base import RunContext, Sink
from .outputs import Areas, Maps, Resume, Style, Thumbnail
from .vector import Vector

__all__ = ["SINKS", "RunContext", "Sink", "abort_all", "build", "finish_all", "missing", "open_all",
           "remake"]

#: name -> sink class, in the order sinks are finished (areas before the maps record counts;
#: the journal once everything it protects is in place; the polygons last, from the finished
#: map: a failure there leaves the map whole).
SINKS: dict[str, type[Sink]] = {
    "areas": Areas,
    "thumbnail": Thumbnail,
    "maps": Maps,
    "qml": Style,
    "resume": Resume,
    "vector": Vector,
}


def build(spec: RunSpec) -> dict[str, Sink]:
    """A new instance of every registered sink ``spec`` wants, by name, in registry order."""
    out = {}
    for name, cls in SINKS.items():
        if cls.wanted(spec):
            out[name] = cls()
            out[name].name = name
    return out


def missing(dst: Path, spec: RunSpec, expect: dict[str, str]) -> str | None:
    """Why the outputs of ``dst`` are not all there and current (the first sink's reason), or
    None: what a batch's skip check asks. ``derived`` sinks are left to ``remake``."""
    for cls in SINKS.values():
        if cls.wanted(spec) and not cls.derived and (why := cls.missing(dst, spec, expect)):
            return why
    return None


def remake(dst: Path, spec: RunSpec, expect: dict[str, str]) -> list[str]:
    """Make again, from the current map ``dst``, the files of the ``derived`` sinks that are
    missing or outdated (a batch's skipped map); a note for each, saying why."""
    notes = []
    for cls in SINKS.values():
        if cls.wanted(spec) and cls.derived and (why := cls.missing(dst, spec, expect)):
            cls.remake(dst, spec)
            notes.append(f"{why}: made again from the existing map")
    return notes


def open_all(sinks: dict[str, Sink], ctx: RunContext) -> None:
    """Open the sinks in order; one that fails aborts those opened before it."""
    opened: list[Sink] = []
    try:
        for sink in sinks.values():
            sink.open(ctx)
            opened.append(sink)
    except BaseException:
        abort_all(opened)
        raise


def finish_all(sinks: dict[str, Sink], tags: dict[str, str]) -> dict[str, object]:
    """Finish the sinks in order (the run is complete when the last has); their products."""
    for sink in sinks.values():
        sink.finish(tags)
    return {name: s.product for name, s in sinks.items() if s.product is not None}


def abort_all(sinks: object, resumable: bool = False) -> None:
    """Abort every sink (a dict's values or a list); the first error is raised after all."""
    error: BaseException | None = None
    for sink in (sinks.values() if isinstance(sinks, dict) else sinks):
        try:
            sink.abort(resumable)
        except Exception as exc:  # noqa: BLE001 - the others still clean up
            error = error or exc
    if error is not None:
        raise error
