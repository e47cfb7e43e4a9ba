"""Raw band values -> the model's uint16: a frozen ``Radiometry`` and pure functions.

Nodata pixels (a band's declared nodata, NaN, or 0 in per-band products) are 0 in all bands;
the additive BOA offset is removed (0 stays 0, results floored at 0); floats are rounded,
integers clipped to 0..65535; SCL is read, or filled where any reflectance band has data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Radiometry:
    """How one source's raw values become model input."""

    #: additive offset, one for all bands or per band (missing bands: 0)
    offset: int | Mapping[str, int] = 0
    #: SCL class written where the input has no usable SCL (None: the SCL band is read)
    scl_fill: int | None = None
    #: declared nodata value per band
    nodata: Mapping[str, float | None] = field(default_factory=dict)
    #: 0 in any reflectance band is nodata (Sentinel-2 per-band products' NO_DATA value)
    zero_is_nodata: bool = False

    def offset_of(self, band: str) -> int:
        return self.offset.get(band, 0) if isinstance(self.offset, Mapping) else self.offset


def invalid(raw: Mapping[str, np.ndarray], refl: Sequence[str], rad: Radiometry) -> np.ndarray:
    """Pixels that are nodata in any of the reflectance bands ``refl``."""
    bad = np.zeros(raw[refl[0]].shape, bool)
    for b in refl:
        a = raw[b]
        nd = rad.nodata.get(b)
        if nd is not None and not np.isnan(nd) and not (nd == 0 and rad.zero_is_nodata):
            bad |= a == nd
        if a.dtype.kind == "f":
            bad |= ~np.isfinite(a)
        if rad.zero_is_nodata:
            bad |= a == 0
    return bad


def to_u16(a: np.ndarray) -> np.ndarray:
    """Floats rounded (NaN, inf -> 0), integers clipped to 0..65535."""
    if a.dtype == np.uint16:
        return a
    if a.dtype.kind == "f":
        a = np.nan_to_num(np.rint(a), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(a, 0, 65535).astype(np.uint16)


def to_model(raw: Mapping[str, np.ndarray], band_names: Sequence[str], rad: Radiometry
             ) -> np.ndarray:
    """``(len(band_names), h, w)`` uint16 from native-dtype arrays keyed by band."""
    refl = [b for b in band_names if b != "SCL"]
    bad = invalid(raw, refl, rad)
    shape = bad.shape
    out = np.zeros((len(band_names), *shape), np.uint16)
    minus: dict[int, np.ndarray] = {}  # an array operand: numpy's scalar loops are slower
    for i, b in enumerate(band_names):
        if b == "SCL":
            continue
        v = to_u16(raw[b])
        off = rad.offset_of(b)
        if off < 0:  # v + off floored at 0 (0 stays 0): max(v, -off) + off, in uint16
            c = minus.get(off)
            if c is None:
                c = minus[off] = np.full(shape, -off, np.uint16)
            np.maximum(v, c, out=out[i])
            np.subtract(out[i], c, out=out[i])
        elif off:
            out[i] = np.where(v > 0, np.clip(v.astype(np.int32) + off, 0, 65535), 0)
        else:
            out[i] = v
    if "SCL" in band_names:
        i = list(band_names).index("SCL")
        if rad.scl_fill is not None:
            has_data = np.zeros(shape, bool)
            for b in refl:
                has_data |= raw[b] != 0
            out[i] = np.where(has_data, rad.scl_fill, 0)
        else:
            out[i] = to_u16(raw["SCL"])
    if bad.any():  # one multiply over the bands: far cheaper than a boolean index
        np.multiply(out, ~bad, out=out)
    return out
