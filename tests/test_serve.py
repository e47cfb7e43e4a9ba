"""lulc-edge serve: the real server in a subprocess on a 127.0.0.1 port, driven over HTTP."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from lulc_edge import RunOptions, segment_file
from lulc_edge.clouds import CLOUD_VALUE
from lulc_edge.serve_jobs import class_percent, original_pixels
from lulc_edge.synthetic import SceneSpec, write_scene
from tests.conftest import ROOT

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
Image = pytest.importorskip("PIL.Image")

EXAMPLE = ROOT / "examples" / "data" / "example-scene.tif"
CLASSES = ["Barren_Land", "Built-up_Area", "Crop", "Forest", "Water", "Unclassified"]
PNG = b"\x89PNG\r\n\x1a\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``lulc-edge serve`` in a subprocess on 127.0.0.1; waits (bounded) until /health answers."""

    def __init__(self, jobs: Path, *args: str, token: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.jobs = jobs
        env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.log = open(jobs.parent / f"serve-{self.port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lulc_edge.cli", "serve", "--port", str(self.port),
             "--device", "cpu", "--precision", "fp32", "--threads", "2",
             "--jobs-dir", str(jobs), *args], env=env, stdout=self.log,
            stderr=subprocess.STDOUT)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        for _ in range(600):
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"server did not start: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def get(self, path: str, **kw) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return httpx.get(self.url + path, headers=headers, timeout=120, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return httpx.post(self.url + path, headers=headers, timeout=300, **kw)

    def wait(self, jid: str, until=lambda d: d["status"] in ("done", "failed"),
             seconds: float = 300) -> dict:
        for _ in range(int(seconds / 0.05)):
            doc = self.get(f"/jobs/{jid}").json()
            if until(doc):
                return doc
            time.sleep(0.05)
        raise AssertionError(f"job {jid} still {doc}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def upload(path: Path, name: str | None = None, ctype: str = "image/tiff") -> dict:
    """Exactly the original Node backend's request: field ``file``, a filename, image/tiff."""
    return {"file": (name or path.name, path.read_bytes(), ctype)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, engine):
    """The example scene mapped in-process: what every answer must equal."""
    out = tmp_path_factory.mktemp("ref") / "ex.lulc.tif"
    res = segment_file(EXAMPLE, out, engine=engine,
                       options=RunOptions(confidence=True, progress=False))
    total = sum(res.class_pixels.values())
    pct = {k: round(100 * v / total, 2) for k, v in res.class_pixels.items()}
    with rasterio.open(out) as ds:
        classes = ds.read(1)
    return res, pct, classes


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("served")
    root = base / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "scene.tif").write_bytes(EXAMPLE.read_bytes())
    (base / "outside.tif").write_bytes(EXAMPLE.read_bytes())
    (root / "link.tif").symlink_to(base / "outside.tif")
    (root / "linkdir").symlink_to(base)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, data_root):
    s = Server(tmp_path_factory.mktemp("jobs-main") / "jobs", "--data-root", str(data_root),
               "--size", "512")
    yield s
    s.stop()


def decode_png(text: str):
    raw = base64.b64decode(text, validate=True)
    assert raw.startswith(PNG)
    return Image.open(io.BytesIO(raw))


def left_over_uploads(server: Server) -> list[Path]:
    return list((server.jobs / ".uploads").iterdir())


def test_health(server):
    r = httpx.get(server.url + "/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_predict_is_a_drop_in_for_the_original(server, reference):
    res, pct, classes = reference
    r = server.post("/predict", files=upload(EXAMPLE, "S2_scene.tif"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert set(doc) == {"segmentation_mask", "overlay", "annotated", "class_stats"}
    assert list(doc["class_stats"]) == CLASSES  # the original's keys: Cloud counts as nodata
    assert doc["class_stats"] == class_percent(original_pixels(res.class_pixels, CLASSES[-1]))
    assert all(round(v, 2) == v for v in doc["class_stats"].values())
    assert abs(sum(doc["class_stats"].values()) - 100) < 0.05
    mask = np.asarray(decode_png(doc["segmentation_mask"]).convert("RGB"))
    lut = {0: (244, 164, 96), 1: (220, 20, 60), 2: (255, 255, 0), 3: (0, 128, 0),
           4: (0, 0, 255), 255: (0, 0, 0), CLOUD_VALUE: (255, 255, 255)}
    for v, rgb in lut.items():  # the map part shows the run's classes in the contract colours
        np.testing.assert_array_equal(mask[:512, :512][classes == v], np.array(rgb, np.uint8)
                                      [None].repeat((classes == v).sum(), 0))
    assert decode_png(doc["overlay"]).size[0] > 512  # with its legend
    assert decode_png(doc["annotated"]).size == (512, 512)
    assert left_over_uploads(server) == []


@pytest.mark.parametrize("case,status,words", [
    ("no-file", 400, ["no file", "'file'"]),
    ("other-field", 400, ["no file"]),
    ("not-tif", 400, ["notes.txt: not a .tif"]),
    ("not-raster", 400, ["broken.tif: not a readable raster"]),
    ("three-bands", 400, ["three.tif: has 3 bands; expected 13"]),
])
def test_predict_errors(server, tmp_path, case, status, words):
    if case == "no-file":
        r = server.post("/predict", data={"x": "1"})
    elif case == "other-field":
        r = server.post("/predict", files={"image": ("a.tif", EXAMPLE.read_bytes(), "image/tiff")})
    elif case == "not-tif":
        r = server.post("/predict", files={"file": ("notes.txt", b"hello", "text/plain")})
    elif case == "not-raster":
        r = server.post("/predict", files={"file": ("broken.tif", b"II*\x00junk", "image/tiff")})
    else:
        p = tmp_path / "three.tif"
        with rasterio.open(p, "w", driver="GTiff", width=32, height=32, count=3,
                           dtype="uint16") as ds:
            ds.write(np.ones((3, 32, 32), np.uint16))
        r = server.post("/predict", files=upload(p))
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(r.json()) == {"error"} and "\n" not in err
    for w in words:
        assert w in err, err
    assert str(server.jobs) not in err  # no server paths
    assert left_over_uploads(server) == []


def test_routes_answer_json_errors(server):
    r = server.get("/predict")
    assert r.status_code == 405 and "error" in r.json()
    r = server.get("/nothing")
    assert r.status_code == 404 and "error" in r.json()
    for path in ("/jobs/0123", "/jobs/" + "0" * 32, "/jobs/../../etc/passwd",
                 "/static/../serve.py", "/static/%2e%2e/serve.py"):
        r = server.get(path)
        assert r.status_code == 404, path
        assert b"Service" not in r.content  # never the package's code


def test_a_job_and_its_pictures_say_the_class_areas_lulc_edge_stats_says(server, tmp_path):
    """One count of class areas (areas.AreaSum): a job's result and the pictures of its map
    give, class by class, the pixels and hectares ``lulc-edge stats`` gives for that map."""
    from lulc_edge.preview import read_map
    from tests.conftest import run_cli

    r = server.post("/jobs", files=upload(EXAMPLE), data={"tile": "256"})
    doc = server.wait(r.json()["id"])
    assert doc["status"] == "done", doc
    got = tmp_path / "job.tif"
    got.write_bytes(server.get(doc["files"]["map"]).content)
    stats = json.loads(run_cli("stats", got, "--json").stdout)["whole_map"]
    view = read_map(got)
    assert list(stats["classes"]) == CLASSES[:-1]
    for name, c in stats["classes"].items():
        assert doc["class_pixels"][name] == view.pixels[name] == c["pixels"] > 0
        assert doc["class_hectares"][name] == view.hectares[name] == round(c["hectares"], 4)
    assert doc["class_pixels"]["Cloud"] == view.pixels["Cloud"] == stats["cloud_pixels"]
    assert doc["class_hectares"]["Cloud"] == round(stats["cloud_hectares"], 4)
    others = sum(v for k, v in doc["class_pixels"].items()
                 if k not in stats["classes"] and k != "Cloud")
    assert others == stats["nodata_pixels"]


def test_upload_filename_cannot_traverse(server, tmp_path):
    evil = "../../../../tmp/lulc-edge-evil.tif"
    target = Path("/tmp/lulc-edge-evil.tif")
    target.unlink(missing_ok=True)
    r = server.post("/predict", files=upload(EXAMPLE, evil))
    assert r.status_code == 200, r.text
    r = server.post("/jobs", files=upload(EXAMPLE, evil))
    assert r.status_code == 202, r.text
    doc = server.wait(r.json()["id"])
    assert doc["status"] == "done" and doc["input"] == "lulc-edge-evil.tif"
    assert not target.exists()
    folder = server.jobs / doc["id"]
    assert not (folder / "input.tif").exists()  # the upload is removed when the job ends
    assert all(p.resolve().is_relative_to(folder) for p in folder.rglob("*"))
    assert left_over_uploads(server) == []


def test_jobs_api(server, reference, tmp_path):
    res, pct, classes = reference
    r = server.post("/jobs", files=upload(EXAMPLE), data={"confidence": "true", "tile": "256"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running") and job["options"] == {"confidence": True,
                                                                         "tile": 256}
    doc = server.wait(job["id"])
    assert doc["status"] == "done", doc
    assert doc["progress"] == 1.0 and doc["error"] is None
    assert doc["class_pixels"] == res.class_pixels
    assert doc["class_hectares"] == res.class_hectares
    assert doc["class_percent"] == pct
    assert doc["tiles_total"] == 4 and (doc["width"], doc["height"]) == (512, 512)
    assert "source" not in doc  # no server paths
    tif = server.get(doc["files"]["map"])
    assert tif.status_code == 200 and tif.headers["content-type"] == "image/tiff"
    p = tmp_path / "got.tif"
    p.write_bytes(tif.content)
    with rasterio.open(p) as ds:
        np.testing.assert_array_equal(ds.read(1), classes)
        assert ds.count == 1  # the confidence is a file of its own
    for kind in ("mask", "overlay", "annotated", "stats"):
        r = server.get(f"/jobs/{job['id']}/{kind}.png")
        assert r.status_code == 200 and r.content.startswith(PNG), kind
    assert server.get(f"/jobs/{job['id']}/job.json").status_code == 404
    listed = server.get("/jobs").json()["jobs"]
    assert job["id"] in [j["id"] for j in listed]


@pytest.mark.parametrize("body,status,word", [
    ({"path": "sub/scene.tif", "colour": 1}, 400, "unknown option 'colour'"),
    ({"path": "sub/scene.tif", "mode": "fast"}, 400, "option mode"),
    ({"path": "sub/scene.tif", "tile": "big"}, 400, "option tile: expected an integer"),
    ({"path": "../outside.tif"}, 403, "outside the data root"),
    ({"path": "link.tif"}, 403, "outside the data root"),        # a symlink out
    ({"path": "linkdir/outside.tif"}, 403, "outside the data root"),
    ({"path": "/etc/passwd"}, 403, "outside the data root"),
    ({"path": "sub/none.tif"}, 400, "no such file"),
    ({"path": "sub"}, 400, "sub"),                               # a folder, but no band files
    ({"nopath": 1}, 400, "expected"),
])
def test_job_path_errors(server, body, status, word):
    r = server.post("/jobs", json=body)
    assert r.status_code == status, r.text
    assert word in r.json()["error"]
    assert str(server.jobs) not in r.json()["error"]


def test_job_from_data_root(server, reference):
    res, _, _ = reference
    r = server.post("/jobs", json={"path": "sub/scene.tif", "confidence": False})
    assert r.status_code == 202, r.text
    doc = server.wait(r.json()["id"])
    assert doc["status"] == "done" and doc["class_pixels"] == res.class_pixels
    assert doc["input"] == "sub/scene.tif"
    scenes = server.get("/data").json()["scenes"]
    assert "sub/scene.tif" in scenes


def test_concurrent_predicts_are_correct_and_memory_stays_flat(server, reference):
    res, _, _ = reference
    pct = class_percent(original_pixels(res.class_pixels, CLASSES[-1]))  # Cloud: Unclassified
    assert server.post("/predict", files=upload(EXAMPLE)).status_code == 200  # warm up
    before = server.rss_mb()
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=300) as c:
            for _ in range(5):
                r = c.post(server.url + "/predict", files=upload(EXAMPLE))
                with lock:
                    results.append((r.status_code, r.json()))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    after = server.rss_mb()
    assert len(results) == 40
    assert all(code == 200 for code, _ in results), [d for c, d in results if c != 200][:1]
    assert all(d["class_stats"] == pct for _, d in results)
    assert after - before < 300, (before, after)  # generous: 40 requests, one engine
    assert left_over_uploads(server) == []


@pytest.fixture(scope="module")
def slow_scene(tmp_path_factory) -> Path:
    """64 tiles of 64 px: a job long enough to be killed part-way."""
    path = tmp_path_factory.mktemp("slow") / "slow.tif"
    write_scene(path, SceneSpec(width=512, height=512, seed=3))
    return path


def test_limits_token_and_cors(tmp_path, slow_scene):
    s = Server(tmp_path / "jobs", "--max-upload-mb", "1", "--queue", "1", "--token", "s3cret",
               "--cors", "http://station.local", "--data-root", str(slow_scene.parent),
               token="s3cret")
    try:
        # token: everything but /health and the page needs it
        assert httpx.get(s.url + "/jobs").status_code == 401
        assert httpx.get(s.url + "/jobs", headers={"Authorization": "Bearer nope"}
                         ).status_code == 401
        assert s.get("/jobs").status_code == 200
        assert httpx.get(s.url + "/health").status_code == 200
        assert httpx.get(s.url + "/").status_code == 200
        # CORS only for the origin given
        r = s.get("/jobs", headers={"Origin": "http://station.local"})
        assert r.headers.get("access-control-allow-origin") == "http://station.local"
        r = s.get("/jobs", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        # oversize: by Content-Length, and by the bytes of a chunked body
        r = s.post("/predict", files=upload(EXAMPLE))  # 4.5 MB > 1 MB
        assert r.status_code == 413 and "max-upload-mb" in r.json()["error"]

        def chunks():  # a well-formed multipart body, sent chunked (no Content-Length)
            yield (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.tif"'
                   b"\r\nContent-Type: image/tiff\r\n\r\n")
            for _ in range(3):
                yield b"\0" * 600_000
            yield b"\r\n--xyz--\r\n"

        r = s.post("/predict", content=chunks(),
                   headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        assert r.status_code == 413
        assert list((s.jobs / ".uploads").iterdir()) == []
        # queue full: one job runs, one waits, the next is refused
        small = tmp_path / "small.tif"
        write_scene(small, SceneSpec(width=160, height=160, seed=1))
        big = s.post("/jobs", json={"path": slow_scene.name, "tile": 64})
        assert big.status_code == 202, big.text
        s.wait(big.json()["id"], lambda d: d["status"] == "running")
        queued = s.post("/jobs", files=upload(small))
        assert queued.status_code == 202
        full = s.post("/jobs", files=upload(small))
        assert full.status_code == 429 and "queue full" in full.json()["error"]
        for jid in (big.json()["id"], queued.json()["id"]):
            assert s.wait(jid)["status"] == "done"
    finally:
        s.stop()


def test_no_token_off_loopback_is_refused(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lulc_edge.cli", "serve", "--host", "0.0.0.0", "--port",
         str(free_port()), "--jobs-dir", str(tmp_path / "j")],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 1
    assert "not a loopback address: give --token" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_restart_mid_job_resumes_from_the_journal(tmp_path, slow_scene, engine):
    jobs = tmp_path / "jobs"
    s = Server(jobs)
    try:
        r = s.post("/jobs", files=upload(slow_scene), data={"tile": "64"})
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        s.wait(jid, lambda d: d["progress"] >= 0.2)
    finally:
        s.stop(signal.SIGKILL)
    state = json.loads((jobs / jid / "job.json").read_text())
    assert state["status"] == "running"
    assert (jobs / jid / ".map.tif.journal").stat().st_size > 0
    s = Server(jobs)
    try:
        doc = s.wait(jid)
    finally:
        s.stop()
    assert doc["status"] == "done", doc
    assert 0 < doc["tiles_inferred"] < doc["tiles_total"] == 64
    ref = tmp_path / "ref.tif"
    segment_file(slow_scene, ref, engine=engine,
                 options=RunOptions(tile=64, confidence=True, progress=False))
    with rasterio.open(ref) as a, rasterio.open(jobs / jid / "map.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
    assert not (jobs / jid / "input.tif").exists()
