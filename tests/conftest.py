"""Shared fixtures: the bundled model, synthetic scenes written with rasterio, the CLI runners,
the real data of ../shared/data."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from lulc_edge import Engine, EngineOptions, bundled_model
from lulc_edge.synthetic import SceneSpec, generate, write_scene

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "lulc_edge.cli"]
SHARED_DATA = Path(os.environ.get("LULC_EDGE_SHARED_DATA", ROOT.parent / "shared" / "data"))
#: Why the tests of real Sentinel-2 data skip: a user's clone has no ../shared (CI has).
NO_SHARED_DATA = (f"real data not found: {SHARED_DATA} has no MANIFEST.json (CI provides "
                  "../shared/data; set LULC_EDGE_SHARED_DATA to run these tests)")
#: Marks a test that reads ../shared/data: it skips, naming the folder, where there is none.
needs_shared = pytest.mark.skipif(not (SHARED_DATA / "MANIFEST.json").is_file(),
                                  reason=NO_SHARED_DATA)


def shared_params(values: Callable[[Path], Iterable[Any]]) -> list[Any]:
    """Parameters made from the real data folder by ``values``, or one parameter that skips
    naming the missing folder (an empty list would skip as 'got empty parameter set')."""
    if not (SHARED_DATA / "MANIFEST.json").is_file():
        return [pytest.param(None, marks=needs_shared, id="no-shared-data")]
    return list(values(SHARED_DATA))


def shared_manifest() -> list[Any]:
    """MANIFEST.json's entries (dicts with "path", "scl"...), as shared_params."""
    return shared_params(lambda data: json.loads((data / "MANIFEST.json").read_text()))


@pytest.fixture(scope="session", autouse=True)
def _auto_cache_dir(tmp_path_factory):
    """Keep auto's timing cache (and OpenVINO's compiled models) out of the user's ~/.cache."""
    old = os.environ.get("LULC_EDGE_CACHE_DIR")
    os.environ["LULC_EDGE_CACHE_DIR"] = str(tmp_path_factory.mktemp("lulc-edge-cache"))
    yield
    if old is None:
        os.environ.pop("LULC_EDGE_CACHE_DIR", None)
    else:
        os.environ["LULC_EDGE_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def model_path() -> Path:
    path = bundled_model()
    assert path.is_file(), f"bundled model missing: {path} (run export/train_demo.py)"
    return path


@pytest.fixture(scope="session")
def engine(model_path) -> Engine:
    return Engine(model_path, EngineOptions(device="cpu", threads=2))


@pytest.fixture()
def make_scene(tmp_path):
    """Write a synthetic 13-band scene; returns (path, bands, labels)."""

    def make(width: int = 203, height: int = 150, seed: int = 5, name: str = "scene.tif",
             **spec_kw):
        spec = SceneSpec(width=width, height=height, seed=seed, **spec_kw)
        path = tmp_path / name
        write_scene(path, spec)
        bands, labels, _ = generate(spec)
        return path, bands, labels

    return make


def write_stack(path: Path, bands: np.ndarray, **profile) -> Path:
    """Write an array as a GeoTIFF with a UTM grid (override with profile keys)."""
    prof = dict(driver="GTiff", width=bands.shape[2], height=bands.shape[1], count=bands.shape[0],
                dtype=bands.dtype, crs="EPSG:32633",
                transform=rasterio.transform.from_origin(500000, 5000000, 10, 10))
    prof.update(profile)
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(bands)
    return path


@dataclass
class CliResult:
    """What a finished ``lulc-edge`` command left: as subprocess.CompletedProcess has it."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


#: A fresh interpreter's warning filters (python -W unset, release build).
_FRESH_FILTERS = (("default", DeprecationWarning, "__main__"), ("ignore", DeprecationWarning, ""),
                  ("ignore", PendingDeprecationWarning, ""), ("ignore", ImportWarning, ""),
                  ("ignore", ResourceWarning, ""))


def _runner() -> CliRunner:
    """A CliRunner keeping stderr apart from stdout (click >= 8.2 always does; 8.1 is allowed)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def run_cli(*args: str | os.PathLike, cwd: Path | None = None) -> CliResult:
    """Run ``lulc-edge`` in this process through click's CliRunner, as a new process would.

    What a process starts with is restored around the call: warning filters and a fresh
    once-only register (each warning is shown once per process), the root logger, the engine
    cache of batches, the working directory. An exception that escapes is appended to stderr as
    the traceback a process would print (exit 1). A real process is what ``run_cli_process``
    starts: for signals, locks held, fd-level output (``cli.console.hide_native_stderr`` acts
    only on fd 2) and ``--workers``.
    """
    from lulc_edge import cli
    from lulc_edge.batch import _cached_engine

    argv = [os.fspath(a) for a in args]
    root = logging.getLogger()
    handlers, level, old_cwd = root.handlers[:], root.level, os.getcwd()
    cli._shown.clear()
    _cached_engine.cache_clear()
    with warnings.catch_warnings():
        warnings.resetwarnings()
        for action, category, module in reversed(_FRESH_FILTERS):
            warnings.filterwarnings(action, category=category, module=module)
        try:
            if cwd is not None:
                os.chdir(cwd)
            res = _runner().invoke(cli.main, argv, prog_name="lulc-edge")
        finally:
            os.chdir(old_cwd)
            root.handlers[:] = handlers
            root.setLevel(level)
            _cached_engine.cache_clear()
    stderr = res.stderr
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*res.exc_info))
    return CliResult(argv, res.exit_code, res.stdout, stderr)


def _default_sigint() -> None:
    """In the child: Ctrl-C as a shell delivers it, even when pytest was started with SIGINT
    ignored (in the background: ``cmd &`` ignores it, and children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli_process(*args: str | os.PathLike, cwd: Path | None = None,
                    **kw) -> subprocess.CompletedProcess:
    """Run ``lulc-edge`` in a new process (as users do), capturing output; keyword arguments go
    to subprocess.run (env, preexec_fn...)."""
    kw.setdefault("timeout", 600)
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, **kw)


def start_cli(*args: str | os.PathLike, **kw) -> subprocess.Popen:
    """Start ``lulc-edge`` as a process to signal or kill, SIGINT at its default."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([*CLI, *map(str, args)], text=True, preexec_fn=_default_sigint, **kw)


def interrupt_after(tiles: int) -> Callable[[int, int], None]:
    """An ``on_tile`` callback that raises KeyboardInterrupt after ``tiles`` inferred tiles, as
    Ctrl-C would: the run keeps its journal for --resume."""
    seen = iter(range(tiles))

    def on_tile(_n: int, _px: int) -> None:
        if next(seen, None) is None:
            raise KeyboardInterrupt

    return on_tile
