"""lulc_edge.backends: the inference backends behind ``Engine``, and opening one.

Four backends run the same ONNX file and honour the same output contract (``class`` uint8 with
nodata 255, ``confidence`` uint8, ``probabilities`` float32):

* ``cpu``: onnxruntime's CPU execution provider (always there);
* ``cuda``: onnxruntime-gpu's CUDA execution provider (a separate environment);
* ``openvino``: OpenVINO's own runtime (the ``openvino`` package, installs beside onnxruntime);
* ``openvino-ep``: onnxruntime-openvino's OpenVINO execution provider (a separate environment).

The device and precision words and what this machine can run are in :mod:`lulc_edge.devices`,
model variants and precision checks in :mod:`lulc_edge.precisions`, the backends themselves in
:mod:`lulc_edge.ort_backend` and :mod:`lulc_edge.openvino_backend`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

# Re-exported for cli.py until it imports them from lulc_edge.devices.
from .engine_options import EngineOptions
from .openvino_backend import OpenVINOBackend
from .ort_backend import OrtBackend


class Backend(Protocol):
    """What ``Engine`` needs from a backend."""

    #: the model file it runs
    path: Path
    device: str
    precision: str
    #: blocks worth running at once (OpenVINO streams); the pipeline keeps this many in flight
    in_flight: int

    def run(self, bands: np.ndarray, outputs: tuple[str, ...]) -> list[np.ndarray]:
        """Run the graph on raw bands (N, 13, H, W) uint16; returns the named outputs."""
        ...

    def prepare(self, sizes: list[tuple[int, int]]) -> None:
        """Hint: the (H, W) block sizes a run will feed, most frequent first."""
        ...


def open_backend(path: Path, device: str, precision: str, options: EngineOptions,
                 threads: int) -> Backend:
    """Build a concrete backend (``device`` as returned by ``devices.resolve_device``)."""
    if device == "openvino":
        return OpenVINOBackend(path, precision, options, threads)
    return OrtBackend(path, device, precision, options, threads)
