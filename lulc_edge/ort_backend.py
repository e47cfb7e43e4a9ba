"""lulc_edge.ort_backend: the onnxruntime backends (``cpu``, ``cuda``, ``openvino-ep``): one
session on one execution provider, with the provider options each needs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ._ort import ort
from .contract import INPUT_NAME
from .devices import OV_HINT, PROVIDERS
from .engine_options import EngineOptions
from .errors import BackendError, ModelError, first_line


def session_options(threads: int, optimize: bool = True) -> ort.SessionOptions:
    """Sequential execution on ``threads`` intra-op threads, quiet logs."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.log_severity_level = 3
    # no busy-waiting between kernels: same speed on an idle machine, less CPU (and power)
    # wasted, and faster when the reader/writer threads or other processes need the cores
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def load_session(path: Path, providers: list[tuple[str, dict]], threads: int,
                 optimize: bool = True) -> ort.InferenceSession:
    """An onnxruntime session, ModelError for files that are not (valid) ONNX models."""
    if providers[0][0] == PROVIDERS["cuda"]:
        # onnxruntime-gpu 1.31 warns "No registered plugin EP device found" through its
        # process-wide logger on every CUDA session, before session options apply.
        ort.set_default_logger_severity(3)
    try:
        return ort.InferenceSession(
            str(path), sess_options=session_options(threads, optimize),
            providers=[p for p, _ in providers], provider_options=[o for _, o in providers],
        )
    except Exception as exc:  # onnxruntime raises several unrelated types
        text = str(exc)
        if "INVALID_PROTOBUF" in text or "Protobuf parsing failed" in text or \
                providers[0][0] == PROVIDERS["cpu"]:
            raise ModelError(f"{path}: cannot load model ({first_line(exc)})") from None
        raise BackendError(f"{path}: {providers[0][0]} failed ({first_line(exc)})") from None


def metadata_session(path: Path) -> ort.InferenceSession:
    """A cheap CPU session used only to read the model's inputs, outputs and metadata."""
    return load_session(path, [(PROVIDERS["cpu"], {})], 1, optimize=False)


def provider_entry(device: str, precision: str, options: EngineOptions, threads: int
                   ) -> tuple[str, dict]:
    """Provider name and provider options of a concrete onnxruntime backend."""
    if device == "cuda":
        return PROVIDERS["cuda"], {
            "device_id": str(options.cuda_device_id),
            # A seamless run feeds up to ~9 tile shapes (interior, edges, corners). Measured on
            # an H200 (docs/backends.md): EXHAUSTIVE costs 0.1-0.5 s per new shape for 2-8 %
            # over HEURISTIC (0.03 s) afterwards; DEFAULT runs at a third of the speed.
            "cudnn_conv_algo_search": "HEURISTIC",
            "cudnn_conv_use_max_workspace": "1",
            "arena_extend_strategy": "kSameAsRequested",
            "do_copy_in_default_stream": "1",
        }
    if device == "openvino-ep":
        ov_device = options.openvino_device_type
        opts: dict[str, str] = {"device_type": ov_device, "num_of_threads": str(threads),
                                "num_streams": "1"}
        cpu = ov_device.upper().startswith("CPU")
        # The EP's own `precision` option takes FP32/ACCURACY only on CPU (BF16 is refused and
        # the session silently falls back to the CPU provider): bf16/f16 go through load_config.
        opts["precision"] = "FP16" if (precision == "fp16" and not cpu) else "FP32"
        if cpu:
            opts["load_config"] = json.dumps(
                {ov_device.upper(): {"INFERENCE_PRECISION_HINT": OV_HINT[precision]}})
        if options.openvino_cache_dir:
            opts["cache_dir"] = options.openvino_cache_dir
        return PROVIDERS["openvino-ep"], opts
    return PROVIDERS["cpu"], {}


class OrtBackend:
    """One onnxruntime session on one execution provider; thread-safe. One call at a time uses
    every intra-op thread, so one block is in flight."""

    in_flight = 1

    def __init__(self, path: Path, device: str, precision: str, options: EngineOptions,
                 threads: int) -> None:
        self.path, self.device, self.precision = path, device, precision
        providers = [provider_entry(device, precision, options, threads)]
        #: the provider options passed (onnxruntime does not report the EPs' back)
        self.provider_options = dict(providers[0][1])
        if device != "cpu":
            providers.append(provider_entry("cpu", precision, options, threads))
        self.session = load_session(path, providers, threads)
        if PROVIDERS[device] not in self.session.get_providers():
            shown = ", ".join(f"{k}={v}" for k, v in self.provider_options.items()
                              if k in ("device_type", "device_id", "precision"))
            raise BackendError(
                f"{path}: {PROVIDERS[device]} ({shown}) failed to initialise (check its provider "
                "options and drivers); use --device cpu or --device auto"
            )

    def prepare(self, sizes: list[tuple[int, int]]) -> None:
        """onnxruntime needs no per-shape preparation."""

    def run(self, bands: np.ndarray, outputs: tuple[str, ...]) -> list[np.ndarray]:
        """Run the session; onnxruntime's errors become ModelError."""
        try:
            return self.session.run(list(outputs), {INPUT_NAME: bands})
        except Exception as exc:
            raise ModelError(f"{self.path}: inference failed ({first_line(exc)})") from None
