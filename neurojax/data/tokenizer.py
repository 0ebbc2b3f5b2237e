"""Byte-level tokenizer: ids 0..255 are UTF-8 bytes, then PAD, BOS and EOS.

It needs no vocabulary file, so any text round-trips and the small presets
(vocab_size 259) can train on raw files.
"""
import numpy as np

from neurojax.errors import NeurojaxError


class ByteTokenizer:
    """The default tokenizer: raw UTF-8 bytes plus three special ids."""

    PAD = 256
    BOS = 257
    EOS = 258
    vocab_size = 259

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> np.ndarray:
        """`text` as int32 ids `[n]`: its UTF-8 bytes, optionally wrapped in BOS/EOS."""
        if not isinstance(text, str):
            raise NeurojaxError(f"ByteTokenizer.encode expects a str, got {type(text).__name__}")
        body = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)
        parts = ([np.array([self.BOS], np.int32)] if add_bos else []) + [body]
        if add_eos:
            parts.append(np.array([self.EOS], np.int32))
        return np.concatenate(parts)

    def decode(self, ids) -> str:
        """Text for `ids [n]`: byte ids are joined and decoded (errors="replace"); others are skipped."""
        flat = np.asarray(ids).reshape(-1).astype(np.int64)
        kept = flat[(flat >= 0) & (flat < 256)].astype(np.uint8)
        return kept.tobytes().decode("utf-8", errors="replace")

    def num_bytes(self, ids) -> int:
        """How many ids are byte tokens (< 256): the denominator of bits-per-byte."""
        flat = np.asarray(ids).reshape(-1)
        return int(np.count_nonzero((flat >= 0) & (flat < 256)))

    def byte_lengths(self) -> np.ndarray:
        """Bytes each id stands for (float32 `[vocab_size]`): 1 for the byte ids, 0 for the specials."""
        out = np.zeros(self.vocab_size, np.float32)
        out[:256] = 1.0
        return out

    def encode_many(self, texts: list[str]) -> list[list[int]]:
        """`encode` of each text (no BOS / EOS)."""
        return [list(self.encode(t)) for t in texts]

    def check_ids(self, ids, vocab_size: int | None = None) -> None:
        """`check_token_ids` against `vocab_size` (default: this tokenizer's)."""
        check_token_ids(ids, self.vocab_size if vocab_size is None else vocab_size)


def check_token_ids(ids, vocab_size: int) -> None:
    """Raise NeurojaxError naming the first id outside `[0, vocab_size)` in `ids` (any shape)."""
    arr = np.asarray(ids)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise NeurojaxError(f"token ids must be integers, got dtype {arr.dtype}")
    bad = np.flatnonzero((arr.reshape(-1) < 0) | (arr.reshape(-1) >= vocab_size))
    if bad.size:
        flat_pos = int(bad[0])
        pos = flat_pos if arr.ndim <= 1 else tuple(int(i) for i in np.unravel_index(flat_pos, arr.shape))
        value = int(arr.reshape(-1)[flat_pos])
        raise NeurojaxError(
            f"token id {value} at position {pos} is outside the vocabulary [0, {vocab_size})")
