"""Hugging Face LLaMA / Qwen2 checkpoints -> Transformer++ (and back).

Checkpoints are random tiny models written in HF layout with `safetensors` itself; the expected
logits come from a NumPy float64 forward written here from the HF modeling code's equations
(rotate-half RoPE with its `rope_scaling` variants, GQA via repeated kv heads, SwiGLU, RMSNorm),
not from the Flax modules.
"""
import json
import math
import os

import flax
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from neurojax import NeurojaxError
from neurojax.interop import hf_checkpoint, hf_llama
from neurojax.nn.transformer import TransformerLM
from neurojax.train import load_trained
from tests.interop.hf_files import read_hf_dir, write_hf_dir

LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 97, "hidden_size": 32,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 48,
         "rope_theta": 500.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "max_position_embeddings": 64,
         "hidden_act": "silu", "torch_dtype": "float32", "attention_bias": False}
QWEN2 = {**{k: v for k, v in LLAMA.items() if k != "attention_bias"}, "model_type": "qwen2",
         "architectures": ["Qwen2ForCausalLM"], "tie_word_embeddings": True, "num_key_value_heads": 1,
         "rope_theta": 1e4, "rms_norm_eps": 1e-6}
LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 16}


def hf_tensors(hf, seed=0, dtype=np.float32):
    """Random tensors under HF keys (written out here from the HF modeling code, not from the module)."""
    rng = np.random.default_rng(seed)
    d, v, layers = hf["hidden_size"], hf["vocab_size"], hf["num_hidden_layers"]
    h, kh = hf["num_attention_heads"], hf.get("num_key_value_heads", hf["num_attention_heads"])
    dh = hf.get("head_dim", d // h)
    f = hf["intermediate_size"]
    shapes = {"model.embed_tokens.weight": (v, d), "model.norm.weight": (d,)}
    if not hf["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (v, d)
    for l in range(layers):
        p = f"model.layers.{l}"
        shapes.update({f"{p}.input_layernorm.weight": (d,), f"{p}.post_attention_layernorm.weight": (d,),
                       f"{p}.self_attn.q_proj.weight": (h * dh, d), f"{p}.self_attn.k_proj.weight": (kh * dh, d),
                       f"{p}.self_attn.v_proj.weight": (kh * dh, d), f"{p}.self_attn.o_proj.weight": (d, h * dh),
                       f"{p}.mlp.gate_proj.weight": (f, d), f"{p}.mlp.up_proj.weight": (f, d),
                       f"{p}.mlp.down_proj.weight": (d, f)})
        if hf["model_type"] == "qwen2":
            shapes.update({f"{p}.self_attn.q_proj.bias": (h * dh,), f"{p}.self_attn.k_proj.bias": (kh * dh,),
                           f"{p}.self_attn.v_proj.bias": (kh * dh,)})
    out = {}
    for key, shape in shapes.items():
        if key.endswith("norm.weight"):
            value = 1.0 + 0.2 * rng.standard_normal(shape)
        elif key == "model.embed_tokens.weight":
            value = rng.standard_normal(shape)
        else:
            value = (0.3 if key.endswith("bias") else 0.15) * rng.standard_normal(shape)
        out[key] = value.astype(np.float32).astype(dtype)
    return out


# ------------------------------------------------------------------------------ NumPy float64 oracle


def inv_freq(hf, dh):
    base = 1.0 / hf.get("rope_theta", 1e4) ** (np.arange(0, dh, 2, dtype=np.float64) / dh)
    s = hf.get("rope_scaling")
    if not s:
        return base
    if s.get("rope_type", s.get("type")) == "linear":  # "type": the older spelling
        return base / s["factor"]
    out = []
    for f in base:  # llama3, frequency by frequency as in the Llama 3.1 reference code
        wavelen = 2 * math.pi / f
        low_wavelen = s["original_max_position_embeddings"] / s["low_freq_factor"]
        high_wavelen = s["original_max_position_embeddings"] / s["high_freq_factor"]
        if wavelen < high_wavelen:
            out.append(f)
        elif wavelen > low_wavelen:
            out.append(f / s["factor"])
        else:
            smooth = (s["original_max_position_embeddings"] / wavelen - s["low_freq_factor"]) / (
                s["high_freq_factor"] - s["low_freq_factor"])
            out.append((1 - smooth) * f / s["factor"] + smooth * f)
    return np.array(out)


def numpy_logits(tensors, hf, tokens):
    """Logits `[B, T, V]` in float64 of a LLaMA / Qwen2 checkpoint (causal, no padding)."""
    t = {k: np.asarray(v).astype(np.float64) for k, v in tensors.items()}
    d, h = hf["hidden_size"], hf["num_attention_heads"]
    kh = hf.get("num_key_value_heads", h)
    dh = hf.get("head_dim", d // h)
    eps = hf["rms_norm_eps"]
    rms = lambda x, w: x / np.sqrt(np.mean(x * x, -1, keepdims=True) + eps) * w  # noqa: E731
    b, n = tokens.shape
    ang = np.arange(n)[:, None] * inv_freq(hf, dh)[None, :]
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))

    def rope(x):  # [B, T, heads, dh]
        rot = np.concatenate([-x[..., dh // 2:], x[..., :dh // 2]], -1)
        return x * cos[None, :, None] + rot * sin[None, :, None]

    x = t["model.embed_tokens.weight"][tokens]
    causal = np.tril(np.ones((n, n), bool))
    for l in range(hf["num_hidden_layers"]):
        p = f"model.layers.{l}"
        y = rms(x, t[f"{p}.input_layernorm.weight"])

        def proj(name, heads):
            out = y @ t[f"{p}.self_attn.{name}.weight"].T
            if f"{p}.self_attn.{name}.bias" in t:
                out = out + t[f"{p}.self_attn.{name}.bias"]
            return out.reshape(b, n, heads, dh)

        q, k, v = rope(proj("q_proj", h)), rope(proj("k_proj", kh)), proj("v_proj", kh)
        k, v = np.repeat(k, h // kh, axis=2), np.repeat(v, h // kh, axis=2)  # HF repeat_kv
        s = np.einsum("bthd,bshd->bhts", q, k) / math.sqrt(dh)
        s = np.where(causal, s, -np.inf)
        s = np.exp(s - s.max(-1, keepdims=True))
        a = np.einsum("bhts,bshd->bthd", s / s.sum(-1, keepdims=True), v).reshape(b, n, h * dh)
        x = x + a @ t[f"{p}.self_attn.o_proj.weight"].T
        y = rms(x, t[f"{p}.post_attention_layernorm.weight"])
        gate = y @ t[f"{p}.mlp.gate_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * (y @ t[f"{p}.mlp.up_proj.weight"].T)) @ t[f"{p}.mlp.down_proj.weight"].T
    x = rms(x, t["model.norm.weight"])
    head = t["model.embed_tokens.weight"] if hf["tie_word_embeddings"] else t["lm_head.weight"]
    return x @ head.T


def model_logits(workdir, tokens):
    trained = load_trained(workdir)
    assert isinstance(trained.model, TransformerLM)
    return np.asarray(trained.model.apply({"params": trained.params}, jnp.asarray(tokens))[0], np.float64)


def rel_err(got, want):
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


TOKENS = np.random.default_rng(7).integers(0, 97, (2, 24)).astype(np.int32)

CASES = {
    "llama-gqa": LLAMA,
    "llama-f16-sharded": {**LLAMA, "torch_dtype": "float16"},
    "llama-linear-rope": {**LLAMA, "rope_scaling": {"type": "linear", "factor": 4.0}},
    "llama3-rope-head-dim": {**LLAMA, "rope_scaling": LLAMA3_SCALING, "head_dim": 16, "rope_theta": 1e4},
    "qwen2-bias-tied": QWEN2,
    "qwen2-bf16": {**QWEN2, "tie_word_embeddings": False, "torch_dtype": "bfloat16"},
}
DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


@pytest.mark.parametrize("case", list(CASES))
def test_imported_logits_match_numpy_float64(tmp_path, case):
    hf = CASES[case]
    tensors = hf_tensors(hf, seed=len(case), dtype=DTYPES[hf["torch_dtype"]])
    write_hf_dir(tmp_path / "src", tensors, hf, shards=3 if "sharded" in case else None)
    summary = hf_checkpoint.import_hf(str(tmp_path / "src"), str(tmp_path / "wd"))
    cfg = summary["config"]
    assert cfg.qkv_bias == (hf["model_type"] == "qwen2") and cfg.tie_embeddings == hf["tie_word_embeddings"]
    assert cfg.num_kv_heads == hf["num_key_value_heads"] and cfg.attention_head_dim == hf.get("head_dim", 8)
    err = rel_err(model_logits(str(tmp_path / "wd"), TOKENS), numpy_logits(tensors, hf, TOKENS))
    assert err <= 1e-4, err
    # Scaling changes the logits: the oracle without it disagrees (so the check above could fail).
    if hf.get("rope_scaling"):
        plain = numpy_logits(tensors, {**hf, "rope_scaling": None}, TOKENS)
        assert rel_err(plain, numpy_logits(tensors, hf, TOKENS)) > 1e-3


def test_import_is_a_copy_and_export_is_byte_identical(tmp_path):
    hf = {**QWEN2, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
    tensors = hf_tensors(hf, seed=3, dtype=ml_dtypes.bfloat16)
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.ones(4, np.float32)  # old buffer: ignored
    write_hf_dir(tmp_path / "src", tensors, hf, shards=2)
    hf_checkpoint.import_hf(str(tmp_path / "src"), str(tmp_path / "wd"))
    hf_checkpoint.export_hf(str(tmp_path / "wd"), str(tmp_path / "out"))
    back = read_hf_dir(tmp_path / "out")
    del tensors["model.layers.0.self_attn.rotary_emb.inv_freq"]
    assert set(back) == set(tensors)
    for key, value in tensors.items():
        assert back[key].dtype == value.dtype and back[key].tobytes() == value.tobytes(), key
    assert json.load(open(tmp_path / "out" / "config.json")) == hf  # verbatim


def test_in_memory_export_round_trips(tmp_path):
    from neurojax.nn.transformer_config import transformer_preset

    cfg = transformer_preset("transformer_micro", num_kv_heads=2, qkv_bias=True, tie_embeddings=True,
                             rope_scaling={"rope_type": "linear", "factor": 2.0})
    params = jax.jit(TransformerLM(cfg).init)(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))["params"]
    params = jax.tree_util.tree_map(lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(1), p.shape), params)
    hf_llama.export_hf_llama(params, cfg, str(tmp_path / "hf"), {"tokenizer.json": "{}"})
    assert (tmp_path / "hf" / "tokenizer.json").read_text() == "{}"
    hf = json.load(open(tmp_path / "hf" / "config.json"))
    assert hf["model_type"] == "qwen2" and hf["rope_scaling"] == {"rope_type": "linear", "factor": 2.0}
    tensors = read_hf_dir(tmp_path / "hf")
    want = numpy_logits(tensors, hf, TOKENS % cfg.vocab_size)
    got = np.asarray(TransformerLM(cfg).apply({"params": params}, jnp.asarray(TOKENS % cfg.vocab_size))[0])
    assert rel_err(got, want) <= 1e-4
    imported = hf_llama.config_from_hf(hf)
    assert imported.replace(init_std=cfg.init_std) == cfg
    flat = flax.traverse_util.flatten_dict(params)
    for e in hf_llama.key_table(cfg):
        assert np.array_equal(tensors[e.key], np.asarray(flat[e.path])), e.key


def test_tokenizer_json_is_imported_and_checked(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"t{i}": i for i in range(LLAMA["vocab_size"] - 1)}
    vocab["<unk>"] = LLAMA["vocab_size"] - 1
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    write_hf_dir(tmp_path / "src", hf_tensors(LLAMA), LLAMA)
    tok.save(str(tmp_path / "src" / "tokenizer.json"))
    hf_checkpoint.import_hf(str(tmp_path / "src"), str(tmp_path / "wd"))
    loaded = hf_checkpoint.workdir_tokenizer(str(tmp_path / "wd"))
    assert list(loaded.encode("t3 t5 t96")) == [3, 5, 96]
    small = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    write_hf_dir(tmp_path / "bad", hf_tensors(LLAMA), LLAMA)
    small.save(str(tmp_path / "bad" / "tokenizer.json"))
    with pytest.raises(NeurojaxError, match="vocab"):
        hf_checkpoint.import_hf(str(tmp_path / "bad"), str(tmp_path / "wd2"))
    assert not os.path.exists(tmp_path / "wd2")


BAD = {
    "model-type": ({**LLAMA, "model_type": "mistral"}, ["mistral", "llama", "qwen2"]),
    "rope-yarn": ({**LLAMA, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, ["rope_scaling", "yarn"]),
    "rope-no-factor": ({**LLAMA, "rope_scaling": {"rope_type": "linear"}}, ["rope_scaling.factor"]),
    "heads": ({**LLAMA, "num_key_value_heads": 3}, ["num_key_value_heads=3", "num_attention_heads=4"]),
    "attention-bias": ({**LLAMA, "attention_bias": True}, ["attention_bias"]),
    "sliding-window": ({**QWEN2, "use_sliding_window": True}, ["use_sliding_window"]),
    "act": ({**LLAMA, "hidden_act": "gelu"}, ["hidden_act"]),
    "missing-field": ({k: v for k, v in LLAMA.items() if k != "intermediate_size"}, ["intermediate_size"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_configs_are_clear_errors_and_write_nothing(tmp_path, case):
    hf, needles = BAD[case]
    write_hf_dir(tmp_path / "src", hf_tensors(LLAMA), hf)
    with pytest.raises(NeurojaxError) as err:
        hf_checkpoint.import_hf(str(tmp_path / "src"), str(tmp_path / "wd"))
    for needle in ["config.json", *needles]:
        assert needle in str(err.value), str(err.value)
    assert not os.path.exists(tmp_path / "wd") and os.listdir(tmp_path) == ["src"]


def test_missing_and_misshapen_tensors_name_the_key(tmp_path):
    tensors = hf_tensors(LLAMA)
    del tensors["model.layers.1.mlp.up_proj.weight"]
    write_hf_dir(tmp_path / "a", tensors, LLAMA)
    with pytest.raises(NeurojaxError, match="model.layers.1.mlp.up_proj.weight"):
        hf_checkpoint.import_hf(str(tmp_path / "a"), str(tmp_path / "wd"))
    tensors = hf_tensors(LLAMA)
    tensors["model.layers.0.self_attn.k_proj.weight"] = tensors["model.layers.0.self_attn.q_proj.weight"]
    write_hf_dir(tmp_path / "b", tensors, LLAMA)
    with pytest.raises(NeurojaxError, match=r"k_proj.weight.*shape \[32, 32\].*\[16, 32\]"):
        hf_checkpoint.import_hf(str(tmp_path / "b"), str(tmp_path / "wd"))
    assert not os.path.exists(tmp_path / "wd")


def test_spike_coded_model_is_not_exportable(tmp_path):
    from neurojax.nn.transformer_config import transformer_preset

    cfg = transformer_preset("transformer_micro", spike_k=3.0)
    params = jax.jit(TransformerLM(cfg).init)(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))["params"]
    with pytest.raises(NeurojaxError, match="spike"):
        hf_llama.export_hf_llama(params, cfg, str(tmp_path / "hf"))
    assert not os.path.exists(tmp_path / "hf")
