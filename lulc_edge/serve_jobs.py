"""lulc_edge.serve_jobs: the service's jobs: kept as ``job.json`` in the jobs folder, run one
at a time in order by a worker thread, resumed from their journal after a restart."""

from __future__ import annotations

import dataclasses
import json
import queue
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from rasterio.errors import RasterioError

from .aoi import Area, area_window
from .clouds import CLOUD_CLASS
from .engine import Engine
from .errors import LulcEdgeError, one_line
from .files import write_atomic
from .options import check_cloud_buffer, check_tile_step, parse_job_options
from .preview import KINDS, with_pictures, write_previews
from .results import RunResult
from .runfile import segment_file
from .sources import open_source
from .spec import RunSpec
from .uploads import ApiError

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
#: How many finished jobs ``GET /jobs`` lists.
RECENT = 50
#: A done job's files beside its map that GIS tools read: the QGIS style (class names and
#: colours) and GDAL's .aux.xml (category names, attribute table).
STYLES = {"qml": "map.qml", "aux": "map.tif.aux.xml"}
#: A done job's files by the name a client asks for, and their names in the job's folder.
FILES = {"map.tif": "map.tif", **{f"{k}.png": f"map.{k}.png" for k in KINDS},
         **{f: f for f in STYLES.values()}}


def parse_options(fields: dict[str, Any], engine: Engine) -> dict[str, Any]:
    """A job's run options, each checked against the CLI's range (and the tile against the
    engine's model); ApiError(400) names the bad one and what it allows."""
    c = engine.contract
    try:
        out = parse_job_options(fields)
        check_tile_step(out.get("tile"), out.get("mode"), c)
        check_cloud_buffer(out.get("cloud_buffer"), out.get("mode"), c,
                           out.get("cloud_mask", True))
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return out


def job_spec(opts: dict[str, Any], size: int) -> RunSpec:
    """A job's spec: its options (checked at submit, with the CLI's ranges), the service's own
    (a confidence file unless asked otherwise; resumable after a restart; quiet), and what the
    ``size`` px pictures need."""
    spec = RunSpec.from_dict({"confidence": True, **opts}).replace(
        overwrite=True, resume=True, progress=False)
    return dataclasses.replace(spec, run=with_pictures(spec.run, size))


def class_percent(res_pixels: dict[str, int]) -> dict[str, float]:
    """Percent of all pixels per class (nodata included), 2 decimals, as the original app."""
    total = max(sum(res_pixels.values()), 1)
    return {k: round(100.0 * v / total, 2) for k, v in res_pixels.items()}


def original_pixels(res_pixels: dict[str, int], nodata: str) -> dict[str, int]:
    """Pixels per class under the original app's keys: Cloud pixels counted as ``nodata``
    (the original's Unclassified), so its frontend keeps working unchanged."""
    out = {k: v for k, v in res_pixels.items() if k != CLOUD_CLASS.name}
    out[nodata] = out.get(nodata, 0) + res_pixels.get(CLOUD_CLASS.name, 0)
    return out


class Jobs:
    """The jobs by id, their queue and the worker that runs them on the one engine."""

    def __init__(self, engine: Engine, folder: Path, size: int, limit: int,
                 infer: threading.Lock) -> None:
        self.engine, self.folder, self.size, self.limit = engine, folder, size, limit
        self.infer = infer               # one inference at a time on the engine
        self.state = threading.RLock()   # guards self.docs and the job documents
        self.docs: dict[str, dict[str, Any]] = {}
        self.waiting: queue.Queue[str] = queue.Queue()
        for doc in sorted(self._stored(), key=lambda d: d["created"]):
            self.docs[doc["id"]] = doc
            if doc["status"] in ("queued", "running"):  # interrupted: resume, in order
                self.waiting.put(doc["id"])
        threading.Thread(target=self._work, name="lulc-edge-jobs", daemon=True).start()

    def _stored(self) -> list[dict[str, Any]]:
        """The jobs on disk; a job folder without its job.json (a server killed between making
        it and saving the job) is removed."""
        for folder in self.folder.iterdir():
            if JOB_ID.match(folder.name) and not (folder / "job.json").exists():
                shutil.rmtree(folder, ignore_errors=True)
        docs = []
        for f in self.folder.glob("*/job.json"):
            try:
                doc = json.loads(f.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if JOB_ID.match(str(doc.get("id", ""))) and f.parent.name == doc["id"]:
                docs.append(doc)
        return docs

    def _save(self, doc: dict[str, Any]) -> None:
        with self.state:
            text = json.dumps(doc, indent=1)
        write_atomic(self.folder / doc["id"] / "job.json", text)

    def _work(self) -> None:
        while True:
            jid = self.waiting.get()
            with self.state:
                doc = self.docs[jid]
                doc.update(status="running", started=time.time(), progress=0.0)
            self._save(doc)
            self._run(doc)

    def _run(self, doc: dict[str, Any]) -> None:
        src = Path(doc["source"])
        try:
            end = self._map(doc, src)
        except (LulcEdgeError, RasterioError, OSError, ValueError) as exc:
            end = {"status": "failed", "error": public_text(exc, src, doc["input"])}
        except Exception as exc:  # noqa: BLE001 - reported in the job, the worker goes on
            end = {"status": "failed",
                   "error": f"internal error: {public_text(exc, src, doc['input'])}"}
        if doc.get("upload"):
            src.unlink(missing_ok=True)
        with self.state:  # readers copy a job under this lock
            doc.update(end, finished=time.time())
        self._save(doc)

    def _map(self, doc: dict[str, Any], src: Path) -> dict[str, Any]:
        """A job's map and pictures; what its document says once it is done."""
        out = self.folder / doc["id"] / "map.tif"
        done_px = 0
        total = max(int(doc.get("pixels") or 0), 1)

        def tick(_: int, px: int) -> None:
            nonlocal done_px
            done_px += px
            doc["progress"] = round(min(done_px / total, 0.999), 4)

        with self.infer:
            res = segment_file(src, out, engine=self.engine,
                               spec=job_spec(doc["options"], self.size), on_tile=tick)
        write_previews(out, src, size=self.size, qml=True, true_colour=res.true_colour)
        return {"status": "done", "progress": 1.0, "demo_weights": self.engine.contract.demo,
                **_result_doc(res, [public_text(w, src, doc["input"]) for w in res.warnings])}

    def submit(self, doc: dict[str, Any]) -> dict[str, Any]:
        with self.state:
            self.check_room()
            self.docs[doc["id"]] = doc
            self._save(doc)
            self.waiting.put(doc["id"])
        return doc

    def check_room(self) -> None:
        """ApiError(429) when ``limit`` jobs already wait."""
        with self.state:
            queued = sum(1 for d in self.docs.values() if d["status"] == "queued")
        if queued >= self.limit:
            raise ApiError(429, f"queue full ({queued} jobs waiting, --queue "
                                f"{self.limit}); retry later")

    def new(self, input_label: str, source: Path, options: dict[str, Any], upload: bool,
            jid: str) -> dict[str, Any]:
        """A queued job's document; a bad scene is refused now (400), as the CLI does."""
        try:  # the size for progress
            with open_source(source, options=job_spec(options, 0).source) as s:
                pixels = s.width * s.height
                if options.get("area") is not None:
                    w = area_window(Area.from_json(options["area"]), s,
                                    self.engine.contract.alignment)
                    pixels = int(w.width * w.height)
        except LulcEdgeError as exc:
            raise ApiError(400, public_text(exc, source, input_label)) from None
        return {"id": jid, "status": "queued", "created": time.time(), "input": input_label,
                "source": str(source), "upload": upload, "options": options, "pixels": pixels,
                "progress": 0.0, "error": None}

    def get(self, jid: str) -> dict[str, Any]:
        """A copy of a job's document; ApiError(404) for an unknown id."""
        with self.state:
            doc = self.docs.get(jid) if JOB_ID.match(jid) else None
            doc = dict(doc) if doc is not None else None
        if doc is None:
            raise ApiError(404, f"no job {jid}")
        return doc

    def recent(self) -> list[dict[str, Any]]:
        """Copies of the RECENT newest jobs, newest first."""
        with self.state:
            return [dict(d) for d in sorted(self.docs.values(), key=lambda d: d["created"],
                                            reverse=True)[:RECENT]]


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """What a client sees of a job (no server paths)."""
    out = {k: v for k, v in doc.items() if k not in ("source", "upload")}
    if out.get("warnings"):
        out["warnings"] = [hide(w, Path(doc["source"]), doc["input"]) for w in out["warnings"]]
    if doc["status"] == "done":
        base = f"/jobs/{doc['id']}/"
        out["files"] = {"map": base + "map.tif", **{k: f"{base}{k}.png" for k in KINDS},
                        **{k: base + name for k, name in STYLES.items()}}
    return out


#: What a job's document keeps of its run's result (the paths are the server's own).
_RESULT_KEYS = ("width", "height", "seconds", "device", "precision", "mode", "tiles_total",
                "tiles_inferred", "class_pixels", "class_hectares", "area_note", "cloud_mask",
                "cloud_percent")


def _result_doc(res: RunResult, warnings: list[str]) -> dict[str, Any]:
    """A job's result: the run's own ``as_dict`` (less the server's paths), the original app's
    percentages, and the warnings as the client may see them."""
    doc = {k: v for k, v in res.as_dict().items() if k in _RESULT_KEYS}
    doc["seconds"] = round(doc["seconds"], 3)
    return {**doc, "class_percent": class_percent(res.class_pixels), "warnings": warnings}


def public_text(exc: BaseException | str, path: Path, label: str) -> str:
    """An error's one line (or a warning) with the server-side path replaced by what the
    client sent."""
    return hide(exc if isinstance(exc, str) else one_line(exc), path, label)


def hide(text: str, path: Path, label: str) -> str:
    """``text`` with the server-side ``path`` replaced by what the client sent."""
    return text.replace(str(path), label).replace(str(path.parent) + "/", "")
