"""``python -m lulc_edge.cli``."""

from . import main

main()
