"""lulc_edge.autotune_cache: auto's timings on disk, ``<cache dir>/auto.json``.

Measurements are stored under a key made of the CPU, the library versions, the threads, the
device options and the model's sha256, so a later run chooses without measuring. A cache file
that is corrupt or was written for another machine is ignored and rewritten. A lock beside the
file makes parallel workers measure once, not each.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .devices import cpu_info, default_cache_dir, versions
from .engine_options import EngineOptions
from .errors import BackendError, LulcEdgeWarning, OutputError
from .files import place
from .locking import OutputLock

CACHE_VERSION = 2  # 2: timings with the blocks a run keeps in flight (OpenVINO streams)
CACHE_FILE = "auto.json"
#: Seconds to wait for another process measuring (a measurement takes well under a minute):
#: a hung one then no longer blocks every lulc-edge run on the machine.
DEFAULT_LOCK_WAIT = 300.0
#: Pairs measured: "device/precision" -> {"mps": float} or {"error": str}.
Pairs = dict[str, dict[str, Any]]


def cache_path() -> Path:
    """The cache file, in :func:`~lulc_edge.devices.default_cache_dir`."""
    return default_cache_dir() / CACHE_FILE


def lock_wait() -> float:
    """``$LULC_EDGE_AUTO_LOCK_WAIT`` seconds (read at each call), else ``DEFAULT_LOCK_WAIT``;
    BackendError when it is not a number of seconds."""
    text = os.environ.get("LULC_EDGE_AUTO_LOCK_WAIT", "")
    try:
        wait = float(text) if text.strip() else DEFAULT_LOCK_WAIT
    except ValueError:
        wait = -1.0
    if not wait >= 0:  # also NaN
        raise BackendError(f"LULC_EDGE_AUTO_LOCK_WAIT={text!r}: expected seconds (>= 0)")
    return wait


def cache_key(model_sha256: str, threads: int, options: EngineOptions) -> str:
    """What a timing depends on: CPU, library versions, threads, device options and the model."""
    cpu = cpu_info()
    doc = {"cpu": cpu["model"], "flags": hashlib.sha256(" ".join(cpu["flags"]).encode())
           .hexdigest()[:16], "versions": versions(), "threads": threads,
           "model": model_sha256, "openvino_device": options.openvino_device_type,
           "cuda_device": options.cuda_device_id}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def load(path: Path) -> dict[str, Any]:
    """The cache document, or an empty one when missing, corrupt or of another format."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"version": CACHE_VERSION, "entries": {}}
    if not isinstance(doc, dict) or doc.get("version") != CACHE_VERSION \
            or not isinstance(doc.get("entries"), dict):
        return {"version": CACHE_VERSION, "entries": {}}
    return doc


def entry(doc: dict[str, Any], key: str) -> Pairs:
    """Valid measurements of ``key``; malformed ones are dropped."""
    found = doc["entries"].get(key)
    if not isinstance(found, dict) or not isinstance(found.get("pairs"), dict):
        return {}
    ok = {}
    for pair, m in found["pairs"].items():
        if isinstance(m, dict) and (isinstance(m.get("mps"), (int, float))
                                    and m["mps"] > 0 or isinstance(m.get("error"), str)):
            ok[pair] = m
    return ok


def store(path: Path, doc: dict[str, Any], key: str, pairs: Pairs, about: dict[str, Any]
          ) -> None:
    """Write ``pairs`` under ``key`` (with ``about``: threads, model) into the cache file."""
    doc["entries"][key] = {"pairs": pairs, "cpu": cpu_info()["model"], "versions": versions(),
                           **about, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        place(tmp, path, sync=False)  # a per-process name: two writers never share one
    except OSError as exc:  # a read-only home must not stop a run
        warnings.warn(f"cannot write the auto cache {path}: {exc}", LulcEdgeWarning, stacklevel=5)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the cache (``.auto.json.lock``, :class:`OutputLock`), so
    parallel workers measure once, not each; waits at most :func:`lock_wait` seconds for it.
    Where no lock file can be made (a read-only cache dir) it runs unlocked."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        yield
        return
    lock, wait = OutputLock(path), lock_wait()
    deadline = time.monotonic() + wait
    held = False
    while not held:
        try:
            lock.acquire()
            held = True
        except OutputError:
            if not os.access(path.parent, os.W_OK):
                break  # the lock file cannot be made: measure unlocked
            if time.monotonic() >= deadline:
                warnings.warn(f"auto: another process has measured for over {wait:g} s "
                              f"(lock {lock.path.name}); measuring here without waiting",
                              LulcEdgeWarning, stacklevel=5)
                break
            time.sleep(0.2)
    try:
        yield
    finally:
        if held:
            lock.release()
