"""A synthetic language for fast tests: arithmetic sequences modulo m = min(vocab, 16).

Two tokens determine the rest of a row, so a small LM quickly drives its loss far
below log(vocab_size); a loss that does not fall points at a training bug.
"""
import numpy as np

from neurojax.data.iterator import StepIterator, _check_state, _int_at_least
from neurojax.errors import NeurojaxError


def synthetic_batch(step: int, batch_size: int, seq_len: int, vocab_size: int, seed: int = 0) -> np.ndarray:
    """int32 `[batch_size, seq_len + 1]`: row t-th token is (start + t*stride) % m, drawn from (seed, step)."""
    step = _int_at_least("step", step, 0)
    seed = _int_at_least("seed", seed, 0)
    batch_size = _int_at_least("batch_size", batch_size, 1)
    seq_len = _int_at_least("seq_len", seq_len, 1)
    vocab_size = _int_at_least("vocab_size", vocab_size, 1)
    if vocab_size < 2:
        raise NeurojaxError(f"the synthetic task needs vocab_size >= 2, got {vocab_size}")
    m = min(vocab_size, 16)
    rng = np.random.default_rng([seed, step])
    start = rng.integers(0, m, size=batch_size)
    stride = rng.integers(1, m, size=batch_size)
    t = np.arange(seq_len + 1)
    return ((start[:, None] + t[None, :] * stride[:, None]) % m).astype(np.int32)


class SyntheticIterator(StepIterator):
    """`BatchIterator`'s interface over `synthetic_batch`; `vocab_size` takes the place of `tokens`."""

    def __init__(self, vocab_size: int, batch_size: int, seq_len: int, seed: int = 0, step: int = 0):
        super().__init__(batch_size, seq_len, seed, step)
        self.vocab_size = _int_at_least("vocab_size", vocab_size, 2)

    @classmethod
    def restore(cls, vocab_size: int, batch_size: int, seq_len: int, state: dict) -> "SyntheticIterator":
        """An iterator positioned where the one that produced `state` left off."""
        step, seed = _check_state(state)
        return cls(vocab_size, batch_size, seq_len, seed=seed, step=step)

    def peek(self, step: int) -> np.ndarray:
        """The int32 `[batch_size, seq_len + 1]` batch at `step`, without moving the iterator."""
        return synthetic_batch(step, self.batch_size, self.seq_len, self.vocab_size, self.seed)
