"""STAC items, item collections and searches -> band hrefs and the BOA offset, with the real
Earth Search item of ../shared/data and a STAC API served on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from lulc_edge import remote, stac
from lulc_edge.errors import InputError
from lulc_edge.sources.metadata import S2_BANDS
from tests.conftest import SHARED_DATA
from tests.httpserver import FileServer

ITEM_29RKH = SHARED_DATA / "l2a-29RKH-20200219" / "item.json"
needs_item = pytest.mark.skipif(not ITEM_29RKH.is_file(), reason=f"{ITEM_29RKH} not found")
MODEL = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12", "SCL")
PC_FILES = {b: f"B{int(b[1:]):02d}" if b != "B8A" else "B8A" for b in S2_BANDS} | {"SCL": "SCL"}


def pc_item(item_id: str = "S2B_MSIL2A_20240715", when: str = "2024-07-15T11:06:19Z",
            baseline: str = "05.09", cloud: float = 3.0, base: str = "https://pc.example/x",
            drop: tuple[str, ...] = ()) -> dict:
    """A Planetary Computer style item: assets B01..B12, B8A, SCL (JPEG 2000-free COGs)."""
    assets = {key: {"href": f"{base}/{item_id}_{key}.tif",
                    "type": "image/tiff; application=geotiff; profile=cloud-optimized"}
              for band, key in PC_FILES.items() if band not in drop}
    assets["visual"] = {"href": f"{base}/TCI.tif", "type": "image/tiff"}
    return {"type": "Feature", "stac_version": "1.0.0", "id": item_id,
            "bbox": [10.0, 45.0, 11.0, 46.0], "geometry": None, "links": [],
            "properties": {"datetime": when, "s2:processing_baseline": baseline,
                           "eo:cloud_cover": cloud, "proj:epsg": 32632},
            "assets": assets}


def es_item(baseline: str, applied: bool | None, offset: float | None = None) -> dict:
    """An Earth Search style item (keys blue, nir08 ...), with optional raster:bands."""
    keys = {v: k for k, v in stac.EARTH_SEARCH_KEYS.items()}
    assets = {}
    for band in MODEL:
        asset = {"href": f"https://es.example/{band}.tif",
                 "type": "image/tiff; application=geotiff; profile=cloud-optimized"}
        if offset is not None and band != "SCL":
            asset["raster:bands"] = [{"offset": offset, "scale": 0.0001}]
        assets[keys[band]] = asset
        assets[keys[band] + "-jp2"] = {"href": f"s3://l2a/{band}.jp2", "type": "image/jp2"}
    props = {"datetime": "2023-01-02T00:00:00Z", "s2:processing_baseline": baseline}
    if applied is not None:
        props["earthsearch:boa_offset_applied"] = applied
    return {"type": "Feature", "id": "es", "properties": props, "assets": assets}


@needs_item
def test_shared_earth_search_item_maps_all_bands_and_offset_zero():
    [item] = stac.read_items(str(ITEM_29RKH), MODEL)
    assert set(item.hrefs) == set(MODEL)
    base = "https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/29/R/KH/2020/2/"
    for band in MODEL:
        name = "SCL" if band == "SCL" else f"B{int(band[1:]):02d}" if band != "B8A" else "B8A"
        assert item.hrefs[band] == f"{base}S2A_29RKH_20200219_0_L2A/{name}.tif"  # COG, not jp2
    assert item.boa_offset == 0
    assert "02.14" in item.boa_reason
    assert item.epsg == 32629 and item.cloud_cover == pytest.approx(4.051854)
    assert item.bbox == pytest.approx((-11.9792347, 24.2963306, -10.8745568, 25.3046147))
    assert item.tags["BOA_OFFSET"] == "0" and item.tags["BOA_OFFSET_REASON"] == item.boa_reason


def test_planetary_computer_item_with_new_baseline_gets_minus_1000():
    item = stac.item_bands(pc_item(), band_names=MODEL)
    assert item.boa_offset == -1000
    assert item.boa_reason.startswith("s2:processing_baseline 05.09 >= 04.00")
    assert item.hrefs["B8A"].endswith("_B8A.tif") and item.hrefs["B1"].endswith("_B01.tif")
    assert item.hrefs["SCL"].endswith("_SCL.tif")


def test_boa_offset_option_wins():
    item = stac.item_bands(pc_item(), band_names=MODEL, boa_offset=0)
    assert item.boa_offset == 0
    assert "--boa-offset" in item.boa_reason and "disagrees" in item.boa_reason


def test_earth_search_item_that_says_applied_gets_zero():
    item = stac.item_bands(es_item("04.00", applied=True), band_names=MODEL)
    assert item.boa_offset == 0
    assert item.boa_reason.startswith("earthsearch:boa_offset_applied true -> 0")
    assert "04.00 >= 04.00 (disagrees)" in item.boa_reason
    assert item.hrefs["B2"] == "https://es.example/B2.tif"  # the COG beats its -jp2 twin


@pytest.mark.parametrize(("offset", "expected"), [(-0.1, -1000), (0.0, 0)])
def test_raster_bands_offset_is_evidence(offset, expected):
    item = stac.item_bands(es_item("04.00", applied=False, offset=offset), band_names=MODEL)
    assert item.boa_offset == expected
    assert item.boa_reason.startswith(f"raster:bands offset {expected} -> {expected}")
    assert "earthsearch:boa_offset_applied false (no claim)" in item.boa_reason


def test_jp2_twins_are_used_when_no_cog():
    doc = es_item("02.12", applied=None)
    doc["assets"] = {k: a for k, a in doc["assets"].items() if k.endswith("-jp2")}
    item = stac.item_bands(doc, band_names=MODEL)
    assert item.hrefs["B12"] == "s3://l2a/B12.jp2" and item.boa_offset == 0


def test_item_collection_of_two_items_and_relative_hrefs(tmp_path):
    items = [pc_item("a", "2024-06-01T00:00:00Z", base="."),
             pc_item("b", "2024-07-01T00:00:00Z")]
    path = tmp_path / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    got = stac.read_items(str(path), MODEL)
    assert [it.id for it in got] == ["a", "b"]
    assert got[0].hrefs["B2"] == str(tmp_path / "a_B02.tif")  # relative to the file
    assert got[1].hrefs["B2"] == "https://pc.example/x/b_B02.tif"


def test_malformed_metadata_is_no_crash():
    doc = pc_item()
    doc["properties"].update({"proj:epsg": "utm", "eo:cloud_cover": "n/a"})
    doc["bbox"] = ["a", 1]
    item = stac.item_bands(doc, band_names=MODEL)
    assert item.epsg is None and item.cloud_cover is None and item.bbox is None


def test_missing_bands_are_one_clear_error():
    with pytest.raises(InputError) as err:
        stac.item_bands(pc_item(drop=("B5", "B11")), band_names=MODEL)
    msg = str(err.value)
    assert "has no assets for B5, B11" in msg and "\n" not in msg
    item = stac.item_bands(pc_item(drop=("SCL",)), band_names=MODEL)  # --scl-fill decides
    assert "SCL" not in item.hrefs


@pytest.mark.parametrize("doc", [{"type": "Collection"}, [1, 2],
                                 {"type": "FeatureCollection", "features": [[1]]}])
def test_not_an_item_is_one_line(tmp_path, doc):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="x.json: not a STAC"):
        stac.read_items(str(path))


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    with FileServer(root) as srv:
        yield srv


@needs_item
def test_shared_item_over_http_with_hrefs_on_the_loopback_server():
    """The real item served with its hrefs rewritten to the real band files, served from
    ../shared/data on 127.0.0.1: every band read through /vsicurl/ equals the local file."""
    folder = ITEM_29RKH.parent
    doc = json.loads(ITEM_29RKH.read_text())
    with FileServer(folder) as srv:
        for asset in doc["assets"].values():
            asset["href"] = srv.url(asset["href"].rsplit("/", 1)[1])
        srv.json_route("/rewritten.json", lambda *_: doc)
        [item] = stac.read_items(srv.url("rewritten.json"), MODEL)
        assert item.tags["STAC_ITEM_SOURCE"] == srv.url("rewritten.json")
        assert item.boa_offset == 0
        for band, href in item.hrefs.items():
            with remote.RemoteDataset(href) as src, rasterio.open(folder / Path(href).name) as f:
                assert np.array_equal(src.read(), f.read()), band
        assert srv.log.count("/B04.tif", "GET") >= 1 and srv.log.bytes_sent > 0


def test_item_fingerprint_changes_when_a_remote_band_file_changes(server, tmp_path):
    for name in ("B02.tif", "B03.tif"):
        (server.root / name).write_bytes(name.encode() * 100)
    doc = pc_item(base=server.base)
    doc["assets"] = {"B02": {"href": server.url("B02.tif") + "?sig=1"},
                     "B03": {"href": server.url("B03.tif")},
                     "B04": {"href": "B04.tif"}}  # a local file next to the item
    (tmp_path / "B04.tif").write_bytes(b"local")
    item = stac.item_bands(doc, str(tmp_path / "item.json"))
    before = stac.item_fingerprint(item)
    assert set(before) == {server.url("B02.tif"), server.url("B03.tif"),
                           str(tmp_path / "B04.tif")}  # URLs without their signature
    assert before[server.url("B02.tif")][0] == 700
    assert stac.item_fingerprint(item) == before
    server.replace("B03.tif", b"changed")
    after = stac.item_fingerprint(item)
    assert after[server.url("B02.tif")] == before[server.url("B02.tif")]
    assert after[server.url("B03.tif")] != before[server.url("B03.tif")]


def test_item_url_forbidden_names_url_and_signing(server):
    (server.root / "item.json").write_text(json.dumps(pc_item()))
    server.fail("item.json", "403")
    with pytest.raises(InputError, match=r"item\.json: HTTP 403: .*credentials or signing"):
        stac.read_items(server.url("item.json"))


def test_search_posts_to_the_api_and_returns_most_recent_first(server):
    pages = [[pc_item("old", "2024-06-03T00:00:00Z", cloud=5.0),
              pc_item("cloudy", "2024-08-01T00:00:00Z", cloud=80.0)],
             [pc_item("new", "2024-08-20T00:00:00Z", cloud=1.0)]]
    bodies: list[dict] = []

    def answer(method: str, query: str, body: bytes) -> dict:
        assert method == "POST"
        bodies.append(json.loads(body))
        page = bodies[-1].get("page", 0)
        links = ([{"rel": "next", "href": server.url("search"), "method": "POST",
                   "body": {"page": page + 1}, "merge": True}] if page + 1 < len(pages) else [])
        return {"type": "FeatureCollection", "features": pages[page], "links": links}

    server.json_route("/search", answer)
    got = stac.search(server.base, "sentinel-2-l2a", bbox=(10, 45, 11, 46),
                      datetime="2024-06-01/2024-08-31", max_cloud=20, band_names=MODEL)
    assert [it.id for it in got] == ["new", "old"]  # cloudy filtered, most recent first
    assert bodies[0] == {"collections": ["sentinel-2-l2a"], "limit": 100,
                         "bbox": [10.0, 45.0, 11.0, 46.0], "datetime": "2024-06-01/2024-08-31",
                         "query": {"eo:cloud_cover": {"lte": 20}}}
    assert bodies[1]["page"] == 1 and bodies[1]["collections"] == ["sentinel-2-l2a"]
    assert all(it.boa_offset == -1000 for it in got)
