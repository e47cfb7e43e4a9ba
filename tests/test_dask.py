"""Scale-out on a real Dask LocalCluster: same maps as locally, failures reported, no lost scene."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import rasterio

from lulc_edge import EngineOptions, RunOptions, RunSpec
from lulc_edge.batch import plan_jobs, run_dask, run_local
from lulc_edge.raster import is_complete

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=50) as c:
        yield c


def worker_killer(cluster):
    """(killed pids, a callback that SIGKILLs one worker process the first time it is called:
    pulls the plug after the first result lands)."""
    client = distributed.Client(cluster.scheduler_address, set_as_default=False)
    try:
        pids = client.run(os.getpid)
    finally:
        client.close()
    killed = []

    def kill_one(*_):
        if not killed:
            pid = next(iter(pids.values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    return killed, kill_one


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


@pytest.fixture()
def scenes(make_scene, tmp_path):
    paths = [str(make_scene(128, 120, seed=i, name=f"s{i}.tif")[0]) for i in range(6)]
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(b"II*\x00" + os.urandom(200))
    return paths + [str(bad)]


def test_cluster_batch_equals_local_batch(cluster, scenes, tmp_path):
    spec = RunSpec.of(engine=EngineOptions(device="cpu", threads=1),
                      run=RunOptions(progress=False, tile=64))
    local = run_local(plan_jobs(scenes, str(tmp_path / "local")), spec)
    remote = run_dask(plan_jobs(scenes, str(tmp_path / "dask")), cluster.scheduler_address, spec)
    assert [r.status for r in remote] == [r.status for r in local] == ["done"] * 6 + ["failed"]
    assert "corrupt.tif" in remote[-1].error
    for lr, rr in zip(local[:-1], remote[:-1], strict=True):
        assert np.array_equal(_read(lr.output), _read(rr.output))
    # idempotent on the cluster too
    again = run_dask(plan_jobs(scenes, str(tmp_path / "dask")), cluster.scheduler_address, spec)
    assert [r.status for r in again] == ["skipped"] * 6 + ["failed"]


def test_worker_killed_mid_batch_loses_no_scene(cluster, scenes, tmp_path):
    killed, kill_one = worker_killer(cluster)

    reports = run_dask(plan_jobs(scenes[:-1], str(tmp_path / "k")), cluster.scheduler_address,
                       RunSpec.of(engine=EngineOptions(device="cpu", threads=1),
                                  run=RunOptions(progress=False, tile=64)),
                       on_report=kill_one)
    assert killed
    # a scene whose worker died after writing its output is found complete on the rerun
    assert {r.status for r in reports} <= {"done", "skipped"}, [(r.status, r.error)
                                                                 for r in reports]
    for r in reports:
        assert is_complete(Path(r.output)) and _read(r.output).shape == (120, 128)


def test_composite_rows_on_the_cluster_survive_a_killed_worker(cluster, make_scene, tmp_path):
    """A composite's rows of tiles as tasks: a worker killed after the first row lands, its
    rows rerun elsewhere, the composite equal to the one made here."""
    from lulc_edge.compositing import composite_file
    from lulc_edge.sinks.counts import counts_path

    paths = [str(make_scene(256, 192, seed=s, name=f"c{s}.tif")[0]) for s in (1, 2, 3)]
    spec = RunSpec.of(engine=EngineOptions(device="cpu", threads=1),
                      run=RunOptions(progress=False, tile=64))
    local = composite_file(paths, tmp_path / "local.tif", spec=spec)
    killed, kill_one = worker_killer(cluster)

    remote = composite_file(paths, tmp_path / "dask.tif", spec=spec,
                            scheduler=cluster.scheduler_address, on_tile=kill_one)
    assert killed and remote.tiles_inferred == local.tiles_inferred == 12
    assert np.array_equal(_read(tmp_path / "dask.tif"), _read(tmp_path / "local.tif"))
    with rasterio.open(counts_path(tmp_path / "dask.tif")) as a, \
            rasterio.open(counts_path(tmp_path / "local.tif")) as b:
        assert np.array_equal(a.read(), b.read())
    assert remote.class_pixels == local.class_pixels
