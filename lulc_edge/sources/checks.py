"""Checks of an input made at open time: data types, sample windows, the SCL band."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import InputError, MissingSCLError
from .radiometry import Radiometry, invalid

#: SCL classes are 0..11 (ESA L2A product specification).
SCL_MAX = 11
#: The --scl-fill an error about a missing SCL suggests: vegetation, as benchmarks/parity.py and
#: the real-data tests run L1C and BigEarthNet scenes.
SUGGESTED_SCL_FILL = 4
INT_OK = {"uint16", "int16", "uint32", "int32", "int64", "uint64"}
FLOAT = {"float16", "float32", "float64"}

Samples = list[dict[str, np.ndarray]]


def check_dtype(dtype: str, label: str, band: str) -> None:
    """InputError for a data type that cannot hold Sentinel-2 digital numbers."""
    if dtype in INT_OK or dtype in FLOAT:
        return
    if dtype == "uint8" and band == "SCL":
        return
    hint = (": 8-bit data cannot hold Sentinel-2 digital numbers (a visual/TCI product?)"
            if dtype == "uint8" else "")
    raise InputError(f"{label}: unsupported data type {dtype} for band {band}{hint}; "
                     "expected integer digital numbers (uint16)")


def check_scl(label: str, scl: np.ndarray, hint: str) -> str | None:
    """Refuse a sample of SCL values (on valid pixels) that no SCL band holds: values outside
    the classes 0..11, or not whole numbers: another band in its place, which would give a
    wrong map without a word. Returns why the band is unusable (0 everywhere), else None."""
    if scl.dtype.kind == "f":
        scl = scl[np.isfinite(scl)]
    if not scl.size:
        return None
    lo, hi = float(scl.min()), float(scl.max())
    odd = scl.dtype.kind == "f" and not np.array_equal(scl, np.rint(scl))
    if lo < 0 or hi > SCL_MAX or odd:
        what = "values that are not whole numbers" if odd else f"values {lo:.6g}..{hi:.6g}"
        raise InputError(f"{label}: the band used as SCL has {what}, but SCL classes are "
                         f"0..{SCL_MAX} ({hint})")
    return None if hi else "its SCL band is 0 on every valid pixel sampled"


def check_floats(label: str, samples: Samples, refl: Sequence[str]) -> None:
    """Float inputs must hold digital numbers: integral, the largest above 1."""
    vals = [s[b][np.isfinite(s[b])] for s in samples for b in refl]
    vals = np.concatenate([v.ravel() for v in vals]) if vals else np.zeros(0)
    if vals.size and (vals.max() <= 1.0 or not np.all(vals == np.rint(vals))):
        raise InputError(
            f"{label}: floating-point values (max {vals.max():.4g}) are not digital "
            "numbers; expected integral Sentinel-2 DN (reflectance * 10000), e.g. uint16"
        )


def valid_masks(samples: Samples, refl: Sequence[str], rad: Radiometry) -> list[np.ndarray]:
    """Per sample: pixels with data (not nodata, not 0 in every reflectance band)."""
    return [~invalid(s, refl, rad) & np.any([s[b] != 0 for b in refl], axis=0)
            for s in samples]


def check_range(label: str, samples: Samples, valid: list[np.ndarray],
                refl: Sequence[str]) -> str | None:
    """Refuse reflectance beyond 65535 (it would be clipped: not Sentinel-2 DN); a warning
    about negative values (taken as 0), naming the bands. Judged on the sample windows."""
    negative: dict[str, float] = {}
    for b in refl:
        vals = [s[b][v] for s, v in zip(samples, valid, strict=True) if v.any()]
        if not vals or vals[0].dtype == np.uint16:
            continue
        top = max(float(np.nanmax(v)) for v in vals)
        low = min(float(np.nanmin(v)) for v in vals)
        if top > 65535:
            raise InputError(
                f"{label}: band {b} has values up to {top:.6g}, outside Sentinel-2's "
                "digital numbers (0..65535, reflectance * 10000): another product or scale?")
        if low < 0:
            negative[b] = low
    if not negative:
        return None
    which = (f"all {len(negative)} reflectance bands" if len(negative) == len(refl)
             else ("bands " if len(negative) > 1 else "band ") + ", ".join(negative))
    return (f"{label}: negative values in {which} (down to {min(negative.values()):.6g}); "
            "they are taken as 0")


def scl_fill(label: str, reason: str, fill: int | None, level: str | None
             ) -> tuple[int, Mapping[str, str], str]:
    """For an input without usable SCL (``reason``): the fill, its tags and its warning;
    MissingSCLError when no ``fill`` was given."""
    if fill is None:
        lvl = f" ({level})" if level else ""
        todo = "add the product's SCL file" if level == "L2A" else "use L2A input with SCL"
        raise MissingSCLError(
            f"{label}: no usable SCL{lvl}: {reason}; the model takes SCL as "
            f"an input channel: {todo}, or run with --scl-fill {SUGGESTED_SCL_FILL} (SCL "
            "class 4, vegetation, the fill this project's checks of scenes without SCL use; "
            f"any class 0..{SCL_MAX} is accepted)"
        )
    if not 0 <= int(fill) <= 65535:
        raise InputError(f"--scl-fill {fill}: must be an SCL class 0..{SCL_MAX}")
    tags = {"SCL_SOURCE": f"filled with {fill} (--scl-fill): {reason}", "SCL_FILL": str(fill)}
    return int(fill), tags, (f"{label}: SCL filled with {fill} ({reason}); the model was "
                             "trained on real SCL, results may differ")
