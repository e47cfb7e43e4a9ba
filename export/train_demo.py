"""export.train_demo: train the reference U-Net on synthetic scenes: the bundled DEMO weights.

The real weights of the land-cover model are not available here, so the package ships a
stand-in trained on scenes from :mod:`lulc_edge.synthetic`. Its metadata says so plainly.

    python export/train_demo.py -o lulc_edge/models/demo-unet.onnx [--minutes 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lulc_edge.synthetic import SceneSpec, generate  # noqa: E402

#: Scenes the demo weights are trained on: (seed, size, region scale in px).
TRAIN_SCENES = [(s, 384, scale) for s, scale in
                zip(range(1, 9), (24, 32, 40, 48, 56, 64, 32, 48), strict=True)]
#: Held-out scene for the accuracy printed at the end.
VALID_SCENE = (100, 384, 48)
PATCH = 64
#: Share of training patches whose SCL is replaced by one constant class on valid pixels: SCL is
#: a perfect class hint in synthetic scenes but not in real ones (and ``--scl-fill`` gives a
#: constant), so the weights must not lean on it alone.
SCL_DROPOUT = 0.35
SCL_FILLS = (4, 5, 6, 7)


def trained_on_text(minutes: float, seed: int) -> str:
    """The provenance sentence stored in the model's metadata."""
    seeds = ",".join(str(s) for s, _, _ in TRAIN_SCENES)
    return (
        "DEMO WEIGHTS, not the real land-cover model: trained by export/train_demo.py "
        f"(seed {seed}, about {minutes:g} min on CPU) on {len(TRAIN_SCENES)} synthetic "
        f"{TRAIN_SCENES[0][1]}x{TRAIN_SCENES[0][1]} px scenes from lulc_edge.synthetic "
        f"(seeds {seeds}; SCL replaced by a constant class in {SCL_DROPOUT:.0%} of the "
        "patches); never trained on real Sentinel-2 data. Export the real "
        "landcover_unet_model.h5 with export/to_onnx.py for real maps."
    )


def _patches(seed: int, size: int, scale: float, rng: np.random.Generator, n: int,
             scl_dropout: float = 0.0):
    from export.reference import features_nhwc
    from lulc_edge.synthetic import SCL_INDEX

    bands, labels, _ = generate(SceneSpec(width=size, height=size, seed=seed,
                                          region_scale=scale))
    xs, ys = [], []
    tries = 0
    while len(xs) < n and tries < n * 10:
        tries += 1
        r, c = rng.integers(0, size - PATCH + 1, 2)
        lab = labels[r: r + PATCH, c: c + PATCH]
        if (lab == 255).mean() > 0.5:
            continue
        patch = bands[:, r: r + PATCH, c: c + PATCH].copy()
        if rng.random() < scl_dropout:
            valid = patch.any(axis=0)
            patch[SCL_INDEX][valid] = rng.choice(SCL_FILLS)
        xs.append(patch)
        ys.append(lab)
    x = features_nhwc(np.stack(xs))
    y = np.stack(ys)
    return x, y


def _dataset(rng: np.random.Generator, per_scene: int):
    xs, ys = [], []
    for seed, size, scale in TRAIN_SCENES:
        x, y = _patches(seed, size, scale, rng, per_scene, SCL_DROPOUT)
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    # flips and 90 degree turns: the classes have no orientation
    x = np.concatenate([x, x[:, ::-1], np.rot90(x, 1, (1, 2))])
    y = np.concatenate([y, y[:, ::-1], np.rot90(y, 1, (1, 2))])
    w = (y != 255).astype(np.float32)
    y = np.where(y == 255, 0, y).astype(np.int32)
    return np.ascontiguousarray(x), y, w


def train(out_h5: Path, minutes: float, seed: int) -> dict:
    """Train and save the .h5; returns a small report."""
    import keras
    import tensorflow as tf

    from export.keras_model import build_unet

    tf.config.threading.set_intra_op_parallelism_threads(os.cpu_count() or 2)
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x, y, w = _dataset(rng, per_scene=100)
    model = build_unet()
    model.compile(optimizer=keras.optimizers.Adam(3e-4),
                  loss="sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    deadline = time.monotonic() + minutes * 60
    epochs = 0
    history: list[dict] = []
    while time.monotonic() < deadline and epochs < 60:
        h = model.fit(x, y, sample_weight=w, batch_size=32, epochs=1, shuffle=True, verbose=0)
        epochs += 1
        history.append({k: float(v[-1]) for k, v in h.history.items()})
        print(f"epoch {epochs}: {history[-1]}", flush=True)
    vx, vy = _patches(*VALID_SCENE, rng=np.random.default_rng(seed + 1), n=64)
    pred = model.predict(vx, verbose=0).argmax(-1)
    valid = vy != 255
    acc = float((pred[valid] == vy[valid]).mean())
    model.save(out_h5)
    return {"epochs": epochs, "train_patches": int(len(x)), "last": history[-1] if history else {},
            "valid_accuracy": acc}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(ROOT / "lulc_edge/models/demo-unet.onnx"))
    ap.add_argument("--minutes", type=float, default=4.0, help="training time budget")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-h5", default=None, help="also keep the trained .h5 here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        h5 = Path(args.keep_h5) if args.keep_h5 else Path(tmp) / "demo-unet.h5"
        report = train(h5, args.minutes, args.seed)
        print(json.dumps(report), flush=True)
        cmd = [sys.executable, str(ROOT / "export/to_onnx.py"), str(h5), "-o", args.output,
               "--demo", "--trained-on", trained_on_text(args.minutes, args.seed)]
        return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
