"""Remote rasters through GDAL's /vsicurl/ against a real HTTP server on 127.0.0.1 that
counts requests and injects faults (tests/httpserver.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from lulc_edge import remote, urlio
from lulc_edge.errors import InputError
from lulc_edge.sources.strips import StripReader
from tests.httpserver import FileServer


@pytest.fixture()
def server(tmp_path, monkeypatch):
    """A file server over tmp_path/www; short GDAL retry delays so faults resolve quickly."""
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.1")
    monkeypatch.setattr(remote, "RETRY_DELAY", 0.05)
    root = tmp_path / "www"
    root.mkdir()
    with FileServer(root) as srv:
        yield srv


def write_cog(path, seed: int = 1, size: int = 512) -> np.ndarray:
    """A tiled, compressed uint16 GeoTIFF with overviews-free 256 px blocks (COG layout)."""
    data = np.random.default_rng(seed).integers(0, 10000, (1, size, size), dtype=np.uint16)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "uint16",
               "crs": "EPSG:32629", "transform": rasterio.transform.from_origin(0, 0, 10, 10),
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return data


def read_all(url: str) -> np.ndarray:
    return remote.with_retries(url, lambda p: _read(p))


def _read(path: str) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_vsi_paths_and_shown_url():
    assert remote.vsi_path("https://h/a/b.tif?sig=1") == "/vsicurl/https://h/a/b.tif?sig=1"
    assert remote.vsi_path("s3://bucket/k/B02.tif") == "/vsis3/bucket/k/B02.tif"
    assert remote.vsi_path("/data/B02.tif") == "/data/B02.tif"
    assert urlio.shown("https://h/a/b.tif?se=2024&sig=SECRET") == "https://h/a/b.tif"


def test_env_keeps_what_the_environment_sets(monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "9")
    env = remote.gdal_remote_env()
    assert "GDAL_HTTP_MAX_RETRY" not in env
    assert env["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"


def test_cog_over_vsicurl_equals_local_file(server):
    local = write_cog(server.root / "B02.tif")
    with remote.open_remote(server.url("B02.tif")) as src:
        assert np.array_equal(src.read(window=Window(0, 0, 512, 512)), local)
    assert server.log.bytes_sent > 0
    assert all(s in (200, 206) for s in server.log.statuses("/B02.tif"))


@pytest.mark.parametrize("fault", ["503", "429"])
def test_transient_errors_end_in_the_same_pixels(server, fault):
    local = write_cog(server.root / "B03.tif", seed=2)
    server.fail("B03.tif", fault, times=2)
    assert np.array_equal(read_all(server.url("B03.tif")), local)
    assert server.log.statuses("/B03.tif")[int(fault)] == 2


@pytest.mark.parametrize("drops", [1, 3, 50])
def test_dropped_connection_gives_same_pixels_or_one_clear_error(server, drops):
    """Connections cut mid-body, under the GDAL_NUM_THREADS a run sets: the same pixels as
    the local file, or (when every try is cut) one line naming the URL and --resume."""
    local = write_cog(server.root / "B04.tif", seed=3, size=1024)
    url = server.url("B04.tif")
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"), remote.RemoteDataset(url) as src:
        server.fail("B04.tif", "drop", times=drops)
        try:
            got = src.read(window=Window(256, 0, 512, 1024))
        except InputError as e:
            assert drops == 50, e
            msg = str(e)
            assert msg.startswith(url + ": ") and "--resume" in msg and "\n" not in msg
        else:
            assert np.array_equal(got, local[:, :, 256:768])
    assert server.log.count("/B04.tif") > drops or drops == 50


def test_remote_dataset_reads_again_after_a_failed_read(server, monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")  # GDAL itself does not retry
    local = write_cog(server.root / "B09.tif", seed=9, size=1024)
    url = server.url("B09.tif")
    top, bottom = Window(0, 0, 1024, 256), Window(0, 768, 1024, 256)
    with remote.RemoteDataset(url) as src:
        assert (src.width, src.height, src.count) == (1024, 1024, 1)
        first = src.dataset
        server.fail("B09.tif", "403", times=4)  # GDAL 3.10 tries each of the 4 blocks once
        assert np.array_equal(src.read(window=top), local[:, :256])
        assert server.log.count("/B09.tif", "HEAD") == 2  # opened again, signed afresh
        assert src.dataset is not first and first.closed
        server.fail("B09.tif", "503", times=100)
        with pytest.raises(InputError, match=r"B09\.tif: HTTP 503 after 3 tries; .*--resume"):
            src.read(window=bottom)
        server.clear_faults()
        assert np.array_equal(src.read(window=bottom), local[:, 768:])


def test_forbidden_is_one_line_naming_url_and_credentials(server):
    write_cog(server.root / "B05.tif")
    server.fail("B05.tif", "403", times=50)
    with pytest.raises(InputError) as err:
        remote.open_remote(server.url("B05.tif") + "?sig=SECRET")
    msg = str(err.value)
    assert msg.startswith(server.url("B05.tif") + ": HTTP 403")
    assert "credentials or signing" in msg and "SECRET" not in msg and "\n" not in msg


def test_cached_failure_does_not_poison_the_retry(server):
    """GDAL caches a failed open (issue 8922); the next try must reach the server again."""
    local = write_cog(server.root / "B06.tif", seed=4)
    url = server.url("B06.tif")
    server.fail("B06.tif", "403", times=1)
    with pytest.raises(rasterio.errors.RasterioError):  # GDAL alone: fails, caches it
        with rasterio.Env(**remote.gdal_remote_env()):
            rasterio.open(remote.vsi_path(url))
    assert np.array_equal(read_all(url), local)  # cache cleared between tries


@pytest.mark.parametrize("how", ["GDAL_HTTP_BEARER", "GDAL_HTTP_HEADERS"])
def test_private_server_through_gdal_conventions(server, monkeypatch, how):
    """The same credentials reach GDAL's reads and this package's own requests."""
    local = write_cog(server.root / "B10.tif", seed=10)
    (server.root / "item.json").write_text('{"id": "x"}')
    server.require = ("Authorization", "Bearer tok")
    with pytest.raises(InputError, match=r"B10\.tif: HTTP 401: .*credentials or signing"):
        remote.open_remote(server.url("B10.tif"))
    with pytest.raises(InputError, match=r"item\.json: HTTP 401"):
        urlio.fetch_json(server.url("item.json"))
    if how == "GDAL_HTTP_BEARER":
        monkeypatch.setenv("GDAL_HTTP_AUTH", "BEARER")
    monkeypatch.setenv(how, "tok" if how == "GDAL_HTTP_BEARER" else "Authorization: Bearer tok")
    assert np.array_equal(read_all(server.url("B10.tif")), local)  # a cached 401 is no bar
    assert urlio.fetch_json(server.url("item.json")) == {"id": "x"}
    assert urlio.remote_fingerprint(server.url("B10.tif"))["size"] > 0


def test_missing_file_is_404_not_retried(server):
    with pytest.raises(InputError, match=r"nothing\.tif: HTTP 404: not found"):
        remote.open_remote(server.url("nothing.tif"))


def test_fingerprint_changes_with_the_file(server):
    write_cog(server.root / "B07.tif", seed=5)
    url = server.url("B07.tif")
    before = urlio.remote_fingerprint(url)
    assert before["etag"] and before["last_modified"] and before["size"] > 0
    assert urlio.remote_fingerprint(url) == before
    server.replace("B07.tif", (server.root / "B07.tif").read_bytes() + b"\0")
    after = urlio.remote_fingerprint(url)
    assert after != before and after["url"] == url


def test_changed_file_is_read_fresh_after_clear_cache(server):
    write_cog(server.root / "B08.tif", seed=6)
    url = server.url("B08.tif")
    read_all(url)
    new = write_cog(server.root / "new.tif", seed=7)
    server.replace("B08.tif", (server.root / "new.tif").read_bytes())
    remote.clear_cache(url)
    assert np.array_equal(read_all(url), new)


def test_signer_is_called_at_every_open(server, monkeypatch):
    local = write_cog(server.root / "B8A.tif", seed=8)
    calls: list[str] = []

    def signer(url: str) -> str:
        calls.append(url)
        return f"{url}?token={len(calls)}"

    monkeypatch.setattr(urlio, "SIGNERS", [])
    urlio.register_signer(signer)
    url = server.url("B8A.tif")
    assert np.array_equal(read_all(url), local)
    assert np.array_equal(read_all(url), local)
    assert calls == [url, url]  # signed afresh at every open
    assert {t for t in server.log.targets if t.startswith("/B8A.tif")} == {
        "/B8A.tif?token=1", "/B8A.tif?token=2"}


def test_signer_from_spec():
    assert urlio.signer_from_spec("posixpath:basename")("https://h/a/b.tif") == "b.tif"
    with pytest.raises(InputError, match="URL signer 'no_such_module:sign': cannot be loaded"):
        urlio.signer_from_spec("no_such_module:sign")


def test_auth_headers_follow_gdal_conventions(monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_HEADERS", "X-Api-Key: abc, X-Other: d")
    monkeypatch.setenv("GDAL_HTTP_BEARER", "tok")
    assert "Authorization" not in urlio.auth_headers()  # GDAL too needs GDAL_HTTP_AUTH
    monkeypatch.setenv("GDAL_HTTP_AUTH", "bearer")
    assert urlio.auth_headers() == {"X-Api-Key": "abc", "X-Other": "d",
                                     "Authorization": "Bearer tok"}


def test_strip_reader_reads_through_a_remote_dataset(server):
    """RemoteDataset stands in for a rasterio dataset in the runtime's strip reader (decode
    threads), connections dropped on the way: the same pixels as the local file."""
    local = write_cog(server.root / "B11.tif", seed=11, size=1024)
    with remote.RemoteDataset(server.url("B11.tif")) as src, ThreadPoolExecutor(2) as pool:
        server.fail("B11.tif", "drop", times=3)
        strips = StripReader(src, pool)
        assert np.array_equal(strips.read(0, 1024, 0, 1024), local[0])
    assert server.log.statuses("/B11.tif")[206] >= 3
