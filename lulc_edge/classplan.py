"""lulc_edge.classplan: which evaluated class each map value and reference code stands for.

Reference codes become the map's classes through a mapping (``4=Water,...``), or are the map's
class values or names; a binary evaluation folds every other class into "not CLASS".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Reference target meaning "not the class" of a binary (--binary) evaluation.
REST = "rest"


def parse_classes(text: str | None) -> dict[str, str] | None:
    """``4=Water,1=Built-up_Area`` -> {"4": "Water", "1": "Built-up_Area"} (ValueError)."""
    if not text:
        return None
    out: dict[str, str] = {}
    for part in text.split(","):
        code, sep, name = part.partition("=")
        if not sep or not code.strip() or not name.strip():
            raise ValueError(f"expected CODE=CLASS pairs, got {part!r}")
        if code.strip() in out:
            raise ValueError(f"code {code.strip()} is given twice")
        out[code.strip()] = name.strip()
    return out


def code_key(value: Any) -> str:
    """A reference code as a comparable key: 4, 4.0 and "4" are "4"; names lower-cased."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value).strip().lower()


@dataclass(frozen=True)
class ClassPlan:
    """How map values and reference codes become the evaluated classes."""

    names: tuple[str, ...]
    map_lut: np.ndarray                 # map value 0..K-1 -> evaluated class
    ref: dict[str, int]                 # code_key(code) -> evaluated class

    def ref_index(self, code: Any) -> int:
        """Evaluated class of a reference code, -1 when it has none."""
        return self.ref.get(code_key(code), -1)


def class_plan(map_names: Sequence[str], mapping: dict[str, str] | None = None,
               binary: str | None = None) -> ClassPlan:
    """The evaluated classes: the map's, or ``binary`` and "not ``binary``" (every other map
    class). ``mapping`` gives the class of each reference code (a class name or value, or
    ``rest`` in a binary evaluation); without it codes are the map's values or names."""
    lookup = {n.lower(): i for i, n in enumerate(map_names)}
    lookup.update({str(i): i for i in range(len(map_names))})

    def model_class(name: str) -> int:
        if name.lower() not in lookup:
            raise ValueError(f"unknown class {name!r} (the map's classes: "
                             f"{', '.join(map_names)})")
        return lookup[name.lower()]

    k = len(map_names)
    if binary is None:
        names, collapse = tuple(map_names), np.arange(k)
    else:
        t = model_class(binary)
        names = (map_names[t], f"not {map_names[t]}")
        collapse = np.where(np.arange(k) == t, 0, 1)
    if mapping is None:
        ref = {key: int(collapse[i]) for key, i in lookup.items()}
    else:
        ref = {}
        for code, name in mapping.items():
            if binary is not None and name.lower() == REST:
                ref[code_key(code)] = 1
            else:
                ref[code_key(code)] = int(collapse[model_class(name)])
    return ClassPlan(names, collapse.astype(np.int64), ref)
