"""lulc_edge.results: what a run did (``RunResult``) and what a batch did with a job
(``JobReport``, which carries its run's result rather than restating it)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


def json_products(products: dict[str, Any]) -> dict[str, Any]:
    """The products that say themselves as JSON (``as_dict``), by sink name."""
    return {k: p.as_dict() for k, p in products.items() if hasattr(p, "as_dict")}


@dataclass
class RunResult:
    """What a run did: sizes, time, per-class pixel counts and areas; ``products`` holds what
    sinks hand back (``thumbnail``: the B4/B3/B2 thumbnail, left out of JSON; ``vector``: the
    polygons file and its features, in JSON by its ``as_dict``)."""

    input: str
    output: str
    width: int
    height: int
    seconds: float
    device: str
    precision: str
    mode: str
    tiles_total: int
    tiles_inferred: int
    class_pixels: dict[str, int]
    class_hectares: dict[str, float] | None
    #: why ``class_hectares`` is None (e.g. the map has no CRS); None when there are areas
    area_note: str | None = None
    warnings: list[str] = field(default_factory=list)
    products: dict[str, Any] = field(default_factory=dict, repr=False)
    #: how clouds were masked, in words (the map's LULC_EDGE_CLOUD_MASK tag)
    cloud_mask: str = ""
    #: percent of the pixels with data masked as Cloud; None where nothing was masked
    cloud_percent: float | None = None

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def true_colour(self) -> Any:
        """The thumbnail sink's (3, h, w) image when RunOptions.thumbnail asked for it."""
        return self.products.get("thumbnail")

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values, with the products that have an ``as_dict``."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "products"}
        d["pixels"] = self.pixels
        d.update(json_products(self.products))
        return d


@dataclass
class JobReport:
    """Outcome of one job: done, skipped (already complete) or failed (with a one-line error);
    a done job carries its run's ``result``."""

    input: str
    output: str
    status: str
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    result: RunResult | None = field(default=None, repr=False)

    @property
    def pixels(self) -> int:
        return self.result.pixels if self.result else 0

    @property
    def class_pixels(self) -> dict[str, int]:
        return self.result.class_pixels if self.result else {}

    @property
    def class_hectares(self) -> dict[str, float] | None:
        return self.result.class_hectares if self.result else None

    @property
    def area_note(self) -> str | None:
        return self.result.area_note if self.result else None

    @property
    def tiles_inferred(self) -> int:
        return self.result.tiles_inferred if self.result else 0

    @property
    def true_colour(self) -> Any:
        """The scene's thumbnail when RunOptions.thumbnail asked for one (not in JSON)."""
        return self.result.true_colour if self.result else None

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values, as a batch's ``--json`` lists it (with its run's
        products that have an ``as_dict``: ``vector``)."""
        made = json_products(self.result.products) if self.result else {}
        return {**made, "input": self.input, "output": self.output, "status": self.status,
                "seconds": self.seconds, "pixels": self.pixels,
                "class_pixels": self.class_pixels, "class_hectares": self.class_hectares,
                "area_note": self.area_note, "tiles_inferred": self.tiles_inferred,
                "error": self.error, "warnings": self.warnings}
