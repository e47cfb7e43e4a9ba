"""lulc_edge.uploads: a multipart upload received straight into a file chosen by the service.

Starlette's form parser spools files over 1 MB in the system temp dir (read-only under systemd's
``ProtectSystem=strict``), counts the multipart envelope against no limit of its own and waits
for a stalled body forever. Here the one file part is written to the path the service gives
(under ``--jobs-dir``), its size, not the envelope's, is held to the limit, and a body that
sends nothing for ``timeout`` seconds is given up (408).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

#: What the multipart envelope (boundaries, part headers, option fields) may add to a file.
ENVELOPE = 1 << 20
NO_FILE = "no file in the request (multipart field 'file' with a .tif)"
#: File bytes gathered before each write.
WRITE_BYTES = 1 << 20
#: The most text fields a form may carry, and bytes in each.
MAX_FIELDS, FIELD_BYTES = 32, 4096


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"upload larger than --max-upload-mb ({limit / 2**20:g} MB)")


@dataclass
class Form:
    """A received form: its text fields and its file part (``filename`` None when none came)."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    size: int = 0


class _Parts:
    """python-multipart callbacks: text fields kept, the file part's bytes queued for writing."""

    def __init__(self, limit: int) -> None:
        self.form, self.limit = Form(), limit
        self.headers: dict[bytes, bytes] = {}
        self.header = [b"", b""]
        self.name: str | None = None
        self.kind = "text"  # "file": the upload, "text": a field, "skip": another file part
        self.text = bytearray()
        self.pending: list[bytes] = []
        self.pending_bytes = 0

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self.begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.data,
                "on_part_end": self.end}

    def begin(self) -> None:
        self.headers, self.text, self.name, self.kind = {}, bytearray(), None, "text"

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header[0] += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self.header[1] += data[start:end]

    def header_end(self) -> None:
        self.headers[self.header[0].lower()] = self.header[1]
        self.header = [b"", b""]

    def headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = params.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in params:
            self.kind = "skip"
            if self.name == "file":
                if self.form.filename is not None:
                    raise ApiError(400, "more than one file in the request (send one 'file')")
                self.form.filename = params[b"filename"].decode("utf-8", "replace")
                self.kind = "file"
        elif len(self.form.fields) >= MAX_FIELDS:
            raise ApiError(400, f"more than {MAX_FIELDS} form fields")

    def data(self, data: bytes, start: int, end: int) -> None:
        if self.kind == "file":
            self.form.size += end - start
            if self.form.size > self.limit:
                raise too_large(self.limit)
            self.pending.append(data[start:end])
            self.pending_bytes += end - start
        elif self.kind == "text":
            self.text += data[start:end]
            if len(self.text) > FIELD_BYTES:
                raise ApiError(400, f"form field {self.name!r} longer than {FIELD_BYTES} bytes")

    def take(self) -> bytes:
        """The file bytes received since the last call."""
        data = b"".join(self.pending)
        self.pending, self.pending_bytes = [], 0
        return data

    def end(self) -> None:
        if self.kind == "text" and self.name:
            self.form.fields[self.name] = self.text.decode("utf-8", "replace")


async def body_chunks(request: Request, timeout: float) -> Any:
    """The request body's chunks; 408 when none comes for ``timeout`` seconds."""
    while True:
        try:
            message = await asyncio.wait_for(request.receive(), timeout)
        except asyncio.TimeoutError:
            raise ApiError(408, f"the request body stalled (nothing for {timeout:g} s)") from None
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        if message.get("body"):
            yield message["body"]
        if not message.get("more_body", False):
            return


async def receive_body(request: Request, timeout: float) -> bytes:
    """A small body (JSON), with the same stall timeout."""
    return b"".join([chunk async for chunk in body_chunks(request, timeout)])


async def receive_form(request: Request, dest: Path, limit: int, timeout: float) -> Form:
    """Receive a multipart form, its ``file`` part written to ``dest`` (at most ``limit``
    bytes; the whole body is limited by serve.BodyLimit); ApiError 400 (not multipart,
    malformed), 408 (stalled) or 413 (too large)."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise ApiError(400, NO_FILE)
    parts = _Parts(limit)
    parser = MultipartParser(params[b"boundary"], parts.callbacks())
    with open(dest, "wb") as out:  # the caller removes it on any error
        async for chunk in body_chunks(request, timeout):
            try:
                parser.write(chunk)
            except MultipartParseError:
                raise ApiError(400, "malformed multipart body") from None
            if parts.pending_bytes >= WRITE_BYTES:  # written off the event loop, 1 MiB a time
                await run_in_threadpool(out.write, parts.take())
        parser.finalize()
        await run_in_threadpool(out.write, parts.take())
    return parts.form
