"""The tokenizer a GGUF file describes in its metadata, rebuilt as a Hugging Face `tokenizers.Tokenizer`.

llama.cpp keeps a byte-level BPE tokenizer (`tokenizer.ggml.model = "gpt2"`) as metadata, not as a
`tokenizer.json`; this module turns it back into one, so neurojax encodes text exactly as llama.cpp
and the original Hugging Face tokenizer do, and an exported checkpoint carries a `tokenizer.json`:

| GGUF key | what it becomes |
|---|---|
| `tokenizer.ggml.model` | must be `gpt2` (byte-level BPE; SentencePiece `llama` files are refused by name) |
| `tokenizer.ggml.tokens` | the BPE vocabulary, id = position |
| `tokenizer.ggml.merges` | the BPE merges (`"a b"` strings, in priority order) |
| `tokenizer.ggml.token_type` | 3 (control) and 2 (unknown): special added tokens; 4 (user defined): added tokens |
| `tokenizer.ggml.pre` | the pre-tokenizer (`PRE_TOKENIZERS`: llama.cpp's name -> its split regexes) |
| `tokenizer.ggml.{bos,eos,padding,unknown}_token_id` | the special ids (optional) |
| `tokenizer.ggml.add_bos_token` / `add_eos_token` | a post-processor adding them (the wrapper's `encode` never adds any unless asked) |

Pre-tokenizers follow llama.cpp's `llama-vocab.cpp`: `gpt2` (and its aliases) is the GPT-2 regex
(ByteLevel's own); `smollm` (and the StarCoder family) first splits every digit apart, then the
GPT-2 regex (what SmolLM's `tokenizer.json` does with `Digits(individual_digits)` + `ByteLevel`);
`llama-bpe` (Llama 3) and `qwen2` use their own regexes, as their `tokenizer.json`s do, and Llama 3
also skips the merges for words already in the vocabulary (`ignore_merges`).
"""
from typing import Any, Callable, Optional

from neurojax.errors import NeurojaxError

# llama.cpp token types (`llama_token_type`).
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6

_LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _gpt2(pre, Regex):
    return pre.ByteLevel(add_prefix_space=False, use_regex=True)


def _digits_then_gpt2(pre, Regex):
    return pre.Sequence([pre.Digits(individual_digits=True), pre.ByteLevel(add_prefix_space=False, use_regex=True)])


def _regex_then_bytes(pattern: str) -> Callable:
    def build(pre, Regex):
        return pre.Sequence([pre.Split(Regex(pattern), behavior="isolated", invert=False),
                             pre.ByteLevel(add_prefix_space=False, use_regex=False)])
    return build


# llama.cpp `tokenizer.ggml.pre` names -> (pre-tokenizer builder, BPE ignore_merges).
PRE_TOKENIZERS: dict[str, tuple[Callable, bool]] = {
    **{name: (_gpt2, False) for name in ("default", "gpt2", "gpt-2", "mpt", "olmo", "jais")},
    **{name: (_digits_then_gpt2, False) for name in ("smollm", "starcoder", "refact", "command-r", "codeshell",
                                                     "exaone", "minerva")},
    **{name: (_regex_then_bytes(_LLAMA3_REGEX), True) for name in ("llama-bpe", "llama3")},
    "qwen2": (_regex_then_bytes(_QWEN2_REGEX), False),
}

SPECIAL_ID_KEYS = {"BOS": "tokenizer.ggml.bos_token_id", "EOS": "tokenizer.ggml.eos_token_id",
                   "PAD": "tokenizer.ggml.padding_token_id", "UNK": "tokenizer.ggml.unknown_token_id"}


def tokenizer_from_metadata(get: Callable[..., Any], path: str) -> tuple[Any, dict[str, Optional[int]], bool]:
    """The `tokenizers.Tokenizer` a GGUF file's metadata describes, its special ids and whether BOS is added.

    `get(key, default=REQUIRED)` reads one metadata value (raising a `NeurojaxError` naming the file and
    key when a required one is missing); `path` names the file in errors. Returns
    `(tokenizer, {"BOS": id|None, "EOS": ..., "PAD": ..., "UNK": ...}, add_bos)`.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, processors
    from tokenizers import pre_tokenizers as pre

    kind = get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise NeurojaxError(f"{path}: tokenizer.ggml.model={kind!r} is not supported; only byte-level BPE ('gpt2') "
                            "tokenizers are imported")
    pre_name = get("tokenizer.ggml.pre", "default")
    if pre_name not in PRE_TOKENIZERS:
        raise NeurojaxError(f"{path}: tokenizer.ggml.pre={pre_name!r} is not a supported pre-tokenizer; supported: "
                            f"{sorted(PRE_TOKENIZERS)}")
    tokens = list(get("tokenizer.ggml.tokens"))
    if len(set(tokens)) != len(tokens):
        seen, dup = set(), None
        for t in tokens:
            if t in seen:
                dup = t
                break
            seen.add(t)
        raise NeurojaxError(f"{path}: tokenizer.ggml.tokens holds {dup!r} twice; a BPE vocabulary needs unique tokens")
    types = list(get("tokenizer.ggml.token_type", [TOKEN_NORMAL] * len(tokens)))
    if len(types) != len(tokens):
        raise NeurojaxError(f"{path}: tokenizer.ggml.token_type has {len(types)} entries but tokenizer.ggml.tokens "
                            f"has {len(tokens)}")
    merges = []
    for i, m in enumerate(get("tokenizer.ggml.merges")):
        parts = m.split(" ")
        if len(parts) != 2 or not all(parts):
            raise NeurojaxError(f"{path}: tokenizer.ggml.merges[{i}]={m!r} is not two tokens separated by one space")
        merges.append((parts[0], parts[1]))
    specials = {}
    for name, key in SPECIAL_ID_KEYS.items():
        value = get(key, None)
        if value is not None and not 0 <= int(value) < len(tokens):
            raise NeurojaxError(f"{path}: {key}={value} is outside the vocabulary of {len(tokens)} tokens")
        specials[name] = None if value is None else int(value)
    build_pre, ignore_merges = PRE_TOKENIZERS[pre_name]
    vocab = {t: i for i, t in enumerate(tokens)}
    try:
        model = models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False,
                           ignore_merges=ignore_merges)
    except Exception as e:  # tokenizers raises plain Exceptions for merges naming unknown tokens
        raise NeurojaxError(f"{path}: tokenizer.ggml.merges do not fit tokenizer.ggml.tokens ({e})") from e
    tok = Tokenizer(model)
    tok.pre_tokenizer = build_pre(pre, Regex)
    tok.decoder = decoders.ByteLevel()
    # Ids already in the vocabulary are kept; special ones are skipped when decoding.
    special = [AddedToken(tokens[i], special=True, normalized=False)
               for i, t in enumerate(types) if t in (TOKEN_CONTROL, TOKEN_UNKNOWN)]
    user = [AddedToken(tokens[i], special=False, normalized=False) for i, t in enumerate(types) if t == TOKEN_USER_DEFINED]
    if special:
        tok.add_special_tokens(special)
    if user:
        tok.add_tokens(user)
    add_bos = bool(get("tokenizer.ggml.add_bos_token", False))
    add_eos = bool(get("tokenizer.ggml.add_eos_token", False))
    for flag, name, key in ((add_bos, "BOS", "tokenizer.ggml.add_bos_token"),
                            (add_eos, "EOS", "tokenizer.ggml.add_eos_token")):
        if flag and specials[name] is None:
            raise NeurojaxError(f"{path}: {key} is true but {SPECIAL_ID_KEYS[name]} is missing")
    if add_bos or add_eos:
        bos = [(tokens[specials["BOS"]], specials["BOS"])] if add_bos else []
        eos = [(tokens[specials["EOS"]], specials["EOS"])] if add_eos else []
        single = " ".join([b for b, _ in bos] + ["$A"] + [e for e, _ in eos])
        pair = " ".join([b for b, _ in bos] + ["$A"] + [e for e, _ in eos] + [b for b, _ in bos] + ["$B:1"]
                        + [e + ":1" for e, _ in eos])
        tok.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=bos + eos)
    return tok, specials, add_bos
