"""lulc_edge: TensorFlow-free, tiled ONNX inference of a Sentinel-2 land-cover U-Net."""

from .aoi import Area
from .compositing import CompositeOptions, CompositeResult, composite_file
from .engine import Engine, EngineOptions, bundled_model
from .errors import (
    BackendError,
    InputError,
    LulcEdgeError,
    LulcEdgeWarning,
    MissingSCLError,
    ModelError,
    OutputError,
    PrecisionError,
)
from .results import RunResult
from .runfile import segment_file
from .segmenter import Prediction, Segmenter
from .sources import SourceOptions, open_source
from .spec import RunOptions, RunSpec

__version__ = "0.1.0"

__all__ = [
    "Area",
    "BackendError",
    "CompositeOptions",
    "CompositeResult",
    "Engine",
    "EngineOptions",
    "InputError",
    "LulcEdgeError",
    "LulcEdgeWarning",
    "MissingSCLError",
    "ModelError",
    "OutputError",
    "Prediction",
    "PrecisionError",
    "RunOptions",
    "RunResult",
    "RunSpec",
    "Segmenter",
    "SourceOptions",
    "bundled_model",
    "composite_file",
    "open_source",
    "segment_file",
]
