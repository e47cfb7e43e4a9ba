"""lulc-edge serve under load and abuse (issue 22): option ranges at submit, stalled and
abandoned bodies, the upload spool, the waiting line, the file limit, paths, $PORT.

Every test drives the real server in a subprocess on a 127.0.0.1 port, with raw sockets where a
client must misbehave; every loop is bounded."""

from __future__ import annotations

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
from click.testing import CliRunner

from lulc_edge import options
from lulc_edge.cli import TILE_RANGE, main
from lulc_edge.synthetic import SceneSpec, write_scene
from tests.conftest import ROOT, write_stack
from tests.test_serve import EXAMPLE, Server, free_port, upload

httpx = pytest.importorskip("httpx")
BOUNDARY = "xyz"
PART = (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.tif"\r\n'
        b"Content-Type: image/tiff\r\n\r\n")


def raw_upload(port: int, path: str = "/predict", declared: int = 5_000_000,
               sent: int = 1024) -> socket.socket:
    """A client that sends an upload's headers and ``sent`` bytes of its body, then nothing."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {declared}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode()
    s.sendall(head + PART + b"\0" * (sent - len(PART)))
    return s


def read_answer(s: socket.socket) -> tuple[int, bytes]:
    """The status and everything the server sends until it closes the connection."""
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return int(data.split(b" ", 2)[1]), data


def wait_for(check, what: str, seconds: float = 60):
    for _ in range(int(seconds / 0.05)):
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"still no {what} after {seconds} s")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("limits")
    (base / "data" / "sub").mkdir(parents=True)
    (base / "data" / "sub" / "scene.tif").write_bytes(EXAMPLE.read_bytes())
    write_scene(base / "data" / "slow.tif", SceneSpec(width=1280, height=1280, seed=3))
    return base / "data"


@pytest.fixture(scope="module")
def server(tmp_path_factory, root):
    s = Server(tmp_path_factory.mktemp("jobs-limits") / "jobs", "--data-root", str(root),
               "--body-timeout", "3", "--size", "256")
    yield s
    s.stop()


# ------------------------------------------------------------------- 1. the CLI's ranges


@pytest.mark.parametrize("field,value,allowed", [
    ("boa_offset", 1000000000, "an integer from -2000 to 2000"),
    ("scl_fill", 99, "an integer from 0 to 11"),
    *[("tile", v, "an integer from 64 to 16384") for v in (0, -5, 3, 4, 32, 64.5, True)],
    ("batch", 0, "an integer from 1 to 4096"), ("batch", -3, "an integer from 1 to 4096"),
    ("mode", "fast", "one of seamless, window"), ("resampling", 3, "one of bilinear, nearest"),
    ("confidence", "maybe", "true or false"),
])
def test_job_options_are_refused_at_submit_with_the_cli_range(server, field, value, allowed):
    before = len(server.get("/jobs").json()["jobs"])
    r = server.post("/jobs", json={"path": "sub/scene.tif", field: value})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(f"option {field}: expected {allowed}"), r.text
    assert len(server.get("/jobs").json()["jobs"]) == before  # nothing queued
    form = server.post("/jobs", files=upload(EXAMPLE), data={field: str(value)})
    assert form.status_code == 400 and f"option {field}" in form.json()["error"]
    assert sorted(p.name for p in server.jobs.iterdir() if not p.name.startswith(".")) == \
        sorted(j["id"] for j in server.get("/jobs").json()["jobs"])  # no folder left


@pytest.mark.parametrize("body,step", [({"tile": 66}, "a multiple of 4 in seamless mode"),
                                       ({"tile": 80, "mode": "window"},
                                        "a multiple of 32 in window mode")])
def test_a_tile_the_model_cannot_plan_is_refused_at_submit(server, body, step):
    r = server.post("/jobs", json={"path": "sub/scene.tif", **body})
    assert r.status_code == 400 and r.json()["error"].startswith(f"option tile: expected {step}")


def test_the_cli_uses_the_same_ranges():
    assert (TILE_RANGE.min, TILE_RANGE.max) == (options.TILE.low, options.TILE.high)
    res = CliRunner().invoke(main, ["run", "x.tif", "--tile", "32"])
    assert res.exit_code == 2 and "64<=x<=16384" in res.output


# ------------------------------------------------------------------- 2, 4. stalled and gone


def test_stalled_bodies_take_no_slot_and_are_answered_408(server):
    stalled = [raw_upload(server.port) for _ in range(11)]
    json_body = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    stalled.append(json_body)
    json_body.sendall(b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n"
                      b'Content-Type: application/json\r\n\r\n{"path": ')
    try:
        r = server.post("/predict", files=upload(EXAMPLE))
        assert r.status_code == 200, r.text  # was 429 "busy" with 9 stalled clients
        for s in stalled:
            status, data = read_answer(s)  # bounded by the socket's 60 s timeout
            assert status == 408 and b"stalled" in data
    finally:
        for s in stalled:
            s.close()
    log = server.output()
    assert "Traceback" not in log and log.count("stalled (nothing for 3 s)") == 12


def test_a_client_gone_mid_upload_is_one_log_line(server):
    before = server.output().count("went away")
    s = raw_upload(server.port, "/jobs", sent=200_000)
    time.sleep(0.2)
    s.close()
    wait_for(lambda: server.output().count("went away") > before, "log line")
    log = server.output()
    assert "Traceback" not in log and "ClientDisconnect" not in log
    assert [ln for ln in log.splitlines() if "went away" in ln][-1].startswith(
        "lulc-edge: POST /jobs: the client went away")
    assert list((server.jobs / ".uploads").iterdir()) == []


# ------------------------------------------------------------------- 5-7. paths and names


def test_nul_byte_and_outside_paths(server):
    r = server.post("/jobs", json={"path": "sub/scene.tif\x00.png"})
    assert r.status_code == 400 and "NUL" in r.json()["error"]
    answers = set()
    for path in ("../../../../etc/passwd", "../../../../etc/no-such-file-here",
                 "/etc/passwd", "/etc/no-such-file-here"):
        r = server.post("/jobs", json={"path": path})
        answers.add((r.status_code, r.json()["error"].replace(path, "PATH")))
    assert answers == {(403, "PATH: outside the data root")}  # existence never shows
    assert "Traceback" not in server.output()


def test_job_warnings_name_the_clients_file(server, tmp_path):
    zeros = write_stack(tmp_path / "zeros.tif", np.zeros((13, 64, 64), np.uint16))
    r = server.post("/jobs", files=upload(zeros, "my scene.tif"))
    assert r.status_code == 202, r.text
    doc = server.wait(r.json()["id"])
    assert doc["status"] == "done" and doc["warnings"], doc
    assert any(w.startswith("my scene.tif: no valid pixel") for w in doc["warnings"]), doc
    assert not any(str(server.jobs) in w or "input.tif" in w for w in doc["warnings"])


# ------------------------------------------------------------------- 9. a waiting line


def test_simultaneous_uploads_wait_their_turn(server):
    codes: list[int] = []

    def post() -> None:
        with httpx.Client(timeout=600) as c:
            codes.append(c.post(server.url + "/predict", files=upload(EXAMPLE)).status_code)

    threads = [threading.Thread(target=post) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    assert codes == [200] * 12  # the original answered 12 of 12; 9+ got 429 here


def test_the_waiting_line_is_bounded(tmp_path, root):
    s = Server(tmp_path / "jobs", "--data-root", str(root), "--max-waiting", "1")
    try:
        job = s.post("/jobs", json={"path": "slow.tif", "tile": 64}).json()["id"]
        s.wait(job, lambda d: d["status"] == "running")  # the engine is taken
        answers: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda: answers.append(
            s.post("/predict", files=upload(EXAMPLE)))) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        codes = sorted(r.status_code for r in answers)
        assert codes == [200, 429, 429], [r.text[:200] for r in answers]
        assert all("--max-waiting 1" in r.json()["error"] for r in answers
                   if r.status_code == 429)
    finally:
        s.stop()


def test_the_limit_is_the_files_not_the_envelopes(tmp_path):
    s = Server(tmp_path / "jobs", "--max-upload-mb", "1")
    try:
        at = tmp_path / "at.tif"
        at.write_bytes(b"\0" * 2**20)  # exactly the limit: past the size check, then not a tif
        r = s.post("/predict", files=upload(at))
        assert r.status_code == 400 and "not a readable raster" in r.json()["error"], r.text
        at.write_bytes(b"\0" * (2**20 + 1))
        r = s.post("/predict", files=upload(at))
        assert r.status_code == 413 and "max-upload-mb" in r.json()["error"]
    finally:
        s.stop()


# ------------------------------------------------------------------- 3, 8. spool and kills


def test_uploads_never_touch_the_system_temp_dir(tmp_path):
    """/tmp read-only (systemd ProtectSystem=strict): Python's temp dir made unusable in the
    server, even for root, by pointing it below a plain file."""
    site = tmp_path / "site"
    site.mkdir()
    (tmp_path / "plain-file").write_text("")
    (site / "sitecustomize.py").write_text(
        f"import tempfile\ntempfile.tempdir = {str(tmp_path / 'plain-file' / 'tmp')!r}\n")
    s = Server(tmp_path / "jobs", env={"PYTHONPATH": f"{site}{os.pathsep}{ROOT}"})
    try:
        r = s.post("/predict", files=upload(EXAMPLE))  # 4.5 MB
        assert r.status_code == 200, r.text
        r = s.post("/jobs", files=upload(EXAMPLE))
        assert r.status_code == 202, r.text
        assert s.wait(r.json()["id"])["status"] == "done"
        assert "Traceback" not in s.output()
    finally:
        s.stop()


def test_a_server_killed_mid_upload_leaves_no_job_folder(tmp_path):
    jobs = tmp_path / "jobs"
    s = Server(jobs)
    try:
        client = raw_upload(s.port, "/jobs", sent=3_000_000)
        wait_for(lambda: [p for p in (jobs / ".uploads").iterdir() if p.stat().st_size],
                 "spooled upload")
    finally:
        s.stop(signal.SIGKILL)
        client.close()
    (jobs / ("0" * 32)).mkdir()  # an older server's leftover: a job folder without job.json
    s = Server(jobs)
    try:
        assert sorted(p.name for p in jobs.iterdir()) == [".uploads"]
        assert list((jobs / ".uploads").iterdir()) == []
        assert s.get("/jobs").json()["jobs"] == []
    finally:
        s.stop()


# ------------------------------------------------------------------- 9. $PORT


def test_port_comes_from_the_environment(tmp_path):
    assert "PORT" in CliRunner().invoke(main, ["serve", "--help"]).output
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lulc_edge.cli", "serve", "--jobs-dir", str(tmp_path / "j"),
         "--device", "cpu", "--precision", "fp32"],
        env=dict(os.environ, PYTHONPATH=str(ROOT), PORT=str(port)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up() -> bool:
            assert proc.poll() is None, "server exited"
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).is_success
            except httpx.HTTPError:
                return False

        assert wait_for(up, "answer on $PORT")
    finally:
        proc.terminate()
        proc.wait(30)
