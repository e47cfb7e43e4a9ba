"""Tests of lulc_edge.sources (stacks, band folders, products): files in tmp_path, shared data."""

from __future__ import annotations

import json
import os
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from lulc_edge.errors import InputError, MissingSCLError
from lulc_edge.sources import (
    DEFAULT_BANDS,
    BandFolderSource,
    SourceOptions,
    StackSource,
    open_source,
)
from lulc_edge.sources.metadata import normalize_band, parse_mtd_xml, resolve_offset
from lulc_edge.sources.safe import find_band_files

from .conftest import SHARED_DATA, needs_shared, shared_manifest

pytestmark = pytest.mark.filterwarnings("error::lulc_edge.errors.LulcEdgeWarning")

UTM = CRS.from_epsg(32633)
FILL = SourceOptions(scl_fill=4)
REFL = [b for b in DEFAULT_BANDS if b != "SCL"]
FILE_NAMES = {b: (f"B{int(b[1:]):02d}" if b != "B8A" else "B8A") for b in REFL} | {"SCL": "SCL"}


def write(path: Path, data: np.ndarray, transform: Affine | None = None, crs: CRS | None = UTM,
          nodata: float | None = None, descriptions=None, tags=None, driver: str = "GTiff",
          **kw) -> Path:
    """A raster of ``data`` (bands, h, w) or (h, w)."""
    data = data[None] if data.ndim == 2 else data
    profile = dict(driver=driver, width=data.shape[2], height=data.shape[1], count=data.shape[0],
                   dtype=data.dtype, transform=transform or Affine(10, 0, 400000, 0, -10, 5000000),
                   **kw)
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
        if tags:
            dst.update_tags(**tags)
    return path


def stack_data(h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 10000, (13, h, w)).astype(np.uint16)
    data[10] = rng.integers(1, 12, (h, w))  # SCL
    return data


def make_folder(folder: Path, size: int = 60, offset: float = 0.0, names=None, skip=(),
                scl: bool = True, crs: CRS | None = UTM, x0: float = 400000) -> Path:
    """Per-band files: 10 m bands size x size, 20 m and 60 m bands on grids shifted by
    ``offset`` metres; values are a linear ramp in x so bilinear resampling is exact."""
    folder.mkdir(parents=True, exist_ok=True)
    res = {"B1": 60, "B9": 60, "B2": 10, "B3": 10, "B4": 10, "B8": 10}
    y0 = 5000000
    for k, b in enumerate([*REFL, "SCL"] if scl else REFL):
        if b in skip:
            continue
        r = res.get(b, 20)
        shift = 0.0 if r == 10 else offset
        n = size * 10 // r
        xs = x0 + shift + (np.arange(n) + 0.5) * r
        ramp = (1000 + 100 * k + (xs - x0) * 2).astype(np.uint16)
        arr = np.tile(ramp, (n, 1))
        if b == "SCL":
            arr = ((np.arange(n)[None, :] + np.arange(n)[:, None]) % 11 + 1).astype(np.uint8)
        name = (names or "{}").format(FILE_NAMES[b]) + ".tif"
        write(folder / name, arr, Affine(r, 0, x0 + shift, 0, -r, y0 + shift), crs=crs)
    return folder


# --------------------------------------------------------------------------- names, metadata

def test_normalize_band():
    assert normalize_band("B01") == normalize_band("b1") == "B1"
    assert normalize_band(" B8a ") == "B8A" and normalize_band("scl") == "SCL"
    assert normalize_band("B12") == "B12" and normalize_band("B13") is None
    assert normalize_band("red") is None


def test_resolve_offset_rules():
    from lulc_edge.sources.metadata import ProductMetadata as M

    assert resolve_offset(M(), None)[0] == 0
    assert resolve_offset(M(file="x/item.json", baseline="04.00"), None)[0] == -1000
    assert resolve_offset(M(file="item.json", baseline="05.09", offset_applied=True), None)[0] == 0
    assert resolve_offset(M(baseline="02.14", file="item.json"), None)[0] == 0
    assert resolve_offset(M(baseline="04.00", file="t"), 0) == (0, "stated by the caller "
                                                                   "(--boa-offset)")
    xml = ('<a><PROCESSING_BASELINE>04.00</PROCESSING_BASELINE><BOA_ADD_OFFSET band_id="0">'
           '-1000</BOA_ADD_OFFSET><BOA_ADD_OFFSET band_id="8">-1000</BOA_ADD_OFFSET></a>')
    meta = parse_mtd_xml(xml, "MTD_MSIL2A.xml")
    assert meta.baseline == "04.00" and meta.level == "L2A"
    assert meta.offsets == {"B1": -1000, "B8A": -1000}
    off, why = resolve_offset(meta, None)
    assert off == -1000 and "MTD_MSIL2A.xml" in why


# --------------------------------------------------------------------------- stacks

def test_stack_by_position_and_boundless(tmp_path):
    data = stack_data()
    src = open_source(write(tmp_path / "s.tif", data))
    assert isinstance(src, StackSource)
    with src:
        assert (src.width, src.height, src.crs) == (48, 40, UTM)
        assert src.band_names == DEFAULT_BANDS
        np.testing.assert_array_equal(src.read(Window(3, 5, 20, 10)), data[:, 5:15, 3:23])
        out = src.read(Window(-4, -2, 16, 8))
        assert out.shape == (13, 8, 16) and out.dtype == np.uint16
        assert not out[:, :2].any() and not out[:, :, :4].any()
        np.testing.assert_array_equal(out[:, 2:, 4:], data[:, :6, :12])
        far = src.read(Window(40, 36, 16, 8))  # past the right and bottom edges
        np.testing.assert_array_equal(far[:, :4, :8], data[:, 36:, 40:])
        assert not far[:, 4:].any() and not far[:, :, 8:].any()
        assert not src.read(Window(100, 100, 4, 4)).any()
        for _ in range(3):  # repeatable
            np.testing.assert_array_equal(src.read(Window(0, 0, 8, 8)), data[:, :8, :8])
        tags = src.tags()
        assert tags["BAND_MAPPING"] == "position" and tags["GRID_SIZE"] == "48 40"
        assert tags["BOA_OFFSET"] == "0" and len(src.warnings) == 1
        assert "bands taken by position" in src.warnings[0]


def test_stack_by_descriptions(tmp_path):
    data = stack_data()
    order = ["B12", "SCL", "B01", "B02", "b03", "B04", "B05", "B06", "B07", "B08", "B8a", "B09",
             "B11"]
    perm = [DEFAULT_BANDS.index(normalize_band(n)) for n in order]
    p = write(tmp_path / "d.tif", data[perm], descriptions=order)
    with open_source(p) as src:
        np.testing.assert_array_equal(src.read(Window(0, 0, 48, 40)), data)
        assert src.tags()["BAND_MAPPING"] == "band descriptions"


def test_stack_explicit_bands_override(tmp_path):
    data = stack_data()
    rev = data[::-1]
    p = write(tmp_path / "r.tif", rev, descriptions=list(DEFAULT_BANDS))  # lying descriptions
    mapping = {b: 13 - i for i, b in enumerate(DEFAULT_BANDS)}
    with open_source(p, options=SourceOptions(bands=mapping)) as src:
        np.testing.assert_array_equal(src.read(Window(0, 0, 48, 40)), data)
    with pytest.raises(InputError, match="B12"):
        open_source(p, options=SourceOptions(bands={"B1": 1}))
    with pytest.raises(InputError, match="14"):
        open_source(p, options=SourceOptions(bands={**mapping, "B1": 14}))


def test_vrt_stack(tmp_path):
    data = stack_data()
    bands = []
    for i, b in enumerate(DEFAULT_BANDS):
        f = write(tmp_path / f"{b}.tif", data[i])
        bands.append(
            f'<VRTRasterBand dataType="UInt16" band="{i + 1}"><Description>{b}</Description>'
            f'<SimpleSource><SourceFilename relativeToVRT="1">{f.name}</SourceFilename>'
            '<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand>'
        )
    vrt = tmp_path / "stack.vrt"
    vrt.write_text(f'<VRTDataset rasterXSize="48" rasterYSize="40"><SRS>{UTM.to_wkt()}</SRS>'
                   '<GeoTransform>400000, 10, 0, 5000000, 0, -10</GeoTransform>'
                   + "".join(bands) + "</VRTDataset>")
    with open_source(vrt) as src:
        assert isinstance(src, StackSource)
        np.testing.assert_array_equal(src.read(Window(-1, 0, 10, 10))[:, :, 1:],
                                      data[:, :10, :9])


def test_stack_wrong_band_count(tmp_path):
    p = write(tmp_path / "seven.tif", stack_data()[:7])
    with pytest.raises(InputError, match=r"seven\.tif: has 7 bands; expected 13 \(B1,B2"):
        open_source(p)


def test_stack_12_bands_is_missing_scl(tmp_path):
    data = stack_data()
    data[:, :5, :5] = 0  # nodata corner
    twelve = np.delete(data, 10, axis=0)
    p = write(tmp_path / "twelve.tif", twelve)
    with pytest.raises(MissingSCLError, match=r"twelve\.tif: no usable SCL.*--scl-fill"):
        open_source(p)
    with open_source(p, options=SourceOptions(scl_fill=5)) as src:
        out = src.read(Window(0, 0, 48, 40))
        np.testing.assert_array_equal(np.delete(out, 10, axis=0), twelve)
        assert (out[10, 5:] == 5).all() and not out[:, :5, :5].any()
        assert src.tags()["SCL_FILL"] == "5" and "SCL filled" in src.warnings[-1]


def test_stack_zero_scl_and_tagged_scl(tmp_path):
    data = stack_data()
    data[10] = 0
    with pytest.raises(MissingSCLError, match="0 on every valid pixel"):
        open_source(write(tmp_path / "z.tif", data))
    data = stack_data()
    tagged = write(tmp_path / "t.tif", data, tags={"SCL_SOURCE": "absent (L1C); zero-filled"})
    with pytest.raises(MissingSCLError, match="SCL_SOURCE"):
        open_source(tagged)


def test_stack_band_as_scl_out_of_range(tmp_path):
    data = stack_data()
    data[10] = 3000  # B10 where SCL should be
    with pytest.raises(InputError, match="SCL classes are 0..11"):
        open_source(write(tmp_path / "b10.tif", data))


def test_stack_no_crs_warns(tmp_path):
    p = write(tmp_path / "nocrs.tif", stack_data(), crs=None)
    with open_source(p) as src:
        assert src.crs is None
        assert any("no CRS: output will have none" in w for w in src.warnings)
        assert src.read(Window(0, 0, 4, 4)).shape == (13, 4, 4)


def test_stack_declared_nodata(tmp_path):
    data = stack_data()
    data[:, 0, 0] = 65535           # all bands nodata
    data[3, 1, 1] = 65535           # one reflectance band nodata
    data[10, 2, 2] = 0              # SCL NO_DATA alone: not a nodata pixel
    p = write(tmp_path / "nd.tif", data, nodata=65535)
    with open_source(p) as src:
        out = src.read(Window(0, 0, 4, 4))
    assert not out[:, 0, 0].any() and not out[:, 1, 1].any()
    assert out[10, 2, 2] == 0 and (out[:10, 2, 2] == data[:10, 2, 2]).all()


def test_stack_boa_offset_option(tmp_path):
    data = stack_data()
    data[:, 0, 0] = 0
    data[2, 1, 1] = 400
    p = write(tmp_path / "off.tif", data)
    with open_source(p, options=SourceOptions(boa_offset=-1000)) as src:
        out = src.read(Window(0, 0, 48, 40)).astype(int)
        assert src.tags()["BOA_OFFSET"] == "-1000"
    want = np.clip(data.astype(int) - 1000, 0, 65535)
    want[10] = data[10]
    want[:, 0, 0] = 0
    np.testing.assert_array_equal(out, want)
    assert out[2, 1, 1] == 0 and out[0, 1, 1] == max(int(data[0, 1, 1]) - 1000, 0)


def test_stack_float_dtypes(tmp_path):
    data = stack_data().astype(np.float32)
    data[:, 0, 0] = np.nan
    with open_source(write(tmp_path / "dn.tif", data)) as src:
        out = src.read(Window(0, 0, 3, 3))
    assert not out[:, 0, 0].any()
    np.testing.assert_array_equal(out[:, 1:, 1:], data[:, 1:3, 1:3].astype(np.uint16))
    refl = (stack_data() / 10000.0).astype(np.float32)
    with pytest.raises(InputError, match=r"refl\.tif: floating-point values .* not digital"):
        open_source(write(tmp_path / "refl.tif", refl))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "complex64"])
def test_stack_unsupported_dtype(tmp_path, dtype):
    data = (stack_data() % 100).astype(dtype)
    with pytest.raises(InputError, match=f"unsupported data type {dtype}"):
        open_source(write(tmp_path / f"{dtype}.tif", data))


def test_stack_int16_accepted(tmp_path):
    data = stack_data().astype(np.int16)
    data[0, 0, 0] = -5
    with open_source(write(tmp_path / "i16.tif", data)) as src:
        out = src.read(Window(0, 0, 2, 2))
    assert out[0, 0, 0] == 0 and out[1, 1, 1] == data[1, 1, 1]


def test_bad_files(tmp_path):
    (tmp_path / "text.tif").write_text("not a raster\n")
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "zero.vrt").write_text('<VRTDataset rasterXSize="0" rasterYSize="0">'
                                       '<VRTRasterBand dataType="UInt16" band="1"/></VRTDataset>')
    for name in ("text.tif", "empty.tif", "zero.vrt"):
        with pytest.raises(InputError, match=rf"{name}: not a readable raster"):
            open_source(tmp_path / name)
    with pytest.raises(InputError, match="no such file"):
        open_source(tmp_path / "absent.tif")


def test_check_input_leaves_urls_and_gdal_paths_to_gdal(tmp_path):
    """One existence check for the CLI, batches and segment_file: URLs are not 'missing'."""
    from lulc_edge.sources import check_input

    for remote in ("https://example.org/s2/scene.tif", "/vsis3/bucket/scene.tif"):
        check_input(remote)
    with pytest.raises(InputError, match="absent.tif: no such file"):
        check_input(tmp_path / "absent.tif")


def test_truncated_tiff(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(1, 10000, (13, 256, 256)).astype(np.uint16)
    data[10] = rng.integers(1, 12, (256, 256))
    full = write(tmp_path / "full.tif", data, compress="deflate", tiled=True, blockxsize=64,
                 blockysize=64)
    raw = full.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=r"cut\.tif: read failed \(truncated or corrupt"):
        open_source(cut)


# --------------------------------------------------------------------------- folders

def test_folder_offset_grids_resampled_exactly(tmp_path):
    """20/60 m grids shifted by 10 m: bilinear of a linear ramp at each 10 m centre is exact."""
    folder = make_folder(tmp_path / "f", size=120, offset=10.0)
    with open_source(folder) as src:
        assert isinstance(src, BandFolderSource)
        assert (src.width, src.height, src.transform.a) == (120, 120, 10)
        out = src.read(Window(0, 0, 120, 120)).astype(int)
        again = src.read(Window(37, 50, 41, 29)).astype(int)
        tags = src.tags()
    np.testing.assert_array_equal(again, out[:, 50:79, 37:78])  # per-window == whole
    xs = (np.arange(120) + 0.5) * 10
    inner = slice(12, 100)  # away from edges where the 60 m kernel is clipped
    for k, b in enumerate(REFL):
        want = 1000 + 100 * k + xs * 2
        got = out[DEFAULT_BANDS.index(b)]
        assert np.abs(got[inner, inner] - want[None, inner]).max() <= 1, b
    # SCL: nearest, i.e. the class of the 20 m pixel holding each 10 m centre
    ci = np.floor((xs - 10.0) / 20).astype(int)  # grid shifted 10 m east...
    ri = np.floor((xs + 10.0) / 20).astype(int)  # ...and 10 m north
    want = (ci[None, :] + ri[:, None]) % 11 + 1
    scl = out[DEFAULT_BANDS.index("SCL")]
    np.testing.assert_array_equal(scl[2:-2, 2:-2], want[2:-2, 2:-2])
    assert json.loads(tags["RESAMPLING"])["SCL"].startswith("nearest")
    assert json.loads(tags["RESAMPLING"])["B5"].startswith("bilinear")


def test_folder_name_forms(tmp_path):
    a = make_folder(tmp_path / "a", names="T33UUP_20170613T101031_{}_10m")
    b = make_folder(tmp_path / "b", names="S2A_MSIL2A_20170613T101031_87_48_{}")
    with open_source(a) as sa, open_source(b) as sb:
        np.testing.assert_array_equal(sa.read(Window(0, 0, 60, 60)), sb.read(Window(0, 0, 60, 60)))
        assert sb.tags()["PROCESSING_LEVEL"] == "L2A"
    (b / "S2A_MSIL2A_20170613T101031_87_48_B10.tif").write_bytes(b"ignored")
    assert "B10" not in find_band_files(str(b)).files


def test_folder_missing_bands(tmp_path):
    f = make_folder(tmp_path / "m", skip=("B5", "B8A"))
    with pytest.raises(InputError, match=r"missing band files for B5, B8A"):
        open_source(f)


def test_folder_without_scl(tmp_path):
    f = make_folder(tmp_path / "n", scl=False)
    with pytest.raises(MissingSCLError, match="no SCL band file"):
        open_source(f)
    with open_source(f, options=FILL) as src:
        assert (src.read(Window(0, 0, 8, 8))[10] == 4).all()


def test_folder_different_crs_or_area(tmp_path):
    f = make_folder(tmp_path / "c")
    with rasterio.open(f / "B05.tif") as s:
        arr = s.read(1)
    write(f / "B05.tif", arr, Affine(20, 0, 400000, 0, -20, 5000000), crs=CRS.from_epsg(32634))
    with pytest.raises(InputError, match="different CRSs"):
        open_source(f)
    write(f / "B05.tif", arr, Affine(20, 0, 500000, 0, -20, 5000000))
    with pytest.raises(InputError, match=r"do not cover the same area: B05\.tif"):
        open_source(f)


def test_folder_not_a_product(tmp_path):
    empty = tmp_path / "e"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not a Sentinel-2 product"):
        open_source(empty)
    z = tmp_path / "other.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(InputError, match=r"other\.zip: not a Sentinel-2 product"):
        open_source(z)
    fake = tmp_path / "X.SAFE"
    fake.mkdir()
    with pytest.raises(InputError, match="not a Sentinel-2 product"):
        open_source(fake)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(InputError, match=r"bad\.zip"):
        open_source(bad)


def test_folder_garbage_jp2(tmp_path):
    f = make_folder(tmp_path / "g")
    (f / "B02.tif").unlink()
    (f / "B02.jp2").write_bytes(b"\x00\x00\x00\x0cjP  \r\n\x87\n" + os.urandom(200))
    with pytest.raises(InputError, match=r"B2 \(B02\.jp2\): not a readable raster"):
        open_source(f)


def test_folder_large_window_shape(tmp_path):
    """A 4000x4000 (10 m) sparse folder: read() returns exactly the window asked for."""
    f = tmp_path / "big"
    f.mkdir()
    for b in [*REFL, "SCL"]:
        r = {"B1": 60, "B9": 60, "B2": 10, "B3": 10, "B4": 10, "B8": 10}.get(b, 20)
        n = 36000 // r
        with rasterio.open(f / f"{FILE_NAMES[b]}.tif", "w", driver="GTiff", width=n, height=n,
                           count=1, dtype="uint8" if b == "SCL" else "uint16", crs=UTM,
                           transform=Affine(r, 0, 400000, 0, -r, 5000000), tiled=True,
                           compress="deflate", sparse_ok=True) as dst:
            dst.write(np.full((1, 16, 16), 5 if b == "SCL" else 1500, dst.dtypes[0]),
                      window=Window(0, 0, 16, 16))
    with open_source(f) as src:
        assert (src.width, src.height) == (3600, 3600)
        out = src.read(Window(1000, 2000, 256, 192))
        assert out.shape == (13, 256 // 256 * 192, 256) and not out.any()
        corner = src.read(Window(-8, -8, 24, 24))
        assert corner.shape == (13, 24, 24) and corner[1, 10, 10] == 1500


# --------------------------------------------------------------------------- products

MTD_L2A = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
<n1:General_Info><Product_Info><PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
<PROCESSING_BASELINE>04.00</PROCESSING_BASELINE></Product_Info>
<Product_Image_Characteristics><QUANTIFICATION_VALUES_LIST>
<BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>
<BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>
</Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>
"""


def make_safe(root: Path, src: Path, mtd: str | None = MTD_L2A) -> Path:
    """A minimal L2A .SAFE from per-band files (GeoTIFF content, as GDAL reads any format)."""
    safe = root / "S2A_MSIL2A_20200219T112111_N0400_R037_T29RKH_20200219T123947.SAFE"
    img = safe / "GRANULE" / "L2A_T29RKH_A024344_20200219T113105" / "IMG_DATA"
    for b, name in FILE_NAMES.items():
        res = {"B1": 60, "B9": 60, "B2": 10, "B3": 10, "B4": 10, "B8": 10}.get(b, 20)
        d = img / f"R{res}m"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / f"{name}.tif", d / f"T29RKH_20200219T112111_{name}_{res}m.tif")
    # a decoy: B02 at 20 m must lose to the native 10 m file
    write(img / "R20m" / "T29RKH_20200219T112111_B02_20m.tif", np.full((4, 4), 7, np.uint16))
    if mtd is not None:
        offs = "".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13))
        (safe / "MTD_MSIL2A.xml").write_text(mtd.format(offsets=offs))
    return safe


def zip_dir(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder.parent).as_posix())
    return dest


@needs_shared
def test_safe_and_zip_apply_boa_offset(tmp_path):
    src_dir = SHARED_DATA / "l2a-29RKH-20200219"
    safe = make_safe(tmp_path, src_dir)
    win = Window(500, 400, 64, 48)
    with open_source(src_dir) as plain:
        raw = plain.read(win).astype(int)
    want = np.where(raw > 0, np.clip(raw - 1000, 0, 65535), 0)
    want[10] = raw[10]
    for path in (safe, zip_dir(safe, tmp_path / "product.zip")):
        with open_source(path) as src:
            assert isinstance(src, BandFolderSource)
            out = src.read(win).astype(int)
            tags = src.tags()
        np.testing.assert_array_equal(out, want)
        assert tags["BOA_OFFSET"] == "-1000" and "MTD_MSIL2A.xml" in tags["BOA_OFFSET_SOURCE"]
        assert tags["PROCESSING_BASELINE"] == "04.00" and tags["PROCESSING_LEVEL"] == "L2A"
        assert "R10m/T29RKH_20200219T112111_B02_10m.tif" in tags["BAND_SOURCES"]
        assert "SCL_20m" in tags["SCL_SOURCE"]
    assert tags["INPUT_KIND"] == "zip"


@needs_shared
def test_safe_baseline_from_name_without_mtd(tmp_path):
    safe = make_safe(tmp_path, SHARED_DATA / "l2a-29RKH-20200219", mtd=None)
    with open_source(safe, options=SourceOptions()) as src:
        assert src.tags()["BOA_OFFSET"] == "-1000"
    with open_source(safe, options=SourceOptions(boa_offset=0)) as src:
        assert src.tags()["BOA_OFFSET"] == "0"


@needs_shared
def test_safe_l1c_layout(tmp_path):
    safe = tmp_path / "S2A_MSIL1C_20170729T153601_N0205_R111_T19UDP_20170729T153557.SAFE"
    img = safe / "GRANULE" / "L1C_T19UDP_A011011_20170729T153557" / "IMG_DATA"
    img.mkdir(parents=True)
    for f in (SHARED_DATA / "l1c-19UDP-20170729").glob("*.jp2"):
        shutil.copy(f, img / f"T19UDP_20170729T153601_{f.name}")
    with pytest.raises(MissingSCLError, match=r"\(L1C\): no SCL band file"):
        open_source(safe)
    with open_source(safe, options=FILL) as src:
        assert src.read(Window(100, 0, 8, 8)).shape == (13, 8, 8)
        assert src.tags()["PROCESSING_BASELINE"] == "02.05"


def test_stac_item_offset_applied(tmp_path):
    f = make_folder(tmp_path / "stac")
    item = {"type": "Feature", "stac_version": "1.0.0",
            "properties": {"s2:processing_baseline": "05.09", "s2:product_type": "S2MSI2A",
                           "earthsearch:boa_offset_applied": True}}
    (f / "item.json").write_text(json.dumps(item))
    with open_source(f) as src:
        assert src.tags()["BOA_OFFSET"] == "0" and "already applied" in src.tags()[
            "BOA_OFFSET_SOURCE"]
    item["properties"]["earthsearch:boa_offset_applied"] = False
    (f / "item.json").write_text(json.dumps(item))
    with open_source(f) as src:
        assert src.tags()["BOA_OFFSET"] == "-1000"


def test_read_from_another_thread(tmp_path):
    f = make_folder(tmp_path / "t")
    with open_source(f) as src:
        first = src.read(Window(0, 0, 30, 30))
        got = {}
        t = threading.Thread(target=lambda: got.setdefault("a", src.read(Window(0, 0, 30, 30))))
        t.start()
        t.join()
    np.testing.assert_array_equal(got["a"], first)


# --------------------------------------------------------------------------- shared real data

@pytest.mark.parametrize("entry", shared_manifest(), ids=lambda e: e["path"].rstrip("/"))
def test_manifest_entry_reads(entry):
    path = SHARED_DATA / entry["path"]
    real_scl = entry["scl"].startswith("real")
    if not real_scl:
        with pytest.raises(MissingSCLError):
            open_source(path)
    with open_source(path, options=SourceOptions() if real_scl else FILL) as src:
        w, h = min(src.width, 96), min(src.height, 96)
        win = Window((src.width - w) // 2, (src.height - h) // 2, w, h)
        out = src.read(win)
        tags = src.tags()
    assert out.shape == (13, h, w) and out.dtype == np.uint16
    valid = out[[i for i, b in enumerate(DEFAULT_BANDS) if b != "SCL"]].all(axis=0)
    assert valid.mean() > 0.5, "mostly nodata in the middle of the scene"
    refl = out[:, valid]
    assert 0 < np.median(refl[1]) < 10000  # B2 in a plausible DN range
    scl = out[DEFAULT_BANDS.index("SCL")][valid]
    if real_scl:
        assert scl.max() <= 11 and scl.any() and tags["SCL_SOURCE"] == "SCL.tif"
    else:
        assert (scl == 4).all() and tags["SCL_FILL"] == "4"
    if "size" in entry:
        assert [src.width, src.height] == entry["size"]
    if "processing_baseline" in entry:
        assert tags["PROCESSING_BASELINE"] == entry["processing_baseline"].split()[0]
        assert tags["BOA_OFFSET"] == "0"


@needs_shared
def test_18svg_folder_matches_stack():
    """The folder, bilinear on the fly, equals the reference stack (the class-map premise)."""
    folder = SHARED_DATA / "l1c-18SVG-20160112-crop"
    stack = folder.with_suffix(".tif")
    with open_source(folder, options=FILL) as f, open_source(stack, options=FILL) as s:
        assert (f.width, f.height, f.transform, f.crs) == (s.width, s.height, s.transform, s.crs)
        for win in (Window(0, 0, 384, 384), Window(300, 420, 468, 348), Window(-16, 700, 96, 96)):
            a, b = f.read(win).astype(int), s.read(win).astype(int)
            close = (np.abs(a - b) <= 2).all(axis=0)
            assert close.mean() >= 0.99, (win, close.mean())
