"""lulc_edge.pipeline: a transitional alias, NOT a hub: the names cli.py, serve.py and
options.py still import from here, until they import them from their modules (runfile, spec,
results, modes, paths). Remove once nothing imports it."""

from .modes import DEFAULT_BATCH, DEFAULT_TILE
from .modes import MODES as _MODES
from .paths import check_output, default_output
from .results import RunResult
from .runfile import segment_file
from .spec import RunOptions

#: The mode names (lulc_edge.modes.MODES holds the mode objects).
MODES = tuple(_MODES)

__all__ = ["DEFAULT_BATCH", "DEFAULT_TILE", "MODES", "RunOptions", "RunResult", "check_output",
           "default_output", "segment_file"]
