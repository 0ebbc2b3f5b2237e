"""Builds the training iterator and validation windows that a run config names."""
import dataclasses
import os
from typing import Any, Optional

import numpy as np

from neurojax.data import BatchIterator, ByteTokenizer, SyntheticIterator, eval_windows, load_corpus, synthetic_batch
from neurojax.data.corpus import fingerprint, retokenize
from neurojax.data.hf_tokenizer import find_tokenizer_file, load_tokenizer
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
    if cfg.data.get("tokenizer", "") and cfg.data.source == "synthetic":
        raise NeurojaxError("data.tokenizer applies to text corpora; the synthetic task has no text (leave it empty)")
    if cfg.model.vocab_size < tok.vocab_size and cfg.data.source != "synthetic" and not cfg.data.get("tokenizer", ""):
        raise NeurojaxError(f"model.vocab_size={cfg.model.vocab_size} is smaller than the byte tokenizer's "
                            f"{tok.vocab_size}")
    if cfg.data.source == "synthetic":
        val = [synthetic_batch(10**9 + i, t.batch_size, t.seq_len, cfg.model.vocab_size, seed=t.seed + 1)
               for i in range(eval_batches or t.eval_batches)]
        return RunData("synthetic", f"synthetic-v{cfg.model.vocab_size}", cfg.model.vocab_size, None, val,
                       byte_lengths)
    corpus = load_corpus(None if cfg.data.source == "stdlib" else cfg.data.source, cfg.data.validation_fraction)
    name, fp, train, validation = corpus.name, corpus.fingerprint, corpus.train, corpus.validation
    tokenizer_path = cfg.data.get("tokenizer", "")
    if tokenizer_path:
        name, fp, train, validation, byte_lengths = _subword_corpus(corpus, tokenizer_path, cfg.model.vocab_size)
    val = eval_windows(validation, t.batch_size, t.seq_len, eval_batches or None)
    return RunData(name, fp, cfg.model.vocab_size, train, val, byte_lengths)


_SUBWORD: dict[tuple, tuple] = {}  # (corpus fingerprint, tokenizer file, its mtime) -> encoded corpus


def _subword_corpus(corpus, tokenizer_path: str, vocab_size: int) -> tuple:
    """The corpus re-encoded with the tokenizer `data.tokenizer` names (once per process), and that tokenizer's
    bytes per id: (name, fingerprint, train, validation, byte_lengths)."""
    file = find_tokenizer_file(tokenizer_path)
    key = (corpus.fingerprint, os.path.abspath(file), os.path.getmtime(file))
    if key not in _SUBWORD:
        tok = load_tokenizer(file, vocab_size=vocab_size)
        train, validation = retokenize(corpus.train, tok), retokenize(corpus.validation, tok)
        for a in (train, validation):
            a.setflags(write=False)
        _SUBWORD[key] = (f"{corpus.name}, {os.path.basename(file)} tokens", fingerprint(train, validation), train,
                         validation, tok.byte_lengths())
    return _SUBWORD[key]
