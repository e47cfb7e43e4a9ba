"""benchmarks/products.py at a tiny size: the four forms hold the same pixels, the run writes the
documented JSON and Markdown (no timings are asserted: they depend on the machine and its load).
The products are built from the real bands of ../shared/data/l2a-29RKH-20200219."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from benchmarks.products import FORMS, NOTES_MARK, build, product_paths
from lulc_edge.sources import open_source

from .conftest import needs_shared

ROOT = Path(__file__).resolve().parents[1]
SIZE = (258, 246)  # not a multiple of 6: the 60 m grid overhangs the 10 m one, as it may


@pytest.mark.slow
@needs_shared
def test_products_build_and_benchmark(tmp_path):
    data, out = tmp_path / "data", tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "products.py"), "--size",
         f"{SIZE[0]}x{SIZE[1]}", "--rounds", "1", "--data", str(data), "--out", str(out),
         "--device", "cpu", "--precision", "fp32", "--backends", "cpu:int8", "--reader", "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    paths = product_paths(data, SIZE)

    # the layouts users download
    img = next(paths["safe"].glob("GRANULE/L2A_T29RKH_*/IMG_DATA"))
    jp2 = sorted(p.relative_to(img).as_posix() for p in img.rglob("*.jp2"))
    assert "R10m/T29RKH_20200219T112111_B02_10m.jp2" in jp2
    assert "R20m/T29RKH_20200219T112111_SCL_20m.jp2" in jp2
    assert "R60m/T29RKH_20200219T112111_B09_60m.jp2" in jp2 and len(jp2) == 13
    with rasterio.open(img / "R20m" / "T29RKH_20200219T112111_B05_20m.jp2") as ds:
        assert ds.driver == "JP2OpenJPEG" and (ds.width, ds.height) == (129, 123)
    with rasterio.open(paths["cog"] / "B09.tif") as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
        assert (ds.width, ds.height) == (43, 41) and ds.res == (60.0, 60.0)
    assert "<PROCESSING_BASELINE>04.00<" in (paths["safe"] / "MTD_MSIL2A.xml").read_text()

    # the same pixels in every form, through the reader under test
    whole = Window(0, 0, *SIZE)
    arrays, offsets = {}, {}
    for f in FORMS:
        with open_source(paths[f]) as src:
            assert (src.width, src.height) == SIZE
            arrays[f] = src.read(whole)
            offsets[f] = src.tags()["BOA_OFFSET"]
    assert offsets == {"stack": "0", "cog": "-1000", "safe": "-1000", "zip": "-1000"}
    for f in ("safe", "zip", "stack"):
        assert np.array_equal(arrays[f], arrays["cog"]), f
    refl = np.delete(arrays["cog"], 10, axis=0)  # SCL is band 11 of the model's order
    assert refl.min() > 0 and 1 <= arrays["cog"][10].min() and arrays["cog"][10].max() <= 11
    assert len(np.unique(arrays["cog"][10])) > 1  # real SCL, several classes

    # the JSON and the Markdown
    res = json.loads((out / "products.json").read_text())
    assert res["schema"] == 1 and res["settings"]["size"] == list(SIZE)
    env = res["env"]
    assert env["cpu_model"] and isinstance(env["cpu_flags"], list)
    assert {"onnxruntime", "rasterio", "gdal", "numpy"} <= set(env["libraries"])
    forms = res["analysis"]["forms"]
    assert set(forms) == {*FORMS, "decode", "pure", "stack cpu:int8", "pure cpu:int8",
                          *(f"read {f}" for f in FORMS)}
    for k, s in forms.items():
        assert "error" not in s, (k, s)
        assert s["wall_best"] > 0 and s["cpu_seconds"] > 0 and s["peak_rss_mb"] > 50, (k, s)
        assert s["inner_best"] > 0
    for k in FORMS:
        assert forms[k]["x_stack"] > 0 and forms[k]["x_decode_plus_pure"] > 0
        assert (forms[k]["device"], forms[k]["precision"]) == ("cpu", "fp32")  # --device
    assert forms["pure"]["device"] and forms["decode"]["runs"] == 1
    # --backends: the stack and pure inference on the pair named, each checked against the other
    assert (forms["stack cpu:int8"]["device"], forms["stack cpu:int8"]["precision"]) == \
        ("cpu", "int8") == (forms["pure cpu:int8"]["device"], forms["pure cpu:int8"]["precision"])
    # --reader: every tile of a run's plan read on each form, no inference
    for f in FORMS:
        assert res["runs"][f"read {f}"][0]["report"]["tiles"] >= 1
    names = {t["target"] for t in res["analysis"]["targets"]}
    assert "COG folder <= 1.15 x stack" in names and len(names) == 9
    assert "stack rate >= 0.9 x pure inference rate (cpu:int8)" in names
    rep = res["maps"]["report"]
    assert rep["products_identical"] is True and rep["pixels"] == SIZE[0] * SIZE[1]
    assert min(rep["fraction_equal_to_stack"].values()) >= 0.999
    assert res["build"]["check"]["values_differing_from_cog"] == {f: 0 for f in FORMS}
    md = (out / "products.md").read_text()
    assert "| per-band COG folder |" in md and "## Targets of issue 15" in md
    assert "| 13-band DEFLATE stack, cpu:int8 |" in md and "| pure inference, cpu:int8 |" in md
    assert "| reader alone, per-band COG folder |" in md
    assert md.endswith(NOTES_MARK)

    # --render rewrites the tables from the JSON and keeps the hand-written notes
    (out / "products.md").write_text("stale\n" + NOTES_MARK + "analysis by hand\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "products.py"), "--render", "--out", str(out),
         "--quiet"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    md2 = (out / "products.md").read_text()
    assert md2.startswith(md.split(NOTES_MARK)[0])
    assert md2.endswith(NOTES_MARK + "analysis by hand\n")

    # cached by size: a second build reuses the products
    again = build(data, SIZE)
    assert again["cached"] is True and again["seconds"] == res["build"]["seconds"]
