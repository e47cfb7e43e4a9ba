"""lulc_edge.serve_routes: the service's request handlers: the model, /predict, jobs, data."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rasterio.errors import RasterioError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response

from .describe import describe, served
from .engine import Engine
from .errors import InputError, LulcEdgeError
from .preview import pictures, png_bytes, two_panels, with_pictures
from .raster import is_complete
from .runfile import segment_file
from .scenes import list_scenes
from .serve_jobs import (
    FILES,
    Jobs,
    class_percent,
    original_pixels,
    parse_options,
    public,
    public_text,
)
from .spec import RunOptions
from .uploads import NO_FILE, ApiError, Form, receive_body, receive_form

if TYPE_CHECKING:
    from .serve import ServeOptions

STATIC = Path(__file__).parent / "static"
#: What one /predict waiting its turn may come to hold in memory (its pictures and the PNGs of
#: its answer until the client reads them): the waiting line's default length is the memory
#: available divided by this.
WAIT_COST = 64 << 20


def memory_waiting(default: int = 64) -> int:
    """How many /predict requests may wait: available memory / WAIT_COST, at least 8."""
    try:
        with open("/proc/meminfo") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return default
    return max(8, kb * 1024 // WAIT_COST)


class Service:
    """The loaded engine, its jobs, and the request handlers."""

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
        self.model = served(describe(engine.contract), engine.device, engine.precision)
        self.jobs = Jobs(engine, self.jobs_dir, options.size, options.queue, self.infer)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def info(self, request: Request) -> Response:
        """The model being served; the page shows its weights' provenance (DEMO or not)."""
        return JSONResponse(self.model)

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
                res = segment_file(src, out, engine=self.engine, options=with_pictures(
                    RunOptions(confidence=True, progress=False), self.opts.size))
            _, pics = pictures(out, src, self.opts.size, true_colour=res.true_colour)
        except (LulcEdgeError, RasterioError) as exc:
            status = 400 if isinstance(exc, (InputError, RasterioError)) else 500
            raise ApiError(status, public_text(exc, src, label)) from None
        pics["overlay"] = two_panels(pics["true_colour"], pics["overlay"],
                                     ("True colour", "Overlay"))  # as the original's
        b64 = {k: base64.b64encode(png_bytes(pics[k])).decode("ascii")
               for k in ("mask", "overlay", "annotated")}
        return {"segmentation_mask": b64["mask"], "overlay": b64["overlay"],
                "annotated": b64["annotated"], "class_stats": class_percent(
                    original_pixels(res.class_pixels, self.engine.contract.nodata.name))}

    async def create_job(self, request: Request) -> Response:
        self.jobs.check_room()
        jid = uuid.uuid4().hex
        if request.headers.get("content-type", "").startswith("application/json"):
            path, options = await self._json_job(request)
            source = self.under_root(path)
            doc = await run_in_threadpool(self.jobs.new, path, source, options, False, jid)
        else:  # received under .uploads: a server killed meanwhile leaves no job folder
            spool = self.tmp_dir / f"{jid}.tif"
            try:
                form, path = await self._upload(request, spool)
                options = parse_options(form.fields, self.engine)
                doc = await run_in_threadpool(self.jobs.new, path, spool, options, True, jid)
            except BaseException:
                spool.unlink(missing_ok=True)
                raise
        (self.jobs_dir / jid).mkdir()
        if doc["upload"]:
            doc["source"] = str(spool.rename(self.jobs_dir / jid / "input.tif"))
        try:
            self.jobs.submit(doc)
        except ApiError:
            shutil.rmtree(self.jobs_dir / jid, ignore_errors=True)
            raise
        return JSONResponse(public(doc), status_code=202)

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

    async def job(self, request: Request) -> Response:
        return JSONResponse(public(self.jobs.get(request.path_params["job"])))

    async def job_file(self, request: Request) -> Response:
        doc = self.jobs.get(request.path_params["job"])
        name = request.path_params["name"]
        if name not in FILES:
            raise ApiError(404, f"no file {name} (one of {', '.join(FILES)})")
        if doc["status"] != "done":
            raise ApiError(409, f"job {doc['id']} is {doc['status']}")
        path = self.jobs_dir / doc["id"] / FILES[name]
        if not (is_complete(path) if name == "map.tif" else path.is_file()):
            raise ApiError(404, f"{name} missing")
        media = {".tif": "image/tiff", ".png": "image/png"}.get(path.suffix, "application/xml")
        return FileResponse(path, media_type=media,
                            filename=f"{Path(doc['input']).stem}.{name.replace('map.', 'lulc.')}")

    async def list_jobs(self, request: Request) -> Response:
        return JSONResponse({"jobs": [public(d) for d in self.jobs.recent()]})

    async def data(self, request: Request) -> Response:
        """What the page's "scene on the server" picker offers: the scenes under --data-root
        this server can map (stacks, per-band folders, .SAFE folders, .zip products; see
        :mod:`lulc_edge.scenes`), each with its kind and whether it has SCL."""
        if self.root is None:
            return JSONResponse({"root": None, "scenes": [], "details": []})
        found = await run_in_threadpool(list_scenes, self.root, self.engine.contract.bands)
        return JSONResponse({"root": self.root.name, "scenes": [s.path for s in found],
                             "details": [vars(s) for s in found]})
