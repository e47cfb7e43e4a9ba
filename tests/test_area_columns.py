"""Per-band files of an area of interest read only its columns (issue 24): each band file's
strips hold the block columns the area's tiles and their halo read, resampled 20/60 m chunks
the pieces over them, no strip is read ahead below the area; every block is still decoded once,
and the map is the same pixels as the whole-scene map, from a folder and over HTTP."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

import lulc_edge.sources.strips as strips
from lulc_edge.aoi import Area
from lulc_edge.runfile import segment_file
from lulc_edge.sources import open_source
from lulc_edge.sources.strips import StripReader
from lulc_edge.synthetic import BAND_NAMES, SceneSpec, generate
from tests.httpserver import FileServer

X0, Y0 = 500000.0, 5000000.0
UTM = "EPSG:32633"
SIZE = 600
#: native resolution (m) of each band file and its block side (px), as in a product
RES = {"B1": 60, "B9": 60, "B2": 10, "B3": 10, "B4": 10, "B8": 10}
#: scene pixels (col0, row0, col1, row1) of the area: off the model's 4 px grid
AREA_PX = (301.3, 250.2, 377.9, 330.5)


def _file(name: str) -> str:
    return name if name in ("SCL", "B8A") else f"B{int(name[1:]):02d}"


def write_folder(folder: Path, width: int = SIZE, height: int = SIZE, block: int = 64,
                 compress: str | None = "deflate") -> Path:
    """A synthetic scene as per-band GeoTIFFs at 10/20/60 m (20/60 m bands the means of the
    10 m pixels, SCL every other pixel), tiled in blocks of ``block`` px at 10 m, half that at
    20 m, a quarter at 60 m (sizes: multiples of 60 px)."""
    bands, _, _ = generate(SceneSpec(width=width, height=height, seed=7))
    folder.mkdir(parents=True)
    for name, band in zip(BAND_NAMES, bands, strict=True):
        res = 20 if name in ("SCL", "B8A") else RES.get(name, 20)
        f = res // 10
        if name == "SCL":
            arr = band[::f, ::f].astype(np.uint8)
        else:
            arr = band.reshape(height // f, f, width // f, f).mean(axis=(1, 3)).round()
            arr = arr.astype(np.uint16)
        side = block // (2 if f == 2 else 4 if f == 6 else 1)
        prof = dict(driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1,
                    dtype=arr.dtype, crs=UTM, transform=Affine(res, 0, X0, 0, -res, Y0),
                    tiled=True, blockxsize=side, blockysize=side, compress=compress)
        with rasterio.open(folder / f"{_file(name)}.tif", "w", **prof) as ds:
            ds.write(arr, 1)
    return folder


def area(c0: float = AREA_PX[0], r0: float = AREA_PX[1], c1: float = AREA_PX[2],
         r1: float = AREA_PX[3]) -> Area:
    """A box over scene pixels (col0, row0) .. (col1, row1) in the scene's CRS."""
    return Area.from_bbox((X0 + 10 * c0, Y0 - 10 * r1, X0 + 10 * c1, Y0 - 10 * r0), UTM)


def crop_of(area_map: Path, whole_map: Path) -> tuple[np.ndarray, np.ndarray]:
    """The area's map and the same pixels of the whole-scene map."""
    with rasterio.open(area_map) as a, rasterio.open(whole_map) as w:
        col = (a.transform.c - w.transform.c) / w.transform.a
        row = (a.transform.f - w.transform.f) / w.transform.e
        assert col == int(col) and row == int(row)
        return a.read(1), w.read(1, window=Window(int(col), int(row), a.width, a.height))


def record_limits(src) -> list[Window]:
    """The windows a run tells ``src`` it reads (``Source.limit``), recorded as it is told."""
    windows: list[Window] = []
    limit = src.limit
    src.limit = lambda w: (windows.append(w), limit(w))[1]
    return windows


@pytest.fixture()
def small_chunks(monkeypatch):
    """Strips of one block row, resampled pieces of 64 columns: a 600 px scene has many."""
    monkeypatch.setattr(strips, "MIN_STRIP_ROWS", 1)
    monkeypatch.setattr(strips, "CHUNK_COLS", 64)


def test_an_area_of_a_band_folder_reads_its_columns_and_maps_the_whole_maps_pixels(
        tmp_path, engine, small_chunks):
    folder = write_folder(tmp_path / "bands")
    segment_file(folder, tmp_path / "whole.tif", engine=engine)
    with open_source(folder) as src:
        bands = src._bands
        at_open = {b: band._strips.pixels_read for b, band in bands.items()}
        windows = record_limits(src)
        segment_file(src, tmp_path / "area.tif", engine=engine, area=area())
        (w,) = windows  # the area's columns 300..380 (4 px grid) and a 24 px halo
        assert (w.col_off, w.width) == (276, 132)
        got, want = crop_of(tmp_path / "area.tif", tmp_path / "whole.tif")
        np.testing.assert_array_equal(got, want)
        for name, band in bands.items():
            s = band._strips
            # whole blocks of the band's own file, far from its full width
            assert s.col0 % s.block_width == 0 and s.col1 - s.col0 <= s.width // 2, name
            assert s.pixels_read - at_open[name] < s.width * s.height // 3, name
            if band.how != "native grid":  # the resampled chunks hold the run's columns
                assert band._ocols == (276, 408), name
        # the native B2: the samples' blocks (the first two 64-row strips under the 128 px
        # windows at columns 0, 236 and 472, and the last corner), then block columns
        # 256..447 in the three strips holding the rows read, none read ahead
        b2 = bands["B2"]._strips
        samples = (128 + 192 + 152) * 128 + 152 * 152
        assert (b2.col0, b2.col1) == (256, 448)
        assert b2.pixels_read == samples + 192 * 192, b2.pixels_read


def test_a_source_mapped_for_an_area_then_whole_maps_the_whole_scene(tmp_path, engine,
                                                                    small_chunks):
    """Reads beyond the columns an area limited the strips and chunks to (one opened source
    used twice): resampled on their own, the same pixels."""
    folder = write_folder(tmp_path / "bands")
    segment_file(folder, tmp_path / "whole.tif", engine=engine)
    with open_source(folder) as src:
        segment_file(src, tmp_path / "area.tif", engine=engine, area=area())
        segment_file(src, tmp_path / "again.tif", engine=engine)
    with rasterio.open(tmp_path / "whole.tif") as a, rasterio.open(tmp_path / "again.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))


def test_samples_decode_their_blocks_once_for_a_pass_over_limited_columns(tmp_path):
    """Samples at open decode only the blocks under them (several in one strip, overlapping
    ones once); the pass over an area's columns takes those it needs and reads the rest
    around them: every pixel is the file's, and no block is read twice."""
    data = np.arange(256 * 320, dtype=np.uint16).reshape(1, 256, 320)
    path = tmp_path / "b.tif"
    with rasterio.open(path, "w", driver="GTiff", width=320, height=256, count=1,
                       dtype="uint16", tiled=True, blockxsize=32, blockysize=32) as ds:
        ds.write(data)
    with rasterio.open(path) as ds, ThreadPoolExecutor(2) as pool:
        s = StripReader(ds, pool)
        s.rows = 32  # one block row per strip
        s.n = s.stop = 8
        for r0, c0 in ((0, 0), (5, 40), (10, 50), (100, 150), (200, 290)):
            np.testing.assert_array_equal(s.read_direct(r0, r0 + 20, c0, c0 + 20),
                                          data[0, r0:r0 + 20, c0:c0 + 20])
        # blocks: rows 0..31 x columns 0..95 (three samples, the middle block once), rows
        # 96..127 x 128..191, rows 192..223 x 288..319
        first = 32 * 96 + 32 * 64 + 32 * 32
        assert s.pixels_read == first
        s.limit(0, 160, 70, 170)  # block columns 64..191, rows 0..159
        assert (s.col0, s.col1, s.stop) == (64, 192, 5)
        assert sorted(s._parts) == [0, 3]  # the corner's blocks are let go
        out = np.concatenate([s.read(r, r + 16, 64, 192) for r in range(0, 160, 16)], axis=0)
        np.testing.assert_array_equal(out, data[0, :160, 64:192])
        # the pass read the five strips' 128 columns less the three blocks samples decoded
        assert s.pixels_read == first + 5 * 32 * 128 - 3 * 32 * 32
        assert s.decoded == 5 and not s._parts


def _blocks_bytes(path: Path, cols: tuple[int, int] | None, rows: tuple[int, int]) -> int:
    """Bytes of a tiled GeoTIFF's blocks over source ``rows`` and ``cols`` (None: all)."""
    with rasterio.open(path) as ds:
        bh, bw = ds.block_shapes[0]
        c0, c1 = cols or (0, ds.width)
        return sum(int(ds.get_tag_item(f"BLOCK_SIZE_{i}_{j}", "TIFF", bidx=1))
                   for j in range(rows[0] // bh, -(-rows[1] // bh))
                   for i in range(c0 // bw, -(-c1 // bw)))


def _item(srv: FileServer, path: Path) -> Path:
    """A STAC item of the served folder ``scene`` (baseline 02.14: no offset)."""
    doc = {"type": "Feature", "stac_version": "1.0.0", "id": "S2X_AREA", "links": [],
           "geometry": None, "properties": {"datetime": "2024-07-15T11:06:19Z",
                                            "s2:processing_baseline": "02.14"},
           "assets": {_file(b): {"href": srv.url(f"scene/{_file(b)}.tif"),
                                 "type": "image/tiff; application=geotiff"}
                      for b in BAND_NAMES}}
    path.write_text(json.dumps(doc))
    return path


def _under_and_full(folder: Path, w: Window) -> tuple[int, int]:
    """Bytes of the blocks of every band file under ``w`` (10 m pixels: each band's own
    blocks, with the bilinear kernel's pixel), and of the full-width strips of those rows."""
    under, full = 0, 0
    for b in BAND_NAMES:
        path = folder / f"{_file(b)}.tif"
        with rasterio.open(path) as ds:
            f = round(ds.transform.a / 10)
            rows = (max(0, int(w.row_off) // f - 1),
                    min(ds.height, -(-int(w.row_off + w.height) // f) + 1))
            cols = (max(0, int(w.col_off) // f - 1),
                    min(ds.width, -(-int(w.col_off + w.width) // f) + 1))
        under += _blocks_bytes(path, cols, rows)
        full += _blocks_bytes(path, None, rows)
    return under, full


WIDE = {"width": 1560, "height": 360, "block": 128, "compress": None}
WIDE_AREA = (801.3, 150.2, 877.9, 230.5)


def test_an_area_of_a_remote_cog_item_fetches_its_blocks_not_full_width_strips(
        tmp_path, engine):
    """Over a loopback HTTP server (a wide scene, uncompressed blocks: bytes are blocks): the
    area's map equals the local whole map's pixels, and the run after the open fetches about
    the blocks under the area and its halo (each band's own blocks, with the bilinear
    kernel's pixel), far below the full-width strips of its rows."""
    root = tmp_path / "www"
    folder = write_folder(root / "scene", **WIDE)
    segment_file(folder, tmp_path / "whole.tif", engine=engine)
    with FileServer(root) as srv, open_source(_item(srv, tmp_path / "item.json")) as src:
        windows = record_limits(src)
        opened = srv.log.bytes_sent
        segment_file(src, tmp_path / "area.tif", engine=engine, area=area(*WIDE_AREA))
        fetched = srv.log.bytes_sent - opened
    got, want = crop_of(tmp_path / "area.tif", tmp_path / "whole.tif")
    np.testing.assert_array_equal(got, want)
    under, full = _under_and_full(folder, windows[0])
    assert fetched <= 1.3 * under, (fetched, under)
    assert fetched < full / 4, (fetched, full)


def test_a_run_of_an_area_checks_the_input_inside_it(tmp_path, engine):
    """A run of an area opens the input with its checks at open (SCL, value range, the last
    block's probe) inside the area: over HTTP the whole run, open included, fetches the
    headers and about the blocks under the area and its halo, nothing at the scene's edges."""
    root = tmp_path / "www"
    folder = write_folder(root / "scene", **WIDE)
    segment_file(folder, tmp_path / "whole.tif", engine=engine)
    with FileServer(root) as srv:
        item = _item(srv, tmp_path / "item.json")
        segment_file(item, tmp_path / "area.tif", engine=engine, area=area(*WIDE_AREA))
        fetched = srv.log.bytes_sent
    got, want = crop_of(tmp_path / "area.tif", tmp_path / "whole.tif")
    np.testing.assert_array_equal(got, want)
    # the run reads columns 776..904 (the area on the 4 px grid and a 24 px halo), rows
    # 124..256 (the tiles' reads reach row 256 below)
    under, full = _under_and_full(folder, Window(776, 124, 128, 132))
    headers = 13 * 16384  # GDAL's first read of each file
    assert fetched <= 1.3 * under + headers, (fetched, under)


@pytest.mark.parametrize("shift", [(5, -15), (-10, 20)])
def test_a_resampled_pixel_does_not_depend_on_the_window_that_reads_it(tmp_path, shift):
    """Any window resampled on its own (as the samples at open and reads beyond an area's
    columns are) holds the pixels of the whole read, nodata holes and swath edges included:
    what lets an area's chunks start at its own columns."""
    from .test_bandread import _offset_folder

    folder = _offset_folder(tmp_path / "f", shift, size=240, seed=3)
    with open_source(folder) as src:
        whole = src._read_raw(Window(0, 0, src.width, src.height))
        for c0, r0, w, h in ((37, 50, 101, 77), (1, 3, 61, 40), (113, 0, 127, 240),
                             (0, 131, 240, 19)):
            part = src._read_raw(Window(c0, r0, w, h), sample=True)
            for b in part:
                np.testing.assert_array_equal(part[b], whole[b][r0: r0 + h, c0: c0 + w], b)


def test_an_area_is_tiled_evenly_so_its_reads_stay_near_it_and_its_halo(tmp_path, engine):
    """An area's tiles split it evenly (as many as the run's tile size needs, each as small as
    that allows): a 1040 px area of a tile reads 3 x 3 blocks of 396 px ending within 8 px of
    its halo, not 2 of 512 px and one of 16 px read as 560 px (520 px beyond it); and the
    map is still the whole map's pixels."""
    from lulc_edge.spec import RunOptions
    from lulc_edge.tiling import plan_seamless

    tiles = plan_seamless(10980, 10980, 512, 24, 4, within=Window(4968, 4972, 1040, 1036))
    assert len(tiles) == 9 and {t.read_shape for t in tiles} == {(396, 396)}
    assert max(t.read.col_off + t.read.width for t in tiles) == 4968 + 1040 + 24 + 4
    assert max(t.read.row_off + t.read.height for t in tiles) == 4972 + 1036 + 24 + 8
    folder = write_folder(tmp_path / "bands")
    segment_file(folder, tmp_path / "whole.tif", engine=engine)
    segment_file(folder, tmp_path / "area.tif", engine=engine, area=area(),
                 options=RunOptions(tile=64))  # an 80 px area: 2 x 2 tiles of 40 px
    got, want = crop_of(tmp_path / "area.tif", tmp_path / "whole.tif")
    np.testing.assert_array_equal(got, want)


def test_the_samples_blocks_are_fetched_together(tmp_path):
    """Over HTTP the blocks under the samples at open are read together: adjacent blocks of a
    strip in one request (one per block let GDAL's read-ahead for sequential requests fetch
    blocks nobody reads), and the samples' reads then fetch nothing."""
    from lulc_edge import remote

    data = np.arange(128 * 2048, dtype=np.uint16).reshape(1, 128, 2048)
    with rasterio.open(tmp_path / "b.tif", "w", driver="GTiff", width=2048, height=128,
                       count=1, dtype="uint16", tiled=True, blockxsize=64,
                       blockysize=64) as ds:
        ds.write(data)
    with FileServer(tmp_path) as srv, remote.RemoteDataset(srv.url("b.tif")) as ds, \
            ThreadPoolExecutor(1) as pool:
        s = StripReader(ds, pool)
        s.rows, s.n, s.stop = 64, 2, 2
        before = srv.log.count()
        s.prefetch([(0, 20, 1000, 1030), (5, 25, 1050, 1100), (70, 90, 1600, 1610)])
        # strip 0: blocks 15..17 (one run); strip 1: block 25
        assert srv.log.count() - before == 2, srv.log.requests[before:]
        assert s.pixels_read == 64 * 192 + 64 * 64
        np.testing.assert_array_equal(s.read_direct(5, 25, 1050, 1100),
                                      data[0, 5:25, 1050:1100])
        np.testing.assert_array_equal(s.read_direct(70, 90, 1600, 1610),
                                      data[0, 70:90, 1600:1610])
        assert srv.log.count() - before == 2 and s.pixels_read == 64 * 192 + 64 * 64
