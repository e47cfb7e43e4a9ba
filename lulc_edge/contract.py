"""lulc_edge.contract: the model contract, read from the ONNX file's metadata (docs/contract.md)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._ort import ort
from .errors import ModelError

PREFIX = "lulc_edge."
INPUT_NAME = "bands"
#: Band order of the model input (SCL sits between B9 and B11); exported models record theirs.
MODEL_BANDS: tuple[str, ...] = (
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "SCL", "B11", "B12",
)
OUTPUT_NAMES = ("class", "confidence", "probabilities")
EXPORT_HINT = "export one with: python export/to_onnx.py MODEL.h5 -o MODEL.onnx"


@dataclass(frozen=True)
class ClassInfo:
    """One output class: raster value, name and display colour."""

    value: int
    name: str
    color: str

    @property
    def rgb(self) -> tuple[int, int, int]:
        c = self.color.lstrip("#")
        return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


@dataclass(frozen=True)
class Contract:
    """What the runtime needs to know about a model; every fact comes from the file itself."""

    path: str
    sha256: str
    bands: tuple[str, ...]
    classes: tuple[ClassInfo, ...]
    nodata: ClassInfo
    alignment: int
    halo: int
    window_size: int
    window_stride: int
    precision: str
    metadata: dict[str, Any] = field(repr=False)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def demo(self) -> bool:
        return bool(self.metadata.get("weights", {}).get("demo", False))

    @property
    def trained_on(self) -> str:
        return str(self.metadata.get("weights", {}).get("trained_on", "unknown"))


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_metadata(session: ort.InferenceSession) -> dict[str, Any]:
    """The ``lulc_edge.*`` metadata of a session, keys without prefix, values JSON-decoded."""
    raw = session.get_modelmeta().custom_metadata_map
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith(PREFIX):
            try:
                out[key[len(PREFIX):]] = json.loads(value)
            except json.JSONDecodeError:
                out[key[len(PREFIX):]] = value
    return out


def check_io(session: ort.InferenceSession, path: str) -> None:
    """Refuse graphs that do not take the raw 13-band stack or lack the contract's outputs."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME or inputs[0].type != "tensor(uint16)":
        got = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
        raise ModelError(
            f"{path}: expected one input 'bands' uint16 (N, 13, H, W) with the raw bands, "
            f"got {got or 'no inputs'}; {EXPORT_HINT}"
        )
    shape = inputs[0].shape
    if len(shape) != 4:
        raise ModelError(f"{path}: input 'bands' must be 4-D (N, 13, H, W), got {shape}")
    outs = {o.name for o in session.get_outputs()}
    missing = [n for n in OUTPUT_NAMES if n not in outs]
    if missing:
        raise ModelError(
            f"{path}: graph lacks output(s) {', '.join(missing)} (has {', '.join(sorted(outs))}); "
            f"{EXPORT_HINT}"
        )


def contract_from_session(session: ort.InferenceSession, path: str, sha256: str) -> Contract:
    """Build the contract from a session's metadata, or raise ModelError naming what is missing."""
    check_io(session, path)
    meta = read_metadata(session)
    try:
        inp = meta["input"]
        classes = tuple(
            ClassInfo(int(c["value"]), str(c["name"]), str(c["color"])) for c in meta["classes"]
        )
        nd = meta["nodata"]
        nodata = ClassInfo(int(nd["value"]), str(nd.get("name", "Unclassified")),
                           str(nd.get("color", "#000000")))
        window = meta.get("window", {"size": 64, "stride": 32})
        contract = Contract(
            path=path,
            sha256=sha256,
            bands=tuple(inp["bands"]),
            classes=classes,
            nodata=nodata,
            alignment=int(meta["alignment"]),
            halo=int(meta["halo"]),
            window_size=int(window["size"]),
            window_stride=int(window["stride"]),
            precision=str(meta.get("precision", "fp32")),
            metadata=meta,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"{path}: lulc-edge metadata missing or malformed ({exc!r}); {EXPORT_HINT}"
        ) from None
    if contract.alignment <= 0 or contract.halo < 0 or contract.halo % contract.alignment:
        raise ModelError(f"{path}: invalid alignment/halo ({contract.alignment}/{contract.halo})")
    return contract
