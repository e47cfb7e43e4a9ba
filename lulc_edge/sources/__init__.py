"""lulc_edge.sources: an input (a 13-band stack, a per-band folder, a .SAFE or .zip, a URL) as
one window reader, a :class:`Source`.

Openers (:mod:`.registry`) decide what an input string is; each kind lives in its own module
(:mod:`.stack`, :mod:`.folder`, :mod:`.remote`, :mod:`.stac_item`), on the shared :mod:`.base`,
:mod:`.radiometry`, :mod:`.checks` and :mod:`.windows`. Per-band files are found by
:mod:`.safe` and :mod:`.metadata` and read by :mod:`.strips` and :mod:`.resample`.
Add a kind of input with ``register_opener(name, probe, open)``.
"""

from .base import DEFAULT_BANDS, RESAMPLINGS, Opener, Source, SourceOptions
from .checks import SCL_MAX, SUGGESTED_SCL_FILL, check_scl
from .folder import BandFolderSource
from .radiometry import Radiometry
from .registry import (
    OPENERS,
    check_input,
    fingerprint_of,
    is_remote,
    open_source,
    opener_for,
    reads_band_files,
    register_opener,
    scene_of,
)
from .stack import StackSource, map_stack_bands
from .windows import clip_window, sample_windows

__all__ = [
    "DEFAULT_BANDS", "OPENERS", "RESAMPLINGS", "SCL_MAX", "SUGGESTED_SCL_FILL",
    "BandFolderSource", "Opener", "Radiometry", "Source", "SourceOptions", "StackSource",
    "check_input", "check_scl", "clip_window", "fingerprint_of", "is_remote", "map_stack_bands",
    "open_source", "opener_for", "reads_band_files", "register_opener", "sample_windows",
    "scene_of",
]
