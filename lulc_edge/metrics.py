"""lulc_edge.metrics: accuracy metrics of a confusion matrix and their reports.

Overall accuracy, Cohen's kappa, per-class precision (user's accuracy), recall (producer's
accuracy), F1, IoU and support, macro and support-weighted averages; with the mapped area of
each class, the stratified estimators of Olofsson et al. (2014, Remote Sensing of Environment
148: 42-57): area-weighted accuracies and class areas with standard errors. Pure numpy: the
matrices come from :mod:`lulc_edge.evaluate`. Reports as a dict (JSON), Markdown and CSV.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError

#: z of a two-sided 95 % confidence interval.
Z95 = 1.96


def _f(x: float) -> float | None:
    """A float, None where undefined (0/0)."""
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True)
class ClassScores:
    """Per-class metrics (None where undefined, e.g. precision of a class never mapped)."""

    name: str
    precision: float | None     # user's accuracy: correct / mapped as the class
    recall: float | None        # producer's accuracy: correct / reference of the class
    f1: float | None
    iou: float | None
    support: int                # reference units (pixels or samples) of the class
    mapped: int                 # units the map gives the class


@dataclass(frozen=True)
class Average:
    """Mean of per-class metrics over the classes present in the reference (support > 0);
    an undefined metric of such a class (never mapped) counts as 0, as scikit-learn's
    ``zero_division=0`` does."""

    kind: str                   # "macro" (plain mean) or "weighted" (by support)
    precision: float | None
    recall: float | None
    f1: float | None
    iou: float | None


@dataclass(frozen=True)
class LeftOut:
    """Units left out of the comparison, by reason."""

    reference_nodata: int = 0           # reference nodata, or outside the reference
    map_nodata: int = 0                 # map value outside the classes, or outside the map
    unmapped: tuple[tuple[str, int], ...] = ()   # reference codes with no class: (code, n)

    @property
    def total(self) -> int:
        return self.reference_nodata + self.map_nodata + sum(n for _, n in self.unmapped)

    def __add__(self, other: LeftOut) -> LeftOut:
        codes = Counter(dict(self.unmapped))
        codes.update(dict(other.unmapped))
        return LeftOut(self.reference_nodata + other.reference_nodata,
                       self.map_nodata + other.map_nodata, tuple(sorted(codes.items())))


@dataclass(frozen=True)
class Stratified:
    """Stratified estimates (Olofsson et al. 2014): strata are the map classes, weighted by
    their mapped area; ``*_se`` are standard errors (x1.96 for a 95 % interval)."""

    area_unit: str                          # "ha", or "px" when the map has no pixel area
    mapped_area: tuple[float, ...]          # area of each map class (the strata)
    overall_accuracy: float | None
    overall_accuracy_se: float | None
    users_accuracy: tuple[float | None, ...]
    users_accuracy_se: tuple[float | None, ...]
    producers_accuracy: tuple[float | None, ...]
    producers_accuracy_se: tuple[float | None, ...]
    area: tuple[float | None, ...]          # estimated area of each reference class
    area_se: tuple[float | None, ...]


@dataclass(frozen=True)
class Evaluation:
    """A map compared with a reference. ``matrix[i][j]``: units of reference class i that the
    map gives class j (rows reference, columns map, as scikit-learn's confusion_matrix)."""

    map: str
    reference: str
    unit: str                               # "pixels" or "samples"
    classes: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]
    overall_accuracy: float | None
    kappa: float | None
    per_class: tuple[ClassScores, ...]
    macro: Average
    weighted: Average
    left_out: LeftOut = field(default_factory=LeftOut)
    stratified: Stratified | None = None

    @property
    def compared(self) -> int:
        return int(sum(map(sum, self.matrix)))

    def as_dict(self) -> dict[str, Any]:
        lo = self.left_out
        doc = {"map": self.map, "reference": self.reference, "unit": self.unit,
               "classes": list(self.classes), "compared": self.compared,
               "left_out": {"reference_nodata": lo.reference_nodata,
                            "map_nodata": lo.map_nodata,
                            "unmapped_codes": dict(lo.unmapped), "total": lo.total},
               "confusion_matrix": {"rows": "reference", "columns": "map",
                                    "counts": [list(r) for r in self.matrix]},
               "overall_accuracy": self.overall_accuracy, "kappa": self.kappa,
               "per_class": [vars(c) for c in self.per_class],
               "macro_avg": vars(self.macro), "weighted_avg": vars(self.weighted)}
        if self.stratified is not None:
            doc["stratified"] = vars(self.stratified)
        return doc


def _average(kind: str, per_class: Sequence[ClassScores]) -> Average:
    present = [c for c in per_class if c.support > 0]
    w = np.array([c.support if kind == "weighted" else 1 for c in present], float)
    vals = {}
    for m in ("precision", "recall", "f1", "iou"):
        v = np.array([getattr(c, m) or 0.0 for c in present])
        vals[m] = _f(float((v * w).sum() / w.sum())) if w.sum() else None
    return Average(kind, **vals)


def scores(matrix: np.ndarray, classes: Sequence[str], *, map_name: str = "",
           reference: str = "", unit: str = "pixels", left_out: LeftOut | None = None,
           mapped_area: np.ndarray | None = None, area_unit: str = "ha") -> Evaluation:
    """Every metric of a confusion matrix (rows reference, columns map); with
    ``mapped_area`` (area of each map class) also the stratified estimates."""
    m = np.asarray(matrix, dtype=np.int64)
    n = m.sum()
    tp = np.diag(m).astype(float)
    ref, mapped = m.sum(axis=1).astype(float), m.sum(axis=0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec, rec = tp / mapped, tp / ref
        f1, iou = 2 * tp / (ref + mapped), tp / (ref + mapped - tp)
        oa = tp.sum() / n
        pe = (ref * mapped).sum() / float(n) ** 2
        kappa = (oa - pe) / (1 - pe)
    per_class = tuple(ClassScores(name, _f(prec[i]), _f(rec[i]), _f(f1[i]), _f(iou[i]),
                                  int(ref[i]), int(mapped[i])) for i, name in enumerate(classes))
    strat = None
    if mapped_area is not None:
        strat = stratified_estimate(m.T, np.asarray(mapped_area, float), area_unit)
    return Evaluation(map_name, reference, unit, tuple(classes),
                      tuple(tuple(int(v) for v in row) for row in m), _f(oa), _f(kappa),
                      per_class, _average("macro", per_class), _average("weighted", per_class),
                      left_out or LeftOut(), strat)


def stratified_estimate(n: np.ndarray, mapped_area: np.ndarray, area_unit: str = "ha"
                        ) -> Stratified:
    """Olofsson et al. (2014) estimators from sample counts ``n[i, j]`` (rows MAP class i,
    columns reference class j) and the mapped area of each class.

    W_i = mapped share, p_ij = W_i n_ij / n_i.; overall accuracy sum p_jj, user's p_ii / p_i.,
    producer's p_jj / p_.j, area A p_.j with SE A sqrt(sum_i W_i^2 f_ij (1 - f_ij) / (n_i. - 1))
    (eqs. 10-11), f_ij = n_ij / n_i.; variances of the accuracies as in its eqs. 5-7. A map
    class with fewer than two samples makes the standard errors it enters undefined (None).
    """
    n = np.asarray(n, float)
    area = np.asarray(mapped_area, float)
    total = area.sum()
    w = area / total if total else np.zeros_like(area)
    ni = n.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(w[:, None] > 0, n / ni[:, None], 0.0)
        var_frac = np.where(w[:, None] > 0, frac * (1 - frac) / (ni[:, None] - 1), 0.0)
        p = w[:, None] * frac
        users = np.diag(frac).copy()
        users_var = np.diag(var_frac)
        oa = np.trace(p)
        oa_var = (w**2 * users_var).sum()
        col = p.sum(axis=0)
        prod = np.diag(p) / col
        n_col = total * col                       # estimated reference area of each class
        others = np.array([sum(area[i] ** 2 * var_frac[i, j] for i in range(len(w)) if i != j)
                           for j in range(len(w))])
        prod_var = (area**2 * (1 - prod) ** 2 * users_var + prod**2 * others) / n_col**2
        area_se = total * np.sqrt((w[:, None] ** 2 * var_frac).sum(axis=0))

    def tup(a: np.ndarray) -> tuple[float | None, ...]:
        return tuple(_f(x) for x in a)

    return Stratified(area_unit, tuple(float(a) for a in area), _f(oa), _f(math.sqrt(oa_var)),
                      tup(users), tup(np.sqrt(users_var)), tup(prod), tup(np.sqrt(prod_var)),
                      tup(total * col), tup(area_se))


def pool(evaluations: Sequence[Evaluation]) -> Evaluation:
    """One evaluation of several map/reference pairs: matrices, left-out counts and (when
    every pair has them) mapped areas added up."""
    first = evaluations[0]
    for e in evaluations[1:]:
        if e.classes != first.classes:
            raise InputError(f"{e.map}: classes {', '.join(e.classes)} differ from "
                             f"{first.map}'s ({', '.join(first.classes)}): cannot pool")
    matrix = sum(np.array(e.matrix, np.int64) for e in evaluations)
    left = first.left_out
    for e in evaluations[1:]:
        left = left + e.left_out
    strat = [e.stratified for e in evaluations]
    mapped = None
    if all(s is not None for s in strat) and len({s.area_unit for s in strat}) == 1:
        mapped = sum(np.array(s.mapped_area) for s in strat)
    units = {e.unit for e in evaluations}
    return scores(matrix, first.classes, map_name="pooled", reference="pooled",
                  unit=units.pop() if len(units) == 1 else "mixed", left_out=left,
                  mapped_area=mapped, area_unit=strat[0].area_unit if mapped is not None
                  else "ha")


def _n(x: float | None, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _pm(x: float | None, se: float | None, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}f} ± {_n(se, digits)}"


def markdown(e: Evaluation, title: str | None = None) -> str:
    """The evaluation as Markdown: confusion matrix, per-class table, averages, summary."""
    lo = e.left_out
    codes = "".join(f", reference code {c} (no class) {n}" for c, n in lo.unmapped)
    lines = [f"### {title or f'{e.map} vs {e.reference}'}", "",
             f"Compared {e.compared} {e.unit}; left out {lo.total}: reference nodata "
             f"{lo.reference_nodata}, map nodata {lo.map_nodata}{codes}.", "",
             f"Confusion matrix ({e.unit}; rows: reference, columns: map):", "",
             "| reference \\ map | " + " | ".join(e.classes) + " | total |",
             "|---|" + "---:|" * (len(e.classes) + 1)]
    for name, row in zip(e.classes, e.matrix, strict=True):
        lines.append(f"| {name} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    cols = [sum(c) for c in zip(*e.matrix, strict=True)]
    lines += ["| total | " + " | ".join(map(str, cols)) + f" | {e.compared} |", "",
              "| class | precision (user's) | recall (producer's) | F1 | IoU | support |",
              "|---|---:|---:|---:|---:|---:|"]
    for c in e.per_class:
        lines.append(f"| {c.name} | {_n(c.precision)} | {_n(c.recall)} | {_n(c.f1)} | "
                     f"{_n(c.iou)} | {c.support} |")
    for a in (e.macro, e.weighted):
        lines.append(f"| {a.kind} avg | {_n(a.precision)} | {_n(a.recall)} | {_n(a.f1)} | "
                     f"{_n(a.iou)} | {e.compared} |")
    lines += ["", f"Overall accuracy {_n(e.overall_accuracy)}, Cohen's kappa {_n(e.kappa)}."]
    s = e.stratified
    if s is not None:
        u = s.area_unit
        lines += ["", "Stratified estimates (Olofsson et al. 2014; ± one standard error, "
                  "x1.96 for 95 %):", "",
                  f"| class | mapped area ({u}) | user's accuracy | producer's accuracy | "
                  f"estimated area ({u}) |", "|---|---:|---:|---:|---:|"]
        for i, name in enumerate(e.classes):
            lines.append(f"| {name} | {s.mapped_area[i]:.2f} | "
                         f"{_pm(s.users_accuracy[i], s.users_accuracy_se[i])} | "
                         f"{_pm(s.producers_accuracy[i], s.producers_accuracy_se[i])} | "
                         f"{_pm(s.area[i], s.area_se[i], 2)} |")
        lines += ["", f"Overall accuracy {_pm(s.overall_accuracy, s.overall_accuracy_se)}."]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Report:
    """Evaluations of one or more map/reference pairs, and their pooled one when several."""

    pairs: tuple[Evaluation, ...]
    pooled: Evaluation | None = None

    @property
    def all(self) -> tuple[Evaluation, ...]:
        return self.pairs + ((self.pooled,) if self.pooled is not None else ())

    def as_dict(self) -> dict[str, Any]:
        if self.pooled is None:
            return self.pairs[0].as_dict()
        return {"pairs": [e.as_dict() for e in self.pairs], "pooled": self.pooled.as_dict()}

    def to_markdown(self) -> str:
        return "\n".join(markdown(e, "pooled" if e is self.pooled else None) for e in self.all)

    def to_csv(self) -> str:
        """Long format: pair (1.., or pooled), metric, class, map_class, value."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["pair", "metric", "class", "map_class", "value"])
        for i, e in enumerate(self.all, start=1):
            pair = "pooled" if e is self.pooled else str(i)
            for ref_name, row in zip(e.classes, e.matrix, strict=True):
                for map_name, v in zip(e.classes, row, strict=True):
                    w.writerow([pair, "confusion", ref_name, map_name, v])
            for c in e.per_class:
                for m in ("precision", "recall", "f1", "iou", "support"):
                    w.writerow([pair, m, c.name, "", _csv(getattr(c, m))])
            for a in (e.macro, e.weighted):
                for m in ("precision", "recall", "f1", "iou"):
                    w.writerow([pair, f"{a.kind}_avg_{m}", "", "", _csv(getattr(a, m))])
            w.writerow([pair, "overall_accuracy", "", "", _csv(e.overall_accuracy)])
            w.writerow([pair, "kappa", "", "", _csv(e.kappa)])
            w.writerow([pair, "compared", "", "", e.compared])
            w.writerow([pair, "left_out", "", "", e.left_out.total])
            s = e.stratified
            if s is not None:
                w.writerow([pair, "stratified_overall_accuracy", "", "",
                            _csv(s.overall_accuracy)])
                w.writerow([pair, "stratified_overall_accuracy_se", "", "",
                            _csv(s.overall_accuracy_se)])
                for j, name in enumerate(e.classes):
                    for m in ("mapped_area", "users_accuracy", "users_accuracy_se",
                              "producers_accuracy", "producers_accuracy_se", "area",
                              "area_se"):
                        unit = f"_{s.area_unit}" if m.startswith(("area", "mapped")) else ""
                        w.writerow([pair, f"stratified_{m}{unit}", name, "",
                                    _csv(getattr(s, m)[j])])
        return out.getvalue()


def _csv(x: float | int | None) -> str:
    return "" if x is None else (str(x) if isinstance(x, int) else f"{x:.6g}")
