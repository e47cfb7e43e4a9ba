"""lulc_edge.autotune: ``--device auto`` / ``--precision auto``, measured once and cached.

Candidates are the (backend, precision) pairs this machine can run; a precision other than fp32
must be within the accuracy budget (:mod:`lulc_edge.budget`). Each candidate is timed on a
256x256 synthetic tile (one warm-up, three timed runs, best run counts); the measurements are
cached (:mod:`lulc_edge.autotune_cache`), so a later run chooses without measuring.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import autotune_cache as cache
from .backends import Backend
from .budget import budget_note, stored_agreements
from .contract import MODEL_BANDS
from .devices import PRECISIONS, available_devices, resolve_device
from .engine_options import EngineOptions
from .errors import BackendError, LulcEdgeError, LulcEdgeWarning
from .precisions import check_precision

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


@dataclass(frozen=True)
class AutoModel:
    """What auto needs to know of the model: its sha256 (cache key), the stored agreements per
    precision (``lulc_edge.accuracy`` entries) and the precisions without a model file here,
    with the reason (e.g. no NAME-int8.onnx)."""

    sha256: str
    accuracy: Mapping[str, Any] = field(default_factory=dict)
    unavailable: Mapping[str, str] = field(default_factory=dict)


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
    n = max(1, backend.in_flight)  # as many blocks at once as a run keeps
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(lambda _: backend.run(tile, ("class",)), range(n)))
        best = float("inf")
        for _ in range(runs):
            t0 = time.perf_counter()
            list(pool.map(lambda _: backend.run(tile, ("class",)), range(n)))
            best = min(best, time.perf_counter() - t0)
    return n * tile.shape[0] * tile.shape[2] * tile.shape[3] / max(best, 1e-9) / 1e6


def candidates(options: EngineOptions, model: AutoModel) -> list[Candidate]:
    """Every pair auto may consider for ``options`` (device, precision, budget), with
    exclusions explained (nothing is built here)."""
    device, precision = options.device, options.precision
    devices = available_devices() if device == "auto" else [resolve_device(device)]
    precisions = PRECISIONS if precision == "auto" else (precision,)
    out = []
    for dev in devices:
        for prec in precisions:
            syn, real = stored_agreements(model.accuracy, prec)
            known = [a for a in (syn, real) if a is not None]
            c = Candidate(dev, prec, min(known) if known else None, synthetic=syn, real=real)
            try:
                if prec in model.unavailable:
                    raise BackendError(model.unavailable[prec])
                check_precision(dev, prec, options.openvino_device_type)
            except LulcEdgeError as exc:
                c.status, c.note = "excluded", str(exc)
                out.append(c)
                continue
            if precision == "auto":  # an explicit precision is the user's call, not the budget's
                c.note = budget_note(syn, real, options.min_agreement)
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


class _Opener:
    """Opens candidates' backends once each; a failure marks the candidate and warns."""

    def __init__(self, build: Callable[[str, str], Backend]) -> None:
        self.build = build
        self.opened: dict[str, Backend] = {}

    def __call__(self, c: Candidate) -> Backend | None:
        if c.key in self.opened:
            return self.opened[c.key]
        try:
            self.opened[c.key] = self.build(c.device, c.precision)
            return self.opened[c.key]
        except LulcEdgeError as exc:
            c.status, c.note, c.mps = "failed", str(exc), None
            warnings.warn(f"auto: {c.key} failed and is skipped ({exc})", LulcEdgeWarning,
                          stacklevel=5)
            return None


def _measure(sel: Selection, pool: list[Candidate], open_: _Opener, about: dict[str, Any]
             ) -> None:
    """Timings of every pair in ``pool``: from the cache, else measured now and stored."""
    path = cache.cache_path()
    with cache.locked(path):
        doc = cache.load(path)
        known = cache.entry(doc, sel.key)
        sel.cached = all(c.key in known for c in pool)
        for c in pool:
            m = known.get(c.key)
            if m is None:
                backend = open_(c)
                m = {"mps": round(time_backend(backend), 4)} if backend else {"error": c.note}
                known[c.key] = m
            if "error" in m:
                c.status, c.note = "failed", str(m["error"])
            else:
                c.status, c.mps = "measured", float(m["mps"])
        if not sel.cached:
            cache.store(path, doc, sel.key, known, about)


def _reason(pool: list[Candidate], explicit_precision: bool) -> str:
    """Why the chosen pair won (one sentence)."""
    within = "" if explicit_precision else " within the accuracy budget"
    if len(pool) == 1:
        return f"the only pair that can run here{within}"
    return (f"the fastest of the {len(pool)} pairs that can run here{within}"
            + (f" (a reduced precision must be {MIN_GAIN:.2f}x as fast as fp32)"
               if any(c.precision != "fp32" for c in pool) else ""))


def select(options: EngineOptions, threads: int, model: AutoModel,
           build: Callable[[str, str], Backend]) -> Selection:
    """Choose a pair for ``options``; ``build(device, precision)`` opens a backend
    (BackendError if it fails).

    Only pairs allowed by the accuracy budget are timed, and only when there are several; the
    chosen pair's backend is returned opened. Under auto a pair that fails to build is skipped
    with a warning naming it.
    """
    cands = candidates(options, model)
    pool = [c for c in cands if c.status == "candidate"]
    if not pool and options.precision == "auto":  # a model file that runs one precision only (int8)
        pool = [c for c in cands if c.over_budget]
        for c in pool:
            c.status = "candidate"
            warnings.warn(f"auto: {c.key} is outside the accuracy budget ({c.note}) but is the "
                          "only precision this model file runs; it is used as given",
                          LulcEdgeWarning, stacklevel=3)
    key = cache.cache_key(model.sha256, threads, options)
    sel = Selection(cands, None, False, str(cache.cache_path()), options.min_agreement, key)
    if not pool:
        reasons = "; ".join(f"{c.key}: {c.note}" for c in cands) or "no backend installed"
        raise BackendError(f"nothing can run {options.device}/{options.precision} here "
                           f"({reasons})")
    open_ = _Opener(build)
    if len(pool) > 1:
        _measure(sel, pool, open_, {"threads": threads, "model_sha256": model.sha256})
    for c in _rank([c for c in pool if c.status in ("measured", "candidate")]):
        backend = open_(c)
        if backend is not None:
            c.status, sel.chosen, sel.backend = "chosen", c, backend
            break
    if sel.backend is None:
        reasons = "; ".join(f"{c.key}: {c.note}" for c in pool)
        raise BackendError(f"no usable backend ({reasons})")
    sel.reason = _reason(pool, options.precision != "auto")
    return sel
