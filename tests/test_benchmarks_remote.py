"""benchmarks/remote.py: its Range server answers as HTTP says and counts what it sends, and the
benchmark at a tiny size writes the documented JSON and Markdown, with every map over HTTP equal
to the local one (no timings are asserted: they depend on the machine and its load)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from benchmarks.remote import AREAS, RangeServer

from .conftest import needs_shared

ROOT = Path(__file__).resolve().parents[1]


def test_range_server_serves_ranges_and_counts_them(tmp_path):
    (tmp_path / "f.bin").write_bytes(bytes(range(256)) * 4)
    server = RangeServer(tmp_path)
    try:
        url = server.url("f.bin")
        r = httpx.get(url, headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == bytes(range(10, 20))
        assert r.headers["Content-Range"] == "bytes 10-19/1024" and r.headers["ETag"]
        assert httpx.get(url, headers={"Range": "bytes=-4"}).content == bytes(range(252, 256))
        assert httpx.get(url, headers={"Range": "bytes=1020-"}).content == bytes(range(252, 256))
        assert httpx.get(url, headers={"Range": "bytes=2000-"}).status_code == 416
        head = httpx.head(url)
        assert head.status_code == 200 and head.headers["Content-Length"] == "1024"
        assert httpx.get(server.url("missing.bin")).status_code == 404
        assert len(httpx.get(url).content) == 1024
        assert server.take() == (5, 10 + 4 + 4 + 1024)  # files served (HEAD with 0 bytes)
        assert server.take() == (0, 0)
    finally:
        server.shutdown()


@pytest.mark.slow
@needs_shared
def test_remote_benchmark_at_a_tiny_size(tmp_path):
    data, out = tmp_path / "data", tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "remote.py"), "--size", "600x540",
         "--rounds", "1", "--whole", "--data", str(data), "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads((out / "remote-600x540.json").read_text())
    assert set(r["areas"]) == set(AREAS)
    assert r["maps_differing"] and not any(r["maps_differing"].values())
    for name, a in r["areas"].items():
        s = a["summary"]
        assert s["bytes_fetched"] > 0 and s["requests"] > 0, name
        assert s["bytes_over_blocks"] <= 1.3, (name, s)  # the blocks cover the tiny files
    assert r["whole"]["http"]["bytes"] > 0 and r["env"]["libraries"]["gdal"]
    md = (out / "remote-600x540.md").read_text()
    assert "GDAL" in md and "Whole product" in md and "<!-- notes:" in md
