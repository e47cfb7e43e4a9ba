"""lulc_edge.progress: a small progress line on stderr (tiles done, MP/s), quiet when not a TTY."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts units and megapixels; redraws at most a few times a second."""

    def __init__(self, total: int, label: str, enabled: bool | None = None,
                 stream: TextIO | None = None, unit: str = "tiles") -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.label, self.unit = total, label, unit
        self.done = 0
        self.pixels = 0
        self.t0 = time.perf_counter()
        self._last = 0.0

    def update(self, n: int = 1, pixels: int = 0) -> None:
        self.done += n
        self.pixels += pixels
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.25 or self.done >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.t0, 1e-9)
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * 24)
        mps = self.pixels / elapsed / 1e6
        eta = (elapsed / frac - elapsed) if frac > 0 else 0.0
        self.stream.write(
            f"\r{self.label} [{bar:<24}] {self.done}/{self.total} {self.unit} "
            f"{mps:.2f} MP/s eta {eta:.0f}s "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()
