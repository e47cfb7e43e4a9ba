"""lulc_edge.serve: ``lulc-edge serve``, an ASGI app (Starlette on uvicorn) over the Python API.

* ``GET /health``, ``POST /predict``: a drop-in for the original app's Flask model server
  (multipart field ``file``; base64 PNGs and class percentages).
* ``/jobs``: scenes too big for one request, uploaded or named under ``--data-root``; one job
  infers at a time, in order; state is kept in the jobs folder, so a restarted service resumes
  a job from its journal.
* ``/``: a web page (assets in the package, no CDN).

Every map is made by :func:`lulc_edge.segment_file` on the one loaded :class:`Engine`, and the
pictures are drawn from the written map by :mod:`lulc_edge.preview`: no second inference path.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import ipaddress
import json
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rasterio.errors import RasterioError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .engine import Engine
from .errors import InputError, LulcEdgeError, one_line
from .options import check_tile_step, parse_job_options
from .pipeline import RunOptions, RunResult, segment_file
from .preview import DEFAULT_SIZE, KINDS, pictures, png_bytes, two_panels, write_previews
from .raster import is_complete, write_atomic
from .scenes import list_scenes
from .sources import SourceOptions
from .uploads import (
    ENVELOPE,
    NO_FILE,
    ApiError,
    Form,
    receive_body,
    receive_form,
    too_large,
)

STATIC = Path(__file__).parent / "static"
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
#: How many finished jobs ``GET /jobs`` lists.
RECENT = 50
#: A done job's files beside its map that GIS tools read: the QGIS style (class names and
#: colours) and GDAL's .aux.xml (category names, attribute table).
_STYLES = {"qml": "map.qml", "aux": "map.tif.aux.xml"}
#: What one /predict waiting its turn may come to hold in memory (its pictures and the PNGs of
#: its answer until the client reads them): the waiting line's default length is the memory
#: available divided by this.
WAIT_COST = 64 << 20


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


def memory_waiting(default: int = 64) -> int:
    """How many /predict requests may wait: available memory / WAIT_COST, at least 8."""
    try:
        with open("/proc/meminfo") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return default
    return max(8, kb * 1024 // WAIT_COST)


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


def parse_options(fields: dict[str, Any], engine: Engine) -> dict[str, Any]:
    """A job's run options, each checked against the CLI's range (and the tile against the
    engine's model); ApiError(400) names the bad one and what it allows."""
    c = engine.contract
    try:
        out = parse_job_options(fields)
        check_tile_step(out.get("tile"), out.get("mode"), c.alignment, c.window_stride)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return out


def _run_options(opts: dict[str, Any], thumbnail: int = 0) -> tuple[RunOptions, SourceOptions]:
    """A job's run and source options; the run keeps a ``thumbnail`` px true-colour picture of
    the scene as it reads it, so the previews need no second read."""
    run = {k: opts[k] for k in ("mode", "tile", "batch", "probs", "cog") if k in opts}
    src = {k: opts[k] for k in ("scl_fill", "boa_offset", "resampling") if k in opts}
    return (RunOptions(confidence=opts.get("confidence", True), overwrite=True, resume=True,
                       progress=False, thumbnail=thumbnail, **run), SourceOptions(**src))


def class_percent(res_pixels: dict[str, int]) -> dict[str, float]:
    """Percent of all pixels per class (nodata included), 2 decimals, as the original app."""
    total = max(sum(res_pixels.values()), 1)
    return {k: round(100.0 * v / total, 2) for k, v in res_pixels.items()}


class Service:
    """The loaded engine, the job queue and its worker, and the request handlers."""

    def __init__(self, engine: Engine, options: ServeOptions) -> None:
        self.engine, self.opts = engine, options
        self.jobs_dir = options.jobs_dir.resolve()
        self.tmp_dir = self.jobs_dir / ".uploads"  # every upload is received here first
        shutil.rmtree(self.tmp_dir, ignore_errors=True)  # a killed server's request uploads
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.max_waiting = options.max_waiting or memory_waiting()
        self.waiting_predicts = 0       # /predict requests received, not yet answered
        self.turn = asyncio.Lock()      # their order (FIFO) for the engine
        self.root = options.data_root.resolve(strict=True) if options.data_root else None
        self.infer = threading.Lock()   # one inference at a time on the engine
        self.state = threading.RLock()  # guards self.jobs and the job documents
        self.jobs: dict[str, dict[str, Any]] = {}
        self.waiting: queue.Queue[str] = queue.Queue()
        for doc in sorted(self._stored(), key=lambda d: d["created"]):
            self.jobs[doc["id"]] = doc
            if doc["status"] in ("queued", "running"):  # interrupted: resume, in order
                self.waiting.put(doc["id"])
        threading.Thread(target=self._work, name="lulc-edge-jobs", daemon=True).start()

    # ------------------------------------------------------------------ jobs on disk
    def _stored(self) -> list[dict[str, Any]]:
        """The jobs on disk; a job folder without its job.json (a server killed between making
        it and saving the job) is removed."""
        for folder in self.jobs_dir.iterdir():
            if _JOB_ID.match(folder.name) and not (folder / "job.json").exists():
                shutil.rmtree(folder, ignore_errors=True)
        docs = []
        for f in self.jobs_dir.glob("*/job.json"):
            try:
                doc = json.loads(f.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if _JOB_ID.match(str(doc.get("id", ""))) and f.parent.name == doc["id"]:
                docs.append(doc)
        return docs

    def _save(self, doc: dict[str, Any]) -> None:
        with self.state:
            text = json.dumps(doc, indent=1)
        write_atomic(self.jobs_dir / doc["id"] / "job.json", text)

    def _work(self) -> None:
        while True:
            jid = self.waiting.get()
            with self.state:
                doc = self.jobs[jid]
                doc.update(status="running", started=time.time(), progress=0.0)
            self._save(doc)
            self._run_job(doc)

    def _run_job(self, doc: dict[str, Any]) -> None:
        folder = self.jobs_dir / doc["id"]
        src = Path(doc["source"])
        out = folder / "map.tif"
        run, src_opts = _run_options(doc["options"], self.opts.size)
        done_px = 0
        total = max(int(doc.get("pixels") or 0), 1)

        def tick(_: int, px: int) -> None:
            nonlocal done_px
            done_px += px
            doc["progress"] = round(min(done_px / total, 0.999), 4)

        try:
            with self.infer:
                res = segment_file(src, out, engine=self.engine, options=run,
                                   source_options=src_opts, on_tile=tick)
            write_previews(out, src, size=self.opts.size, qml=True,
                           true_colour=res.true_colour)
            end = {"status": "done", "progress": 1.0, "demo_weights": self.engine.contract.demo,
                   **_result_doc(res, [_public(w, src, doc["input"]) for w in res.warnings])}
        except (LulcEdgeError, RasterioError, OSError, ValueError) as exc:
            end = {"status": "failed", "error": _public(exc, src, doc["input"])}
        except Exception as exc:  # noqa: BLE001 - reported in the job, the worker goes on
            end = {"status": "failed",
                   "error": f"internal error: {_public(exc, src, doc['input'])}"}
        if doc.get("upload"):
            src.unlink(missing_ok=True)
        with self.state:  # readers copy a job under this lock
            doc.update(end, finished=time.time())
        self._save(doc)

    def submit(self, doc: dict[str, Any]) -> dict[str, Any]:
        with self.state:
            self._check_room()
            self.jobs[doc["id"]] = doc
            self._save(doc)
            self.waiting.put(doc["id"])
        return doc

    def _check_room(self) -> None:
        queued = sum(1 for d in self.jobs.values() if d["status"] == "queued")
        if queued >= self.opts.queue:
            raise ApiError(429, f"queue full ({queued} jobs waiting, --queue "
                                f"{self.opts.queue}); retry later")

    def new_job(self, input_label: str, source: Path, options: dict[str, Any], upload: bool,
                jid: str) -> dict[str, Any]:
        from .sources import open_source

        try:  # the size for progress; a bad scene is refused now, as the CLI does
            with open_source(source, options=_run_options(options)[1]) as s:
                pixels = s.width * s.height
        except LulcEdgeError as exc:
            raise ApiError(400, _public(exc, source, input_label)) from None
        return {"id": jid, "status": "queued", "created": time.time(), "input": input_label,
                "source": str(source), "upload": upload, "options": options, "pixels": pixels,
                "progress": 0.0, "error": None}

    # ------------------------------------------------------------------ requests
    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def info(self, request: Request) -> Response:
        """The model being served; the page shows its weights' provenance (DEMO or not)."""
        c = self.engine.contract
        return JSONResponse({"model": Path(c.path).name, "sha256": c.sha256,
                             "demo_weights": c.demo, "trained_on": c.trained_on,
                             "device": self.engine.device, "precision": self.engine.precision,
                             "classes": [vars(k) for k in (*c.classes, c.nodata)]})

    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def _upload(self, request: Request, dest: Path) -> tuple[Form, str]:
        """Receive the request's form, its ``file`` written to ``dest`` (never the client's
        filename, which only labels the answers)."""
        form = await receive_form(request, dest, int(self.opts.max_upload_mb * 2**20),
                                  self.opts.body_timeout)
        if form.filename is None:
            raise ApiError(400, NO_FILE)
        label = os.path.basename(form.filename.replace("\\", "/")) or "upload"
        if not label.lower().endswith((".tif", ".tiff")):
            raise ApiError(400, f"{label}: not a .tif (send a 13-band GeoTIFF)")
        return form, label

    async def predict(self, request: Request) -> Response:
        """Counted once its upload is complete; then it waits its turn for the engine, unless
        --max-waiting requests already wait (429)."""
        work = Path(tempfile.mkdtemp(prefix="predict-", dir=self.tmp_dir))
        try:
            _, label = await self._upload(request, work / "scene.tif")
            if self.waiting_predicts >= self.max_waiting:
                raise ApiError(429, f"busy ({self.waiting_predicts} requests waiting, "
                                    f"--max-waiting {self.max_waiting}); retry later")
            self.waiting_predicts += 1
            try:
                async with self.turn:
                    if await request.is_disconnected():
                        raise ClientDisconnect
                    doc = await run_in_threadpool(self._predict, work / "scene.tif", label)
            finally:
                self.waiting_predicts -= 1
            return JSONResponse(doc)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _predict(self, src: Path, label: str) -> dict[str, Any]:
        out = src.with_name("map.tif")
        try:
            with self.infer:
                res = segment_file(src, out, engine=self.engine,
                                   options=RunOptions(confidence=True, progress=False,
                                                      thumbnail=self.opts.size))
            _, pics = pictures(out, src, self.opts.size, true_colour=res.true_colour)
        except (LulcEdgeError, RasterioError) as exc:
            status = 400 if isinstance(exc, (InputError, RasterioError)) else 500
            raise ApiError(status, _public(exc, src, label)) from None
        pics["overlay"] = two_panels(pics["true_colour"], pics["overlay"],
                                     ("True colour", "Overlay"))  # as the original's
        b64 = {k: base64.b64encode(png_bytes(pics[k])).decode("ascii")
               for k in ("mask", "overlay", "annotated")}
        return {"segmentation_mask": b64["mask"], "overlay": b64["overlay"],
                "annotated": b64["annotated"], "class_stats": class_percent(res.class_pixels)}

    async def create_job(self, request: Request) -> Response:
        with self.state:
            self._check_room()
        jid = uuid.uuid4().hex
        if request.headers.get("content-type", "").startswith("application/json"):
            path, options = await self._json_job(request)
            source = self.under_root(path)
            doc = await run_in_threadpool(self.new_job, path, source, options, False, jid)
        else:  # received under .uploads: a server killed meanwhile leaves no job folder
            spool = self.tmp_dir / f"{jid}.tif"
            try:
                form, path = await self._upload(request, spool)
                options = parse_options(form.fields, self.engine)
                doc = await run_in_threadpool(self.new_job, path, spool, options, True, jid)
            except BaseException:
                spool.unlink(missing_ok=True)
                raise
        (self.jobs_dir / jid).mkdir()
        if doc["upload"]:
            doc["source"] = str(spool.rename(self.jobs_dir / jid / "input.tif"))
        try:
            self.submit(doc)
        except ApiError:
            shutil.rmtree(self.jobs_dir / jid, ignore_errors=True)
            raise
        return JSONResponse(self.public(doc), status_code=202)

    async def _json_job(self, request: Request) -> tuple[str, dict[str, Any]]:
        raw = await receive_body(request, self.opts.body_timeout)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "body is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("path"), str):
            raise ApiError(400, 'expected {"path": "...", options...} or an upload')
        path = body.pop("path")
        return path, parse_options(body, self.engine)

    def under_root(self, path: str) -> Path:
        """A path under --data-root, symlinks resolved; ApiError unless it stays inside. A path
        outside gets one answer whether it exists or not (no probing the server's files)."""
        if self.root is None:
            raise ApiError(400, "this server has no --data-root: upload the scene instead")
        if "\0" in path:
            raise ApiError(400, f"{path!r}: a path with a NUL byte")
        p = Path(path)
        try:
            real = (p if p.is_absolute() else self.root / p).resolve()
        except (OSError, RuntimeError):
            real = None
        if real is None or not real.is_relative_to(self.root):
            raise ApiError(403, f"{path}: outside the data root")
        try:
            found = real.exists()
        except OSError:
            found = False
        if not found:
            raise ApiError(400, f"{path}: no such file or folder under the data root")
        return real

    def public(self, doc: dict[str, Any]) -> dict[str, Any]:
        """What a client sees of a job (no server paths)."""
        out = {k: v for k, v in doc.items() if k not in ("source", "upload")}
        if out.get("warnings"):
            out["warnings"] = [_hide(w, Path(doc["source"]), doc["input"])
                               for w in out["warnings"]]
        if doc["status"] == "done":
            base = f"/jobs/{doc['id']}/"
            out["files"] = {"map": base + "map.tif", **{k: f"{base}{k}.png" for k in KINDS},
                            **{k: base + name for k, name in _STYLES.items()}}
        return out

    def _job(self, request: Request) -> dict[str, Any]:
        jid = request.path_params["job"]
        with self.state:
            doc = self.jobs.get(jid) if _JOB_ID.match(jid) else None
            doc = dict(doc) if doc is not None else None
        if doc is None:
            raise ApiError(404, f"no job {jid}")
        return doc

    async def job(self, request: Request) -> Response:
        return JSONResponse(self.public(self._job(request)))

    async def job_file(self, request: Request) -> Response:
        doc = self._job(request)
        name = request.path_params["name"]
        files = {"map.tif": "map.tif", **{f"{k}.png": f"map.{k}.png" for k in KINDS},
                 **{f: f for f in _STYLES.values()}}
        if name not in files:
            raise ApiError(404, f"no file {name} (one of {', '.join(files)})")
        if doc["status"] != "done":
            raise ApiError(409, f"job {doc['id']} is {doc['status']}")
        path = self.jobs_dir / doc["id"] / files[name]
        if not (is_complete(path) if name == "map.tif" else path.is_file()):
            raise ApiError(404, f"{name} missing")
        media = {".tif": "image/tiff", ".png": "image/png"}.get(path.suffix, "application/xml")
        return FileResponse(path, media_type=media,
                            filename=f"{Path(doc['input']).stem}.{name.replace('map.', 'lulc.')}")

    async def list_jobs(self, request: Request) -> Response:
        with self.state:
            docs = [dict(d) for d in sorted(self.jobs.values(), key=lambda d: d["created"],
                                            reverse=True)[:RECENT]]
        return JSONResponse({"jobs": [self.public(d) for d in docs]})

    async def data(self, request: Request) -> Response:
        """What the page's "scene on the server" picker offers: the scenes under --data-root
        this server can map (stacks, per-band folders, .SAFE folders, .zip products; see
        :mod:`lulc_edge.scenes`), each with its kind and whether it has SCL."""
        if self.root is None:
            return JSONResponse({"root": None, "scenes": [], "details": []})
        found = await run_in_threadpool(list_scenes, self.root, self.engine.contract.bands)
        return JSONResponse({"root": self.root.name, "scenes": [s.path for s in found],
                             "details": [vars(s) for s in found]})


def _result_doc(res: RunResult, warnings: list[str]) -> dict[str, Any]:
    return {"width": res.width, "height": res.height, "seconds": round(res.seconds, 3),
            "device": res.device, "precision": res.precision, "mode": res.mode,
            "tiles_total": res.tiles_total, "tiles_inferred": res.tiles_inferred,
            "class_pixels": res.class_pixels, "class_hectares": res.class_hectares,
            "class_percent": class_percent(res.class_pixels), "warnings": warnings}


def _public(exc: BaseException | str, path: Path, label: str) -> str:
    """An error's one line (or a warning) with the server-side path replaced by what the
    client sent."""
    return _hide(exc if isinstance(exc, str) else one_line(exc), path, label)


def _hide(text: str, path: Path, label: str) -> str:
    """``text`` with the server-side ``path`` replaced by what the client sent."""
    return text.replace(str(path), label).replace(str(path.parent) + "/", "")


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
