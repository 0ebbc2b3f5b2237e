"""Hugging Face LLaMA-architecture checkpoints (`model_type` `llama`, `qwen2`) <-> the Transformer++.

    import_hf("SmolLM2-135M/", "workdir/smollm2")     # config.json + model.safetensors (or shards), bf16/f16/f32
    export_hf("workdir/smollm2", "out/")              # the same layout back
    export_hf_llama(params, config, "out/")           # in-memory parameters (e.g. from a GGUF file) -> HF layout

`config.json` maps onto `TransformerConfig` (table in `neurojax.nn.transformer_config`): grouped-query
heads, `head_dim`, `rope_theta`, `rope_scaling` (`linear`, `llama3`; others are refused by name),
`rms_norm_eps`, `tie_word_embeddings`, `max_position_embeddings`; `qwen2` adds biases on q/k/v.
Features the Transformer++ does not compute (`attention_bias`/`mlp_bias` on every projection,
Qwen2's `use_sliding_window`, an activation other than SiLU) are refused naming the field, never
silently dropped. Tensors are the parameters as they are (both sides store `weight [out, in]`), so an
import is a copy: no transposes, no permutations. Rotary `inv_freq` buffers of old checkpoints and a
duplicate `lm_head.weight` of a tied model are ignored. Import / export are the shared streaming ones
of `neurojax.interop.hf_checkpoint`.
"""
from typing import Any, Callable, Optional

import flax

from neurojax.data.tokenizer import ByteTokenizer
from neurojax.errors import NeurojaxError
from neurojax.interop.hf_checkpoint import (DTYPE_NAMES, Architecture, Entry, register_architecture,
                                            write_hf_directory)
from neurojax.nn.transformer_config import TransformerConfig

MODEL_TYPES = ("llama", "qwen2")
REQUIRED_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
# transformers' defaults for the fields a config.json may leave out, per model type.
DEFAULTS = {
    "llama": {"rope_theta": 10000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
              "max_position_embeddings": 2048, "initializer_range": 0.02, "hidden_act": "silu"},
    "qwen2": {"rope_theta": 10000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
              "max_position_embeddings": 32768, "initializer_range": 0.02, "hidden_act": "silu"},
}
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


def key_table(cfg: TransformerConfig) -> list[Entry]:
    """Every tensor of a LLaMA / Qwen2 checkpoint with `cfg`'s architecture, in model order."""
    d, v, dh = cfg.d_model, cfg.vocab_size, cfg.attention_head_dim
    q, kv, ffn = cfg.num_heads * dh, cfg.num_kv_heads * dh, cfg.intermediate_size
    out = [Entry("model.embed_tokens.weight", ("embed_tokens", "embedding"), (v, d))]
    for layer in range(cfg.num_layers):
        k, p = f"model.layers.{layer}", (f"layers_{layer}",)
        out.append(Entry(f"{k}.input_layernorm.weight", (*p, "input_layernorm", "weight"), (d,)))
        for proj, shape in zip(PROJECTIONS, ((q, d), (kv, d), (kv, d), (d, q))):
            out.append(Entry(f"{k}.self_attn.{proj}.weight", (*p, "self_attn", proj, "weight"), shape))
            if cfg.qkv_bias and proj != "o_proj":
                out.append(Entry(f"{k}.self_attn.{proj}.bias", (*p, "self_attn", proj, "bias"), shape[:1]))
        out.append(Entry(f"{k}.post_attention_layernorm.weight", (*p, "post_attention_layernorm", "weight"), (d,)))
        for proj, shape in zip(MLP, ((ffn, d), (ffn, d), (d, ffn))):
            out.append(Entry(f"{k}.mlp.{proj}.weight", (*p, "mlp", proj, "weight"), shape))
    out.append(Entry("model.norm.weight", ("norm", "weight"), (d,)))
    if not cfg.tie_embeddings:
        out.append(Entry("lm_head.weight", ("lm_head", "weight"), (v, d)))
    return out


def _ignored(key: str, cfg: TransformerConfig) -> bool:
    return key.endswith(".rotary_emb.inv_freq") or (cfg.tie_embeddings and key == "lm_head.weight")


def _positive_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value > 0


def config_from_hf(hf: dict, source: str = "config.json") -> TransformerConfig:
    """The `TransformerConfig` of a `llama` / `qwen2` config.json (`source` names the file in errors)."""
    model_type = hf.get("model_type")
    if model_type not in MODEL_TYPES:
        raise NeurojaxError(f"{source!r}: model_type {model_type!r} is not a LLaMA-architecture type "
                            f"{list(MODEL_TYPES)}")
    missing = [f for f in REQUIRED_FIELDS if hf.get(f) is None]
    if missing:
        raise NeurojaxError(f"{source!r} lacks the required fields {missing}")
    values = {**DEFAULTS[model_type], **{k: v for k, v in hf.items() if v is not None}}
    for name in REQUIRED_FIELDS + ("num_key_value_heads", "head_dim", "max_position_embeddings"):
        if name in values and not _positive_int(values[name]):
            raise NeurojaxError(f"{source!r}: {name} must be a positive integer, got {values[name]!r}")
    heads = values["num_attention_heads"]
    kv_heads = values.get("num_key_value_heads", heads)
    if heads % kv_heads:
        raise NeurojaxError(f"{source!r}: num_attention_heads={heads} is not a multiple of num_key_value_heads="
                            f"{kv_heads}; grouped-query attention needs whole groups")
    head_dim = values.get("head_dim")
    if head_dim is None and values["hidden_size"] % heads:
        raise NeurojaxError(f"{source!r}: hidden_size={values['hidden_size']} is not divisible by "
                            f"num_attention_heads={heads} and there is no head_dim")
    if head_dim == values["hidden_size"] // heads:
        head_dim = None  # the default; kept implicit so the config compares equal to presets
    if values["hidden_act"] != "silu":
        raise NeurojaxError(f"{source!r}: hidden_act={values['hidden_act']!r} is not supported (SwiGLU uses 'silu')")
    for name in ("attention_bias", "mlp_bias", "use_sliding_window"):
        if values.get(name):
            raise NeurojaxError(f"{source!r}: {name}=true is not supported by the Transformer++ (it would be "
                                f"silently wrong); only {model_type}'s default ({name}=false) imports")
    if not isinstance(values["tie_word_embeddings"], bool):
        raise NeurojaxError(f"{source!r}: tie_word_embeddings must be true or false, got "
                            f"{values['tie_word_embeddings']!r}")
    for name in ("rope_theta", "rms_norm_eps", "initializer_range"):
        if isinstance(values[name], bool) or not isinstance(values[name], (int, float)) or values[name] < 0:
            raise NeurojaxError(f"{source!r}: {name} must be a non-negative number, got {values[name]!r}")
    try:
        return TransformerConfig(
            vocab_size=values["vocab_size"], d_model=values["hidden_size"], num_layers=values["num_hidden_layers"],
            num_heads=heads, num_kv_heads=kv_heads, intermediate_size=values["intermediate_size"],
            rope_theta=float(values["rope_theta"]), rms_norm_eps=float(values["rms_norm_eps"]),
            tie_embeddings=values["tie_word_embeddings"], max_seq_len=values["max_position_embeddings"],
            head_dim=head_dim, init_std=float(values["initializer_range"]), qkv_bias=model_type == "qwen2",
            rope_scaling=values.get("rope_scaling"))
    except NeurojaxError as e:
        raise NeurojaxError(f"{source!r}: {e}") from None


def hf_config_from_model(cfg: TransformerConfig, torch_dtype: str = "float32") -> dict:
    """A config.json for a Transformer++ (`qwen2` when it has q/k/v biases, else `llama`)."""
    qwen = cfg.qkv_bias
    hf = {
        "architectures": ["Qwen2ForCausalLM" if qwen else "LlamaForCausalLM"], "model_type": "qwen2" if qwen else "llama",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.attention_head_dim, "intermediate_size": cfg.intermediate_size, "hidden_act": "silu",
        "rope_theta": cfg.rope_theta, "rope_scaling": None if cfg.rope_scaling is None else dict(cfg.rope_scaling),
        "rms_norm_eps": cfg.rms_norm_eps, "tie_word_embeddings": cfg.tie_embeddings,
        "max_position_embeddings": cfg.max_seq_len, "initializer_range": cfg.init_std, "torch_dtype": torch_dtype,
        "use_cache": True,
    }
    if qwen:
        hf["use_sliding_window"] = False
    else:
        hf.update(attention_bias=False, mlp_bias=False)
    if cfg.vocab_size == ByteTokenizer.vocab_size:
        tok = ByteTokenizer()
        hf.update(pad_token_id=tok.PAD, bos_token_id=tok.BOS, eos_token_id=tok.EOS)
    return hf


def require_exportable(cfg: Any) -> TransformerConfig:
    """`cfg` if a LLaMA / Qwen2 checkpoint can hold it (a spike-coded model computes differently)."""
    if not isinstance(cfg, TransformerConfig):
        raise NeurojaxError(f"the LLaMA format holds a Transformer++, not a {type(cfg).__name__}")
    if cfg.spike_k is not None:
        raise NeurojaxError("a spike-coded Transformer++ (spike_k) computes differently from LLaMA; export the "
                            "model without spike coding")
    return cfg


LLAMA = register_architecture(Architecture(
    name="LLaMA", model_types=MODEL_TYPES, config_type=TransformerConfig, config_from_hf=config_from_hf,
    hf_config_from_model=hf_config_from_model, key_table=key_table, require_exportable=require_exportable,
    ignored=_ignored))


def export_hf_llama(params: Any, config: TransformerConfig, out_dir: str,
                    tokenizer_files: Optional[dict[str, Any]] = None, dtype: str = "float32",
                    max_shard_bytes: Optional[int] = None, log: Callable[[str], None] = lambda s: None) -> dict:
    """Write in-memory Transformer++ `params` as a Hugging Face LLaMA / Qwen2 directory (new or empty `out_dir`).

    `tokenizer_files`: name -> content (str or bytes) written beside, e.g. `{"tokenizer.json": tok.to_str()}`.
    Tensors are converted to `dtype` one at a time as they are written.
    """
    config = require_exportable(config)
    if dtype not in DTYPE_NAMES:
        raise NeurojaxError(f"unknown export dtype {dtype!r}; use one of {list(DTYPE_NAMES)}")
    table = key_table(config)
    flat = flax.traverse_util.flatten_dict(params)
    missing = [e.path for e in table if e.path not in flat]
    if missing or len(flat) != len(table):
        extra = sorted(set(flat) - {e.path for e in table})
        raise NeurojaxError(f"params do not match the config: missing {missing[:3]}, unexpected {extra[:3]}")
    for e in table:
        if tuple(flat[e.path].shape) != e.shape:
            raise NeurojaxError(f"parameter {'/'.join(e.path)} has shape {tuple(flat[e.path].shape)}, the config "
                                f"implies {e.shape}")
    code = DTYPE_NAMES[dtype]
    done = write_hf_directory(out_dir, table, {e.key: code for e in table}, flat.pop,
                              hf_config_from_model(config, dtype), max_shard_bytes=max_shard_bytes,
                              extra_files=tokenizer_files, flag="out_dir")
    log(f"wrote {out_dir}: {len(table)} tensors in {len(done['files'])} file(s), {done['bytes'] / 2**20:,.1f} MiB "
        f"({dtype}); {', '.join(['config.json', *done['copied']])}")
    return done
