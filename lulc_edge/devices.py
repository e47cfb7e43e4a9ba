"""lulc_edge.devices: the device and precision words, and what this machine can run.

Devices are the four backends (``cpu``, ``cuda``, ``openvino``, ``openvino-ep``, see
:mod:`lulc_edge.backends`) plus ``auto``; precisions are ``fp32``, ``bf16``, ``fp16``, ``int8``
plus ``auto``. What is installed and what the CPU supports decides which pairs can run here.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from ._ort import ort
from .errors import BackendError

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


def default_cache_dir() -> Path:
    """``$LULC_EDGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/lulc-edge``, else ``~/.cache/lulc-edge``
    (read at each call, so a process may change it)."""
    env = os.environ.get("LULC_EDGE_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lulc-edge"
