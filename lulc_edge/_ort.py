"""lulc_edge._ort: onnxruntime, imported with the C-level stderr muted.

While it is imported, onnxruntime's telemetry prints an ANSI-coloured "Failed to persist
telemetry device ID" line straight to file descriptor 2 whenever $HOME is not writable: raw
chatter ahead of every message of ours. Python warnings raised by the import are kept and shown
after it.
"""

from __future__ import annotations

import os
import sys
import warnings
from types import ModuleType


def _import_quietly() -> ModuleType:
    if "onnxruntime" in sys.modules:
        return sys.modules["onnxruntime"]
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no fd 2 at all: nothing to mute
        import onnxruntime

        return onnxruntime
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        with warnings.catch_warnings(record=True) as caught:
            os.dup2(devnull, 2)
            import onnxruntime
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return onnxruntime


ort = _import_quietly()
