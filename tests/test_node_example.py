"""examples/node: the Node.js program maps a scene exactly like ``lulc-edge run`` (one tile).

Needs ``node`` on PATH and ``examples/node/node_modules`` (CI runs
``cd examples/node && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci`` first); skipped otherwise.
The test never runs npm itself. ``LULC_EDGE_NODE_TEST_MODEL`` may name another end-to-end model
(default: the bundled demo model).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from lulc_edge import Engine, EngineOptions, RunOptions, segment_file  # noqa: E402
from lulc_edge.engine import bundled_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "examples" / "node"
SCRIPT = NODE_DIR / "lulc.mjs"
EXAMPLE_SCENE = ROOT / "examples" / "data" / "example-scene.tif"
NODE = shutil.which("node")
TIMEOUT = 300


def _skip_reason() -> str | None:
    if NODE is None:
        return "node is not on PATH"
    modules = NODE_DIR / "node_modules"
    if not modules.is_dir():
        return ("examples/node/node_modules is absent "
                "(run: cd examples/node && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci)")
    for pkg in ("onnxruntime-node", "geotiff"):
        if not (modules / pkg / "package.json").is_file():
            return f"examples/node/node_modules/{pkg} is not installed (run npm ci there)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


@pytest.fixture(scope="module")
def model() -> Path:
    path = Path(os.environ.get("LULC_EDGE_NODE_TEST_MODEL") or bundled_model())
    if not path.is_file():
        pytest.skip(f"model {path} does not exist yet")
    return path


@pytest.fixture(scope="module")
def py_engine(model: Path) -> Engine:
    return Engine(model, EngineOptions(device="cpu"))  # the Node program runs on the CPU


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled example scene; a synthetic one where it is not there (yet)."""
    if EXAMPLE_SCENE.is_file():
        return EXAMPLE_SCENE
    from lulc_edge.synthetic import SceneSpec, write_scene

    out = tmp_path_factory.mktemp("scene") / "synthetic-scene.tif"
    write_scene(out, SceneSpec(width=200, height=200, seed=3))
    return out


def _crop(src_path: Path, dst: Path, *, width: int, height: int, col: int = 0, row: int = 0,
          band_order: list[int] | None = None, nodata: float | None = None,
          hole_band: int | None = None, descriptions: bool = True) -> Path:
    """Write a window of ``src_path``: tiled 64x64 (partial edge tiles), DEFLATE, predictor 2."""
    from rasterio.windows import Window

    with rasterio.open(src_path) as src:
        win = Window(col, row, min(width, src.width - col), min(height, src.height - row))
        order = band_order or list(range(1, src.count + 1))
        data = src.read(order, window=win)
        names = [src.descriptions[i - 1] for i in order]
        profile = {
            "driver": "GTiff", "width": int(win.width), "height": int(win.height),
            "count": len(order), "dtype": "uint16", "crs": src.crs,
            "transform": src.window_transform(win), "tiled": True, "blockxsize": 64,
            "blockysize": 64, "compress": "deflate", "predictor": 2, "interleave": "pixel",
        }
    if nodata is not None:
        profile["nodata"] = nodata
    if hole_band is not None:  # one band zero in a block: nodata there only with a nodata tag
        data[hole_band, 10:20, 30:45] = 0
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
        if descriptions:
            for i, name in enumerate(names, start=1):
                if name:
                    out.set_band_description(i, name)
    return dst


def _python_map(engine: Engine, scene: Path, out: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(scene) as src:
        h, w = src.height, src.width
    align = engine.contract.alignment
    tile = -(-max(h, w, align) // align) * align  # one tile covers the whole scene
    segment_file(scene, out, engine=engine,  # the graph alone masks no cloud
                 options=RunOptions(tile=tile, progress=False, cloud_mask=False))
    with rasterio.open(out) as ds:
        info = {"transform": ds.transform.to_gdal(), "epsg": ds.crs.to_epsg() if ds.crs else None}
        return ds.read(1), info


def _node_map(model: Path, scene: Path, prefix: Path) -> tuple[np.ndarray, dict, str]:
    proc = subprocess.run([NODE, str(SCRIPT), str(model), str(scene), str(prefix)],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=NODE_DIR)
    assert proc.returncode == 0, f"node failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    meta = json.loads(Path(f"{prefix}.json").read_text())
    raw = np.fromfile(f"{prefix}.class.bin", dtype=np.uint8)
    assert raw.size == meta["width"] * meta["height"]
    return raw.reshape(meta["height"], meta["width"]), meta, proc.stdout


def _scene_case(case: str, scene: Path, tmp: Path) -> Path:
    if case == "scene":
        return scene
    if case == "odd-crop":  # 101 x 99: neither side a multiple of 4
        return _crop(scene, tmp / "odd.tif", width=101, height=99, col=37, row=21)
    if case == "odd-permuted-nodata":  # bands reversed but named; GDAL nodata tag; a hole
        return _crop(scene, tmp / "perm.tif", width=103, height=97, col=60, row=90,
                     band_order=list(range(13, 0, -1)), nodata=0, hole_band=5)
    if case == "odd-unnamed":  # no band descriptions: model order by position
        return _crop(scene, tmp / "unnamed.tif", width=77, height=134, col=5, row=3,
                     descriptions=False)
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["scene", "odd-crop", "odd-permuted-nodata", "odd-unnamed"])
def test_node_matches_python(case: str, model: Path, py_engine: Engine, scene: Path,
                             tmp_path: Path) -> None:
    src = _scene_case(case, scene, tmp_path)
    expected, info = _python_map(py_engine, src, tmp_path / "python.tif")
    got, meta, stdout = _node_map(model, src, tmp_path / "node")

    assert got.shape == expected.shape
    diff = int(np.count_nonzero(got != expected))
    assert diff == 0, f"{case}: {diff} of {got.size} pixels differ from lulc-edge run"

    # the JSON summary: size, georeferencing, class table from the model's metadata, counts
    assert (meta["width"], meta["height"]) == (expected.shape[1], expected.shape[0])
    assert meta["epsg"] == info["epsg"]
    assert meta["geotransform"] == pytest.approx(list(info["transform"]))
    counts = np.bincount(expected.ravel(), minlength=256)
    contract = py_engine.contract
    assert [(c["value"], c["name"], c["color"]) for c in meta["classes"]] == [
        (c.value, c.name, c.color) for c in contract.classes]
    assert {c["value"]: c["pixels"] for c in meta["classes"]} == {
        c.value: int(counts[c.value]) for c in contract.classes}
    assert meta["nodata"]["value"] == contract.nodata.value
    assert meta["nodata"]["pixels"] == int(counts[contract.nodata.value])
    assert meta["unexpected_values"] == {}
    for c in contract.classes:
        assert c.name in stdout and c.color in stdout

    # the GeoTIFF written with geotiff.js's writer reads back in GDAL with the same grid
    assert meta["geotiff"] == "node.class.tif"
    with rasterio.open(tmp_path / "node.class.tif") as tif:
        assert np.array_equal(tif.read(1), expected)
        assert tif.crs.to_epsg() == info["epsg"]
        assert tif.transform.to_gdal() == pytest.approx(info["transform"])
        assert tif.nodata == contract.nodata.value
    if case == "odd-permuted-nodata":
        assert meta["input"]["band_mapping"] == "band descriptions"
        assert (got[10:20, 30:45] == contract.nodata.value).all()
    if case == "odd-unnamed":
        assert meta["input"]["band_mapping"] == "position"


def _node_error(*args: str | Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([NODE, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=NODE_DIR)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one clear line, no stack trace
    return proc


def test_node_errors(model: Path, scene: Path, tmp_path: Path) -> None:
    missing = _node_error(model, tmp_path / "missing.tif", tmp_path / "out")
    assert "missing.tif: no such file" in missing.stderr
    no_model = _node_error(tmp_path / "missing.onnx", scene, tmp_path / "out")
    assert "missing.onnx: no such file" in no_model.stderr

    five = _crop(scene, tmp_path / "five.tif", width=40, height=40, band_order=[1, 2, 3, 4, 5],
                 descriptions=False)
    bands = _node_error(model, five, tmp_path / "out")
    assert "has 5 bands; expected 13" in bands.stderr

    not_model = _node_error(scene, scene, tmp_path / "out")
    assert "error:" in not_model.stderr
    assert not list(tmp_path.glob("out*"))
