"""Data: the byte tokenizer, corpora (Python stdlib by default), batch iterators, a synthetic task.

Layer rule: imports numpy, jax and `neurojax.errors` only (nothing from `nn`/`train`).
"""
from neurojax.data.corpus import Corpus, is_validation_file, load_corpus, stdlib_files
from neurojax.data.iterator import BatchIterator, eval_windows
from neurojax.data.synthetic import SyntheticIterator, synthetic_batch
from neurojax.data.tokenizer import ByteTokenizer, check_token_ids

__all__ = [
    "BatchIterator",
    "ByteTokenizer",
    "Corpus",
    "SyntheticIterator",
    "check_token_ids",
    "eval_windows",
    "is_validation_file",
    "load_corpus",
    "stdlib_files",
    "synthetic_batch",
]
