"""lulc_edge.engine: one loaded model on one backend and precision, chosen or measured.

``Engine(model, EngineOptions(device=..., precision=...))`` resolves the device word (``auto``,
``cpu``, ``cuda``, ``openvino``, ``openvino-ep``) and the precision word (``auto``, ``fp32``,
``bf16``, ``fp16``, ``int8``) to one backend of :mod:`lulc_edge.backends`; ``auto`` in either is
settled by :mod:`lulc_edge.autotune` (fastest pair within the accuracy budget, cached).
"""

from __future__ import annotations

import os
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .autotune import AutoModel, Selection, select
from .backends import Backend, open_backend
from .contract import Contract, contract_from_session, file_sha256, read_metadata
from .devices import (
    DEVICES,
    PRECISION_CHOICES,
    PRECISIONS,
    PROVIDERS,
    available_devices,
    default_cache_dir,
    resolve_device,
)
from .engine_options import EngineOptions
from .errors import LulcEdgeError, ModelError, PrecisionError
from .ort_backend import OrtBackend, metadata_session
from .precisions import check_precision, variant_path

__all__ = [
    "DEVICES", "PRECISIONS", "PRECISION_CHOICES", "PROVIDERS", "Engine", "EngineOptions",
    "available_devices", "bundled_model", "default_threads",
]

DEMO_MODEL = "demo-unet.onnx"
#: CUDA's core tile edge and tiles (64x64 windows) per call. Measured on an H200
#: (docs/backends.md): one 1024 px tile a call beats batches of tiles (batch 8 of 512 px ran
#: 30 % slower than batch 1); windows are tiny, so they go 256 a call.
CUDA_TILE = {"seamless": 1024, "window": 512}
CUDA_BATCH = {"seamless": 1, "window": 256}


def bundled_model(name: str = DEMO_MODEL) -> Path:
    """Path of a model shipped inside the package."""
    return Path(str(resources.files("lulc_edge") / "models" / name))


def load_contract(path: Path) -> Contract:
    """A model file's contract, read from its metadata without building a backend."""
    return contract_from_session(metadata_session(path), str(path), file_sha256(path))


def default_threads() -> int:
    """Threads for inference: the CPUs this process may use (cgroup/affinity aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _ov_cache(options: EngineOptions) -> EngineOptions:
    if options.openvino_cache_dir is not None:
        return options
    return replace(options, openvino_cache_dir=str(default_cache_dir() / "openvino"))


class Engine:
    """A loaded model: its contract and one backend, safe to share between threads.

    Attributes: ``path`` (the model file actually run: the int8 sibling for int8, the fp16 one
    for fp16 on CUDA), ``device``
    (the concrete backend), ``precision``, ``threads``, ``contract``, ``selection`` (what auto
    measured and chose, or None when nothing was automatic).
    """

    def __init__(self, model: str | os.PathLike | None = None,
                 options: EngineOptions | None = None) -> None:
        self.options = _ov_cache(options or EngineOptions())
        base = Path(model) if model is not None else bundled_model()
        if not base.is_file():
            raise ModelError(f"{base}: model file not found")
        self.base_path = base
        self._bundled = base.resolve() == bundled_model().resolve()
        self.threads = self.options.threads or default_threads()
        opts = self.options
        if opts.device not in DEVICES:
            resolve_device(opts.device)  # raises the one-line BackendError
        if opts.precision not in PRECISION_CHOICES:
            raise PrecisionError(f"unknown precision {opts.precision!r}; choose one of "
                                 f"{', '.join(PRECISION_CHOICES)}")
        self.base_contract = load_contract(base)
        self.selection: Selection | None = None
        if opts.device == "auto" or opts.precision == "auto":
            model_facts = AutoModel(self.base_contract.sha256, self._accuracy(),
                                    self._missing_variants())
            self.selection = select(opts, self.threads, model_facts, self._build)
            backend = self.selection.backend
        else:
            device = resolve_device(opts.device)
            backend = self._build(device, opts.precision)
        assert backend is not None
        self._backend: Backend = backend
        self.device: str = backend.device
        self.precision: str = backend.precision
        self.path: Path = Path(backend.path)
        if self.path == base:
            self.contract: Contract = self.base_contract
        else:
            self.contract = load_contract(self.path)

    def _accuracy(self) -> dict[str, list[Any]]:
        """Every agreement stored per precision: the model's ``lulc_edge.accuracy`` entries and,
        for int8 and fp16, the sibling files' own (their export gates store them); auto weighs
        the lowest of them all."""
        out: dict[str, list[Any]] = {}
        acc = self.base_contract.metadata.get("accuracy")
        for prec, entry in (acc.items() if isinstance(acc, dict) else ()):
            out[prec] = [entry]
        if self.base_contract.precision != "fp32":
            return out
        for prec in ("int8", "fp16"):
            try:
                path = variant_path(self.base_path, prec, "fp32", self._bundled, "cuda")
                entry = read_metadata(metadata_session(path)).get("accuracy")
            except LulcEdgeError:
                continue
            if isinstance(entry, dict) and prec in entry:
                out.setdefault(prec, []).append(entry[prec])
        return out

    def _missing_variants(self) -> dict[str, str]:
        """Precisions whose model file is missing here, with the reason (for auto's table)."""
        out = {}
        for prec in PRECISIONS:
            try:
                variant_path(self.base_path, prec, self.base_contract.precision, self._bundled)
            except PrecisionError as exc:
                out[prec] = str(exc)
        return out

    def _build(self, device: str, precision: str) -> Backend:
        """Open ``device`` (concrete) at ``precision``: checks, model variant, backend."""
        check_precision(device, precision, self.options.openvino_device_type)
        path = variant_path(self.base_path, precision, self.base_contract.precision,
                            self._bundled, device)
        return open_backend(path, device, precision, self.options, self.threads)

    @property
    def session(self) -> Any:
        """The onnxruntime session of onnxruntime backends (None on OpenVINO's runtime)."""
        return self._backend.session if isinstance(self._backend, OrtBackend) else None

    def prepare(self, sizes: list[tuple[int, int]]) -> None:
        """Tell the backend the block sizes a run will feed, most frequent first (OpenVINO
        compiles static-shape models for the first ones; other backends ignore it)."""
        self._backend.prepare(sizes)

    @property
    def in_flight(self) -> int:
        """Blocks worth running at once from different threads (OpenVINO's CPU streams: 2)."""
        return int(self._backend.in_flight)

    def run(self, bands: np.ndarray, outputs: tuple[str, ...] = ("class",)) -> list[np.ndarray]:
        """Run the end-to-end graph on raw bands (N, 13, H, W) uint16; returns the named outputs."""
        return self._backend.run(bands, outputs)
