"""lulc_edge.serve: ``lulc-edge serve``, an ASGI app (Starlette on uvicorn) over the Python API.

* ``GET /health``, ``POST /predict``: a drop-in for the original app's Flask model server
  (multipart field ``file``; base64 PNGs and class percentages).
* ``/jobs``: scenes too big for one request, uploaded or named under ``--data-root``; one job
  infers at a time, in order; state is kept in the jobs folder, so a restarted service resumes
  a job from its journal.
* ``/``: a web page (assets in the package, no CDN).

Modules: this one (options, middleware, the app), :mod:`lulc_edge.serve_routes` (the request
handlers), :mod:`lulc_edge.serve_jobs` (jobs on disk and their worker). Every map is made by
:func:`lulc_edge.segment_file` on the one loaded :class:`Engine`, and the pictures are drawn
from the written map by :mod:`lulc_edge.preview`: no second inference path.
"""

from __future__ import annotations

import hmac
import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .engine import Engine
from .errors import one_line
from .preview import DEFAULT_SIZE
from .serve_jobs import class_percent, parse_options
from .serve_routes import STATIC, WAIT_COST, Service, memory_waiting
from .uploads import ENVELOPE, ApiError, too_large

__all__ = ["WAIT_COST", "ServeOptions", "Service", "class_percent", "create_app",
           "is_loopback", "memory_waiting", "parse_options"]


@dataclass(frozen=True)
class ServeOptions:
    """How the service runs (the CLI's options)."""

    jobs_dir: Path
    data_root: Path | None = None
    max_upload_mb: float = 500.0
    token: str | None = None
    queue: int = 8
    cors: str | None = None
    size: int = DEFAULT_SIZE
    #: Seconds a request body may send nothing before it is answered 408 and closed.
    body_timeout: float = 30.0
    #: /predict uploads received and not yet answered, at most (None: from memory).
    max_waiting: int | None = None


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BodyLimit:
    """ASGI middleware: 413 when Content-Length, or the bytes actually received, pass the
    limit of a file plus its multipart envelope (uploads.receive_form limits the file)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.file_limit, self.limit = app, limit, limit + ENVELOPE

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            exc = too_large(self.file_limit)
            await _error(exc.status, str(exc))(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise too_large(self.file_limit)
            return message

        await self.app(scope, limited, send)


class TokenGuard:
    """ASGI middleware: with a token, every path except /health and the page's own files needs
    ``Authorization: Bearer TOKEN`` (the page sends the token it is given in its URL #token=)."""

    OPEN = ("/", "/health", "/favicon.ico")

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and scope.get("method") != "OPTIONS" \
                and path not in self.OPEN and not path.startswith("/static/"):
            auth = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(auth, b"Bearer " + self.token):
                await JSONResponse({"error": "missing or wrong token (Authorization: Bearer "
                                             "TOKEN)"}, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _api_error(request: Request, exc: Exception) -> Response:
    """An ApiError's answer; after a stalled (408) or oversize (413) body the connection is
    closed, as the rest of the body is not read."""
    status = getattr(exc, "status", 500)
    if status == 408:
        _log(f"{request.method} {request.url.path}: {exc}; connection closed")
    response = _error(status, str(exc))
    if status in (408, 413):
        response.headers["Connection"] = "close"
    return response


def _gone(request: Request, exc: Exception) -> Response:
    """A client that went away mid-upload: one line in the log, not a traceback."""
    _log(f"{request.method} {request.url.path}: the client went away before its request "
         "was answered")
    return Response(status_code=400)


def _log(message: str) -> None:
    print(f"lulc-edge: {message}", file=sys.stderr, flush=True)


def create_app(engine: Engine, options: ServeOptions) -> Starlette:
    """The ASGI application of ``lulc-edge serve``."""
    svc = Service(engine, options)
    routes = [
        Route("/", svc.index),
        Route("/health", svc.health),
        Route("/info", svc.info),
        Route("/predict", svc.predict, methods=["POST"]),
        Route("/jobs", svc.create_job, methods=["POST"]),
        Route("/jobs", svc.list_jobs, methods=["GET"]),
        Route("/jobs/{job}", svc.job),
        Route("/jobs/{job}/{name}", svc.job_file),
        Route("/data", svc.data),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(BodyLimit, limit=int(options.max_upload_mb * 2**20))]
    if options.cors:
        middleware.insert(0, Middleware(CORSMiddleware, allow_origins=[options.cors],
                                        allow_methods=["GET", "POST"],
                                        allow_headers=["Authorization", "Content-Type"]))
    if options.token:
        middleware.append(Middleware(TokenGuard, token=options.token))
    handlers = {
        ApiError: _api_error,
        ClientDisconnect: _gone,
        HTTPException: lambda req, exc: _error(exc.status_code, str(exc.detail)),
        Exception: lambda req, exc: _error(500, f"internal error: {one_line(exc)}"),
    }
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.service = svc
    return app
