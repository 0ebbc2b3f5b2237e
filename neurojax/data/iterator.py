"""Stateless-by-step batch iterators: batch k depends only on (seed, k).

So the whole iterator state is the integer `step`, which a checkpoint stores
to resume training on exactly the batches it would have seen.
"""
import operator

import numpy as np

from neurojax.errors import NeurojaxError


def _int_at_least(name: str, value, low: int) -> int:
    """`value` as an int >= `low`, or a NeurojaxError naming `name`."""
    try:
        if isinstance(value, bool):
            raise TypeError
        result = operator.index(value)
    except TypeError:
        raise NeurojaxError(f"{name} must be an integer, got {value!r}") from None
    if result < low:
        raise NeurojaxError(f"{name} must be >= {low}, got {result}")
    return result


def _check_state(state) -> tuple[int, int]:
    """(step, seed) from an iterator `state()` dict."""
    if not isinstance(state, dict) or not {"step", "seed"} <= set(state):
        raise NeurojaxError(f"iterator state must be a dict with 'step' and 'seed', got {state!r}")
    return _int_at_least("iterator state step", state["step"], 0), _int_at_least("iterator state seed", state["seed"], 0)


class StepIterator:
    """Shared protocol: `peek(step)` defines the batches; iteration walks `step` upward forever."""

    def __init__(self, batch_size: int, seq_len: int, seed: int, step: int):
        self.batch_size = _int_at_least("batch_size", batch_size, 1)
        self.seq_len = _int_at_least("seq_len", seq_len, 1)
        self.seed = _int_at_least("seed", seed, 0)
        self.step = _int_at_least("step", step, 0)

    def peek(self, step: int) -> np.ndarray:
        raise NotImplementedError

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        """The int32 `[batch_size, seq_len + 1]` batch for the current step; then step += 1."""
        batch = self.peek(self.step)
        self.step += 1
        return batch

    def state(self) -> dict:
        """`{"step": int, "seed": int}`: everything needed to resume (JSON-serialisable)."""
        return {"step": int(self.step), "seed": int(self.seed)}


class BatchIterator(StepIterator):
    """Random windows of a 1-D token array: `[batch_size, seq_len + 1]` int32 per step."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int, step: int = 0):
        super().__init__(batch_size, seq_len, seed, step)
        self.tokens = np.asarray(tokens)
        if self.tokens.ndim != 1:
            raise NeurojaxError(f"BatchIterator needs a 1-D token array, got shape {self.tokens.shape}")
        if len(self.tokens) < self.seq_len + 1:
            raise NeurojaxError(
                f"data has {len(self.tokens)} tokens, fewer than seq_len + 1 = {self.seq_len + 1}; "
                "use more data or a shorter seq_len")

    @classmethod
    def restore(cls, tokens: np.ndarray, batch_size: int, seq_len: int, state: dict) -> "BatchIterator":
        """An iterator positioned where the one that produced `state` left off."""
        step, seed = _check_state(state)
        return cls(tokens, batch_size, seq_len, seed=seed, step=step)

    def peek(self, step: int) -> np.ndarray:
        """The int32 `[batch_size, seq_len + 1]` batch at `step`, without moving the iterator."""
        step = _int_at_least("step", step, 0)
        rng = np.random.default_rng([self.seed, step])
        offsets = rng.integers(0, len(self.tokens) - self.seq_len, size=self.batch_size)
        index = offsets[:, None] + np.arange(self.seq_len + 1)[None, :]
        return self.tokens[index].astype(np.int32)


def eval_windows(tokens: np.ndarray, batch_size: int, seq_len: int,
                 max_batches: int | None = None) -> list[np.ndarray]:
    """Contiguous int32 `[batch_size, seq_len + 1]` batches with stride `seq_len`, so each token is predicted once.

    Deterministic; the last partial batch is dropped, and at most `max_batches` are returned.
    """
    tokens = np.asarray(tokens)
    batch_size = _int_at_least("batch_size", batch_size, 1)
    seq_len = _int_at_least("seq_len", seq_len, 1)
    if max_batches is not None:
        max_batches = _int_at_least("max_batches", max_batches, 1)
    if tokens.ndim != 1:
        raise NeurojaxError(f"eval_windows needs a 1-D token array, got shape {tokens.shape}")
    num_windows = max(len(tokens) - 1, 0) // seq_len
    num_batches = num_windows // batch_size
    if max_batches is not None:
        num_batches = min(num_batches, max_batches)
    if num_batches == 0:
        raise NeurojaxError(
            f"evaluation data has {len(tokens)} tokens, too few for one batch of {batch_size} windows of "
            f"{seq_len + 1} tokens (needs {batch_size * seq_len + 1}); use a smaller batch_size or seq_len")
    index = np.arange(seq_len + 1)[None, :] + seq_len * np.arange(batch_size)[:, None]
    return [tokens[index + b * batch_size * seq_len].astype(np.int32) for b in range(num_batches)]
