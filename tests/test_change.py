"""Change maps: the labels' own transitions, hectares through lulc_edge.areas, the JSON, CSV
and picture, one-line errors for bad inputs, and the ``change`` command."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from lulc_edge.areas import row_pixel_areas_m2
from lulc_edge.change import NODATA, change, change_picture
from lulc_edge.cli.change import change as change_command
from lulc_edge.clouds import CLOUD_VALUE
from lulc_edge.errors import InputError, OutputError
from lulc_edge.synthetic import CLASS_NAMES, SceneSpec, generate

K = len(CLASS_NAMES)
COLOURS = [(244, 164, 96), (220, 20, 60), (255, 255, 0), (0, 128, 0), (0, 0, 255)]
UTM = {"crs": "EPSG:32633", "transform": from_origin(399960, 5000040, 10, 10)}


def write_map(path: Path, labels: np.ndarray, names=CLASS_NAMES, dtype="uint8", **grid
              ) -> Path:
    """A class map as lulc-edge writes one: uint8, nodata 255, CLASS_<v> tags, palette."""
    g = {**UTM, **grid}
    with rasterio.open(path, "w", driver="GTiff", width=labels.shape[1],
                       height=labels.shape[0], count=1, dtype=dtype, nodata=255, **g) as ds:
        ds.write(labels.astype(dtype), 1)
        if dtype == "uint8":
            ds.write_colormap(1, {v: (*c, 255) for v, c in enumerate(COLOURS)})
        ds.update_tags(**{f"CLASS_{v}": n for v, n in enumerate(names)},
                       CLASS_255="Unclassified")
    return path


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """Two synthetic label maps (different ground), B with a planted cloud (254)."""
    a = generate(SceneSpec(96, 80, seed=1, region_scale=16))[1]
    b = generate(SceneSpec(96, 80, seed=2, region_scale=16))[1]
    b[20:40, 30:60] = CLOUD_VALUE
    return write_map(tmp_path / "a.tif", a), write_map(tmp_path / "b.tif", b), a, b


def test_change_is_the_labels_own_transitions(pair, tmp_path: Path) -> None:
    a_path, b_path, a, b = pair
    res = change(a_path, b_path, tmp_path / "change.tif")
    both = (a < K) & (b < K)
    want = np.zeros((K, K), np.int64)
    np.add.at(want, (a[both], b[both]), 1)
    np.testing.assert_array_equal(res.pixels, want)
    assert res.not_compared == int((~both).sum()) > 600
    assert res.changed == int((a != b)[both].sum()) > 0
    np.testing.assert_allclose(res.hectares, want * 0.01)  # 10 m pixels: 0.01 ha
    with rasterio.open(tmp_path / "change.tif") as ds:
        coded = ds.read(1)
        tags, cmap = ds.tags(), ds.colormap(1)
        assert ds.nodata == NODATA and ds.crs == rasterio.crs.CRS.from_epsg(32633)
    np.testing.assert_array_equal(coded, np.where(both, a.astype(int) * K + b, NODATA))
    assert tags["CLASS_17"] == "Forest -> Crop" and tags["CLASS_255"] == "Not compared"
    assert tags["LULC_EDGE_COMPLETE"] == "1"
    assert cmap[17][:3] == COLOURS[2]  # Crop's colour: what the pixel became
    assert cmap[18][:3] == cmap[0][:3] == (200, 200, 200)  # unchanged: grey
    assert not list(tmp_path.glob(".*partial*"))
    pam = (tmp_path / "change.tif.aux.xml").read_text()
    assert "<Category>Forest -&gt; Crop</Category>" in pam and "Not compared" in pam


def test_hectares_on_a_geographic_grid_come_from_each_rows_area(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, K, (60, 50)).astype(np.uint8)
    b = rng.integers(0, K, (60, 50)).astype(np.uint8)
    geo = {"crs": "EPSG:4326", "transform": from_origin(10.0, 60.0, 0.001, 0.001)}
    res = change(write_map(tmp_path / "a.tif", a, **geo), write_map(tmp_path / "b.tif", b, **geo),
                 tmp_path / "c.tif")
    rows = row_pixel_areas_m2(rasterio.crs.CRS.from_epsg(4326), geo["transform"], 60)
    want = np.zeros((K, K))
    np.add.at(want, (a, b), np.repeat(rows, 50).reshape(60, 50) / 10_000)
    np.testing.assert_allclose(res.hectares, want, rtol=1e-9)


def test_a_map_without_crs_has_pixels_but_no_hectares(tmp_path: Path) -> None:
    labels = np.arange(16, dtype=np.uint8).reshape(4, 4) % K
    a = write_map(tmp_path / "a.tif", labels, crs=None)
    res = change(a, write_map(tmp_path / "b.tif", labels[::-1].copy(), crs=None),
                 tmp_path / "c.tif")
    assert res.pixels.sum() == 16 and res.hectares is None and "no CRS" in res.no_area
    assert res.as_dict()["matrix"]["hectares"] is None
    assert all(r["hectares"] == "" for r in csv.DictReader(io.StringIO(res.to_csv())))


def test_json_and_csv_hold_the_matrix(pair, tmp_path: Path) -> None:
    a_path, b_path, _, _ = pair
    res = change(a_path, b_path, tmp_path / "change.tif")
    doc = json.loads(json.dumps(res.as_dict()))
    assert doc["matrix"]["pixels"] == res.pixels.tolist()
    assert doc["changed_pixels"] == res.changed
    assert doc["transitions"][0]["pixels"] == res.pixels.max()
    rows = list(csv.DictReader(io.StringIO(res.to_csv())))
    assert len(rows) == K * K
    forest_crop = next(r for r in rows if r["from"] == "Forest" and r["to"] == "Crop")
    assert int(forest_crop["pixels"]) == res.pixels[3, 2]
    assert float(forest_crop["hectares"]) == pytest.approx(res.pixels[3, 2] * 0.01)


def test_picture_has_a_legend_of_the_largest_transitions(pair, tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    a_path, b_path, _, _ = pair
    res = change(a_path, b_path, tmp_path / "change.tif")
    png = change_picture(res.output, tmp_path / "change.png", top=3)
    with Image.open(png) as img:
        assert img.format == "PNG" and img.width > 512 and img.height >= 480
        pixels = np.asarray(img.convert("RGB"))
    # the picture shows the unchanged grey, the top transitions' colour and the others' grey
    colours = {tuple(p) for p in pixels.reshape(-1, 3)}
    assert {(200, 200, 200), (128, 128, 128)} <= colours


@pytest.mark.parametrize("case, message", [
    ("grid", "are not on the same grid"),
    ("crs", "are not on the same grid"),
    ("float", "not a class map (band 1 is float32"),
    ("classes", "have different classes"),
    ("missing", "no such file"),
])
def test_bad_inputs_are_one_line_errors(tmp_path: Path, case: str, message: str) -> None:
    labels = np.zeros((40, 40), np.uint8)
    a = write_map(tmp_path / "a.tif", labels)
    b = {"grid": lambda p: write_map(p, labels[:, :30]),
         "crs": lambda p: write_map(p, labels, crs="EPSG:32632"),
         "float": lambda p: write_map(p, labels, dtype="float32"),
         "classes": lambda p: write_map(p, labels, names=("Water", "Land")),
         "missing": lambda p: p}[case](tmp_path / "b.tif")
    with pytest.raises(InputError) as err:
        change(a, b, tmp_path / "c.tif")
    text = str(err.value)
    assert message in text and "\n" not in text
    assert str(b) in text
    assert not (tmp_path / "c.tif").exists() and not list(tmp_path.glob(".c.tif*"))


def test_an_existing_output_is_kept_without_overwrite(pair, tmp_path: Path) -> None:
    a_path, b_path, _, _ = pair
    (tmp_path / "c.tif").write_bytes(b"mine")
    with pytest.raises(OutputError, match="exists"):
        change(a_path, b_path, tmp_path / "c.tif")
    assert (tmp_path / "c.tif").read_bytes() == b"mine"
    with pytest.raises(OutputError, match="overwrite the input"):
        change(a_path, b_path, b_path, overwrite=True)


def invoke(*args: object):
    return CliRunner().invoke(change_command, [str(a) for a in args])


def test_command_writes_map_json_csv_and_picture(pair, tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    a_path, b_path, _, _ = pair
    out = tmp_path / "c.tif"
    res = invoke(a_path, b_path, "-o", out, "--json", tmp_path / "c.json", "--csv",
                 tmp_path / "c.csv", "--picture", tmp_path / "c.png")
    assert res.exit_code == 0, res.output
    assert "px compared" in res.output and " -> " in res.output
    for name in ("c.tif", "c.json", "c.csv", "c.png"):
        assert (tmp_path / name).stat().st_size > 0
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["output"] == str(out)
    res = invoke(a_path, b_path, "-o", out, "--overwrite", "--json", "-")
    assert res.exit_code == 0 and json.loads(res.output)["matrix"] == doc["matrix"]


def test_command_errors_are_one_line(tmp_path: Path) -> None:
    a = write_map(tmp_path / "a.tif", np.zeros((20, 20), np.uint8))
    b = write_map(tmp_path / "b.tif", np.zeros((10, 20), np.uint8))
    res = invoke(a, b, "-o", tmp_path / "c.tif")
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lulc-edge: error: ")
    assert "not on the same grid" in lines[0] and "Traceback" not in res.output


def test_command_help_teaches_by_example() -> None:
    res = invoke("--help")
    assert res.exit_code == 0
    assert "lulc-edge change 2023.lulc.tif 2024.lulc.tif -o change.tif" in res.output
