"""Shared fixtures: the bundled model, synthetic scenes written with rasterio, the CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from lulc_edge import Engine, EngineOptions, bundled_model
from lulc_edge.synthetic import SceneSpec, generate, write_scene

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LULC_EDGE_SHARED_DATA", ROOT.parent / "shared" / "data"))


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


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``lulc-edge`` in a subprocess (as users do), capturing output."""
    return subprocess.run([sys.executable, "-m", "lulc_edge.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)
