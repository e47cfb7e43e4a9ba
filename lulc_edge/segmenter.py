"""lulc_edge.segmenter: the embedding API: load a model once, map arrays or files."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
from rasterio.windows import Window

from .aoi import Area
from .clouds import CloudMask, check_buffer, masker
from .engine import Engine, EngineOptions
from .errors import InputError, MissingSCLError
from .modes import get_mode
from .results import RunResult
from .runfile import output_names, segment_file
from .sources import (
    SCL_MAX,
    SUGGESTED_SCL_FILL,
    SourceOptions,
    check_scl,
)
from .sources.windows import read_boundless, sample_windows
from .spec import RunOptions, RunSpec
from .stitch import Prediction
from .stream import infer_plan


def _as_uint16(bands: np.ndarray, n_bands: int) -> np.ndarray:
    arr = np.asarray(bands)
    if arr.ndim != 3 or arr.shape[0] != n_bands:
        raise InputError(f"bands must have shape ({n_bands}, H, W), got {arr.shape}")
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise InputError(f"bands are empty: shape {arr.shape}")
    if arr.dtype == np.uint16:
        return arr
    if arr.dtype.kind in "iu" and (arr.size == 0 or (arr.min() >= 0 and arr.max() <= 65535)):
        return arr.astype(np.uint16)
    raise InputError(
        f"bands must be uint16 digital numbers (or integers in 0..65535), got {arr.dtype}"
    )


def _boundless(arr: np.ndarray, window: Window) -> np.ndarray:
    """A window of an in-memory (B, H, W) array (a view where it lies inside); pixels outside
    it are 0 (nodata)."""
    return read_boundless(window, arr.shape[2], arr.shape[1], arr.shape[0], arr.dtype,
                          lambda w: arr[(slice(None), *w.toslices())])


class Segmenter:
    """A loaded model for repeated use, e.g. in a ground-station or drone pipeline.

    One backend (an onnxruntime session or an OpenVINO compiled model) is created once and
    reused; ``predict`` may be called from several threads at once (onnxruntime sessions are
    thread-safe, OpenVINO calls take an infer request from a pool, no state is kept between
    calls). ``precision`` defaults to fp32 (exact); "auto" trades accuracy within the model's
    stored budget for speed, see docs/backends.md.
    """

    def __init__(self, model: str | os.PathLike | None = None, *, device: str = "auto",
                 precision: str = "fp32", threads: int | None = None,
                 options: EngineOptions | None = None, engine: Engine | None = None) -> None:
        if engine is not None:  # share a loaded model (e.g. with segment_file or a service)
            self.engine = engine
            return
        opts = options or EngineOptions(device=device, threads=threads, precision=precision)
        self.engine = Engine(model, opts)

    @property
    def contract(self):  # noqa: ANN201 - re-exported dataclass
        """The model contract (classes, colours, bands, halo...) read from the ONNX file."""
        return self.engine.contract

    @property
    def device(self) -> str:
        """The backend in use (cpu, cuda, openvino, openvino-ep)."""
        return self.engine.device

    @property
    def precision(self) -> str:
        """The precision in use (fp32, bf16, fp16, int8)."""
        return self.engine.precision

    def predict(self, bands: np.ndarray, *, mode: str = "seamless", tile: int | None = None,
                batch: int | None = None, confidence: bool = False,
                probabilities: bool = False, scl_fill: int | None = None,
                clouds: CloudMask | bool = True) -> Prediction:
        """Map an in-memory (13, H, W) stack in the model's band order (uint16 DN), through the
        same read-ahead, batched, overlapped path as :func:`segment_file`. Its SCL band is
        checked as files' are (MissingSCLError when it is 0 on every valid pixel sampled);
        ``scl_fill`` replaces it with that class where any band has data, as --scl-fill does.
        Clouds are masked as files' are, except with ``scl_fill``: ``clouds`` True is the CLI's
        default mask, False none, a ``CloudMask`` its own (Cloud is ``clouds.CLOUD_VALUE``)."""
        arr = _as_uint16(bands, len(self.contract.bands))
        _, h, w = arr.shape
        read = self._scl_reader(arr, scl_fill)
        kind = get_mode(mode)
        clouds = clouds if isinstance(clouds, CloudMask) else CloudMask(enabled=bool(clouds))
        check_buffer(clouds, kind.context(self.contract), kind.name)
        mask = masker(clouds, self.contract.bands, scl_fill, self.contract.nodata.value)
        tiles = kind.plan(h, w, tile or kind.default_tile(self.engine.device), self.engine)
        outputs = output_names(confidence, probabilities)
        classes = np.empty((h, w), np.uint8)
        conf = np.empty((h, w), np.uint8) if confidence else None
        probs = np.empty((self.contract.n_classes, h, w), np.float32) if probabilities else None
        nbatch = batch or kind.default_batch(self.engine.device)
        for t, res, block in infer_plan(self.engine, kind, lambda t: read(t.read), tiles,
                                        outputs, nbatch):
            if mask is not None:
                res = mask(t, res, block)
            rs = slice(int(t.core.row_off), int(t.core.row_off + t.core.height))
            cs = slice(int(t.core.col_off), int(t.core.col_off + t.core.width))
            classes[rs, cs] = res.classes
            if conf is not None:
                conf[rs, cs] = res.confidence
            if probs is not None:
                probs[:, rs, cs] = res.probabilities
        return Prediction(classes, conf, probs)

    def _scl_reader(self, arr: np.ndarray, fill: int | None) -> Callable[[Window], np.ndarray]:
        """Windows of ``arr`` as the model reads them, once its SCL band is known to be usable
        (checked on the samples files are checked on), or filled with ``fill``."""
        names = self.contract.bands
        if "SCL" not in names:
            return lambda win: _boundless(arr, win)
        i, refl = names.index("SCL"), [k for k, b in enumerate(names) if b != "SCL"]
        if fill is None:
            cuts = [(slice(int(s.row_off), int(s.row_off + s.height)),
                     slice(int(s.col_off), int(s.col_off + s.width)))
                    for s in sample_windows(arr.shape[2], arr.shape[1])]
            scl = np.concatenate([arr[i, r, c][np.any(arr[refl, r, c] != 0, axis=0)]
                                  for r, c in cuts])
            why = check_scl("bands", scl, f"is bands[{i}] another band?")
            if why:
                raise MissingSCLError(
                    f"bands: no usable SCL: {why}; the model takes SCL as an input channel: "
                    f"pass real SCL, or scl_fill={SUGGESTED_SCL_FILL} (SCL class 4, vegetation; "
                    f"any class 0..{SCL_MAX})")
            return lambda win: _boundless(arr, win)
        if not 0 <= fill <= SCL_MAX:
            raise InputError(f"scl_fill {fill}: must be an SCL class 0..{SCL_MAX}")

        def filled(win: Window) -> np.ndarray:
            out = np.array(_boundless(arr, win))  # a copy: the caller's array stays as given
            out[i] = np.where(np.any(out[refl] != 0, axis=0), fill, 0)
            return out

        return filled

    def segment_file(self, src: str | os.PathLike, dst: str | os.PathLike | None = None,
                     options: RunOptions | None = None,
                     source_options: SourceOptions | None = None, *,
                     aoi: Area | str | os.PathLike | Sequence[float] | None = None
                     ) -> RunResult:
        """Map a scene file, band folder or product to a GeoTIFF (see :func:`segment_file`);
        ``aoi``: only that area (an ``Area``, a vector file, or a bbox in EPSG:4326)."""
        return segment_file(src, dst, engine=self.engine,
                            spec=RunSpec.of(None, None, options, source_options), area=aoi)
