"""The map is a function of input, model, device and precision only: not of tile size, resume,
call history or concurrency, on every backend and precision installed here."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import rasterio

from lulc_edge import Engine, EngineOptions, RunOptions, Segmenter, segment_file
from lulc_edge.devices import PRECISIONS, available_devices
from lulc_edge.errors import LulcEdgeError

PAIRS = [(d, p) for d in ("cpu", "cuda", "openvino", "openvino-ep") for p in PRECISIONS]


def _pair(device: str, precision: str):
    marks = [pytest.mark.openvino] if device.startswith("openvino") else []
    marks += [pytest.mark.gpu] if device == "cuda" else []
    return pytest.param(device, precision, marks=marks, id=f"{device}-{precision}")


@pytest.fixture(scope="module")
def engines():
    cache: dict[tuple[str, str], Engine | None] = {}

    def get(device: str, precision: str) -> Engine:
        if (device, precision) not in cache:
            try:
                cache[(device, precision)] = Engine(
                    options=EngineOptions(device=device, precision=precision, threads=2))
            except LulcEdgeError:
                cache[(device, precision)] = None
        eng = cache[(device, precision)]
        if eng is None or eng.device != device:
            pytest.skip(f"{device}/{precision} cannot run here (installed: "
                        f"{', '.join(available_devices())})")
        return eng

    return get


def _map(engine, src, out, **kw) -> np.ndarray:
    segment_file(src, out, engine=engine, options=RunOptions(progress=False, **kw))
    with rasterio.open(out) as ds:
        return ds.read(1)


class _Stop(KeyboardInterrupt):
    pass


@pytest.mark.parametrize(("device", "precision"), [_pair(*p) for p in PAIRS])
def test_map_independent_of_tile_resume_history_and_threads(engines, device, precision,
                                                            make_scene, tmp_path):
    engine = engines(device, precision)
    src, bands, _ = make_scene(203, 150)
    maps = {t: _map(engine, src, tmp_path / f"t{t}.tif", tile=t) for t in (64, 96, 1024)}
    assert np.array_equal(maps[64], maps[1024]), (maps[64] != maps[1024]).sum()
    assert np.array_equal(maps[96], maps[1024]), (maps[96] != maps[1024]).sum()

    # interrupted after 3 tiles, then resumed: the same map
    out = tmp_path / "resumed.tif"
    seen = []

    def stop(_n: int, _px: int) -> None:
        seen.append(1)
        if len(seen) == 3:
            raise _Stop()

    with pytest.raises(KeyboardInterrupt):
        segment_file(src, out, engine=engine, on_tile=stop,
                     options=RunOptions(progress=False, tile=64))
    res = segment_file(src, out, engine=engine,
                       options=RunOptions(progress=False, tile=64, resume=True))
    assert 0 < res.tiles_inferred < res.tiles_total
    with rasterio.open(out) as ds:
        assert np.array_equal(ds.read(1), maps[1024])

    # the embedding API gives the same map, whatever ran before and alongside it
    seg = Segmenter(engine=engine)
    assert np.array_equal(seg.predict(bands).classes, maps[1024])
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda t: seg.predict(bands, tile=t).classes, (64, 96, 256, 64)))
    for g in got:
        assert np.array_equal(g, maps[1024]), (g != maps[1024]).sum()
