"""lulc_edge.precisions: which model file serves a precision, and whether a device runs it here.

bf16 and fp16 are inference-precision hints on OpenVINO (the CPU must support them), fp16 on
CUDA is an fp16 model file beside the fp32 one, int8 is always the quantized model file.
"""

from __future__ import annotations

from pathlib import Path

from .devices import (
    CPU_FLAGS,
    PRECISION_CHOICES,
    PRECISIONS,
    cpu_info,
    cpu_supports,
    openvino_capabilities,
)
from .errors import PrecisionError


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


def check_precision(device: str, precision: str, ov_device: str = "CPU") -> None:
    """Raise PrecisionError when ``device`` (concrete) cannot run ``precision`` here
    (``ov_device``: OpenVINO's device type, CPU, GPU or NPU)."""
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
    ov_device = ov_device.upper()
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
