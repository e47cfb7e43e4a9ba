"""benchmarks.parity: accuracy parity of every way to run the model, side by side.

    python benchmarks/parity.py [--h5 MODEL.h5] [--model FP32.onnx] [--int8 INT8.onnx]
                                [--quick] [--out benchmarks/results]

Variants: Keras (with --h5 and TensorFlow installed), ONNX fp32 and int8 through the lulc_edge
API (seamless tiling, the compatible 64/32 window mode, and the original app's loop: one model
run per 64x64 window at stride 32, probabilities averaged, edge pixels no window covers left at
class 0), and the same model on every other available backend (OpenVINO...). Scenes: synthetic
scenes with labels (lulc_edge.synthetic) and the real scenes of ../shared/data (read with
SourceOptions(scl_fill=4) where they have no SCL; the Sen1Floods11 chip has water labels).

Per variant and scene: argmax agreement with Keras and with fp32 seamless (pixels valid in the
reference), max |dp| against fp32 seamless, overall accuracy and per-class precision/recall/F1
against the labels with the change against fp32 seamless, class distributions, seconds.
Writes parity.json and parity.md into --out.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from lulc_edge import LulcEdgeError, Segmenter, SourceOptions, bundled_model  # noqa: E402
from lulc_edge.devices import cpu_info  # noqa: E402
from lulc_edge.engine import default_threads  # noqa: E402
from lulc_edge.errors import first_line  # noqa: E402
from lulc_edge.synthetic import CLASS_NAMES, SceneSpec, generate  # noqa: E402

SCHEMA = 1
SHARED = Path(os.environ.get("LULC_EDGE_SHARED_DATA", Path(__file__).resolve().parents[2]
                             / "shared" / "data"))
SYNTHETIC = ((11, 512, 32), (12, 512, 48), (13, 512, 64))
SYNTHETIC_QUICK = ((11, 128, 32), (12, 128, 48))
REAL = ("l1c-sen1floods11-spain-7370579.tif", "l1c-18SVG-20160112-crop.tif",
        "l2a-29RKH-20200219", "l1c-19UDP-20170729", "bigearthnet-l2a")
REAL_QUICK = ("l1c-sen1floods11-spain-7370579.tif", "l1c-19UDP-20170729")
QUICK_CROP = 128
WATER = 4
NODATA = 255
N_CLASSES = len(CLASS_NAMES)
REFERENCE = "onnx fp32 seamless (cpu)"


@dataclass
class Scene:
    """Bands (13, H, W) uint16 and labels: full 5-class, water-only (4/255), or none."""

    name: str
    kind: str           # synthetic | real
    bands: np.ndarray
    labels: np.ndarray | None
    label_kind: str     # full | water | none
    note: str = ""


# ---------------------------------------------------------------- scenes

def synthetic_scenes(quick: bool) -> list[Scene]:
    out = []
    for seed, size, scale in (SYNTHETIC_QUICK if quick else SYNTHETIC):
        bands, labels, _ = generate(SceneSpec(width=size, height=size, seed=seed,
                                              region_scale=scale))
        out.append(Scene(f"synthetic seed {seed} ({size}x{size}, regions {scale} px)",
                         "synthetic", bands, labels, "full"))
    return out


def _read(path: Path, crop: int | None) -> tuple[np.ndarray, str]:
    from rasterio.windows import Window

    from lulc_edge.sources import open_source

    with open_source(path, options=SourceOptions(scl_fill=4)) as src:
        h, w = src.height, src.width
        if crop:
            r0, c0 = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
            win = Window(c0, r0, min(crop, w), min(crop, h))
        else:
            win = Window(0, 0, w, h)
        bands = src.read(win)
        note = src.tags().get("SCL_SOURCE", "")
    return bands, note


def real_scenes(quick: bool) -> tuple[list[Scene], str]:
    if not SHARED.is_dir():
        return [], f"not available: {SHARED} not found"
    out = []
    crop = QUICK_CROP if quick else None
    for name in (REAL_QUICK if quick else REAL):
        path = SHARED / name
        if not path.exists():
            continue
        paths = sorted(p for p in path.iterdir() if p.is_dir()) if name == "bigearthnet-l2a" \
            else [path]
        for p in paths:
            bands, note = _read(p, crop)
            labels, kind = None, "none"
            lab_path = p.with_name(p.name.replace(".tif", ".labels.tif"))
            if p.suffix == ".tif" and lab_path.is_file():
                import rasterio

                with rasterio.open(lab_path) as ds:
                    labels = ds.read(1)
                if crop:
                    h, w = labels.shape
                    r0, c0 = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
                    labels = labels[r0: r0 + crop, c0: c0 + crop]
                kind = "water"
            label = p.name if name != "bigearthnet-l2a" else f"bigearthnet/{p.name}"
            out.append(Scene(label, "real", bands, labels, kind, note))
    return out, str(SHARED)


# ---------------------------------------------------------------- variants

class Keras:
    """The .h5 model on numpy features (export/reference.py), whole scene padded to x4."""

    def __init__(self, h5: Path) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from export.keras_model import flexible_copy, load_h5

        self.model = flexible_copy(load_h5(h5))

    def predict(self, bands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from export.reference import features_nhwc, nodata_mask

        _, h, w = bands.shape
        ph, pw = -h % 4, -w % 4
        x = np.pad(bands, ((0, 0), (0, ph), (0, pw)))[None]
        probs = np.asarray(self.model(features_nhwc(x), training=False))[0, :h, :w]
        probs = probs.transpose(2, 0, 1).astype(np.float32)
        cls = probs.argmax(0).astype(np.uint8)
        cls[nodata_mask(bands[None])[0]] = NODATA
        return cls, probs


def original_loop(seg: Segmenter, bands: np.ndarray, size: int = 64, stride: int = 32
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The original app: one run per 64x64 window at stride 32, averaged; uncovered = class 0.

    As in the original there is no nodata rule (all-zero pixels get a class like any other).
    """
    _, h, w = bands.shape
    acc = np.zeros((N_CLASSES, h, w), np.float32)
    hits = np.zeros((h, w), np.float32)
    for r in range(0, h - size + 1, stride):
        for c in range(0, w - size + 1, stride):
            x = np.ascontiguousarray(bands[None, :, r: r + size, c: c + size])
            probs = seg.engine.run(x, ("probabilities",))[0][0]
            acc[:, r: r + size, c: c + size] += probs
            hits[r: r + size, c: c + size] += 1
    covered = hits > 0
    mean = np.where(covered, acc / np.maximum(hits, 1), 0.0).astype(np.float32)
    cls = np.where(covered, mean.argmax(0), 0).astype(np.uint8)
    return cls, mean


def _variants(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(variants, model info). A variant: name, run(bands) -> (classes, probs | None)."""
    from lulc_edge.devices import available_devices

    models: dict[str, Any] = {"fp32": str(args.model), "int8": str(args.int8)}
    out: list[dict[str, Any]] = []
    if args.h5 is None:
        models["keras"] = "not available: no --h5 given"
    else:
        try:
            keras_model = Keras(args.h5)
            models["keras"] = str(args.h5)
            out.append({"name": "keras (.h5, TensorFlow)", "run": keras_model.predict})
        except ImportError as exc:
            models["keras"] = f"not available: TensorFlow not installed ({exc})"
        except Exception as exc:  # noqa: BLE001 - any load failure is reported, not fatal
            models["keras"] = f"not available: {first_line(exc)}"

    def seamless(seg: Segmenter, mode: str = "seamless"):
        def run(bands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # the model's classes everywhere: parity compares models, not the cloud mask
            p = seg.predict(bands, mode=mode, probabilities=True, clouds=False)
            return p.classes, p.probabilities
        return run

    devices = ["cpu"] + [d for d in available_devices() if d != "cpu"]
    for device in devices:
        for precision in ("fp32", "int8", "bf16", "fp16"):
            if device == "cpu" and precision in ("bf16", "fp16"):
                continue
            path = args.int8 if precision == "int8" else args.model
            name = f"onnx {precision} seamless ({device})"
            try:
                seg = Segmenter(path, device=device, precision=precision, threads=args.threads)
            except (LulcEdgeError, OSError) as exc:
                out.append({"name": name, "error": f"not available: {exc}"})
                continue
            out.append({"name": name, "run": seamless(seg)})
            if device == "cpu" and precision in ("fp32", "int8"):
                out.append({"name": f"onnx {precision} window 64/32 ({device})",
                            "run": seamless(seg, "window")})
                out.append({"name": f"onnx {precision} original per-window loop ({device})",
                            "run": lambda b, s=seg: original_loop(s, b)})
    return out, models


# ---------------------------------------------------------------- metrics

def f1_deltas(per_class: list[dict], base: list[dict]) -> list[float | None]:
    """Per-class F1 minus the reference's (None where either is undefined)."""
    return [None if a["f1"] is None or b["f1"] is None else a["f1"] - b["f1"]
            for a, b in zip(per_class, base, strict=True)]


def prf(pred: np.ndarray, truth: np.ndarray, k: int) -> dict[str, float | None]:
    tp = int(np.sum((pred == k) & (truth == k)))
    npred, ntrue = int(np.sum(pred == k)), int(np.sum(truth == k))
    p = tp / npred if npred else None
    r = tp / ntrue if ntrue else None
    f1 = 2 * tp / (npred + ntrue) if npred + ntrue else None
    return {"precision": p, "recall": r, "f1": f1, "support": ntrue}


def scene_metrics(scene: Scene, cls: np.ndarray, probs: np.ndarray | None,
                  ref: tuple[np.ndarray, np.ndarray] | None,
                  keras: tuple[np.ndarray, np.ndarray] | None) -> dict[str, Any]:
    m: dict[str, Any] = {}
    for key, other in (("agreement_fp32", ref), ("agreement_keras", keras)):
        if other is not None:
            valid = other[0] != NODATA
            m[key] = float(np.mean(cls[valid] == other[0][valid])) if valid.any() else None
    if ref is not None and probs is not None:
        valid = ref[0] != NODATA
        dp = np.abs(probs[:, valid] - ref[1][:, valid])
        m["max_abs_dp"] = float(dp.max()) if dp.size else 0.0
        m["mean_abs_dp"] = float(dp.mean()) if dp.size else 0.0
    values, counts = np.unique(cls, return_counts=True)
    m["class_fraction"] = {(CLASS_NAMES[v] if v < N_CLASSES else "nodata"): round(c / cls.size, 5)
                           for v, c in zip(values.tolist(), counts.tolist(), strict=True)}
    if scene.label_kind == "full":
        lab = scene.labels != NODATA
        m["accuracy"] = float(np.mean(cls[lab] == scene.labels[lab]))
        m["per_class"] = [prf(cls[lab], scene.labels[lab], k) for k in range(N_CLASSES)]
        m["confusion_inputs"] = {"pixels": int(lab.sum())}
    elif scene.label_kind == "water":
        # labels: 4 = water, 255 = not water OR no data (Sen1Floods11 maps both to 255), so
        # precision counts every 255 as not water: a lower bound
        valid = cls != NODATA
        truth = np.where(scene.labels == WATER, WATER, 0)
        m["water"] = prf(cls[valid], truth[valid], WATER)
    return m


def _deltas(m: dict[str, Any], base: dict[str, Any]) -> None:
    if "per_class" in m and "per_class" in base:
        m["delta_f1_vs_fp32"] = f1_deltas(m["per_class"], base["per_class"])
        m["delta_accuracy_vs_fp32"] = m["accuracy"] - base["accuracy"]
    if "water" in m and "water" in base and m["water"]["f1"] is not None \
            and base["water"]["f1"] is not None:
        m["water"]["delta_f1_vs_fp32"] = m["water"]["f1"] - base["water"]["f1"]


def pooled(scenes: list[Scene], preds: dict[str, list[np.ndarray]], name: str
           ) -> dict[str, Any] | None:
    """Metrics over all labelled synthetic scenes together."""
    idx = [i for i, s in enumerate(scenes) if s.label_kind == "full"]
    if not idx or name not in preds:
        return None
    cls = np.concatenate([preds[name][i].ravel() for i in idx])
    lab = np.concatenate([scenes[i].labels.ravel() for i in idx])
    valid = lab != NODATA
    return {"accuracy": float(np.mean(cls[valid] == lab[valid])),
            "per_class": [prf(cls[valid], lab[valid], k) for k in range(N_CLASSES)],
            "pixels": int(valid.sum())}


# ---------------------------------------------------------------- machine

def machine() -> dict[str, Any]:
    libs: dict[str, str] = {"python": platform.python_version(), "numpy": np.__version__}
    from importlib.metadata import PackageNotFoundError, version

    import onnxruntime

    libs["onnxruntime"] = onnxruntime.__version__  # the module imported (-gpu/-openvino too)
    for dist in ("onnxruntime-gpu", "onnx", "rasterio", "openvino", "onnxruntime-openvino",
                 "tensorflow-cpu", "tensorflow", "keras"):
        try:
            libs[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return {"cpu_model": cpu_info()["model"], "cpu_count": os.cpu_count(),
            "cpus_available": default_threads(),
            "platform": platform.platform(), "libraries": libs}


# ---------------------------------------------------------------- run + report

def run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.monotonic()
    variants, models = _variants(args)
    syn = synthetic_scenes(args.quick)
    real, real_source = real_scenes(args.quick)
    scenes = syn + real
    preds: dict[str, list[np.ndarray]] = {v["name"]: [] for v in variants if "run" in v}
    results: list[dict[str, Any]] = []
    for scene in scenes:
        _, h, w = scene.bands.shape
        outs: dict[str, tuple[np.ndarray, np.ndarray | None, float]] = {}
        for v in variants:
            if "run" not in v:
                continue
            t0 = time.perf_counter()
            try:
                cls, probs = v["run"](scene.bands)
            except LulcEdgeError as exc:
                outs[v["name"]] = (None, None, 0.0)  # type: ignore[assignment]
                v.setdefault("errors", []).append(f"{scene.name}: {exc}")
                continue
            outs[v["name"]] = (cls, probs, time.perf_counter() - t0)
            preds[v["name"]].append(cls)
            if not args.quiet:
                print(f"{scene.name}: {v['name']} {time.perf_counter() - t0:.1f} s",
                      file=sys.stderr, flush=True)
        ref = outs.get(REFERENCE)
        ref = (ref[0], ref[1]) if ref and ref[0] is not None else None
        kv = outs.get("keras (.h5, TensorFlow)")
        kv = (kv[0], kv[1]) if kv and kv[0] is not None else None
        per: dict[str, Any] = {}
        for name, (cls, probs, secs) in outs.items():
            if cls is None:
                continue
            m = scene_metrics(scene, cls, probs, ref, kv)
            m["seconds"] = round(secs, 3)
            m["mp_per_s"] = round(h * w / max(secs, 1e-9) / 1e6, 4)
            per[name] = m
        if REFERENCE in per:
            for m in per.values():
                _deltas(m, per[REFERENCE])
        results.append({"scene": scene.name, "kind": scene.kind, "size": [h, w],
                        "labels": scene.label_kind, "scl": scene.note or "from the input",
                        "results": per})
    summary: dict[str, Any] = {}
    base = pooled(scenes, preds, REFERENCE)
    for v in variants:
        name = v["name"]
        if "run" not in v:
            summary[name] = {"available": False, "note": v["error"]}
            continue
        rows = [r["results"][name] for r in results if name in r["results"]]
        s: dict[str, Any] = {"available": True}
        for kind in ("synthetic", "real"):
            ag = [r["results"][name].get("agreement_fp32") for r in results
                  if r["kind"] == kind and name in r["results"]]
            ag = [a for a in ag if a is not None]
            s[f"min_agreement_fp32_{kind}"] = min(ag) if ag else None
            ak = [r["results"][name].get("agreement_keras") for r in results
                  if r["kind"] == kind and name in r["results"]]
            ak = [a for a in ak if a is not None]
            s[f"min_agreement_keras_{kind}"] = min(ak) if ak else None
        dps = [m["max_abs_dp"] for m in rows if "max_abs_dp" in m]
        s["max_abs_dp"] = max(dps) if dps else None
        p = pooled(scenes, preds, name)
        if p is not None:
            s["synthetic_pooled"] = p
            if base is not None:
                d = f1_deltas(p["per_class"], base["per_class"])
                s["synthetic_delta_f1_vs_fp32"] = d
                s["synthetic_worst_f1_drop"] = max(
                    (max(0.0, -x) for x in d if x is not None), default=0.0)
        px = sum(r["size"][0] * r["size"][1] for r in results if name in r["results"])
        secs = sum(m["seconds"] for m in rows)
        s["mp_per_s_all_scenes"] = round(px / max(secs, 1e-9) / 1e6, 4)
        if v.get("errors"):
            s["errors"] = v["errors"]
        summary[name] = s
    return {
        "schema": SCHEMA, "quick": bool(args.quick),
        "machine": machine(),
        "settings": {"threads": args.threads, "reference": REFERENCE,
                     "real_scenes": real_source, "scl_fill": 4,
                     "quick_crop": QUICK_CROP if args.quick else None,
                     "original_loop": "one run per 64x64 window, stride 32, batch 1, mean of "
                                      "probabilities, uncovered edge pixels class 0, no nodata "
                                      "rule",
                     "seconds": round(time.monotonic() - t_start, 1)},
        "models": models,
        "variants": [v["name"] for v in variants],
        "scenes": results,
        "summary": summary,
    }


def _pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


def markdown(res: dict[str, Any]) -> str:
    mc, st = res["machine"], res["settings"]
    libs = ", ".join(f"{k} {v}" for k, v in mc["libraries"].items())
    lines = [
        "# Accuracy parity: Keras, ONNX fp32/int8, backends, tiling modes",
        "",
        f"Generated by `python benchmarks/parity.py{' --quick' if res['quick'] else ''}`. "
        f"Machine: {mc['cpu_model']}, {mc['cpu_count']} cores ({mc['cpus_available']} "
        f"available), {libs}. Threads {st['threads']}. Reference for agreement and deltas: "
        f"{st['reference']}. Models: fp32 `{Path(res['models']['fp32']).name}`, int8 "
        f"`{Path(res['models']['int8']).name}`, Keras: "
        f"{res['models']['keras'] if str(res['models']['keras']).startswith('not') else Path(res['models']['keras']).name}.",  # noqa: E501
        "",
        "The bundled weights are DEMO weights trained on synthetic scenes: accuracy on real data "
        "measures them only. Agreement and max |dp| compare each variant with fp32 seamless on "
        "the pixels valid there; F1 is against the synthetic labels, pooled over the "
        f"{sum(1 for s in res['scenes'] if s['kind'] == 'synthetic')} synthetic scenes.",
        "",
        "## Synthetic scenes (labels known)",
        "",
        "| variant | agreement Keras (%) | agreement fp32 (%) | max \\|dp\\| | OA (%) | "
        + " | ".join(f"F1 {n}" for n in CLASS_NAMES) + " | worst ΔF1 (points) | MP/s |",
        "|" + "---|" * (7 + N_CLASSES),
    ]
    for name, s in res["summary"].items():
        if not s["available"]:
            lines.append(f"| {name} | {s['note']} |" + " |" * (5 + N_CLASSES))
            continue
        p = s.get("synthetic_pooled")
        f1 = " | ".join(_pct(c["f1"]) for c in p["per_class"]) if p else " | ".join(
            "–" for _ in CLASS_NAMES)
        dp = "–" if s["max_abs_dp"] is None else f"{s['max_abs_dp']:.2g}"
        worst = s.get("synthetic_worst_f1_drop")
        lines.append(
            f"| {name} | {_pct(s['min_agreement_keras_synthetic'])} | "
            f"{_pct(s['min_agreement_fp32_synthetic'])} | {dp} | "
            f"{_pct(p['accuracy']) if p else '–'} | {f1} | "
            f"{'–' if worst is None else f'{100 * worst:.2f}'} | "
            f"{s['mp_per_s_all_scenes']:.3f} |")
    if res["models"]["keras"].startswith("not"):
        lines += ["", f"Keras: {res['models']['keras']}."]
    real = [s for s in res["scenes"] if s["kind"] == "real"]
    if real:
        names = [n for n, s in res["summary"].items() if s["available"]]
        lines += ["", "## Real scenes: agreement with fp32 seamless (%)", "",
                  "| scene | size | SCL | " + " | ".join(names) + " |",
                  "|" + "---|" * (3 + len(names))]
        for sc in real:
            cells = [_pct(sc["results"].get(n, {}).get("agreement_fp32")) for n in names]
            scl = "filled 4" if "fill" in sc["scl"] else "real"
            lines.append(f"| {sc['scene']} | {sc['size'][1]}x{sc['size'][0]} | {scl} | "
                         + " | ".join(cells) + " |")
        water = [sc for sc in real if sc["labels"] == "water"]
        for sc in water:
            lines += ["", f"## Water on {sc['scene']} (Sen1Floods11 hand labels)", "",
                      "Labels: 4 = water; 255 = not water or no data (the source maps both to "
                      "255), so precision counts all 255 as not water (a lower bound).", "",
                      "| variant | water precision | water recall | water F1 | ΔF1 vs fp32 |",
                      "|---|---|---|---|---|"]
            for n in names:
                w = sc["results"].get(n, {}).get("water")
                if w is None:
                    continue
                d = w.get("delta_f1_vs_fp32")
                lines.append(f"| {n} | {_pct(w['precision'])} | {_pct(w['recall'])} | "
                             f"{_pct(w['f1'])} | {'–' if d is None else f'{100 * d:.2f}'} |")
        lines += ["", "## Real scenes: class distribution (% of pixels)", "",
                  "| scene | variant | " + " | ".join(CLASS_NAMES) + " | nodata |",
                  "|" + "---|" * (3 + N_CLASSES)]
        for sc in real:
            for n in names:
                cf = sc["results"].get(n, {}).get("class_fraction")
                if cf is None:
                    continue
                cells = [f"{100 * cf.get(c, 0):.1f}" for c in (*CLASS_NAMES, "nodata")]
                lines.append(f"| {sc['scene']} | {n} | " + " | ".join(cells) + " |")
    errs = [(n, s["errors"]) for n, s in res["summary"].items() if s.get("errors")]
    if errs:
        lines += ["", "## Errors", ""] + [f"- {n}: {'; '.join(e)}" for n, e in errs]
    lines += ["", f"Notes: original per-window loop = {st['original_loop']}. MP/s = scene "
              "pixels / wall seconds over all scenes on a shared, noisy machine (compare within "
              "one run only). Real scenes without SCL read with SourceOptions(scl_fill=4). "
              f"Run took {st['seconds']} s.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=bundled_model(), help="fp32 ONNX model")
    ap.add_argument("--int8", type=Path, default=None,
                    help="int8 ONNX model (default: NAME-int8.onnx beside --model)")
    ap.add_argument("--h5", type=Path, default=None, help="Keras .h5 of the same weights")
    ap.add_argument("--quick", action="store_true", help="small scenes (smoke run)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.int8 is None:
        args.int8 = args.model.with_name(f"{args.model.stem}-int8{args.model.suffix}")
    res = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "parity.json").write_text(json.dumps(res, indent=1) + "\n")
    (args.out / "parity.md").write_text(markdown(res))
    print(f"wrote {args.out / 'parity.json'} and {args.out / 'parity.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
