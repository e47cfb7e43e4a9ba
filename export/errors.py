"""export.errors: the exception the export tools raise; the CLI prints it as one line."""

from __future__ import annotations

from lulc_edge.errors import LulcEdgeError


class ExportError(LulcEdgeError):
    """A model cannot be loaded, converted, or fails the parity gate."""
