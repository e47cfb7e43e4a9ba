"""lulc_edge.backends: the inference backends behind ``Engine``, their precisions and devices.

Four backends run the same ONNX file and honour the same output contract (``class`` uint8 with
nodata 255, ``confidence`` uint8, ``probabilities`` float32):

* ``cpu``: onnxruntime's CPU execution provider (always there);
* ``cuda``: onnxruntime-gpu's CUDA execution provider (a separate environment);
* ``openvino``: OpenVINO's own runtime (the ``openvino`` package, installs beside onnxruntime);
* ``openvino-ep``: onnxruntime-openvino's OpenVINO execution provider (a separate environment).

Precisions are the same words on every backend: ``fp32``, ``bf16``, ``fp16``, ``int8``. bf16 and
fp16 are inference-precision hints on OpenVINO (the CPU must support them), fp16 on CUDA is an
fp16 model file beside the fp32 one, int8 is always the quantized model file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import queue
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ._ort import ort
from .contract import INPUT_NAME
from .errors import BackendError, ModelError, PrecisionError, first_line

#: Concrete backends (what ``Engine.device`` reports) and the onnxruntime provider each uses.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino-ep": "OpenVINOExecutionProvider",
}
BACKENDS = ("cpu", "cuda", "openvino", "openvino-ep")
#: What users may type: a backend, ``auto``, or ``openvino`` (the runtime, else the EP).
DEVICES = ("auto", *BACKENDS)
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
PRECISION_CHOICES = ("auto", *PRECISIONS)
#: OpenVINO ``INFERENCE_PRECISION_HINT`` per precision (int8: the float remainder stays f32).
OV_HINT = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
#: x86/ARM CPU flags (from /proc/cpuinfo) that give a precision native speed.
CPU_FLAGS = {
    "bf16": ("avx512_bf16", "amx_bf16", "bf16"),
    "fp16": ("avx512_fp16", "amx_fp16", "asimdhp"),
}

INSTALL_HINT = {
    "cuda": "install onnxruntime-gpu in its own environment (docs/backends.md)",
    "openvino": "pip install 'lulc-edge[openvino]' (docs/backends.md)",
    "openvino-ep": "install onnxruntime-openvino in its own environment: .ci/openvino.sh",
}


class Backend(Protocol):
    """What ``Engine`` needs from a backend."""

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


# --------------------------------------------------------------------------- this machine
@lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """CPU model name and flags (Linux /proc/cpuinfo; elsewhere the platform's processor name)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware") and model in ("", platform.machine(),
                                                                   platform.processor()):
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:  # pragma: no cover - not Linux
        pass
    return {"model": model, "flags": sorted(flags), "arch": platform.machine()}


def cpu_supports(precision: str) -> bool:
    """Whether this CPU runs ``precision`` natively (fp32 and int8: always)."""
    if precision not in CPU_FLAGS:
        return True
    flags = set(cpu_info()["flags"])
    return any(f in flags for f in CPU_FLAGS[precision])


def openvino_runtime_available() -> bool:
    """Whether OpenVINO's own Python runtime (the ``openvino`` package) is importable."""
    return importlib.util.find_spec("openvino") is not None


def available_devices() -> list[str]:
    """Concrete backends usable here, in ``BACKENDS`` order."""
    have = set(ort.get_available_providers())
    out = []
    for name in BACKENDS:
        if name == "openvino":
            if openvino_runtime_available():
                out.append(name)
        elif PROVIDERS[name] in have:
            out.append(name)
    return out


def resolve_device(device: str) -> str:
    """A concrete backend for a device word other than ``auto``, or a one-line BackendError."""
    if device not in DEVICES:
        raise BackendError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    have = available_devices()
    if device == "openvino" and "openvino" not in have and "openvino-ep" in have:
        return "openvino-ep"
    if device not in have:
        what = "OpenVINO's runtime (the openvino package)" if device == "openvino" else (
            f"onnxruntime's {PROVIDERS[device]}")
        raise BackendError(
            f"device {device!r} needs {what}, which is not installed here "
            f"(available: {', '.join(have)}); {INSTALL_HINT[device]}"
        )
    return device


def versions() -> dict[str, str]:
    """Versions of the inference libraries that shape speed and results."""
    from . import __version__

    out = {"lulc_edge": __version__, "onnxruntime": ort.__version__}
    if openvino_runtime_available():
        try:
            import openvino

            out["openvino"] = openvino.get_version()
        except Exception as exc:  # noqa: BLE001 - a broken install is reported, not fatal
            out["openvino"] = f"broken ({type(exc).__name__})"
    return out


# --------------------------------------------------------------------------- model variants
def variant_path(base: Path, precision: str, base_precision: str, bundled: bool,
                 device: str | None = None) -> Path:
    """The model file that serves ``precision`` on ``device``: int8 (and fp16 on CUDA) are
    separate files.

    With the bundled model, int8 is ``demo-unet-int8.onnx`` and CUDA's fp16
    ``demo-unet-fp16.onnx``; with a user's ``NAME.onnx`` they are siblings ``NAME-int8.onnx``
    and ``NAME-fp16.onnx``. A model that is itself int8 (fp16) serves only int8 (fp16).
    """
    if base_precision in ("int8", "fp16"):
        if precision != base_precision:
            kind = "quantized (int8)" if base_precision == "int8" else "an fp16 model"
            raise PrecisionError(
                f"{base}: this model is {kind}; --precision {precision} needs the "
                "fp32 model it came from"
            )
        return base
    if precision == "fp16" and device == "cuda":
        tool = "export/to_fp16.py"
    elif precision == "int8":
        tool = "export/quantize.py"
    else:
        return base
    sibling = base.with_name(f"{base.stem}-{precision}{base.suffix}")
    if not sibling.is_file():
        where = (f"the package has no bundled {precision} model" if bundled
                 else f"no {sibling.name} beside it")
        raise PrecisionError(
            f"{base}: --precision {precision}{' on cuda' if precision == 'fp16' else ''} needs "
            f"its {precision} model ({where}); make one with {tool}, or choose --precision fp32"
        )
    return sibling


def check_precision(device: str, precision: str, options: Any) -> None:
    """Raise PrecisionError when ``device`` (concrete) cannot run ``precision`` here."""
    if precision not in PRECISIONS:
        raise PrecisionError(
            f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}"
        )
    if precision in ("fp32", "int8"):
        return
    if device == "cpu":
        raise PrecisionError(
            f"the onnxruntime CPU provider has no {precision} kernels for this model; use "
            f"--device openvino for {precision} on a CPU that has it, or --precision fp32/int8"
        )
    if device == "cuda":
        if precision == "bf16":
            raise PrecisionError("bf16 is not offered on cuda; use --precision fp16 or fp32")
        return
    ov_device = str(getattr(options, "openvino_device_type", "CPU")).upper()
    if precision == "fp16" and device.startswith("openvino") and ov_device.startswith("CPU") \
            and "amx_fp16" not in cpu_info()["flags"]:
        # Measured on a Sapphire Rapids Xeon (AVX512_FP16, no AMX-FP16): the CPU plugin accepts
        # the f16 hint and reports it, yet returns exactly the fp32 result: a silent fallback.
        raise PrecisionError(
            f"OpenVINO's CPU plugin does not run this model in fp16 on this CPU "
            f"({cpu_info()['model']}, no AMX-FP16): it would silently compute fp32; use "
            "--precision bf16 or int8 here, fp16 on a GPU"
        )
    if device == "openvino" and ov_device.startswith("CPU"):
        caps = openvino_capabilities("CPU")
        if precision.upper() not in caps:
            raise PrecisionError(
                f"OpenVINO's CPU plugin cannot run {precision} on this CPU "
                f"({cpu_info()['model']}; capabilities: {', '.join(sorted(caps))})"
            )
    elif device == "openvino-ep" and ov_device.startswith("CPU") and not cpu_supports(precision):
        raise PrecisionError(
            f"this CPU ({cpu_info()['model']}) has no native {precision} "
            f"(needs one of the CPU flags {', '.join(CPU_FLAGS[precision])})"
        )
    elif device.startswith("openvino") and ov_device.startswith(("GPU", "NPU")) \
            and precision == "bf16":
        raise PrecisionError(f"bf16 is not offered on OpenVINO {ov_device}; use fp16")


# --------------------------------------------------------------------------- onnxruntime
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


def provider_entry(device: str, precision: str, options: Any, threads: int) -> tuple[str, dict]:
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
        cache = getattr(options, "openvino_cache_dir", None)
        if cache:
            opts["cache_dir"] = str(cache)
        return PROVIDERS["openvino-ep"], opts
    return PROVIDERS["cpu"], {}


class OrtBackend:
    """One onnxruntime session on one execution provider; thread-safe. One call at a time uses
    every intra-op thread, so one block is in flight."""

    in_flight = 1

    def __init__(self, path: Path, device: str, precision: str, options: Any,
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


# --------------------------------------------------------------------------- OpenVINO runtime
_CORE: Any = None
_CORE_LOCK = threading.Lock()


def openvino_core() -> Any:
    """The process-wide ``openvino.Core`` (creating one costs ~100 ms and loads plugins)."""
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            import openvino

            _CORE = openvino.Core()
        return _CORE


@lru_cache(maxsize=8)
def openvino_capabilities(ov_device: str = "CPU") -> frozenset[str]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES of a device (e.g. FP32, BF16, FP16, INT8)."""
    if not openvino_runtime_available():
        return frozenset()
    try:
        return frozenset(str(c) for c in
                         openvino_core().get_property(ov_device, "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # noqa: BLE001 - no such device: nothing it can do
        return frozenset()


class _Compiled:
    """One compiled model, its output ports and a pool of infer requests."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.ports = {name: port for port in compiled.outputs for name in port.get_names()}
        self.requests: queue.SimpleQueue = queue.SimpleQueue()

    def infer(self, x: np.ndarray, outputs: tuple[str, ...]) -> list[np.ndarray]:
        try:
            request = self.requests.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            res = request.infer({INPUT_NAME: x}, share_inputs=True, share_outputs=False)
            return [res[self.ports[name]] for name in outputs]
        finally:
            self.requests.put(request)


class OpenVINOBackend:
    """The ONNX file compiled by OpenVINO's own runtime, one static-shape model per block size.

    Every block runs through a model compiled for exactly its (H, W): a static-shape model is
    about 1.4x faster than a dynamic one in bf16, and, measured here, static models of different
    sizes give bit-identical pixels while a dynamic one gives different numbers (bf16 max |dp|
    0.14). Never mixing the two makes the map a function of input, model, device and precision
    only, not of tile size, resume, call history or concurrency. Plans read one block shape
    (tiling.plan_seamless), so a run compiles one model; at most ``MAX_SHAPES`` are kept (each
    holds about 180 MB at 560 px), least recently used dropped. ``prepare`` compiles ahead.
    The ``bands`` input is declared float32 inside OpenVINO (uint16 values are exact in it; the
    CPU plugin refuses a static u16 input) and converted on the way in. Infer requests come from
    per-shape pools, so ``run`` is safe from several threads; ``in_flight`` blocks run at once
    on CPU streams.
    """

    device = "openvino"
    MAX_SHAPES = 2
    #: CPU streams, each running one block on its share of the threads, with as many blocks in
    #: flight: measured on 2 vCPUs (benchmarks/results/openvino-streams.md) 2 streams beat one
    #: stream of 2 threads in bf16, fp32 and int8 (what the THROUGHPUT hint also picks there).
    STREAMS = 2
    #: The shape compiled at start: checks that the model compiles and gives the precision hint.
    PROBE_SHAPE = (64, 64)

    def __init__(self, path: Path, precision: str, options: Any, threads: int) -> None:
        import openvino

        self.path, self.precision = path, precision
        self._core = openvino_core()
        self._ov_device = options.openvino_device_type
        cpu = self._ov_device.upper().startswith("CPU")
        self.in_flight = min(self.STREAMS, threads) if cpu else 1
        config: dict[str, Any] = {"NUM_STREAMS": self.in_flight}
        if cpu:
            config["INFERENCE_NUM_THREADS"] = threads
        config["INFERENCE_PRECISION_HINT"] = OV_HINT[precision]
        cache = getattr(options, "openvino_cache_dir", None)
        if cache:
            try:
                Path(cache).mkdir(parents=True, exist_ok=True)
                config["CACHE_DIR"] = str(cache)
            except OSError:  # an unwritable HOME costs compile time, not the run
                pass
        self._config = config
        try:
            model = self._core.read_model(str(path))
            param = model.get_parameters()[0]
            if param.get_element_type() == openvino.Type.u16:
                param.set_element_type(openvino.Type.f32)
                model.validate_nodes_and_infer_types()
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError for everything
            raise ModelError(f"{path}: OpenVINO cannot read the model ({first_line(exc)})") \
                from None
        self._model = model
        self._n_bands = param.get_partial_shape()[1].get_length()
        self._static: OrderedDict[tuple[int, int], _Compiled] = OrderedDict()
        self._lock = threading.Lock()
        probe = self._get(self.PROBE_SHAPE)
        # One inference before any concurrent use: two threads making openvino's first tensor
        # at once deadlock in its bindings' static initialisers (seen with 2 streams: both
        # stuck in __cxa_guard_acquire under InferRequest.infer).
        probe.infer(np.zeros((1, self._n_bands, *self.PROBE_SHAPE), np.float32), ())
        hint = probe.compiled.get_property("INFERENCE_PRECISION_HINT")
        #: the precision OpenVINO compiled for: f32, bf16, f16
        self.hint = hint.to_string() if hasattr(hint, "to_string") else str(hint)

    def _get(self, hw: tuple[int, int]) -> _Compiled:
        """The model compiled for blocks of ``hw`` (compiled now if not held)."""
        with self._lock:
            if hw in self._static:
                self._static.move_to_end(hw)
                return self._static[hw]
            model = self._model.clone()
            try:
                model.reshape({INPUT_NAME: [1, self._n_bands, *hw]})
                compiled = self._core.compile_model(model, self._ov_device, self._config)
            except Exception as exc:  # noqa: BLE001
                raise BackendError(
                    f"{self.path}: OpenVINO could not compile the model for {self._ov_device} "
                    f"at {hw[0]}x{hw[1]} ({first_line(exc)})"
                ) from None
            self._static[hw] = _Compiled(compiled)
            while len(self._static) > self.MAX_SHAPES:
                self._static.popitem(last=False)
            return self._static[hw]

    def prepare(self, sizes: list[tuple[int, int]]) -> None:
        """Compile the models for the first ``MAX_SHAPES`` block sizes ahead of the run."""
        for hw in reversed(sizes[: self.MAX_SHAPES]):  # the most frequent ends most recent
            self._get((int(hw[0]), int(hw[1])))

    def run(self, bands: np.ndarray, outputs: tuple[str, ...]) -> list[np.ndarray]:
        """Run one infer request of the shape's compiled model; copies the named outputs out."""
        x = np.ascontiguousarray(bands, dtype=np.float32)
        model = self._get((x.shape[2], x.shape[3]))
        try:
            if x.shape[0] == 1:
                return model.infer(x, outputs)
            parts = [model.infer(x[i: i + 1], outputs) for i in range(x.shape[0])]
            return [np.concatenate([p[k] for p in parts]) for k in range(len(outputs))]
        except KeyError as exc:
            raise ModelError(f"{self.path}: the model has no output {exc}") from None
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"{self.path}: inference failed ({first_line(exc)})") from None


def open_backend(path: Path, device: str, precision: str, options: Any,
                 threads: int) -> Backend:
    """Build a concrete backend (``device`` as returned by ``resolve_device``)."""
    if device == "openvino":
        return OpenVINOBackend(path, precision, options, threads)
    return OrtBackend(path, device, precision, options, threads)


def default_cache_dir() -> Path:
    """``$LULC_EDGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/lulc-edge``, else ``~/.cache/lulc-edge``."""
    env = os.environ.get("LULC_EDGE_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lulc-edge"
