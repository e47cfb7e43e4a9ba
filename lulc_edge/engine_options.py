"""lulc_edge.engine_options: how an :class:`~lulc_edge.engine.Engine` runs the model (one
frozen, typed value read by the engine, its backends and ``auto``)."""

from __future__ import annotations

from dataclasses import dataclass

from .budget import DEFAULT_MIN_AGREEMENT


@dataclass(frozen=True)
class EngineOptions:
    """How to run the model.

    ``device``: auto | cpu | cuda | openvino | openvino-ep. ``precision``: auto | fp32 | bf16 |
    fp16 | int8 (the library default is fp32: the same pixels on every machine, no timing step;
    the CLI defaults to auto). ``min_agreement``: accuracy budget of ``precision="auto"``, which
    admits a precision whose lowest stored argmax agreement with fp32 (synthetic and real
    scenes) meets it.
    ``openvino_cache_dir``: where OpenVINO keeps compiled models ("" disables; None: the lulc-edge
    cache dir).
    """

    device: str = "auto"
    threads: int | None = None
    precision: str = "fp32"
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    cuda_device_id: int = 0
    openvino_device_type: str = "CPU"
    openvino_cache_dir: str | None = None
