"""Bytes of text each token id stands for: the denominator of bits per byte for subword vocabularies.

A model's bits per byte sums each predicted token's loss and divides by the UTF-8 bytes those tokens
spell; these per-id lengths are additive (a window's bytes = the sum over its ids) for byte-level BPE
(GPT-2 / LLaMA-3 / SmolLM2 style) and for SentencePiece pieces, which is what makes them usable.
"""
from typing import Any

import numpy as np


def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte -> printable character map (`bytes_to_unicode`), inverted: character -> byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def byte_level_lengths(tokenizer: Any, special_ids: set[int]) -> np.ndarray:
    """Bytes of text each id of a byte-level BPE tokenizer stands for (float32 `[V]`): the denominator of
    bits per byte. A token's characters are GPT-2 byte characters, one byte each; added non-special tokens
    (stored as plain text) count their UTF-8 bytes; special tokens count 0."""
    alphabet = byte_level_alphabet()
    added = tokenizer.get_added_tokens_decoder()
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    lengths = np.zeros(max(vocab.values()) + 1 if vocab else 0, np.float32)
    for token, i in vocab.items():
        if i in special_ids or (i in added and added[i].special):
            continue
        if i in added or any(c not in alphabet for c in token):
            lengths[i] = len(token.encode("utf-8"))
        else:
            lengths[i] = len(token)
    return lengths


def sentencepiece_lengths(processor: Any, special_ids: set[int]) -> np.ndarray:
    """Bytes each SentencePiece id stands for (float32 `[V]`): byte-fallback pieces `<0xAB>` one byte, the
    word-boundary mark U+2581 one space, other pieces their UTF-8 bytes; control, unknown and special ids 0.
    They add up to the text as SentencePiece normalizes it plus one byte for its dummy-prefix space."""
    size = int(processor.get_piece_size())
    lengths = np.zeros(size, np.float32)
    for i in range(size):
        if i in special_ids or processor.is_control(i) or processor.is_unknown(i):
            continue
        piece = processor.id_to_piece(i)
        lengths[i] = 1 if processor.is_byte(i) else len(piece.replace("\u2581", " ").encode("utf-8"))
    return lengths


def decoded_lengths(decode: Any, vocab_size: int, special_ids: set[int]) -> np.ndarray:
    """Bytes of each id decoded on its own: the fallback for tokenizers that are neither byte-level BPE nor
    SentencePiece (exact where a token's text does not depend on its neighbours, e.g. WordPiece words)."""
    lengths = np.zeros(vocab_size, np.float32)
    for i in range(vocab_size):
        if i not in special_ids:
            lengths[i] = len(decode([i]).encode("utf-8"))
    return lengths
