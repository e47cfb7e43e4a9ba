"""The resume journal: intact records replay, torn or foreign ones do not."""

from __future__ import annotations

import numpy as np

from lulc_edge.journal import Journal


def test_records_replay_in_order(tmp_path):
    j = Journal(tmp_path / "j", {"run": 1})
    j.start([])
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    j.append(0, [a])
    j.append(5, [a + 1, a + 2])
    j.close()
    got = list(Journal(tmp_path / "j", {"run": 1}).replay())
    assert [i for i, _ in got] == [0, 5]
    assert got[1][1] == (a + 1).tobytes() + (a + 2).tobytes()


def test_torn_last_record_is_dropped(tmp_path):
    path = tmp_path / "j"
    j = Journal(path, {"run": 1})
    j.start([])
    j.append(0, [np.zeros((8, 8), np.uint8)])
    j.append(1, [np.ones((8, 8), np.uint8)])
    j.close()
    data = path.read_bytes()
    path.write_bytes(data[:-3])  # power cut in the middle of the last write
    assert [i for i, _ in Journal(path, {"run": 1}).replay()] == [0]


def test_journal_of_another_run_is_ignored(tmp_path):
    j = Journal(tmp_path / "j", {"run": 1})
    j.start([])
    j.append(0, [np.zeros(4, np.uint8)])
    j.close()
    assert list(Journal(tmp_path / "j", {"run": 2}).replay()) == []
    assert list(Journal(tmp_path / "missing", {"run": 1}).replay()) == []


def test_start_keeps_given_records_and_removes(tmp_path):
    path = tmp_path / "j"
    j = Journal(path, {"run": 1})
    j.start([(3, b"abc")])
    j.append(4, [np.zeros(2, np.uint8)])
    assert [i for i, _ in Journal(path, {"run": 1}).replay()] == [3, 4]
    j.remove()
    assert not path.exists()
