"""A small HTTP file server on 127.0.0.1 for the remote-input tests.

It serves a directory with HEAD, single byte ranges (``Range: bytes=a-b``, ``a-``, ``-n``),
ETag and Last-Modified, counts requests and bytes, can require a header (401 without it),
and injects faults: the next N requests
to a path answer 503, 429 with ``Retry-After``, 403, or drop the connection half way
through the body. Routes (``server.routes[path] = fn``) answer JSON for a STAC API.
A request with several ranges gets the whole file (200), which HTTP allows; GDAL merges
the ranges it needs into single requests unless told otherwise.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: A route: (method, path, query, body) -> (status, content type, body bytes).
Route = Callable[[str, str, str, bytes], tuple[int, str, bytes]]


@dataclass
class Log:
    """What the server saw: one (method, path, range, status) per request, each request's
    full target (with its query), bytes sent."""

    requests: list[tuple[str, str, str | None, int]] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    bytes_sent: int = 0

    def count(self, path: str | None = None, method: str | None = None) -> int:
        return sum(1 for m, p, _r, _s in self.requests
                   if (path is None or p == path) and (method is None or m == method))

    def statuses(self, path: str) -> Counter:
        return Counter(s for _m, p, _r, s in self.requests if p == path)


class _Handler(BaseHTTPRequestHandler):
    server: FileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep pytest's output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_POST(self) -> None:
        self._serve(body=True)

    def _record(self, path: str, rng: str | None, status: int, sent: int = 0) -> None:
        with self.server.lock:
            self.server.log.requests.append((self.command, path, rng, status))
            self.server.log.targets.append(self.path)
            self.server.log.bytes_sent += sent

    def _send(self, status: int, headers: dict[str, str], data: bytes, body: bool,
              drop: bool = False) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not body:
            return
        if drop:  # half the body, then the connection goes away
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(data)

    def _serve(self, body: bool) -> None:
        url = urlsplit(self.path)
        path, rng = url.path, self.headers.get("Range")
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else b""
        need = self.server.require
        if need is not None and self.headers.get(need[0]) != need[1]:
            self._record(path, rng, 401)
            self._send(401, {}, b"credentials needed\n", body)
            return
        fault = self.server.take_fault(path)
        if fault in ("503", "429", "403"):
            extra = {"Retry-After": "1"} if fault == "429" else {}
            self._record(path, rng, int(fault))
            self._send(int(fault), extra, f"fault {fault}\n".encode(), body)
            return
        route = self.server.routes.get(path)
        if route is not None:
            status, ctype, data = route(self.command, path, url.query, payload)
            self._record(path, rng, status, len(data) if body else 0)
            self._send(status, {"Content-Type": ctype}, data, body)
            return
        self._file(path, rng, body, drop=fault == "drop")

    def _file(self, path: str, rng: str | None, body: bool, drop: bool) -> None:
        file = self.server.root / path.lstrip("/")
        if ".." in Path(path).parts or not file.is_file():
            self._record(path, rng, 404)
            self._send(404, {}, b"not found\n", body)
            return
        data, st = file.read_bytes(), file.stat()
        headers = {"ETag": f'"{st.st_mtime_ns:x}-{st.st_size:x}"',
                   "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True),
                   "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        status, m = 200, _RANGE.match(rng or "")
        if m and (m.group(1) or m.group(2)):
            size = len(data)
            if m.group(1):
                a = int(m.group(1))
                b = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            else:
                a, b = max(size - int(m.group(2)), 0), size - 1
            if a >= size or b < a:
                self._record(path, rng, 416)
                self._send(416, {"Content-Range": f"bytes */{size}"}, b"", body)
                return
            status, data = 206, data[a:b + 1]
            headers["Content-Range"] = f"bytes {a}-{b}/{size}"
        self._record(path, rng, status, len(data) if body else 0)
        self._send(status, headers, data, body, drop=drop and body)


class FileServer(ThreadingHTTPServer):
    """Serves ``root`` on 127.0.0.1 (a free port); ``url(name)`` is a file's address."""

    daemon_threads = True

    def __init__(self, root: str | os.PathLike):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = Path(root)
        self.lock = threading.Lock()
        self.log = Log()
        self.routes: dict[str, Route] = {}
        #: (header, value) every request must carry, else 401 (a private server)
        self.require: tuple[str, str] | None = None
        self._faults: dict[str, deque[str]] = {}
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="test-http", daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, name: str) -> str:
        return f"{self.base}/{name.lstrip('/')}"

    def fail(self, name: str, fault: str, times: int = 1) -> None:
        """The next ``times`` requests to ``name`` get ``fault``: "503", "429", "403", "drop"."""
        assert fault in ("503", "429", "403", "drop"), fault
        with self.lock:
            self._faults.setdefault("/" + name.lstrip("/"), deque()).extend([fault] * times)

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def take_fault(self, path: str) -> str | None:
        with self.lock:
            queue = self._faults.get(path)
            return queue.popleft() if queue else None

    def replace(self, name: str, data: bytes) -> None:
        """Put new content under ``name`` (a new ETag and Last-Modified)."""
        file = self.root / name
        tmp = file.with_name(file.name + ".new")
        tmp.write_bytes(data)
        st = file.stat() if file.exists() else None
        os.replace(tmp, file)
        if st is not None:  # a different mtime even on a coarse clock
            os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    def json_route(self, path: str, fn: Callable[[str, str, bytes], Any]) -> None:
        """Answer ``path`` with ``fn(method, query, body)`` as JSON."""
        def route(method: str, _path: str, query: str, body: bytes) -> tuple[int, str, bytes]:
            return 200, "application/json", json.dumps(fn(method, query, body)).encode()
        self.routes[path] = route

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)
