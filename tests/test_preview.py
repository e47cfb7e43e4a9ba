"""Pictures of a class map (lulc-edge preview, run --preview) and the GIS-ready map."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling

from lulc_edge import RunOptions, segment_file
from lulc_edge.preview import (
    colour_lut,
    components,
    largest_regions,
    out_shape,
    read_map,
    read_true_colour,
    write_previews,
)
from tests.conftest import ROOT, run_cli

PIL = pytest.importorskip("PIL.Image")
EXAMPLE = ROOT / "examples" / "data" / "example-scene.tif"


def gdal_band_names(path) -> tuple[list[str], list[str]]:
    """Category names and the RAT's name column of band 1, read by GDAL itself (the libgdal
    rasterio runs on, through its C API: rasterio has no call for either)."""
    lib = next(line.split()[-1] for line in open("/proc/self/maps") if "libgdal" in line)
    g = ctypes.CDLL(lib)
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    for name, res, args in [("GDALOpen", vp, [cp, ctypes.c_int]),
                            ("GDALGetRasterBand", vp, [vp, ctypes.c_int]),
                            ("GDALGetDescription", cp, [vp]),
                            ("GDALGetRasterCategoryNames", vp, [vp]),
                            ("GDALGetDefaultRAT", vp, [vp]),
                            ("GDALRATGetRowCount", ctypes.c_int, [vp]),
                            ("GDALRATGetValueAsString", cp, [vp, ctypes.c_int, ctypes.c_int]),
                            ("GDALClose", None, [vp])]:
        fn = getattr(g, name)
        fn.restype, fn.argtypes = res, args
    g.GDALAllRegister()
    ds = g.GDALOpen(str(path).encode(), 0)
    assert ds
    try:
        band = g.GDALGetRasterBand(ds, 1)
        g.GDALGetDescription(band)  # GTiff loads the .aux.xml lazily, on such a call
        ptr = g.GDALGetRasterCategoryNames(band)
        cats = []
        if ptr:
            arr = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_char_p))
            while arr[len(cats)] is not None:
                cats.append(arr[len(cats)].decode())
        rat = g.GDALGetDefaultRAT(band)
        rows = [g.GDALRATGetValueAsString(rat, r, 1).decode()
                for r in range(g.GDALRATGetRowCount(rat))] if rat else []
        return cats, rows
    finally:
        g.GDALClose(ds)


@pytest.fixture(scope="module")
def mapped(tmp_path_factory, engine):
    """The example scene mapped with a confidence band."""
    out = tmp_path_factory.mktemp("preview") / "ex.lulc.tif"
    res = segment_file(EXAMPLE, out, engine=engine,
                       options=RunOptions(confidence=True, progress=False))
    return out, res


def test_pictures_show_the_map_and_its_legend(mapped, tmp_path):
    out, res = mapped
    paths = write_previews(out, out_dir=tmp_path, size=200)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"ex.lulc.{k}.png" for k in ("mask", "overlay", "annotated", "stats"))
    assert set(paths) == {"mask", "overlay", "annotated", "stats"}
    view = read_map(out, 200)
    assert view.classes.shape == (200, 200)
    assert view.pixels == res.class_pixels  # exact counts, not from the decimated grid
    assert view.hectares == res.class_hectares
    with rasterio.open(out) as ds:
        want = ds.read(1, out_shape=(200, 200), resampling=Resampling.nearest)
    mask = np.asarray(PIL.open(paths["mask"]).convert("RGB"))
    assert mask.shape[0] == 200 and mask.shape[1] > 200  # legend panel on the right
    np.testing.assert_array_equal(mask[:, :200], colour_lut(view)[want])
    assert (mask[:, :200][want == 255] == 0).all()  # nodata black
    # the overlay blends the true colour 50/50 with the class colours on valid pixels
    rgb = read_true_colour(EXAMPLE, (200, 200), want != 255)
    overlay = np.asarray(PIL.open(paths["overlay"]).convert("RGB"))[:, :200]
    blend = (rgb.astype(np.uint16) + colour_lut(view)[want]) // 2
    np.testing.assert_array_equal(overlay[want != 255], blend[want != 255])
    assert (overlay[want == 255] == 0).all()
    # the legend panel holds every class colour as a swatch
    panel = mask[:, 200:].reshape(-1, 3)
    for c in view.legend:
        assert (panel == c.rgb).all(axis=1).any(), c.name
    annotated = PIL.open(paths["annotated"])
    assert annotated.size == (200, 200)
    assert PIL.open(paths["stats"]).size[0] > 0


def test_true_colour_stretch_spans_the_range(mapped):
    out, _ = mapped
    rgb = read_true_colour(EXAMPLE, out_shape(512, 512, 256))
    assert rgb.shape == (256, 256, 3)
    for i in range(3):
        band = rgb[..., i][rgb.any(axis=2)]
        assert np.percentile(band, 1) <= 5 and np.percentile(band, 99) >= 250


def test_components_label_4_connected_regions():
    a = np.array([[1, 1, 0, 2],
                  [0, 1, 0, 2],
                  [1, 0, 0, 2],
                  [1, 1, 0, 0]], np.uint8)
    ids = components(a)
    assert ids[0, 0] == ids[0, 1] == ids[1, 1]
    assert ids[2, 0] == ids[3, 0] == ids[3, 1] != ids[0, 0]  # diagonal does not connect
    assert ids[0, 2] == ids[3, 3] == ids[2, 1]  # the snaking 0 region is one
    assert len(np.unique(ids)) == 5  # {1 top}, {1 bottom}, {0 big}, {0 at (1,0)}, {2}


def test_label_sits_on_the_largest_region_with_its_confidence(tmp_path):
    classes = np.full((60, 80), 3, np.uint8)
    classes[5:15, 5:15] = 1       # small Built-up block
    classes[30:55, 40:75] = 1     # the large one
    classes[0:3, 70:80] = 255
    conf = np.full_like(classes, 128)
    conf[30:55, 40:75] = 204
    path = tmp_path / "m.tif"
    with rasterio.open(path, "w", driver="GTiff", width=80, height=60, count=2, dtype="uint8",
                       nodata=255) as ds:
        ds.write(np.stack([classes, conf]))
        ds.set_band_description(2, "confidence")
        ds.write_colormap(1, {1: (220, 20, 60, 255), 3: (0, 128, 0, 255)})
        ds.update_tags(CLASS_1="Built-up_Area", CLASS_3="Forest", CLASS_255="Unclassified")
    regions = {r.cls.name: r for r in largest_regions(read_map(path))}
    assert set(regions) == {"Built-up_Area", "Forest"}
    b = regions["Built-up_Area"]
    assert 30 <= b.row <= 55 and 40 <= b.col <= 75 and b.pixels == 25 * 35
    assert b.confidence == pytest.approx(0.8)


def test_preview_cli_and_run_preview(tmp_path, make_scene):
    scene, _, _ = make_scene(width=150, height=120, name="s.tif")
    out = tmp_path / "s.lulc.tif"
    r = run_cli("run", scene, "-o", out, "--device", "cpu", "--precision", "fp32", "-q",
                "--preview")
    assert r.returncode == 0, r.stderr
    for k in ("mask", "overlay", "annotated", "stats"):
        assert (tmp_path / f"s.lulc.{k}.png").stat().st_size > 0
    pics = tmp_path / "pics"
    pics.mkdir()
    r = run_cli("preview", out, "-o", pics, "--size", "64", "--qml")
    assert r.returncode == 0, r.stderr
    assert PIL.open(pics / "s.lulc.annotated.png").size == (64, 51)
    assert 'label="Forest"' in (tmp_path / "s.lulc.qml").read_text()
    # a batch previews every map it made
    b = tmp_path / "batch"
    r = run_cli("run", scene, EXAMPLE, "--out-dir", b, "--device", "cpu", "--precision",
                "fp32", "-q", "--preview")
    assert r.returncode == 0, r.stderr
    assert (b / "s.lulc.overlay.png").is_file() and (b / "example-scene.lulc.overlay.png").is_file()


@pytest.mark.parametrize("case", ["not-a-map", "missing", "scene-gone"])
def test_preview_errors_are_one_line(tmp_path, mapped, case):
    out, _ = mapped
    if case == "not-a-map":
        args, word = [EXAMPLE], "not a lulc-edge class map"
    elif case == "missing":
        args, word = [tmp_path / "nope.tif"], "no such file"
    else:
        m = tmp_path / "m.tif"
        m.write_bytes(out.read_bytes())
        with rasterio.open(m, "r+") as ds:
            ds.update_tags(LULC_EDGE_SOURCE_INPUT=str(tmp_path / "gone.tif"))
        args, word = [m], "give it with --scene"
    r = run_cli("preview", *args, "-o", tmp_path)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and word in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("cog", [False, True])
def test_map_is_gis_ready(tmp_path, engine, cog):
    out = tmp_path / "m.tif"
    segment_file(EXAMPLE, out, engine=engine,
                 options=RunOptions(cog=cog, probs=True, progress=False))
    for path in (out, tmp_path / "m.probs.tif"):
        with rasterio.open(path) as ds:
            assert ds.overviews(1) == [2], path
    with rasterio.open(out) as ds:  # nearest: an overview holds class values only
        ov = ds.read(1, out_shape=(256, 256))
        full = ds.read(1)
    assert any(np.array_equal(ov, full[r::2, c::2]) for r in (0, 1) for c in (0, 1))
    cats, rat = gdal_band_names(out)
    assert cats[:5] == ["Barren_Land", "Built-up_Area", "Crop", "Forest", "Water"]
    assert cats[255] == "Unclassified" and set(cats[5:254]) == {""} and cats[254] == "Cloud"
    assert rat == ["Barren_Land", "Built-up_Area", "Crop", "Forest", "Water", "Cloud",
                   "Unclassified"]
    assert not list(tmp_path.glob(".*"))  # no temporaries left


def test_run_thumbnail_is_the_decimated_scene(engine, make_scene, tmp_path):
    """run --preview keeps B4/B3/B2 as it reads; the pictures equal those read afterwards."""
    from lulc_edge.preview import pictures, png_bytes, read_decimated

    src, _, _ = make_scene(203, 150)
    out = tmp_path / "m.tif"
    res = segment_file(src, out, engine=engine,
                       options=RunOptions(progress=False, tile=64, thumbnail=64))
    assert res.true_colour is not None and res.true_colour.shape == (3, 47, 64)
    np.testing.assert_array_equal(res.true_colour, read_decimated(str(src), [4, 3, 2], (47, 64)))
    assert "true_colour" not in res.as_dict()
    _, kept = pictures(out, size=64, true_colour=res.true_colour)
    _, read = pictures(out, size=64)
    for kind in ("overlay", "annotated"):
        assert png_bytes(kept[kind]) == png_bytes(read[kind]), kind
