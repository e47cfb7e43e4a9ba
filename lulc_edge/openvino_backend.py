"""lulc_edge.openvino_backend: the ``openvino`` backend, OpenVINO's own runtime compiling one
static-shape model per block size."""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .contract import INPUT_NAME
from .devices import OV_HINT, openvino_core
from .engine_options import EngineOptions
from .errors import BackendError, ModelError, first_line


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

    def __init__(self, path: Path, precision: str, options: EngineOptions, threads: int
                 ) -> None:
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
        cache = options.openvino_cache_dir
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
