"""Composites: against an independent numpy reference, the mode rule's ties, n_valid exact,
and a composite of three synthetic dates, one of them with planted clouds, mapped by the
bundled model."""

from __future__ import annotations

import numpy as np
import pytest

from lulc_edge.clouds import CloudMask, cloud_mask
from lulc_edge.composite import NODATA, Accumulator
from lulc_edge.synthetic import SCL_INDEX, SceneSpec, generate


def random_dates(n: int, k: int, shape: tuple[int, int], seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k, *shape)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    valid = rng.random((n, *shape)) < 0.7
    return probs.astype(np.float32), valid


def reference_mean(probs: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-date probabilities averaged over the valid dates, written from the definition."""
    n = valid.sum(axis=0)
    total = np.zeros(probs.shape[1:], np.float64)
    for d in range(probs.shape[0]):
        total += np.where(valid[d], probs[d], 0.0)
    mean = np.full(total.shape, np.nan, np.float32)
    np.divide(total, n, out=mean, where=n > 0, casting="unsafe")
    return mean, n


def test_mean_rule_equals_the_reference_on_every_pixel() -> None:
    probs, valid = random_dates(5, 4, (40, 30))
    valid[:, 0, 0] = False  # a pixel never seen clear
    acc = Accumulator(4, (40, 30))
    for p, v in zip(probs, valid, strict=True):
        acc.add(p, v)
    classes, conf, n_valid, n_total = acc.result()
    mean, n = reference_mean(probs, valid)
    np.testing.assert_array_equal(acc.mean(), mean)
    seen = n > 0
    want = np.argmax(np.nan_to_num(mean, nan=-1), axis=0)
    np.testing.assert_array_equal(classes[seen], want[seen])
    assert (classes[~seen] == NODATA).all() and (conf[~seen] == NODATA).all()
    top = np.max(mean[:, seen], axis=0)
    np.testing.assert_array_equal(conf[seen], np.floor(top * 100 + 0.5).astype(np.uint8))
    np.testing.assert_array_equal(n_valid, n)
    assert n_valid.dtype == n_total.dtype == np.uint16
    assert (n_total == 5).all()
    assert acc.empty == int((~seen).sum()) >= 1


def test_mode_rule_counts_votes_and_breaks_ties_by_the_mean() -> None:
    k, shape = 3, (1, 3)
    acc = Accumulator(k, shape, rule="mode")
    ones = np.ones(shape, bool)

    def date(*cols: tuple[float, float, float]) -> np.ndarray:
        return np.array(cols, np.float32).T.reshape(k, *shape)

    # pixel 0: votes 0, 0, 1 -> 0 although class 1's mean is higher
    # pixel 1: votes 0, 1 (tie) -> the higher mean: class 1
    # pixel 2: votes 2, 2 but the second date is cloudy -> one vote for 2
    acc.add(date((0.4, 0.3, 0.3), (0.5, 0.4, 0.1), (0.1, 0.1, 0.8)), ones)
    acc.add(date((0.4, 0.35, 0.25), (0.05, 0.9, 0.05), (0.0, 0.1, 0.9)),
            np.array([[True, True, False]]))
    acc.add(date((0.0, 0.99, 0.01), (0.2, 0.2, 0.6), (0.2, 0.2, 0.6)),
            np.array([[True, False, False]]), observed=np.array([[True, True, False]]))
    classes, conf, n_valid, n_total = acc.result()
    assert classes.tolist() == [[0, 1, 2]]
    assert n_valid.tolist() == [[3, 2, 1]] and n_total.tolist() == [[3, 3, 2]]
    assert conf.tolist() == [[27, 65, 80]]  # the chosen class's mean probability, percent


def test_mode_rule_against_a_per_pixel_loop() -> None:
    probs, valid = random_dates(4, 3, (20, 20), seed=3)
    acc = Accumulator(3, (20, 20), rule="mode")
    for p, v in zip(probs, valid, strict=True):
        acc.add(p, v)
    classes = acc.result().classes
    mean, n = reference_mean(probs, valid)
    for y in range(20):
        for x in range(20):
            if n[y, x] == 0:
                assert classes[y, x] == NODATA
                continue
            votes = [int(np.argmax(probs[d, :, y, x])) for d in range(4) if valid[d, y, x]]
            counts = np.bincount(votes, minlength=3)
            tied = np.flatnonzero(counts == counts.max())
            assert classes[y, x] == tied[np.argmax(mean[tied, y, x])]


@pytest.mark.parametrize("rule", ["mean", "mode"])
def test_identical_dates_give_the_single_date_argmax(rule: str) -> None:
    probs, _ = random_dates(1, 5, (16, 16), seed=5)
    acc = Accumulator(5, (16, 16), rule=rule)
    for _ in range(3):
        acc.add(probs[0], np.ones((16, 16), bool))
    res = acc.result()
    np.testing.assert_array_equal(res.classes, np.argmax(probs[0], axis=0))
    assert (res.n_valid == 3).all()


@pytest.mark.parametrize("rule", ["mean", "mode"])
def test_memory_is_one_tiles_accumulators_whatever_the_dates(rule: str) -> None:
    k, shape = 5, (64, 48)
    acc = Accumulator(k, shape, rule=rule)

    def held() -> int:
        return sum(v.nbytes for v in vars(acc).values() if isinstance(v, np.ndarray))

    start = held()
    assert start == k * 64 * 48 * (8 + 2 * (rule == "mode")) + 2 * 64 * 48 * 2
    probs, valid = random_dates(1, k, shape)
    for _ in range(40):
        acc.add(probs[0], valid[0])
    assert held() == start
    assert (acc.result().n_valid == 40 * valid[0]).all()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rule"):
        Accumulator(3, (4, 4), rule="median")
    with pytest.raises(ValueError, match="shape"):
        Accumulator(3, (4, 4)).add(np.zeros((2, 4, 4), np.float32), np.ones((4, 4), bool))


def plant_cloud(bands: np.ndarray, rows: slice, cols: slice) -> None:
    """A thick cloud: bright flat reflectances, SCL 8/9/10 (cirrus at its rim)."""
    refl = [b for b in range(bands.shape[0]) if b != SCL_INDEX]
    data = np.any(bands[refl] != 0, axis=0)
    region = np.zeros(data.shape, bool)
    region[rows, cols] = True
    region &= data
    for b in refl:
        bands[b][region] = 4400 if b < 9 else 2500
    scl = bands[SCL_INDEX]
    scl[region] = 9
    inner = np.zeros_like(region)
    inner[rows.start + 3: rows.stop - 3, cols.start + 3: cols.stop - 3] = True
    scl[region & ~inner] = 8
    scl[rows.start, cols] = 10


def noisy_date(base: np.ndarray, data: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same ground seen on another date: its own illumination noise on the reflectances."""
    bands = base.copy()
    gain = 1 + 0.03 * rng.standard_normal(bands.shape[1:])
    for b in range(bands.shape[0]):
        if b != SCL_INDEX:
            bands[b] = np.where(data, np.clip(bands[b] * gain, 1, 65535), 0)
    return bands


def test_composite_recovers_the_labels_under_planted_clouds() -> None:
    from lulc_edge import Segmenter

    spec = SceneSpec(width=128, height=128, seed=11, cloud_fraction=0.0, nodata_holes=0,
                     region_scale=24)
    base, labels, _ = generate(spec)
    data = np.any(np.delete(base, SCL_INDEX, axis=0) != 0, axis=0)
    seg, rng = Segmenter(), np.random.default_rng(0)
    mask = CloudMask(buffer_px=3)
    rows, cols = slice(30, 90), slice(40, 100)
    acc = Accumulator(5, labels.shape)
    per_date, clear = [], np.zeros(labels.shape, bool)
    for d in range(3):  # the same ground seen three times, with its own noise each date
        bands = noisy_date(base, data, rng)
        if d == 1:
            plant_cloud(bands, rows, cols)
        masked = cloud_mask(bands[SCL_INDEX], mask, data)
        if d == 1:
            clear = ~masked & data
        pred = seg.predict(bands, probabilities=True)
        acc.add(pred.probabilities, data & ~masked, observed=data)
        per_date.append(pred.classes)
    res = acc.result()
    under = np.zeros(labels.shape, bool)
    under[rows, cols] = True
    under &= data
    assert under.sum() > 3000
    # n_valid exact: 2 under the (dilated) cloud, 3 elsewhere, 0 outside the data
    np.testing.assert_array_equal(res.n_valid, np.where(data, 2 + clear, 0))
    np.testing.assert_array_equal(res.n_total, np.where(data, 3, 0))
    assert ((res.classes == NODATA) == ~data).all()

    def agree(classes: np.ndarray) -> float:
        return float((classes[under] == labels[under]).mean())

    clear_dates = [agree(per_date[0]), agree(per_date[2])]
    assert agree(per_date[1]) < 0.5  # the cloudy date alone is wrong under the cloud
    assert min(clear_dates) > 0.8
    assert agree(res.classes) >= min(clear_dates) - 0.01
    everywhere = float((res.classes[data] == labels[data]).mean())
    assert everywhere > 0.8
