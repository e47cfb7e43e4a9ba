"""lulc-edge evaluate: metrics checked against scikit-learn on synthetic maps, label rasters on
other grids, points and polygons, the Olofsson et al. (2014) example, and Sen1Floods11."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from rasterio.warp import transform as warp_transform

from lulc_edge.cli import main
from lulc_edge.errors import InputError
from lulc_edge.evaluate import FILE_NODATA, class_plan, evaluate, evaluate_pairs
from lulc_edge.metrics import Z95, scores, stratified_estimate
from lulc_edge.vectors import VECTOR_HINT

from .conftest import ROOT, SHARED_DATA

metrics = pytest.importorskip("sklearn.metrics")

NAMES = ("Barren_Land", "Built-up_Area", "Crop", "Forest", "Water")
UTM = "EPSG:32633"
TR = Affine(10, 0, 500000, 0, -10, 5000000)


def write_map(path, values, crs=UTM, transform=TR, nodata=255, tags=True, dtype="uint8"):
    """A class map as lulc-edge writes it: uint8 band 1, nodata 255, CLASS_n tags."""
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0],
                       count=1, dtype=dtype, crs=crs, transform=transform, nodata=nodata,
                       tiled=True, blockxsize=32, blockysize=32) as ds:
        ds.write(values.astype(dtype), 1)
        if tags:
            ds.update_tags(**{f"CLASS_{i}": n for i, n in enumerate(NAMES)},
                           CLASS_255="Unclassified")
    return path


def apply(tr, cols, rows):
    """An affine transform applied to arrays of (col, row)."""
    cols, rows = np.asarray(cols, float), np.asarray(rows, float)
    return tr.a * cols + tr.b * rows + tr.c, tr.d * cols + tr.e * rows + tr.f


def random_pair(seed=0, shape=(97, 131), agree=0.8):
    """Reference labels and a map that agrees with them on about ``agree`` of the pixels."""
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 5, shape)
    pred = np.where(rng.random(shape) < agree, ref, rng.integers(0, 5, shape))
    return ref, pred


def check_against_sklearn(e, y_true, y_pred, k):
    labels = list(range(k))
    cm = metrics.confusion_matrix(y_true, y_pred, labels=labels)
    assert np.array_equal(np.array(e.matrix), cm)
    assert e.overall_accuracy == pytest.approx(metrics.accuracy_score(y_true, y_pred))
    assert e.kappa == pytest.approx(metrics.cohen_kappa_score(y_true, y_pred, labels=labels))
    p, r, f, s = metrics.precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                         zero_division=np.nan)
    iou = metrics.jaccard_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    for i, c in enumerate(e.per_class):
        for ours, theirs in ((c.precision, p[i]), (c.recall, r[i]), (c.f1, f[i])):
            assert (ours is None and np.isnan(theirs)) or ours == pytest.approx(theirs)
        assert (c.iou is None) == (c.support + c.mapped == 0)   # sklearn says 0 there
        assert (c.iou or 0.0) == pytest.approx(iou[i])
        assert c.support == s[i]
    present = [i for i in labels if s[i] > 0]
    for avg in ("macro", "weighted"):
        p, r, f, _ = metrics.precision_recall_fscore_support(
            y_true, y_pred, labels=present, average=avg, zero_division=0)
        j = metrics.jaccard_score(y_true, y_pred, labels=present, average=avg, zero_division=0)
        mine = getattr(e, avg)
        assert (mine.precision, mine.recall, mine.f1, mine.iou) == pytest.approx((p, r, f, j))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_sklearn(seed):
    ref, pred = random_pair(seed, agree=0.3 + 0.3 * seed)
    if seed == 2:
        pred[pred == 1] = 3            # a class never mapped: precision undefined
        ref[ref == 4] = 0              # a class absent from the reference
    cm = np.bincount(ref.ravel() * 5 + pred.ravel(), minlength=25).reshape(5, 5)
    check_against_sklearn(scores(cm, NAMES), ref.ravel(), pred.ravel(), 5)


def test_raster_reference_in_blocks_matches_sklearn_and_counts_left_out(tmp_path):
    ref, pred = random_pair(3)
    pred[:4, :] = 255                                   # map nodata
    pred[10:12, 20:30] = 7                              # a value outside the classes (cloud)
    labels = ref.copy()
    labels[50:55, :] = 0                                # label nodata
    labels[60:62, 5:9] = 9                              # a code with no class
    write_map(tmp_path / "map.tif", pred)
    with rasterio.open(tmp_path / "labels.tif", "w", driver="GTiff", width=ref.shape[1],
                       height=ref.shape[0], count=1, dtype="uint8", crs=UTM, transform=TR,
                       nodata=0) as ds:
        ds.write((labels + 10 * (labels > 0) * (labels != 9)).astype("uint8"), 1)
    # codes on file: 0 nodata, 11..14 classes 1..4, 9 unmapped; class 0 cannot be coded
    mapping = {"11": "Built-up_Area", "12": "Crop", "13": "Forest", "14": "4"}
    e = evaluate(tmp_path / "map.tif", tmp_path / "labels.tif", classes=mapping, block_rows=7)
    ref_code = np.where(labels == 9, -1, labels)
    keep = (ref_code > 0) & (pred < 5)
    check_against_sklearn(e, ref_code[keep], pred[keep], 5)
    assert e.left_out.reference_nodata == int((labels == 0).sum())
    assert dict(e.left_out.unmapped) == {"9": 8}
    assert e.left_out.map_nodata == int(((ref_code > 0) & (pred >= 5)).sum())
    assert e.compared + e.left_out.total == ref.size


def test_reference_on_a_coarser_shifted_grid_is_read_with_nearest(tmp_path):
    ref20 = np.random.default_rng(4).integers(0, 5, (40, 60))
    pred = np.random.default_rng(5).integers(0, 5, (70, 110))
    write_map(tmp_path / "map.tif", pred)
    tr20 = Affine(20, 0, 500003, 0, -20, 4999997)       # no pixel centre on a pixel edge
    write_map(tmp_path / "ref.tif", ref20, transform=tr20, nodata=None, tags=False)
    # independent nearest lookup of the reference at each map pixel centre, and back
    rows, cols = np.mgrid[0:70, 0:110]
    x, y = apply(TR, cols + 0.5, rows + 0.5)
    c20, r20 = apply(~tr20, x, y)
    c20, r20 = np.floor(c20).astype(int), np.floor(r20).astype(int)
    inside = (r20 >= 0) & (r20 < 40) & (c20 >= 0) & (c20 < 60)
    e = evaluate(tmp_path / "map.tif", tmp_path / "ref.tif", block_rows=16)
    check_against_sklearn(e, ref20[r20[inside], c20[inside]], pred[inside], 5)
    assert e.left_out.reference_nodata == int((~inside).sum())      # outside the reference
    rows, cols = np.mgrid[0:40, 0:60]
    x, y = apply(tr20, cols + 0.5, rows + 0.5)
    c, r = apply(~TR, x, y)
    c, r = np.floor(c).astype(int), np.floor(r).astype(int)
    inside = (r >= 0) & (r < 70) & (c >= 0) & (c < 110)
    e = evaluate(tmp_path / "map.tif", tmp_path / "ref.tif", on="reference")
    check_against_sklearn(e, ref20[inside], pred[r[inside], c[inside]], 5)
    assert e.left_out.map_nodata == int((~inside).sum())            # outside the map


def test_reference_in_another_crs_agrees_with_a_pointwise_lookup(tmp_path):
    pred = np.random.default_rng(6).integers(0, 5, (60, 80))
    write_map(tmp_path / "map.tif", pred)
    lon0, lat0 = warp_transform(UTM, "EPSG:4326", [500000 - 100], [5000000 + 100])
    tr4326 = Affine(0.0002, 0, lon0[0], 0, -0.0002, lat0[0])
    ref = np.random.default_rng(7).integers(1, 6, (60, 80))   # codes 1..5 -> classes 0..4
    write_map(tmp_path / "ref.tif", ref, crs="EPSG:4326", transform=tr4326, nodata=0,
              tags=False)
    rows, cols = np.mgrid[0:60, 0:80]
    x, y = apply(TR, cols.ravel() + 0.5, rows.ravel() + 0.5)
    lon, lat = warp_transform(UTM, "EPSG:4326", x, y)
    c, r = apply(~tr4326, lon, lat)
    c, r = np.floor(c).astype(int), np.floor(r).astype(int)
    inside = (r >= 0) & (r < 60) & (c >= 0) & (c < 80)
    truth = ref[r[inside], c[inside]] - 1
    expected = metrics.confusion_matrix(truth, pred.ravel()[inside], labels=range(5))
    e = evaluate(tmp_path / "map.tif", tmp_path / "ref.tif",
                 classes={str(v + 1): n for v, n in enumerate(NAMES)})
    # GDAL's warper approximates the transform to 1/8 pixel: a few pixels may differ
    assert np.abs(np.array(e.matrix) - expected).sum() <= 0.002 * expected.sum() * 2
    assert abs(e.compared - expected.sum()) <= 0.002 * expected.sum()


def _points(tmp_path, pred):
    """Points at some map pixel centres (in lon/lat), one outside, one with an unmapped code."""
    rng = np.random.default_rng(8)
    rows, cols = rng.integers(0, pred.shape[0], 300), rng.integers(0, pred.shape[1], 300)
    codes = np.where((rng.random(300) < 0.7) & (pred[rows, cols] < 5), pred[rows, cols],
                     rng.integers(0, 5, 300))
    x, y = apply(TR, cols + 0.5, rows + 0.5)
    lon, lat = warp_transform(UTM, "EPSG:4326", list(x) + [400000.0, x[0]],
                              list(y) + [4000000.0, y[0]])
    names = [NAMES[c] for c in codes] + ["Water", "Glacier"]
    return rows, cols, codes, lon, lat, names


def test_points_from_csv_match_sklearn_on_the_map_values(tmp_path):
    pred = np.random.default_rng(9).integers(0, 5, (80, 90))
    pred[0:5] = 255
    write_map(tmp_path / "map.tif", pred)
    rows, cols, codes, lon, lat, names = _points(tmp_path, pred)
    with open(tmp_path / "pts.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "lon", "lat", "LC"])
        w.writerows([i, a, b, n] for i, (a, b, n) in enumerate(zip(lon, lat, names, strict=True)))
    e = evaluate(tmp_path / "map.tif", tmp_path / "pts.csv", field="lc")
    keep = pred[rows, cols] != 255
    check_against_sklearn(e, codes[keep], pred[rows, cols][keep], 5)
    assert e.unit == "samples"
    assert e.left_out.map_nodata == int((~keep).sum()) + 1          # nodata, and outside
    assert dict(e.left_out.unmapped) == {"glacier": 1}


def test_points_and_polygons_from_geojson(tmp_path):
    pytest.importorskip("pyogrio")
    pred = np.random.default_rng(10).integers(0, 5, (50, 60))
    write_map(tmp_path / "map.tif", pred)
    rows, cols, codes, *_ = _points(tmp_path, pred)
    x, y = apply(TR, cols + 0.5, rows + 0.5)
    feats = [{"type": "Feature", "properties": {"class": int(c)},
              "geometry": {"type": "Point", "coordinates": [float(a), float(b)]}}
             for a, b, c in zip(x, y, codes, strict=True)]
    # a polygon over pixel rows 10..19, cols 5..14 (edges between pixel centres)
    x0, y0 = TR @ (5, 10)
    x1, y1 = TR @ (15, 20)
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    feats.append({"type": "Feature", "properties": {"class": 3},
                  "geometry": {"type": "Polygon", "coordinates": [ring]}})
    doc = {"type": "FeatureCollection", "features": feats,
           "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}}}
    (tmp_path / "ref.geojson").write_text(json.dumps(doc))
    e = evaluate(tmp_path / "map.tif", tmp_path / "ref.geojson", stratified=True)
    truth = np.concatenate([codes, np.full(100, 3)])
    mapped = np.concatenate([pred[rows, cols], pred[10:20, 5:15].ravel()])
    check_against_sklearn(e, truth, mapped, 5)
    assert e.stratified is not None
    counts = np.bincount(pred.ravel(), minlength=5)
    assert e.stratified.mapped_area == pytest.approx(tuple(counts * 100 / 10_000))


# Olofsson et al. (2014), section 5: strata (map classes) deforestation, forest gain, stable
# forest, stable non-forest; rows map class, columns reference class; 30 m pixels.
OLOFSSON_N = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
OLOFSSON_PIXELS = np.array([200_000, 150_000, 3_200_000, 6_450_000])


def _olofsson_by_hand(n, area):
    """A direct transcription of the paper's equations, one class at a time."""
    k, total = len(area), area.sum()
    w = area / total
    ni = n.sum(axis=1)
    p = np.array([[w[i] * n[i, j] / ni[i] for j in range(k)] for i in range(k)])
    users = [n[i, i] / ni[i] for i in range(k)]
    pj = p.sum(axis=0)
    prod = [p[j, j] / pj[j] for j in range(k)]
    oa_var = sum(w[i] ** 2 * users[i] * (1 - users[i]) / (ni[i] - 1) for i in range(k))
    area_se = [total * np.sqrt(sum(w[i] ** 2 * (n[i, j] / ni[i]) * (1 - n[i, j] / ni[i])
                                   / (ni[i] - 1) for i in range(k))) for j in range(k)]
    prod_se = []
    for j in range(k):
        nj_hat = sum(area[i] * n[i, j] / ni[i] for i in range(k))
        term1 = area[j] ** 2 * (1 - prod[j]) ** 2 * users[j] * (1 - users[j]) / (ni[j] - 1)
        term2 = prod[j] ** 2 * sum(area[i] ** 2 * n[i, j] / ni[i] * (1 - n[i, j] / ni[i])
                                   / (ni[i] - 1) for i in range(k) if i != j)
        prod_se.append(np.sqrt((term1 + term2) / nj_hat ** 2))
    return np.trace(p), np.sqrt(oa_var), users, prod, prod_se, total * pj, area_se


def test_stratified_estimates_reproduce_the_olofsson_2014_example():
    area_ha = OLOFSSON_PIXELS * 0.09
    s = stratified_estimate(OLOFSSON_N, area_ha)
    # published: deforestation 21,158 ha +- 6,158 ha (95 %); producer's 0.75, user's 0.88
    assert s.area[0] == pytest.approx(21_158, abs=1)
    assert Z95 * s.area_se[0] == pytest.approx(6_158, abs=1)
    assert round(s.producers_accuracy[0], 2) == 0.75 and round(s.users_accuracy[0], 2) == 0.88
    oa, oa_se, users, prod, prod_se, area, area_se = _olofsson_by_hand(OLOFSSON_N, area_ha)
    assert s.overall_accuracy == pytest.approx(oa) and round(oa, 2) == 0.95
    assert s.overall_accuracy_se == pytest.approx(oa_se)
    assert s.users_accuracy == pytest.approx(users)
    assert s.producers_accuracy == pytest.approx(prod)
    assert s.producers_accuracy_se == pytest.approx(prod_se)
    assert s.area == pytest.approx(area) and s.area_se == pytest.approx(area_se)
    assert sum(s.area) == pytest.approx(area_ha.sum())


def test_stratified_with_a_single_sample_class_has_undefined_errors():
    n = np.array([[5, 1], [0, 1]])
    s = stratified_estimate(n, np.array([10.0, 90.0]))
    assert s.users_accuracy_se[1] is None and s.overall_accuracy_se is None
    assert s.users_accuracy[0] == pytest.approx(5 / 6)


def test_binary_plan_collapses_classes_and_maps_rest():
    plan = class_plan(NAMES, {"4": "Water", "255": "rest", "1": "Crop"}, binary="water")
    assert plan.names == ("Water", "not Water")
    assert plan.map_lut.tolist() == [1, 1, 1, 1, 0]
    assert (plan.ref_index(4), plan.ref_index(255.0), plan.ref_index("1"),
            plan.ref_index(7)) == (0, 1, 1, -1)
    with pytest.raises(ValueError, match="unknown class 'Snow'"):
        class_plan(NAMES, {"4": "Snow"})


def test_pooled_report_adds_the_pairs(tmp_path):
    pairs = []
    for i in range(2):
        ref, pred = random_pair(20 + i, shape=(30, 40))
        write_map(tmp_path / f"m{i}.tif", pred)
        write_map(tmp_path / f"r{i}.tif", ref, nodata=None, tags=False)
        pairs.append((tmp_path / f"m{i}.tif", tmp_path / f"r{i}.tif"))
    rep = evaluate_pairs(pairs)
    assert rep.pooled is not None
    assert np.array_equal(np.array(rep.pooled.matrix),
                          np.array(rep.pairs[0].matrix) + np.array(rep.pairs[1].matrix))
    doc = rep.as_dict()
    assert len(doc["pairs"]) == 2 and doc["pooled"]["map"] == "pooled"


@pytest.mark.slow
def test_sen1floods11_water_f1_matches_sklearn_and_the_readme(tmp_path):
    scene = SHARED_DATA / "l1c-sen1floods11-spain-7370579.tif"
    labels = SHARED_DATA / "l1c-sen1floods11-spain-7370579.labels.tif"
    if not (scene.is_file() and labels.is_file()):
        pytest.skip(f"{scene} not available")
    out = tmp_path / "flood.lulc.tif"
    res = CliRunner().invoke(main, ["run", str(scene), "-o", str(out), "--scl-fill", "4",
                                    "--device", "cpu", "--precision", "fp32", "-q"])
    assert res.exit_code == 0, res.output
    # labels: 4 water, 255 not water or no data (README: "precision counts every 255 as not
    # water"): binary water vs rest with 255 as rest
    res = CliRunner().invoke(main, ["evaluate", str(out), str(labels), "--binary", "Water",
                                    "--classes", "4=Water,255=rest", "--reference-nodata",
                                    "none", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    with rasterio.open(out) as m, rasterio.open(labels) as r:
        pred, truth = m.read(1), r.read(1)
    keep = pred != 255
    f1 = metrics.f1_score(truth[keep] == 4, pred[keep] == 4)
    water = doc["per_class"][0]
    assert water["name"] == "Water" and water["f1"] == pytest.approx(f1)
    assert round(water["f1"], 3) == 0.737                   # README: "Water F1 ... 73.7 %"
    assert doc["left_out"]["total"] == int((~keep).sum())


# ----------------------------------------------------------------------------- CLI


def test_cli_prints_the_table_and_writes_each_format(tmp_path):
    ref, pred = random_pair(30, shape=(20, 30))
    write_map(tmp_path / "map.tif", pred)
    write_map(tmp_path / "ref.tif", ref, nodata=None, tags=False)
    runner = CliRunner()
    res = runner.invoke(main, ["evaluate", str(tmp_path / "map.tif"), str(tmp_path / "ref.tif")])
    assert res.exit_code == 0, res.output
    assert "| reference \\ map | Barren_Land |" in res.stdout
    assert "| macro avg |" in res.stdout and "| weighted avg |" in res.stdout
    assert "Cohen's kappa" in res.stdout
    res = runner.invoke(main, ["evaluate", str(tmp_path / "map.tif"), str(tmp_path / "ref.tif"),
                               "--json"])
    doc = json.loads(res.stdout)
    assert doc["classes"] == list(NAMES) and doc["confusion_matrix"]["rows"] == "reference"
    for ext in ("json", "csv", "md"):
        out = tmp_path / f"report.{ext}"
        res = runner.invoke(main, ["evaluate", str(tmp_path / "map.tif"),
                                   str(tmp_path / "ref.tif"), "-o", str(out), "-q"])
        assert res.exit_code == 0 and res.stdout == ""
        assert out.is_file()
    rows = list(csv.DictReader(open(tmp_path / "report.csv")))
    kappa = next(r for r in rows if r["metric"] == "kappa")
    assert float(kappa["value"]) == pytest.approx(doc["kappa"], rel=1e-5)
    assert json.loads((tmp_path / "report.json").read_text()) == doc
    assert (tmp_path / "report.md").read_text() == runner.invoke(
        main, ["evaluate", str(tmp_path / "map.tif"), str(tmp_path / "ref.tif")]).stdout


@pytest.mark.parametrize("args, message", [
    (["MAP"], "expected MAP REFERENCE pairs, got 1 paths"),
    (["MAP", "missing.tif"], "missing.tif: no such file"),
    (["MAP", "REF", "--classes", "4=Snow"], "unknown class 'Snow'"),
    (["MAP", "REF", "--classes", "4"], "expected CODE=CLASS pairs"),
    (["MAP", "REF", "-o", "report.xlsx"], "unknown report format"),
    (["MAP", "pts.csv"], "pts.csv: no column 'class' (has lon, lat, lc)"),
    (["MAP", "REF", "--binary", "Snow"], "unknown class 'Snow'"),
])
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    write_map(tmp_path / "map.tif", np.zeros((8, 8), int))
    write_map(tmp_path / "ref.tif", np.zeros((8, 8), int), tags=False)
    (tmp_path / "pts.csv").write_text("lon,lat,lc\n1,2,Water\n")
    subst = {"MAP": str(tmp_path / "map.tif"), "REF": str(tmp_path / "ref.tif"),
             "missing.tif": str(tmp_path / "missing.tif"), "pts.csv": str(tmp_path / "pts.csv"),
             "report.xlsx": str(tmp_path / "report.xlsx")}
    res = CliRunner().invoke(main, ["evaluate", *(subst.get(a, a) for a in args)])
    assert res.exit_code != 0
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lulc-edge: error:")
    assert message in err
    assert "Traceback" not in res.output
    assert not (tmp_path / "report.xlsx").exists()


def test_vector_file_without_the_extra_says_how_to_install(tmp_path, monkeypatch):
    write_map(tmp_path / "map.tif", np.zeros((8, 8), int))
    (tmp_path / "ref.gpkg").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "pyogrio", None)       # as if not installed
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "map.tif"),
                                    str(tmp_path / "ref.gpkg")])
    assert res.exit_code == 1
    assert res.stderr.strip() == (f"lulc-edge: error: {tmp_path / 'ref.gpkg'}: reading vector "
                                  f"files needs the vector extra (pyogrio missing): "
                                  f"{VECTOR_HINT}")


def test_label_mask_without_georeference_is_compared_pixel_for_pixel(tmp_path):
    ref, pred = random_pair(40, shape=(12, 16))
    write_map(tmp_path / "map.tif", pred)
    with rasterio.open(tmp_path / "mask.tif", "w", driver="GTiff", width=16, height=12, count=1,
                       dtype="uint8") as ds:
        ds.write(ref.astype("uint8"), 1)
    e = evaluate(tmp_path / "map.tif", tmp_path / "mask.tif")
    check_against_sklearn(e, ref.ravel(), pred.ravel(), 5)
    write_map(tmp_path / "small.tif", pred[:6])
    with pytest.raises(InputError, match="mask.tif: has no CRS, so it can only be compared "
                                         "pixel for pixel with a raster of its size"):
        evaluate(tmp_path / "small.tif", tmp_path / "mask.tif")


def test_reference_nodata_override(tmp_path):
    write_map(tmp_path / "map.tif", np.full((4, 4), 4))
    labels = np.full((4, 4), 255)
    labels[0] = 4
    write_map(tmp_path / "lab.tif", labels, tags=False)
    kw = {"classes": {"4": "Water", "255": "rest"}, "binary": "Water"}
    assert evaluate(tmp_path / "map.tif", tmp_path / "lab.tif", **kw).compared == 4
    e = evaluate(tmp_path / "map.tif", tmp_path / "lab.tif", reference_nodata=None, **kw)
    assert e.matrix == ((4, 0), (12, 0)) and e.per_class[0].precision == 0.25
    assert FILE_NODATA == "file"


def test_readme_example_samples_stratified_on_the_example_map(tmp_path):
    """The shipped example-samples.csv against a map of the example scene, as in the README:
    the matrix equals a direct lookup of the map at the points; the estimated class areas add
    up to the mapped area."""
    scene = ROOT / "examples" / "data" / "example-scene.tif"
    samples = ROOT / "examples" / "data" / "example-samples.csv"
    out = tmp_path / "example.lulc.tif"
    res = CliRunner().invoke(main, ["run", str(scene), "-o", str(out), "--device", "cpu",
                                    "--precision", "fp32", "--no-cloud-mask", "-q"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["evaluate", str(out), str(samples), "--stratified", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    rows = list(csv.DictReader(open(samples)))
    with rasterio.open(out) as ds:
        x, y = warp_transform("EPSG:4326", ds.crs, [float(r["lon"]) for r in rows],
                              [float(r["lat"]) for r in rows])
        pred = np.array([v[0] for v in ds.sample(zip(x, y, strict=True))])
    truth = np.array([NAMES.index(r["class"]) for r in rows])
    assert doc["unit"] == "samples" and doc["compared"] == len(rows) == 200
    assert np.array_equal(doc["confusion_matrix"]["counts"],
                          metrics.confusion_matrix(truth, pred, labels=range(5)))
    s = doc["stratified"]
    assert sum(s["area"]) == pytest.approx(sum(s["mapped_area"]))


def test_options_value_and_keywords_give_the_same_evaluation(tmp_path):
    """evaluate takes one EvalOptions value; keywords still work and override it."""
    from lulc_edge.evaluate import EvalOptions

    pred = np.random.default_rng(8).integers(0, 5, (30, 40))
    write_map(tmp_path / "map.tif", pred)
    write_map(tmp_path / "ref.tif", np.random.default_rng(9).integers(0, 5, (30, 40)))
    opts = EvalOptions(binary="Water", block_rows=7)
    by_value = evaluate(tmp_path / "map.tif", tmp_path / "ref.tif", opts)
    by_keywords = evaluate(tmp_path / "map.tif", tmp_path / "ref.tif", binary="Water",
                           block_rows=7)
    assert by_value.matrix == by_keywords.matrix
    assert len(by_value.classes) == 2
    overridden = evaluate(tmp_path / "map.tif", tmp_path / "ref.tif", opts, binary=None)
    assert len(overridden.classes) == 5
    with pytest.raises(ValueError, match="on must be"):
        EvalOptions(on="sideways")


def test_stratified_estimates_match_the_published_olofsson_tables_for_every_class():
    """All four classes against the published values (Olofsson et al. 2014, section 5 and
    tables 8-10, as transcribed in the tests of boothmanrylan/accuracyAssessmentTools,
    tests/test_olofsson.py): areas and 95 % half-widths in ha, accuracies to two decimals."""
    s = stratified_estimate(OLOFSSON_N, OLOFSSON_PIXELS * 0.09)
    assert [round(a) for a in s.area] == pytest.approx([21_158, 11_686, 285_770, 581_386],
                                                       abs=10)
    assert [Z95 * e for e in s.area_se] == pytest.approx([6_158, 3_756, 15_510, 16_282],
                                                         abs=10)
    assert [round(u, 2) for u in s.users_accuracy] == [0.88, 0.73, 0.93, 0.96]
    assert [round(p, 2) for p in s.producers_accuracy] == [0.75, 0.85, 0.93, 0.96]
    assert [round(Z95 * e, 2) for e in s.users_accuracy_se] == [0.07, 0.10, 0.04, 0.02]
    assert round(s.producers_accuracy_se[0] * Z95, 2) == 0.21
    assert round(s.overall_accuracy, 2) == 0.95
    assert round(Z95 * s.overall_accuracy_se, 2) == 0.02
