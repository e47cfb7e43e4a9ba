"""lulc_edge.engine: one onnxruntime session per model, execution providers and batched runs."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .contract import INPUT_NAME, Contract, contract_from_session, file_sha256
from .errors import BackendError, LulcEdgeWarning, ModelError

#: Execution providers by the device names users type.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
#: Preference order of ``--device auto``.
AUTO_ORDER = ("cuda", "openvino", "cpu")
DEVICES = ("auto", *PROVIDERS)

DEMO_MODEL = "demo-unet.onnx"
DEMO_MODEL_INT8 = "demo-unet-int8.onnx"


def bundled_model(name: str = DEMO_MODEL) -> Path:
    """Path of a model shipped inside the package."""
    return Path(str(resources.files("lulc_edge") / "models" / name))


def available_devices() -> list[str]:
    """Device names whose onnxruntime provider is installed here."""
    have = set(ort.get_available_providers())
    return [d for d in PROVIDERS if PROVIDERS[d] in have]


def default_threads() -> int:
    """Threads for inference: the CPUs this process may use (cgroup/affinity aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class EngineOptions:
    """How to run the model: device (provider), threads, and provider tuning."""

    device: str = "auto"
    threads: int | None = None
    cuda_device_id: int = 0
    openvino_device_type: str = "CPU"
    openvino_precision: str | None = None
    openvino_cache_dir: str | None = None


def _provider_entry(device: str, options: EngineOptions, threads: int) -> tuple[str, dict]:
    if device == "cuda":
        return PROVIDERS["cuda"], {
            "device_id": options.cuda_device_id,
            "cudnn_conv_algo_search": "HEURISTIC",
            "arena_extend_strategy": "kSameAsRequested",
        }
    if device == "openvino":
        opts: dict[str, str] = {"device_type": options.openvino_device_type,
                                "num_of_threads": str(threads)}
        if options.openvino_precision:
            opts["precision"] = options.openvino_precision
        if options.openvino_cache_dir:
            opts["cache_dir"] = options.openvino_cache_dir
        return PROVIDERS["openvino"], opts
    return PROVIDERS["cpu"], {}


class Engine:
    """A loaded model: its contract and one onnxruntime session, safe to share between threads."""

    def __init__(self, model: str | os.PathLike | None = None,
                 options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()
        self.path = Path(model) if model is not None else bundled_model()
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        threads = self.options.threads or default_threads()
        self.threads = threads
        self.device, self.session = self._open(threads)
        self.contract: Contract = contract_from_session(
            self.session, str(self.path), file_sha256(self.path)
        )

    def _candidates(self) -> list[str]:
        device = self.options.device
        if device not in DEVICES:
            raise BackendError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
        have = available_devices()
        if device == "auto":
            return [d for d in AUTO_ORDER if d in have]
        if device not in have:
            raise BackendError(
                f"device {device!r} needs {PROVIDERS[device]}, which this onnxruntime does not "
                f"have (available: {', '.join(have)}); see the README for installing it"
            )
        return [device]

    def _session_options(self, threads: int) -> ort.SessionOptions:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        return so

    def _open(self, threads: int) -> tuple[str, ort.InferenceSession]:
        errors: list[str] = []
        for device in self._candidates():
            providers = [_provider_entry(device, self.options, threads)]
            if device != "cpu":
                providers.append(_provider_entry("cpu", self.options, threads))
            try:
                session = ort.InferenceSession(
                    str(self.path), sess_options=self._session_options(threads),
                    providers=[p for p, _ in providers],
                    provider_options=[o for _, o in providers],
                )
            except Exception as exc:  # onnxruntime raises several unrelated types
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                if "INVALID_PROTOBUF" in str(exc) or "Protobuf parsing failed" in str(exc):
                    raise ModelError(f"{self.path}: not a valid ONNX model ({msg})") from None
                if device == "cpu":
                    raise ModelError(f"{self.path}: cannot load model ({msg})") from None
                errors.append(f"{device}: {msg}")
                continue
            if PROVIDERS[device] not in session.get_providers():
                errors.append(f"{device}: provider failed to initialise")
                if self.options.device != "auto":
                    raise BackendError(
                        f"{self.path}: {PROVIDERS[device]} failed to initialise; "
                        "use --device cpu or --device auto"
                    )
                continue
            if errors:
                warnings.warn(
                    f"falling back to {device}: {'; '.join(errors)}", LulcEdgeWarning, stacklevel=3
                )
            return device, session
        raise BackendError(f"{self.path}: no usable execution provider ({'; '.join(errors)})")

    def run(self, bands: np.ndarray, outputs: tuple[str, ...] = ("class",)) -> list[np.ndarray]:
        """Run the end-to-end graph on raw bands (N, 13, H, W) uint16; returns the named outputs."""
        try:
            return self.session.run(list(outputs), {INPUT_NAME: bands})
        except Exception as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: inference failed ({msg})") from None
