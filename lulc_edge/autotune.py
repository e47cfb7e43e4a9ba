"""lulc_edge.autotune: ``--device auto`` / ``--precision auto``, measured once and cached.

Candidates are the (backend, precision) pairs this machine can run. A precision other than fp32
is a candidate only when the model's metadata (``lulc_edge.accuracy``) stores its argmax
agreement with fp32 on synthetic scenes and on real scenes, and the lowest of them meets the
budget (``min_agreement``): synthetic scenes alone once let int8 in at 99.6 % while real L1C
patches agreed 77 %, so an unmeasured real agreement keeps a precision out. Each candidate is
timed on a 256x256 synthetic tile (one warm-up, three timed runs, best run counts); the
measurements are cached in ``<cache dir>/auto.json`` under a key made of the CPU, the library
versions, the threads and the model's sha256, so a later run chooses without measuring. A cache
file that is corrupt or was written for another machine is ignored and rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backends import (
    PRECISIONS,
    Backend,
    available_devices,
    check_precision,
    cpu_info,
    default_cache_dir,
    resolve_device,
    versions,
)
from .contract import MODEL_BANDS
from .errors import BackendError, LulcEdgeError, LulcEdgeWarning

CACHE_VERSION = 2  # 2: timings with the blocks a run keeps in flight (OpenVINO streams)
CACHE_FILE = "auto.json"
#: Default accuracy budget: argmax agreement with fp32 that a faster precision must keep.
DEFAULT_MIN_AGREEMENT = 0.995
#: A reduced precision must beat the fastest fp32 pair by this factor to be chosen.
MIN_GAIN = 1.10
TILE = 256
RUNS = 3


@dataclass
class Candidate:
    """One (backend, precision) pair and what auto knows about it."""

    device: str
    precision: str
    #: lowest stored argmax agreement with fp32 (synthetic and real), None when none is stored
    agreement: float | None = None
    mps: float | None = None
    status: str = "candidate"  # candidate | measured | failed | excluded | chosen

    note: str = ""
    #: lowest stored agreement on synthetic scenes and on real scenes (None: not stored)
    synthetic: float | None = None
    real: float | None = None
    #: excluded by the accuracy budget alone (it could run)
    over_budget: bool = False

    @property
    def key(self) -> str:
        return f"{self.device}/{self.precision}"

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device, "precision": self.precision, "mp_per_s": self.mps,
                "agreement": self.agreement, "agreement_synthetic": self.synthetic,
                "agreement_real": self.real, "status": self.status, "note": self.note}


@dataclass
class Selection:
    """The outcome of auto: every pair considered, the chosen one, and where timings came from."""

    candidates: list[Candidate]
    chosen: Candidate | None
    cached: bool
    cache_file: str
    min_agreement: float
    key: str
    backend: Backend | None = field(default=None, repr=False)
    #: why the chosen pair won (one sentence)
    reason: str = ""

    def agreements(self) -> dict[str, dict[str, Any]]:
        """Per precision considered: the stored agreements and whether the budget admits it."""
        out: dict[str, dict[str, Any]] = {}
        for c in self.candidates:
            note = budget_note(c.synthetic, c.real, self.min_agreement)
            out.setdefault(c.precision, {"synthetic": c.synthetic, "real": c.real,
                                         "within_budget": not note, "note": note})
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.key if self.chosen else None, "reason": self.reason,
            "cached": self.cached, "cache_file": self.cache_file,
            "min_agreement": self.min_agreement, "agreements": self.agreements(),
            "cache_key": self.key, "candidates": [c.as_dict() for c in self.candidates],
        }


def _fraction(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return None


def stored_agreements(accuracy: Any, precision: str) -> tuple[float | None, float | None]:
    """(synthetic, real): the lowest argmax agreement with fp32 stored for ``precision``.

    ``accuracy`` is ``lulc_edge.accuracy``: per precision an entry (``agreement``, and
    ``agreement_real_min`` for real scenes), a bare number (synthetic) or a list of entries
    (several files store one each); None where nothing is stored. fp32 is the reference.
    """
    if precision == "fp32":
        return 1.0, 1.0
    entries = accuracy.get(precision) if isinstance(accuracy, dict) else None
    synthetic: list[float | None] = []
    real: list[float | None] = []
    for entry in entries if isinstance(entries, list) else [entries]:
        if isinstance(entry, dict):
            synthetic.append(_fraction(entry.get("agreement", entry.get("argmax_agreement"))))
            real.append(_fraction(entry.get("agreement_real_min")))
        else:
            synthetic.append(_fraction(entry))
    return (min((a for a in synthetic if a is not None), default=None),
            min((a for a in real if a is not None), default=None))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def budget_note(synthetic: float | None, real: float | None, min_agreement: float) -> str:
    """Why a precision with these stored agreements is outside the budget ("" if inside):
    the lowest of them must meet it, and both must be stored."""
    if synthetic is None and real is None:
        return "no stored accuracy (lulc_edge.accuracy)"
    if real is None:
        return ("no stored agreement on real scenes (benchmarks/parity.py, "
                "benchmarks/store_accuracy.py)")
    lowest = min(a for a in (synthetic, real) if a is not None)
    if lowest < min_agreement:
        kind = "real scenes" if lowest == real else "synthetic scenes"
        return f"lowest stored agreement {_pct(lowest)} ({kind}) < budget {_pct(min_agreement)}"
    return ""


def report_lines(doc: dict[str, Any]) -> list[str]:
    """``lulc-edge info``'s auto section from ``Selection.as_dict()``: the stored agreements
    side by side, the choice and why, then every pair (notes in full)."""
    budget = doc["min_agreement"]
    lines = [f"accuracy     argmax agreement with fp32, lowest stored; auto admits a precision "
             f"when the lowest of both meets the budget {_pct(budget)}",
             f"  {'precision':<11}{'synthetic':<11}{'real scenes':<13}auto"]
    for prec, a in doc["agreements"].items():
        verdict = "reference" if prec == "fp32" else (
            "within budget" if a["within_budget"] else f"excluded: {a['note']}")
        lines.append(f"  {prec:<11}{_pct(a['synthetic']):<11}{_pct(a['real']):<13}{verdict}")
    when = "cached" if doc["cached"] else "measured now"
    lines.append(f"auto         chose {doc['chosen']}: {doc['reason']} (timings {when} in "
                 f"{doc['cache_file']})")
    for c in doc["candidates"]:
        mps = f"{c['mp_per_s']:6.2f} MP/s" if c["mp_per_s"] else " " * 11
        lines.append(f"  {c['device'] + '/' + c['precision']:<20}{mps}  {c['status']}"
                     f"{': ' + c['note'] if c['note'] else ''}")
    return lines


def cache_key(model_sha256: str, threads: int, options: Any) -> str:
    """What a timing depends on: CPU, library versions, threads, device options and the model."""
    cpu = cpu_info()
    doc = {"cpu": cpu["model"], "flags": hashlib.sha256(" ".join(cpu["flags"]).encode())
           .hexdigest()[:16], "versions": versions(), "threads": threads,
           "model": model_sha256, "openvino_device": options.openvino_device_type,
           "cuda_device": options.cuda_device_id}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- cache file
def _load(path: Path) -> dict[str, Any]:
    """The cache document, or an empty one when missing, corrupt or of another format."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"version": CACHE_VERSION, "entries": {}}
    if not isinstance(doc, dict) or doc.get("version") != CACHE_VERSION \
            or not isinstance(doc.get("entries"), dict):
        return {"version": CACHE_VERSION, "entries": {}}
    return doc


def _entry(doc: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    """Valid measurements of ``key`` (pair -> {"mps": float} | {"error": str}); others dropped."""
    entry = doc["entries"].get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("pairs"), dict):
        return {}
    ok = {}
    for pair, m in entry["pairs"].items():
        if isinstance(m, dict) and (isinstance(m.get("mps"), (int, float))
                                    and m["mps"] > 0 or isinstance(m.get("error"), str)):
            ok[pair] = m
    return ok


def _save(path: Path, doc: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home must not stop a run
        warnings.warn(f"cannot write the auto cache {path}: {exc}", LulcEdgeWarning, stacklevel=4)


#: Seconds to wait for another process measuring (a measurement takes well under a minute):
#: a hung one then no longer blocks every lulc-edge run on the machine.
LOCK_WAIT = float(os.environ.get("LULC_EDGE_AUTO_LOCK_WAIT", 300))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the cache, so parallel workers measure once, not each; waits
    at most ``LOCK_WAIT`` seconds for it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, atomic replace still holds
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(f".{path.name}.lock"), os.O_CREAT | os.O_RDWR, 0o644)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    warnings.warn(f"auto: another process has measured for over {LOCK_WAIT:g} s "
                                  f"(lock {path.name}); measuring here without waiting",
                                  LulcEdgeWarning, stacklevel=4)
                    break
                time.sleep(0.2)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# --------------------------------------------------------------------------- measuring
def synthetic_tile(size: int = TILE, seed: int = 0) -> np.ndarray:
    """A (1, 13, size, size) uint16 tile of plausible reflectances (timing only)."""
    rng = np.random.default_rng(seed)
    tile = rng.integers(200, 4000, (1, len(MODEL_BANDS), size, size), dtype=np.uint16)
    tile[:, MODEL_BANDS.index("SCL")] = rng.integers(2, 11, (size, size), dtype=np.uint16)
    return tile


def time_backend(backend: Backend, tile: np.ndarray | None = None, runs: int = RUNS) -> float:
    """Megapixels per second of ``backend`` on a tile: one warm-up, best of ``runs``."""
    tile = synthetic_tile() if tile is None else tile
    backend.prepare([(tile.shape[2], tile.shape[3])])  # as a scene run does (OpenVINO: static)
    n = max(1, int(getattr(backend, "in_flight", 1)))  # as many blocks at once as a run keeps
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(lambda _: backend.run(tile, ("class",)), range(n)))
        best = float("inf")
        for _ in range(runs):
            t0 = time.perf_counter()
            list(pool.map(lambda _: backend.run(tile, ("class",)), range(n)))
            best = min(best, time.perf_counter() - t0)
    return n * tile.shape[0] * tile.shape[2] * tile.shape[3] / max(best, 1e-9) / 1e6


def candidates(device: str, precision: str, options: Any, accuracy: Any,
               min_agreement: float, unavailable: dict[str, str] | None = None
               ) -> list[Candidate]:
    """Every pair auto may consider, with exclusions explained (nothing is built here).

    ``unavailable`` maps a precision to why it has no model file (e.g. no NAME-int8.onnx).
    """
    devices = available_devices() if device == "auto" else [resolve_device(device)]
    precisions = PRECISIONS if precision == "auto" else (precision,)
    out = []
    for dev in devices:
        for prec in precisions:
            syn, real = stored_agreements(accuracy, prec)
            known = [a for a in (syn, real) if a is not None]
            c = Candidate(dev, prec, min(known) if known else None, synthetic=syn, real=real)
            try:
                if unavailable and prec in unavailable:
                    raise BackendError(unavailable[prec])
                check_precision(dev, prec, options)
            except LulcEdgeError as exc:
                c.status, c.note = "excluded", str(exc)
                out.append(c)
                continue
            if precision == "auto":  # an explicit precision is the user's call, not the budget's
                c.note = budget_note(syn, real, min_agreement)
                if c.note:
                    c.status, c.over_budget = "excluded", True
            out.append(c)
    return out


def _rank(pool: list[Candidate]) -> list[Candidate]:
    """Fastest first; a reduced precision must beat the fastest fp32 by MIN_GAIN."""
    fp32 = max((c.mps for c in pool if c.precision == "fp32" and c.mps), default=0.0)

    def score(c: Candidate) -> float:
        mps = c.mps or 0.0
        return mps if c.precision == "fp32" or mps >= fp32 * MIN_GAIN else min(mps, fp32 * 0.999)

    return sorted(pool, key=score, reverse=True)


def select(device: str, precision: str, options: Any, threads: int, model_sha256: str,
           accuracy: Any, build: Callable[[str, str], Backend],
           unavailable: dict[str, str] | None = None) -> Selection:
    """Choose a pair; ``build(device, precision)`` opens a backend (BackendError if it fails).

    Only pairs allowed by the accuracy budget are timed, and only when there are several; the
    chosen pair's backend is returned opened. Under auto a pair that fails to build is skipped
    with a warning naming it.
    """
    min_agreement = options.min_agreement
    cands = candidates(device, precision, options, accuracy, min_agreement, unavailable)
    pool = [c for c in cands if c.status == "candidate"]
    if not pool and precision == "auto":  # a model file that runs one precision only (int8)
        pool = [c for c in cands if c.over_budget]
        for c in pool:
            c.status = "candidate"
            warnings.warn(f"auto: {c.key} is outside the accuracy budget ({c.note}) but is the "
                          "only precision this model file runs; it is used as given",
                          LulcEdgeWarning, stacklevel=3)
    key = cache_key(model_sha256, threads, options)
    path = default_cache_dir() / CACHE_FILE
    sel = Selection(cands, None, False, str(path), min_agreement, key)
    if not pool:
        reasons = "; ".join(f"{c.key}: {c.note}" for c in cands) or "no backend installed"
        raise BackendError(f"nothing can run {device}/{precision} here ({reasons})")
    opened: dict[str, Backend] = {}

    def try_build(c: Candidate) -> Backend | None:
        try:
            opened[c.key] = build(c.device, c.precision)
            return opened[c.key]
        except LulcEdgeError as exc:
            c.status, c.note, c.mps = "failed", str(exc), None
            warnings.warn(f"auto: {c.key} failed and is skipped ({exc})", LulcEdgeWarning,
                          stacklevel=4)
            return None

    if len(pool) > 1:
        with _locked(path):
            doc = _load(path)
            known = _entry(doc, key)
            sel.cached = all(c.key in known for c in pool)
            for c in pool:
                m = known.get(c.key)
                if m is None:
                    backend = try_build(c)
                    m = {"mps": round(time_backend(backend), 4)} if backend else \
                        {"error": c.note}
                    known[c.key] = m
                if "error" in m:
                    c.status, c.note = "failed", str(m["error"])
                else:
                    c.status, c.mps = "measured", float(m["mps"])
            if not sel.cached:
                doc["entries"][key] = {"pairs": known, "cpu": cpu_info()["model"],
                                       "versions": versions(), "threads": threads,
                                       "model_sha256": model_sha256,
                                       "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
                _save(path, doc)
    for c in _rank([c for c in pool if c.status in ("measured", "candidate")]):
        backend = opened.get(c.key) or try_build(c)
        if backend is not None:
            c.status, sel.chosen, sel.backend = "chosen", c, backend
            break
    if sel.backend is None:
        reasons = "; ".join(f"{c.key}: {c.note}" for c in pool)
        raise BackendError(f"no usable backend ({reasons})")
    within = " within the accuracy budget" if precision == "auto" else ""
    sel.reason = f"the only pair that can run here{within}" if len(pool) == 1 else (
        f"the fastest of the {len(pool)} pairs that can run here{within}"
        + (f" (a reduced precision must be {MIN_GAIN:.2f}x as fast as fp32)"
           if any(c.precision != "fp32" for c in pool) else ""))
    return sel
