"""Per-band files on the output grid: the direct kernel against GDAL's warper, strips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

import lulc_edge.sources.strips as bandread
from lulc_edge import Engine, EngineOptions, RunOptions, RunSpec, segment_file
from lulc_edge.sources import SourceOptions, open_source

from .conftest import SHARED_DATA, needs_shared, shared_params

UTM = CRS.from_epsg(32633)
NAMES = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
RES = {"B01": 60, "B09": 60, "B02": 10, "B03": 10, "B04": 10, "B08": 10}


def _folders(data: Path) -> list[Path]:
    entries = json.loads((data / "MANIFEST.json").read_text())
    out = [data / e["path"] for e in entries if (data / e["path"]).is_dir()]
    bigearth = data / "bigearthnet-l2a"
    return [p for p in out if p != bigearth] + (sorted(bigearth.iterdir())
                                                 if bigearth.is_dir() else [])


def _opts(path: Path) -> SourceOptions:
    return SourceOptions() if (path / "SCL.tif").exists() else SourceOptions(scl_fill=4)


def _raw(path: Path, direct: bool, monkeypatch, window: Window | None = None):
    monkeypatch.setattr(bandread, "DIRECT_KERNEL", direct)
    with open_source(path, options=_opts(path)) as src:
        win = window or Window(0, 0, src.width, src.height)
        return src._read_raw(win), src.tags()


def _assert_within_one_dn(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for band in a:
        diff = np.abs(a[band].astype(np.int64) - b[band].astype(np.int64))
        assert diff.max() <= 1, (band, int(diff.max()), int((diff > 1).sum()))


@pytest.mark.parametrize("folder", shared_params(_folders), ids=lambda p: p.name)
def test_direct_kernel_matches_the_warper_on_real_data(folder, monkeypatch):
    """Every pixel of every band within 1 DN of the WarpedVRT (bilinear; SCL nearest)."""
    direct, tags = _raw(folder, True, monkeypatch)
    warped, wtags = _raw(folder, False, monkeypatch)
    _assert_within_one_dn(direct, warped)
    if "SCL" in direct:
        np.testing.assert_array_equal(direct["SCL"], warped["SCL"])
    how, whow = json.loads(tags["RESAMPLING"]), json.loads(wtags["RESAMPLING"])
    for band, said in how.items():
        assert "warped" not in said
        assert said == whow[band] == "native grid" or whow[band].endswith("(warped)")


def _offset_folder(folder: Path, shift: tuple[float, float], size: int = 180, seed: int = 1,
                   holes: bool = True) -> Path:
    """Random per-band files, 20/60 m grids shifted by ``shift`` metres (x, y), nodata holes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x0, y0 = 400000.0, 5000000.0
    for name in [*NAMES, "SCL"]:
        r = RES.get(name, 20)
        dx, dy = (0.0, 0.0) if r == 10 else shift
        n = size * 10 // r
        arr = rng.integers(1, 12000, (n, n)).astype(np.uint16)
        if name == "SCL":
            arr = rng.integers(0, 12, (n, n)).astype(np.uint8)
        elif holes:
            arr[n // 3: n // 2, n // 4: n // 2] = 0  # a nodata hole (0 is S2's NO_DATA)
            arr[:, -2:] = 0  # and a nodata swath edge
        prof = dict(driver="GTiff", width=n, height=n, count=1, dtype=arr.dtype, crs=UTM,
                    transform=Affine(r, 0, x0 + dx, 0, -r, y0 + dy), tiled=True,
                    blockxsize=16 * max(1, n // 64), blockysize=16 * max(1, n // 64))
        with rasterio.open(folder / f"{name}.tif", "w", **prof) as ds:
            ds.write(arr, 1)
    return folder


@pytest.mark.parametrize("shift", [(0, 0), (10, -10), (20, 20), (-20, 10), (-10, 20), (5, -15)])
def test_direct_kernel_matches_the_warper_on_offset_grids(tmp_path, shift, monkeypatch):
    folder = _offset_folder(tmp_path / "f", shift)
    direct, _ = _raw(folder, True, monkeypatch)
    warped, _ = _raw(folder, False, monkeypatch)
    _assert_within_one_dn(direct, warped)
    np.testing.assert_array_equal(direct["SCL"], warped["SCL"])
    # a window equals the same pixels of the whole read (strips and chunks are assembled
    # exactly), whether or not it holds nodata (no window picks its own arithmetic)
    for win in (Window(37, 50, 101, 77), Window(0, 0, 40, 40), Window(100, 10, 61, 33)):
        part, _ = _raw(folder, True, monkeypatch, win)
        r0, c0 = win.row_off, win.col_off
        for b in part:
            np.testing.assert_array_equal(part[b], direct[b][r0: r0 + win.height,
                                                            c0: c0 + win.width])


def test_each_strip_is_decoded_once_and_memory_stays_bounded(tmp_path, monkeypatch):
    # strips of one block row, more of them than are kept: the checks at open (sample windows
    # in the first and last rows) decode only the blocks under them, kept for the pass, which
    # decodes the rest of their strips around them
    monkeypatch.setattr(bandread, "MIN_STRIP_ROWS", 1)
    monkeypatch.setattr(bandread, "CHUNK_ROWS", 64)
    folder = _offset_folder(tmp_path / "f", (10, -10), size=600, holes=False)
    with open_source(folder, options=SourceOptions()) as src:
        for band in src._bands.values():
            assert band._strips.decoded == 0 and band._strips._parts
            assert 0 < band._strips.pixels_read < band._strips.width * band._strips.height
        for r0 in range(0, 600, 100):
            for c0 in range(0, 600, 100):
                src.read(Window(c0 - 24, r0 - 24, 148, 148))
                for band in src._bands.values():
                    # strips: KEEP, and those the chunks in flight still read
                    assert len(band._strips._strips) <= 2 * bandread.KEEP
                    assert len(band._out._strips) <= 5  # 148 rows span 4 chunks, 1 ahead
        for name, band in src._bands.items():
            s = band._strips
            assert s.n > bandread.KEEP + 1
            assert s.decoded == s.n, (name, s.decoded, s.n)
            # and each pixel once: the samples decoded their blocks on their own, the pass
            # decoded the rest of their strips around them
            assert s.pixels_read == s.width * s.height, (name, s.pixels_read)
            assert not s._parts


@needs_shared
@pytest.mark.parametrize("name", ["l1c-18SVG-20160112-crop", "l2a-29RKH-20200219"])
def test_class_maps_of_direct_and_warped_reads_agree(tmp_path, name, monkeypatch):
    folder = SHARED_DATA / name
    engine = Engine(options=EngineOptions(device="cpu", threads=2))
    maps = []
    for direct in (True, False):
        monkeypatch.setattr(bandread, "DIRECT_KERNEL", direct)
        out = tmp_path / f"{direct}.tif"
        segment_file(folder, out, engine=engine,
                     spec=RunSpec(run=RunOptions(progress=False), source=_opts(folder)))
        with rasterio.open(out) as ds:
            maps.append(ds.read(1))
    assert (maps[0] == maps[1]).mean() >= 0.9999


def _stack(path: Path, height: int, width: int, block: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = rng.integers(1, 12000, (13, height, width)).astype(np.uint16)
    arr[10] = rng.integers(0, 12, (height, width))  # SCL
    arr[:, 5:9, 7:30] = 0  # nodata
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=13,
                       dtype="uint16", crs=UTM, transform=Affine(10, 0, 4e5, 0, -10, 5e6),
                       tiled=True, blockxsize=block, blockysize=block,
                       compress="deflate") as ds:
        ds.write(arr)
    return arr


def test_a_stack_is_read_in_strips_each_decoded_once(tmp_path, monkeypatch):
    monkeypatch.setattr(bandread, "MIN_STRIP_ROWS", 1)
    arr = _stack(tmp_path / "s.tif", 300, 200, 32)
    with open_source(tmp_path / "s.tif", options=SourceOptions()) as src:
        strips = src._strips
        assert strips is not None and strips.decoded == 0  # the checks at open read windows
        assert strips.n > bandread.KEEP + 1
        got = np.zeros((13, 300, 200), np.uint16)
        for r0 in range(0, 300, 64):
            for c0 in range(0, 200, 64):
                win = Window(c0 - 8, r0 - 8, 80, 80)
                block = src.read(win)
                direct = src._convert(src._read_raw(win, sample=True)) if (
                    r0 >= 8 and c0 >= 8 and r0 + 72 <= 300 and c0 + 72 <= 200) else None
                if direct is not None:
                    np.testing.assert_array_equal(block, direct)
                got[:, r0: r0 + 64, c0: c0 + 64] = block[:, 8: 8 + 64, 8: 8 + 64][
                    :, : 300 - r0, : 200 - c0]
                assert len(strips._strips) <= bandread.KEEP + 2
        assert strips.decoded == strips.n
    np.testing.assert_array_equal(got, arr)  # a plain stack: values as stored


def test_a_stack_too_wide_for_strips_reads_windows(tmp_path, monkeypatch):
    import lulc_edge.sources.stack as sources

    monkeypatch.setattr(sources, "STACK_STRIP_BYTES", 1000)
    _stack(tmp_path / "s.tif", 64, 64, 16)
    with open_source(tmp_path / "s.tif", options=SourceOptions()) as src:
        assert src._strips is None
        assert src.read(Window(0, 0, 64, 64)).shape == (13, 64, 64)
