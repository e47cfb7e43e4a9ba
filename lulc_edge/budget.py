"""lulc_edge.budget: the accuracy budget of ``--precision auto``.

A precision other than fp32 is admitted only when the model's metadata (``lulc_edge.accuracy``)
stores its argmax agreement with fp32 on synthetic scenes and on real scenes, and the lowest of
them meets the budget: synthetic scenes alone once let int8 in at 99.6 % while real L1C patches
agreed 77 %, so an unmeasured real agreement keeps a precision out.
"""

from __future__ import annotations

from typing import Any

#: Default accuracy budget: argmax agreement with fp32 that a faster precision must keep.
DEFAULT_MIN_AGREEMENT = 0.995


def _fraction(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return None


def stored_agreements(accuracy: object, precision: str) -> tuple[float | None, float | None]:
    """(synthetic, real): the lowest argmax agreement with fp32 stored for ``precision``.

    ``accuracy`` is ``lulc_edge.accuracy``: per precision an entry (``agreement``, and
    ``agreement_real_min`` for real scenes), a bare number (synthetic) or a list of entries
    (several files store one each); None where nothing is stored. fp32 is the reference.
    """
    if precision == "fp32":
        return 1.0, 1.0
    entries = accuracy.get(precision) if isinstance(accuracy, dict) else None
    synthetic: list[float | None] = []
    real: list[float | None] = []
    for entry in entries if isinstance(entries, list) else [entries]:
        if isinstance(entry, dict):
            synthetic.append(_fraction(entry.get("agreement", entry.get("argmax_agreement"))))
            real.append(_fraction(entry.get("agreement_real_min")))
        else:
            synthetic.append(_fraction(entry))
    return (min((a for a in synthetic if a is not None), default=None),
            min((a for a in real if a is not None), default=None))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def budget_note(synthetic: float | None, real: float | None, min_agreement: float) -> str:
    """Why a precision with these stored agreements is outside the budget ("" if inside):
    the lowest of them must meet it, and both must be stored."""
    if synthetic is None and real is None:
        return "no stored accuracy (lulc_edge.accuracy)"
    if real is None:
        return ("no stored agreement on real scenes (benchmarks/parity.py, "
                "benchmarks/store_accuracy.py)")
    lowest = min(a for a in (synthetic, real) if a is not None)
    if lowest < min_agreement:
        kind = "real scenes" if lowest == real else "synthetic scenes"
        return f"lowest stored agreement {_pct(lowest)} ({kind}) < budget {_pct(min_agreement)}"
    return ""


def report_lines(doc: dict[str, Any]) -> list[str]:
    """``lulc-edge info``'s auto section from ``Selection.as_dict()``: the stored agreements
    side by side, the choice and why, then every pair (notes in full)."""
    budget = doc["min_agreement"]
    lines = [f"accuracy     argmax agreement with fp32, lowest stored; auto admits a precision "
             f"when the lowest of both meets the budget {_pct(budget)}",
             f"  {'precision':<11}{'synthetic':<11}{'real scenes':<13}auto"]
    for prec, a in doc["agreements"].items():
        verdict = "reference" if prec == "fp32" else (
            "within budget" if a["within_budget"] else f"excluded: {a['note']}")
        lines.append(f"  {prec:<11}{_pct(a['synthetic']):<11}{_pct(a['real']):<13}{verdict}")
    when = "cached" if doc["cached"] else "measured now"
    lines.append(f"auto         chose {doc['chosen']}: {doc['reason']} (timings {when} in "
                 f"{doc['cache_file']})")
    for c in doc["candidates"]:
        mps = f"{c['mp_per_s']:6.2f} MP/s" if c["mp_per_s"] else " " * 11
        lines.append(f"  {c['device'] + '/' + c['precision']:<20}{mps}  {c['status']}"
                     f"{': ' + c['note'] if c['note'] else ''}")
    return lines
