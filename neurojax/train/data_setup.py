"""Builds the training iterator and validation windows that a run config names."""
import dataclasses
from typing import Any, Optional

import numpy as np

from neurojax.data import BatchIterator, ByteTokenizer, SyntheticIterator, eval_windows, load_corpus, synthetic_batch
from neurojax.errors import NeurojaxError


@dataclasses.dataclass
class RunData:
    """Everything a run reads: a resumable train iterator, fixed validation windows, and provenance."""

    name: str
    fingerprint: str
    vocab_size: int
    train_tokens: Optional[np.ndarray]  # None for the synthetic task
    validation: list  # [B, T+1] int32 windows
    byte_lengths: np.ndarray  # bytes per token id, for bits per byte

    def iterator(self, batch_size: int, seq_len: int, seed: int, state: Optional[dict] = None) -> Any:
        """The train iterator, at the position `state` (from a checkpoint) or at the start."""
        step = 0
        if state is not None:
            if state.get("seed") != seed:
                raise NeurojaxError(f"checkpointed data iterator has seed {state.get('seed')}, config says {seed}")
            step = int(state["step"])
        if self.train_tokens is None:
            return SyntheticIterator(self.vocab_size, batch_size, seq_len, seed=seed, step=step)
        return BatchIterator(self.train_tokens, batch_size, seq_len, seed, step=step)


def load_run_data(cfg: Any, eval_batches: Optional[int] = None) -> RunData:
    """Load the corpus (or synthetic task) of `cfg.data` with the shapes of `cfg.train`.

    `eval_batches` (default `cfg.train.eval_batches`) bounds the validation windows; 0 means
    the whole validation split.
    """
    t = cfg.train
    eval_batches = t.eval_batches if eval_batches is None else eval_batches
    tok = ByteTokenizer()
    byte_lengths = np.zeros(cfg.model.vocab_size, np.float32)
    byte_lengths[: min(256, cfg.model.vocab_size)] = 1.0
    if cfg.model.vocab_size < tok.vocab_size and cfg.data.source != "synthetic":
        raise NeurojaxError(f"model.vocab_size={cfg.model.vocab_size} is smaller than the byte tokenizer's "
                            f"{tok.vocab_size}")
    if cfg.data.source == "synthetic":
        val = [synthetic_batch(10**9 + i, t.batch_size, t.seq_len, cfg.model.vocab_size, seed=t.seed + 1)
               for i in range(eval_batches or t.eval_batches)]
        return RunData("synthetic", f"synthetic-v{cfg.model.vocab_size}", cfg.model.vocab_size, None, val,
                       byte_lengths)
    corpus = load_corpus(None if cfg.data.source == "stdlib" else cfg.data.source, cfg.data.validation_fraction)
    val = eval_windows(corpus.validation, t.batch_size, t.seq_len, eval_batches or None)
    return RunData(corpus.name, corpus.fingerprint, cfg.model.vocab_size, corpus.train, val, byte_lengths)
