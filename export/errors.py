"""export.errors: the exception the export tools raise; the CLI prints it as one line."""

from __future__ import annotations

import sys
from collections.abc import Callable

from lulc_edge.errors import LulcEdgeError


class ExportError(LulcEdgeError):
    """A model cannot be loaded, converted, or fails the parity gate."""


def run_tool(work: Callable[[], int]) -> int:
    """Run an export tool's ``work`` for its ``main``: an ExportError becomes one ``error:``
    line on stderr and exit status 1, Ctrl-C ``error: interrupted`` and 130."""
    try:
        return work()
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
