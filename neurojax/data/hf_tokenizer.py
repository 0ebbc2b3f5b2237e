"""Subword tokenizers of released checkpoints: `tokenizer.json` (Hugging Face `tokenizers`) and
`tokenizer.model` (SentencePiece), with the interface of `ByteTokenizer` so binaries take either.

    tok = load_tokenizer("MMfreeLM-370M/", vocab_size=32000)   # a directory or the file itself
    ids = tok.encode("Hello", add_bos=True)                     # [BOS, ...] int32
    tok.decode(ids), tok.num_bytes(ids), tok.check_ids(ids)

BOS is never added implicitly: `encode` returns the text's pieces and prepends `BOS` / appends
`EOS` only when asked (the MMfreeLM checkpoints were trained with BOS prepended, LLaMA-style:
UNK=0, BOS=1, EOS=2). `decode` skips special and out-of-range ids, as `ByteTokenizer.decode`
skips non-byte ids. `num_bytes(ids)` is the UTF-8 length of the decoded text: the denominator of
bits per byte. A tokenizer whose vocabulary differs from the model's is an error
(`load_tokenizer(..., vocab_size=V)` / `check_vocab_size`) naming the file.

`tokenizers` and `sentencepiece` are imported only when such a file is loaded.
"""
import os
from typing import Optional, Union

import numpy as np

from neurojax.data.token_bytes import byte_level_lengths, decoded_lengths, sentencepiece_lengths
from neurojax.data.tokenizer import ByteTokenizer, check_token_ids
from neurojax.errors import NeurojaxError
from neurojax.files import read_json_object

TOKENIZER_JSON = "tokenizer.json"
SENTENCEPIECE_MODEL = "tokenizer.model"
TOKENIZER_CONFIG = "tokenizer_config.json"

# Special-token spellings tried when tokenizer_config.json does not name them.
_BOS_NAMES = ("<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", "[BOS]")
_EOS_NAMES = ("</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>", "[EOS]")
_PAD_NAMES = ("<pad>", "[PAD]", "<|pad|>")
_UNK_NAMES = ("<unk>", "[UNK]")


class SubwordTokenizer:
    """What both file formats share: BOS/EOS wrapping, byte counts, id checks.

    Subclasses set `path`, `vocab_size`, `BOS`, `EOS`, `PAD`, `UNK` (an id or None) and implement
    `_encode_text(text) -> list[int]`, `_decode_ids(ids) -> str` and `_special_ids() -> set[int]`.
    """

    path: str
    vocab_size: int
    BOS: Optional[int] = None
    EOS: Optional[int] = None
    PAD: Optional[int] = None
    UNK: Optional[int] = None

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> np.ndarray:
        """`text` as int32 ids `[n]`, optionally preceded by BOS and followed by EOS."""
        if not isinstance(text, str):
            raise NeurojaxError(f"{type(self).__name__}.encode expects a str, got {type(text).__name__}")
        ids = list(self._encode_text(text))
        if add_bos:
            ids.insert(0, self._special("BOS"))
        if add_eos:
            ids.append(self._special("EOS"))
        return np.asarray(ids, np.int32)

    def decode(self, ids) -> str:
        """Text for `ids` (any shape, flattened); special ids and ids outside the vocabulary are skipped."""
        flat = np.asarray(ids).reshape(-1).astype(np.int64)
        special = self._special_ids()
        kept = [int(i) for i in flat if 0 <= i < self.vocab_size and int(i) not in special]
        return self._decode_ids(kept) if kept else ""

    def num_bytes(self, ids) -> int:
        """UTF-8 bytes of the text `ids` stand for (specials count 0): the denominator of bits per byte."""
        return len(self.decode(ids).encode("utf-8"))

    def check_ids(self, ids, vocab_size: Optional[int] = None) -> None:
        """`check_token_ids` against `vocab_size` (default: this tokenizer's)."""
        check_token_ids(ids, self.vocab_size if vocab_size is None else vocab_size)

    def encode_many(self, texts: list[str]) -> list[list[int]]:
        """`encode` of each text (no BOS / EOS); subclasses batch it."""
        return [list(self._encode_text(t)) for t in texts]

    def byte_lengths(self) -> np.ndarray:  # pragma: no cover - abstract
        """Bytes of text each id stands for (float32 `[vocab_size]`, specials 0): bits per byte's denominator."""
        raise NotImplementedError

    def _special(self, name: str) -> int:
        value = getattr(self, name)
        if value is None:
            raise NeurojaxError(f"the tokenizer {self.path!r} defines no {name} token; encode without add_"
                                f"{name.lower()}, or name it in {TOKENIZER_CONFIG}")
        return int(value)

    def _special_ids(self) -> set[int]:
        return {i for i in (self.BOS, self.EOS, self.PAD) if i is not None}

    def _encode_text(self, text: str) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode_ids(self, ids: list[int]) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.path!r}, vocab_size={self.vocab_size}, BOS={self.BOS}, "
                f"EOS={self.EOS})")


def _token_name(value) -> Optional[str]:
    """A tokenizer_config.json special-token entry: a string or `{"content": ...}`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


class HFTokenizer(SubwordTokenizer):
    """A `tokenizer.json` read with the `tokenizers` package (BPE, Unigram, WordPiece, ...).

    Special tokens come from `tokenizer_config.json` beside the file when it names them
    (`bos_token`, `eos_token`, `pad_token`, `unk_token`), else from the usual spellings
    (`<s>`, `</s>`, ...) found in the vocabulary.
    """

    def __init__(self, path: str, bos_token: Optional[str] = None, eos_token: Optional[str] = None):
        try:
            from tokenizers import Tokenizer
        except ImportError as e:  # pragma: no cover - install_requires has it
            raise NeurojaxError("reading tokenizer.json needs the `tokenizers` package: pip install tokenizers") from e
        self.path = path
        try:
            self._tok = Tokenizer.from_file(path)
        except Exception as e:  # tokenizers raises plain Exception subclasses for unreadable files
            raise NeurojaxError(f"{path!r} is not a readable tokenizer.json ({type(e).__name__}: {e})") from e
        self.vocab_size = self._vocab_size()
        names = self._config_names(os.path.join(os.path.dirname(os.path.abspath(path)), TOKENIZER_CONFIG))
        names.update({k: v for k, v in (("bos_token", bos_token), ("eos_token", eos_token)) if v is not None})
        self.BOS = self._find(names.get("bos_token"), _BOS_NAMES, "bos_token")
        self.EOS = self._find(names.get("eos_token"), _EOS_NAMES, "eos_token")
        self.PAD = self._find(names.get("pad_token"), _PAD_NAMES, "pad_token")
        self.UNK = self._find(names.get("unk_token"), _UNK_NAMES, "unk_token")
        self._specials = self._collect_specials()

    @classmethod
    def from_tokenizer(cls, tokenizer, name: str, bos_id: Optional[int] = None, eos_id: Optional[int] = None,
                       pad_id: Optional[int] = None, unk_id: Optional[int] = None) -> "HFTokenizer":
        """Wrap an in-memory `tokenizers.Tokenizer` (e.g. one rebuilt from a GGUF file's metadata, which
        names its special tokens by id); `name` stands for the source in messages (`path`)."""
        self = cls.__new__(cls)
        self.path, self._tok = name, tokenizer
        self.vocab_size = self._vocab_size()
        for attr, value in (("BOS", bos_id), ("EOS", eos_id), ("PAD", pad_id), ("UNK", unk_id)):
            if value is not None and not 0 <= int(value) < self.vocab_size:
                raise NeurojaxError(f"{attr} id {value} is outside the vocabulary of {name!r} ({self.vocab_size} "
                                    "tokens)")
            setattr(self, attr, None if value is None else int(value))
        self._specials = self._collect_specials()
        return self

    def _vocab_size(self) -> int:
        vocab = self._tok.get_vocab(with_added_tokens=True)
        return max(vocab.values()) + 1 if vocab else 0

    def _collect_specials(self) -> set[int]:
        """BOS / EOS / PAD and every added token marked special: what `decode` skips."""
        specials = {i for i in (self.BOS, self.EOS, self.PAD) if i is not None}
        added = self._tok.get_added_tokens_decoder() if hasattr(self._tok, "get_added_tokens_decoder") else {}
        return specials | {int(i) for i, token in added.items() if getattr(token, "special", False)}

    @property
    def backend(self):
        """The wrapped `tokenizers.Tokenizer` (e.g. to write it out with `to_str()`)."""
        return self._tok

    @staticmethod
    def _config_names(config_path: str) -> dict:
        if not os.path.isfile(config_path):
            return {}
        config = read_json_object(config_path)
        names = {}
        for field in ("bos_token", "eos_token", "pad_token", "unk_token"):
            if field in config and config[field] is not None:
                name = _token_name(config[field])
                if name is None:
                    raise NeurojaxError(f"{config_path!r}: {field} must be a string or {{\"content\": ...}}, "
                                        f"got {config[field]!r}")
                names[field] = name
        return names

    def _find(self, named: Optional[str], fallbacks: tuple, field: str) -> Optional[int]:
        if named is not None:
            token_id = self._tok.token_to_id(named)
            if token_id is None:
                raise NeurojaxError(f"{field} {named!r} (from {TOKENIZER_CONFIG}) is not in the vocabulary of "
                                    f"{self.path!r}")
            return int(token_id)
        for name in fallbacks:
            token_id = self._tok.token_to_id(name)
            if token_id is not None:
                return int(token_id)
        return None

    def _special_ids(self) -> set[int]:
        return self._specials

    def _encode_text(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_many(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]  # threads in Rust

    def byte_lengths(self) -> np.ndarray:
        import json

        def byte_level(node) -> bool:  # a ByteLevel decoder, alone or inside a Sequence
            return isinstance(node, dict) and (node.get("type") == "ByteLevel" or any(
                byte_level(d) for d in node.get("decoders", []) or []))

        if byte_level(json.loads(self._tok.to_str()).get("decoder")):
            lengths = byte_level_lengths(self._tok, self._specials)
        else:
            lengths = decoded_lengths(self._decode_ids, self.vocab_size, self._specials)
        out = np.zeros(self.vocab_size, np.float32)
        out[:len(lengths)] = lengths[:self.vocab_size]
        return out

    def _decode_ids(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=False)


class SentencePieceTokenizer(SubwordTokenizer):
    """A SentencePiece `tokenizer.model` (LLaMA-style BPE: UNK=0, BOS=1, EOS=2, no PAD)."""

    def __init__(self, path: str):
        try:
            import sentencepiece
        except ImportError as e:  # pragma: no cover - install_requires has it
            raise NeurojaxError("reading tokenizer.model needs the `sentencepiece` package: "
                                "pip install sentencepiece") from e
        self.path = path
        self._sp = sentencepiece.SentencePieceProcessor()
        try:
            with open(path, "rb") as f:
                proto = f.read()
            self._sp.LoadFromSerializedProto(proto)
        except Exception as e:  # OSError, RuntimeError from the C++ parser
            raise NeurojaxError(f"{path!r} is not a readable SentencePiece model ({type(e).__name__}: {e})") from e
        self.vocab_size = int(self._sp.get_piece_size())

        def special(value: int) -> Optional[int]:
            return int(value) if 0 <= value < self.vocab_size else None

        self.BOS, self.EOS = special(self._sp.bos_id()), special(self._sp.eos_id())
        self.PAD, self.UNK = special(self._sp.pad_id()), special(self._sp.unk_id())
        self._specials = {i for i in range(self.vocab_size) if self._sp.is_control(i)} | {
            i for i in (self.BOS, self.EOS, self.PAD) if i is not None}

    def _special_ids(self) -> set[int]:
        return self._specials

    def _encode_text(self, text: str) -> list[int]:
        return [int(i) for i in self._sp.encode(text, out_type=int)]

    def byte_lengths(self) -> np.ndarray:
        return sentencepiece_lengths(self._sp, self._specials)

    def _decode_ids(self, ids: list[int]) -> str:
        return self._sp.decode(ids)


Tokenizer = Union[ByteTokenizer, HFTokenizer, SentencePieceTokenizer]


def find_tokenizer_file(path: str) -> str:
    """The tokenizer file `path` names: the file itself, or in a directory `tokenizer.json`
    (preferred, as transformers does) else `tokenizer.model`."""
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        for name in (TOKENIZER_JSON, SENTENCEPIECE_MODEL):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise NeurojaxError(f"{path!r} holds neither {TOKENIZER_JSON} nor {SENTENCEPIECE_MODEL}")
    raise NeurojaxError(f"tokenizer {path!r} does not exist")


def check_vocab_size(tokenizer: Tokenizer, vocab_size: int) -> None:
    """A clear error when the tokenizer's vocabulary and the model's embedding differ in size."""
    if int(tokenizer.vocab_size) != int(vocab_size):
        where = getattr(tokenizer, "path", "the byte tokenizer")
        raise NeurojaxError(f"tokenizer {where!r} has {tokenizer.vocab_size} tokens but the model's vocab_size is "
                            f"{vocab_size}; use the tokenizer the checkpoint was trained with")


def load_tokenizer(path: Optional[str] = None, vocab_size: Optional[int] = None) -> Tokenizer:
    """The tokenizer at `path` (a `tokenizer.json`, a `*.model` SentencePiece file, or a directory
    holding one); `None` gives the `ByteTokenizer`. With `vocab_size`, a size mismatch is an error."""
    if path is None:
        tok: Tokenizer = ByteTokenizer()
    else:
        file = find_tokenizer_file(path)
        tok = HFTokenizer(file) if file.endswith(".json") else SentencePieceTokenizer(file)
    if vocab_size is not None:
        check_vocab_size(tok, vocab_size)
    return tok
