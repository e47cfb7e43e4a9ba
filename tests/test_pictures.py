"""Pictures at a readable size, labels that never collide, and /predict's two-panel overlay."""

from __future__ import annotations

import base64
import io
import itertools

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from lulc_edge import RunOptions, segment_file
from lulc_edge.preview import (
    MIN_SIZE,
    annotate,
    colour_lut,
    enlarge,
    pictures,
    place_labels,
    read_map,
    two_panels,
    write_previews,
)
from tests.conftest import SHARED_DATA, write_stack
from tests.test_serve import EXAMPLE

PIL = pytest.importorskip("PIL.Image")
RKH = SHARED_DATA / "l2a-29RKH-20200219"


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def check_labels(map_path, size: int = 2048) -> list:
    """The annotated picture's labels as drawn: every present class labelled, each box inside
    the picture, no two boxes intersecting, no box over a marker's centre."""
    view, rgb = enlarge(read_map(map_path, size), None, min(MIN_SIZE, size))
    h, w = view.classes.shape
    img, labels = annotate(view, np.zeros((h, w, 3), np.uint8))
    assert img.size == (w, h)
    present = [c.name for c in view.legend if c.value != view.nodata and view.pixels[c.name]]
    assert [lab.text.split()[0] for lab in labels] == present
    for lab in labels:
        assert lab.box is not None, lab  # none hidden
        x0, y0, x1, y1 = lab.box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, lab
        for other in labels:
            assert not (x0 <= other.x < x1 and y0 <= other.y < y1), (lab, other)
    for a, b in itertools.combinations(labels, 2):
        assert not _overlap(a.box, b.box), (a, b)
    return labels


def test_small_scene_pictures_are_enlarged(tmp_path, make_scene, engine):
    scene, _, _ = make_scene(48, 48, name="small.tif")
    out = tmp_path / "small.lulc.tif"
    segment_file(scene, out, engine=engine, options=RunOptions(confidence=True, progress=False))
    paths = write_previews(out)
    k = -(-MIN_SIZE // 48)  # 11: whole pixels, nearest neighbour
    ann = np.asarray(PIL.open(paths["annotated"]).convert("RGB"))
    assert ann.shape[:2] == (48 * k, 48 * k)
    mask = np.asarray(PIL.open(paths["mask"]).convert("RGB"))
    view = read_map(out)
    with rasterio.open(out) as ds:
        classes = ds.read(1)
    np.testing.assert_array_equal(mask[:48 * k, :48 * k],
                                  colour_lut(view)[np.kron(classes, np.ones((k, k), np.uint8))])
    overlay = PIL.open(paths["overlay"])
    assert overlay.height == 48 * k and overlay.width > 48 * k
    check_labels(out)
    # a size asked for below the minimum is kept
    _, pics = pictures(out, size=32)
    assert pics["annotated"].size == (32, 32)


def test_labels_never_collide_on_a_256_px_crop(tmp_path, engine):
    crop = tmp_path / "crop.tif"
    with rasterio.open(EXAMPLE) as ds:
        w = Window(100, 100, 256, 256)
        write_stack(crop, ds.read(window=w), crs=ds.crs, transform=ds.window_transform(w))
    out = tmp_path / "crop.lulc.tif"
    segment_file(crop, out, engine=engine, options=RunOptions(confidence=True, progress=False))
    labels = check_labels(out)
    assert len(labels) == 5


@pytest.mark.skipif(not RKH.is_dir(), reason="needs the shared 29RKH scene")
def test_labels_never_collide_on_29RKH(tmp_path, engine):
    out = tmp_path / "rkh.lulc.tif"
    segment_file(RKH, out, engine=engine, options=RunOptions(progress=False))
    labels = check_labels(out)
    assert "Crop" in [lab.text for lab in labels]  # drawn over by Water's label before


def test_place_labels_crowded_markers():
    """Five markers in one corner of a small picture: every label finds its own place."""
    anchors = [(5.0, 5.0), (12.0, 8.0), (8.0, 14.0), (3.0, 20.0), (18.0, 3.0)]
    sizes = [(90, 20)] * 5
    boxes = place_labels(anchors, sizes, 200, 150, radius=6)
    assert all(b is not None for b in boxes)
    for a, b in itertools.combinations(boxes, 2):
        assert not _overlap(a, b)
    assert all(0 <= b[0] and 0 <= b[1] and b[2] <= 200 and b[3] <= 150 for b in boxes)
    # no room at all: None, never a box outside or over another
    assert place_labels([(5.0, 5.0)], [(300, 20)], 200, 150, radius=6) == [None]


def test_predict_overlay_is_true_colour_beside_the_overlay(tmp_path, engine):
    from tests.test_serve import Server, upload

    server = Server(tmp_path / "jobs", "--size", "512")
    try:
        r = server.post("/predict", files=upload(EXAMPLE))
        assert r.status_code == 200, r.text
        doc = r.json()
    finally:
        server.stop()
    assert set(doc) == {"segmentation_mask", "overlay", "annotated", "class_stats"}
    got = np.asarray(PIL.open(io.BytesIO(base64.b64decode(doc["overlay"]))).convert("RGB"))
    out = tmp_path / "ex.lulc.tif"
    segment_file(EXAMPLE, out, engine=engine, options=RunOptions(confidence=True,
                                                                 progress=False))
    _, pics = pictures(out, EXAMPLE, 512)
    want = np.asarray(two_panels(pics["true_colour"], pics["overlay"],
                                 ("True colour", "Overlay")))
    np.testing.assert_array_equal(got, want)
    # the left panel is the scene's true colour, the right one the overlay with its legend
    tc, ov = np.asarray(pics["true_colour"]), np.asarray(pics["overlay"].convert("RGB"))
    top = next(t for t in range(got.shape[0] - 511) if np.array_equal(got[t:t + 512, :512], tc))
    x = got.shape[1] - ov.shape[1]
    assert x > 512 and np.array_equal(got[top:top + ov.shape[0], x:], ov)
