import numpy as np
import pytest

from neurojax.data import BatchIterator, SyntheticIterator, synthetic_batch
from neurojax.errors import NeurojaxError


@pytest.mark.parametrize("vocab", [2, 5, 16, 259])
def test_rows_are_arithmetic_sequences(vocab):
    m = min(vocab, 16)
    b = synthetic_batch(step=3, batch_size=64, seq_len=12, vocab_size=vocab, seed=1)
    assert b.shape == (64, 13) and b.dtype == np.int32
    assert b.min() >= 0 and b.max() < m
    start, stride = b[:, 0], (b[:, 1] - b[:, 0]) % m
    assert np.all((stride >= 1) & (stride < m))
    t = np.arange(13)
    assert np.array_equal(b, (start[:, None] + t * stride[:, None]) % m)


def test_deterministic_per_seed_and_step():
    a = synthetic_batch(4, 8, 6, 259, seed=0)
    assert np.array_equal(a, synthetic_batch(4, 8, 6, 259, seed=0))
    assert not np.array_equal(a, synthetic_batch(5, 8, 6, 259, seed=0))
    assert not np.array_equal(a, synthetic_batch(4, 8, 6, 259, seed=1))


def test_iterator_matches_function_and_restores():
    it = SyntheticIterator(259, batch_size=4, seq_len=8, seed=2)
    first = [next(it) for _ in range(3)]
    assert all(np.array_equal(x, synthetic_batch(k, 4, 8, 259, seed=2)) for k, x in enumerate(first))
    state = it.state()
    assert state == {"step": 3, "seed": 2}
    expected = [next(it) for _ in range(2)]
    resumed = SyntheticIterator.restore(259, 4, 8, state)
    assert all(np.array_equal(x, next(resumed)) for x in expected)
    assert np.array_equal(it.peek(1), first[1]) and it.state()["step"] == 5


def test_same_interface_as_batch_iterator():
    for name in ("__next__", "__iter__", "state", "restore", "peek"):
        assert hasattr(SyntheticIterator, name) and hasattr(BatchIterator, name)


def test_vocab_too_small():
    with pytest.raises(NeurojaxError, match="vocab_size"):
        synthetic_batch(0, 2, 4, vocab_size=1)
