import json

import numpy as np
import pytest

from neurojax.data import BatchIterator, eval_windows
from neurojax.errors import NeurojaxError

TOKENS = np.arange(1000, dtype=np.uint16)


def test_batches_are_windows_in_range():
    it = BatchIterator(TOKENS, batch_size=8, seq_len=16, seed=3)
    for _ in range(20):
        b = next(it)
        assert b.shape == (8, 17) and b.dtype == np.int32
        # TOKENS[i] == i, so each row is a contiguous run starting at a valid offset.
        assert np.all(np.diff(b, axis=1) == 1)
        assert b.min() >= 0 and b.max() <= 999
    assert it.state() == {"step": 20, "seed": 3}


def test_deterministic_and_seed_dependent():
    a = [next(BatchIterator(TOKENS, 4, 8, seed=1, step=s)) for s in range(5)]
    b = [x for x, _ in zip(BatchIterator(TOKENS, 4, 8, seed=1), range(5))]
    c = [x for x, _ in zip(BatchIterator(TOKENS, 4, 8, seed=2), range(5))]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert not np.array_equal(b[0], b[1])


def test_restore_continues_identically():
    it = BatchIterator(TOKENS, 4, 8, seed=7)
    for _ in range(3):
        next(it)
    state = json.loads(json.dumps(it.state()))
    expected = [next(it) for _ in range(4)]
    resumed = BatchIterator.restore(TOKENS, 4, 8, state)
    assert resumed.state() == {"step": 3, "seed": 7}
    assert all(np.array_equal(x, next(resumed)) for x in expected)


def test_peek_equals_iteration_and_does_not_move():
    it = BatchIterator(TOKENS, 4, 8, seed=0)
    peeked = it.peek(5)
    assert it.state()["step"] == 0
    for _ in range(5):
        next(it)
    assert np.array_equal(next(it), peeked)


def test_window_can_reach_last_token():
    it = BatchIterator(np.arange(10), batch_size=64, seq_len=9, seed=0)
    assert np.array_equal(it.peek(0), np.tile(np.arange(10), (64, 1)))


def test_errors():
    with pytest.raises(NeurojaxError, match="fewer than seq_len"):
        BatchIterator(np.arange(8), 2, 8, seed=0)
    with pytest.raises(NeurojaxError, match="batch_size"):
        BatchIterator(TOKENS, 0, 8, seed=0)
    with pytest.raises(NeurojaxError, match="state"):
        BatchIterator.restore(TOKENS, 2, 8, {"step": 1})


def test_eval_windows_stride_and_coverage():
    tokens = np.arange(103)
    batches = eval_windows(tokens, batch_size=3, seq_len=10)
    # 102 // 10 = 10 windows -> 3 full batches of 3, remainder dropped.
    assert len(batches) == 3
    rows = np.concatenate(batches)
    assert rows.shape == (9, 11) and rows.dtype == np.int32
    assert np.array_equal(rows[:, 0], np.arange(9) * 10)
    # Every target (positions 1..) is predicted exactly once.
    targets = rows[:, 1:].reshape(-1)
    assert np.array_equal(targets, np.arange(1, 91))
    assert [b.tolist() for b in eval_windows(tokens, 3, 10)] == [b.tolist() for b in batches]


def test_eval_windows_max_batches_and_errors():
    assert len(eval_windows(np.arange(1000), 2, 10, max_batches=4)) == 4
    assert len(eval_windows(np.arange(21), 2, 10)) == 1
    with pytest.raises(NeurojaxError, match="too few"):
        eval_windows(np.arange(20), 2, 10)
