"""lulc_edge.errors: named exceptions a caller can catch; the CLI prints them as one line."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def one_line(exc: BaseException) -> str:
    """An exception's message (or its cause's, which rasterio hides GDAL's in) on one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None and "previous exception" in text:
        text = " ".join(str(cause).split()) or text
    return text


class LulcEdgeError(Exception):
    """Base class of every error lulc-edge raises on purpose."""


class InputError(LulcEdgeError):
    """An input scene, folder or product cannot be used (missing, unreadable, wrong bands...)."""


class MissingSCLError(InputError):
    """The input has no usable SCL band and no --scl-fill was given."""


class ModelError(LulcEdgeError):
    """The ONNX model is missing, corrupt, or does not follow the lulc-edge contract."""


class OutputError(LulcEdgeError):
    """The output cannot be written (exists, unwritable, same as input...)."""


class BackendError(LulcEdgeError):
    """An execution provider or backend is unavailable or failed to initialise."""


class PrecisionError(BackendError):
    """The requested precision cannot be served by the backend or this CPU."""


class LulcEdgeWarning(UserWarning):
    """Base class of lulc-edge warnings (no CRS, SCL filled, provider fallback...)."""
