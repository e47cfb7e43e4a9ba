"""lulc_edge.stitch: run the graph on tiles and keep what each tile decides (its core)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .engine import Engine
from .tiling import Tile


@dataclass
class Prediction:
    """What the model decided for an area (a tile's core, or a whole array given to
    ``Segmenter.predict``): class map (H, W) uint8, 255 = nodata; confidence and
    probabilities when asked for."""

    classes: np.ndarray
    confidence: np.ndarray | None = None
    probabilities: np.ndarray | None = None

    def arrays(self) -> list[np.ndarray]:
        return [a for a in (self.classes, self.confidence, self.probabilities) if a is not None]

    @classmethod
    def from_bytes(cls, payload: bytes, tile: Tile, outputs: tuple[str, ...],
                   n_classes: int) -> Prediction:
        """Rebuild a result from its journal record (see :meth:`arrays`)."""
        h, w = int(tile.core.height), int(tile.core.width)
        buf = memoryview(payload)
        classes = np.frombuffer(buf[: h * w], np.uint8).reshape(h, w)
        pos = h * w
        conf = probs = None
        if "confidence" in outputs:
            conf = np.frombuffer(buf[pos: pos + h * w], np.uint8).reshape(h, w)
            pos += h * w
        if "probabilities" in outputs and len(buf) > pos:
            probs = np.frombuffer(buf[pos:], np.float32).reshape(n_classes, h, w)
        return cls(classes, conf, probs)


def _want(outputs: tuple[str, ...], name: str, arr: np.ndarray) -> np.ndarray | None:
    return arr if name in outputs else None


def infer_seamless(engine: Engine, group: list[Tile], bands: np.ndarray,
                   outputs: tuple[str, ...]) -> list[Prediction]:
    """One graph run over a batch of same-shaped read blocks; crop each tile's core."""
    got = dict(zip(outputs, engine.run(bands, outputs), strict=True))
    results = []
    for i, t in enumerate(group):
        rs, cs = t.core_in_read
        results.append(Prediction(
            classes=got["class"][i, rs, cs],
            confidence=got["confidence"][i, rs, cs] if "confidence" in got else None,
            probabilities=got["probabilities"][i, :, rs, cs] if "probabilities" in got else None,
        ))
    return results


def infer_windows(engine: Engine, tile: Tile, bands: np.ndarray, outputs: tuple[str, ...],
                  batch: int) -> Prediction:
    """The original app's method, batched: average probabilities of all covering windows.

    Windows run in a fixed order and each pixel sums the same windows whatever the tiling, so
    results are independent of the tile size. Nodata comes from the graph's class output.
    """
    size = engine.contract.window_size
    n_classes = engine.contract.n_classes
    nodata = engine.contract.nodata.value
    h, w = tile.read_shape
    acc = np.zeros((n_classes, h, w), np.float32)
    hits = np.zeros((h, w), np.float32)
    empty = np.zeros((h, w), bool)
    wins = tile.windows
    for b0 in range(0, len(wins), batch):
        chunk = wins[b0: b0 + batch]
        x = np.stack([bands[:, y: y + size, c: c + size] for y, c in chunk])
        classes, probs = engine.run(x, ("class", "probabilities"))
        for (y, c), cl, pr in zip(chunk, classes, probs, strict=True):
            acc[:, y: y + size, c: c + size] += pr
            hits[y: y + size, c: c + size] += 1.0
            empty[y: y + size, c: c + size] |= cl == nodata
    rs, cs = tile.core_in_read
    mean = acc[:, rs, cs] / hits[rs, cs]
    classes = mean.argmax(axis=0).astype(np.uint8)
    top = mean.max(axis=0)
    is_nodata = empty[rs, cs]
    classes[is_nodata] = nodata
    conf = None
    if "confidence" in outputs:
        conf = np.rint(top * 255.0).astype(np.uint8)
        conf[is_nodata] = 0
    return Prediction(classes, conf, _want(outputs, "probabilities", mean))
