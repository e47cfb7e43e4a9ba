"""What the CLI says on the terminal: one-line errors and warnings, and no library chatter.

The one place that touches file descriptor 2 (``hide_native_stderr``): libtiff and GDAL print
some errors there directly, past Python; without ``-v`` they are hidden.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import textwrap
from typing import Any, NoReturn

import click
from rasterio.errors import NotGeoreferencedWarning

from ..engine import default_threads

#: Exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

_shown: set[str] = set()


def showwarning(message: Any, category: type, filename: str, lineno: int,
                file: Any = None, line: Any = None) -> None:
    """Every warning as one ``lulc-edge: warning:`` line, each text once (rasterio repeats its
    warnings per dataset opened); no source paths of the library that raised it."""
    if issubclass(category, NotGeoreferencedWarning):
        return  # rasterio's names no file and comes per dataset: each source says it, named
    text = " ".join(str(message).split())
    if text not in _shown:
        _shown.add(text)
        click.echo(f"lulc-edge: warning: {text}", err=True)


def hide_native_stderr() -> None:
    """libtiff prints some errors (``_tiffWriteProc: No space left on device.``) straight to
    file descriptor 2, past GDAL's and rasterio's handlers: point fd 2 at /dev/null and keep
    Python's ``sys.stderr`` (our messages, progress, warnings) on a copy of the real one."""
    try:
        if sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, ValueError):
        return  # a captured stream (tests): nothing at the C level to hide
    sys.stderr.flush()
    real = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding,
                           errors="backslashreplace")


def setup_logging(verbose: int) -> None:
    """GDAL/libtiff messages reach Python logging through rasterio: hidden unless -v (then
    warnings, -vv everything), one line each, so a failure says one thing on stderr; what
    libtiff prints by itself is hidden too unless -v."""
    if not verbose:
        hide_native_stderr()
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("lulc-edge: %(name)s: %(message)s"))
    else:
        handler = logging.NullHandler()  # no handler at all would print via lastResort
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


def error(msg: str) -> None:
    """``lulc-edge: error: MSG`` on stderr (a batch goes on after it)."""
    click.echo(f"lulc-edge: error: {msg}", err=True)


def fail(msg: str) -> NoReturn:
    """``lulc-edge: error: MSG`` on stderr, exit 1."""
    error(msg)
    sys.exit(1)


def warn(msg: str) -> None:
    click.echo(f"lulc-edge: warning: {msg}", err=True)


def demo_note(demo: bool, quiet: bool) -> None:
    """Say, unless ``quiet``, that a map comes from the bundled demo weights."""
    if demo and not quiet:
        click.echo("lulc-edge: note: the model has DEMO weights trained on synthetic scenes, "
                   "not a real land-cover model (lulc-edge info; README)", err=True)


def interrupted(msg: str) -> NoReturn:
    """What a Ctrl-C left behind and how to go on; exit 130."""
    click.echo(f"\nlulc-edge: interrupted: {msg}", err=True)
    sys.exit(EXIT_INTERRUPTED)


def warn_cpus(option: str, value: int | None) -> None:
    """A legal but bad value: more threads or workers than this process may use."""
    cpus = default_threads()
    if value is not None and value > cpus:
        warn(f"{option} {value} is above the {cpus} CPUs available: they will compete for "
             "them and run slower")


def echo_wrapped(line: str, indent: int = 13) -> None:
    """Echo a line whole; on a terminal, wrapped to its width (continuations indented)."""
    if sys.stdout.isatty():
        width = shutil.get_terminal_size().columns
        line = "\n".join(textwrap.wrap(line, max(width, indent + 20),
                                        subsequent_indent=" " * indent,
                                        break_on_hyphens=False)) or line
    click.echo(line)
