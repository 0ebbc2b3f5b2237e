"""Transformer++ (LLaMA-style): forward vs a NumPy float64 oracle, KV-cache decoding vs recomputation,
padding, parameter layout and counts, bad configs and states."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurojax.errors import NeurojaxError
from neurojax.inference import SamplingConfig, generate
from neurojax.nn import (
    TRANSFORMER_PRESETS,
    TransformerConfig,
    TransformerLM,
    count_params,
    preset,
    transformer_count_params,
    transformer_decode_step,
    transformer_init_params,
    transformer_initial_state,
    transformer_preset,
)
from neurojax.nn.transformer import transformer_abstract_params, transformer_state_bytes
from neurojax.train.model_factory import make_model, model_config, model_section

# Grouped-query attention (6 query heads share 2 kv heads), an explicit head size different from
# d_model / num_heads, untied head: the general case a LLaMA/SmolLM2 import needs.
GQA = TransformerConfig(vocab_size=23, d_model=16, num_layers=2, num_heads=6, num_kv_heads=2, intermediate_size=24,
                        rope_theta=500.0, rms_norm_eps=1e-5, max_seq_len=32, head_dim=4)
TIED = GQA.replace(tie_embeddings=True, num_heads=4, num_kv_heads=4, head_dim=None, rope_theta=1e4)
GREEDY = SamplingConfig(temperature=0.0)


def random_params(config, seed, scale=0.3):
    """Weights drawn with NumPy from the parameter shapes: large enough that attention is far from uniform;
    norm weights around 1."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        if len(leaf.shape) == 1:
            return jnp.asarray(1.0 + 0.2 * rng.standard_normal(leaf.shape), jnp.float32)
        return jnp.asarray(scale * rng.standard_normal(leaf.shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, transformer_abstract_params(config))


# ---- the independent oracle ---------------------------------------------------------------------

def _rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _rope(x, positions, theta):
    """x [B, T, H, D], positions [B, T]: rotate-half RoPE, angle p * theta^(-2i/D) on channels i and i + D/2."""
    d = x.shape[-1]
    inv = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    ang = positions[..., None].astype(np.float64) * inv  # [B, T, D/2]
    cos, sin = np.cos(ang)[:, :, None], np.sin(ang)[:, :, None]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def numpy_forward(params, cfg, tokens, real=None):
    """Logits [B, T, V] in float64. `real` [B, T] marks real tokens (default all): padding is never
    attended to and a token's position counts only the real tokens before it."""
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    tokens = np.asarray(tokens)
    b, t = tokens.shape
    real = np.ones((b, t), bool) if real is None else np.asarray(real, bool)
    positions = np.maximum(np.cumsum(real, axis=1) - 1, 0)
    dh = cfg.head_dim or cfg.d_model // cfg.num_heads
    group = cfg.num_heads // cfg.num_kv_heads
    visible = real[:, None, :] & np.tril(np.ones((t, t), bool))[None]  # [B, Tq, Tk]
    x = p["embed_tokens"]["embedding"][tokens]
    for l in range(cfg.num_layers):
        lp = p[f"layers_{l}"]
        at = lp["self_attn"]
        h = _rms(x, lp["input_layernorm"]["weight"], cfg.rms_norm_eps)
        q = (h @ at["q_proj"]["weight"].T).reshape(b, t, cfg.num_heads, dh)
        k = (h @ at["k_proj"]["weight"].T).reshape(b, t, cfg.num_kv_heads, dh)
        v = (h @ at["v_proj"]["weight"].T).reshape(b, t, cfg.num_kv_heads, dh)
        q, k = _rope(q, positions, cfg.rope_theta), _rope(k, positions, cfg.rope_theta)
        out = np.zeros((b, t, cfg.num_heads, dh))
        for head in range(cfg.num_heads):
            kv = head // group  # HF repeat_kv: query head h reads kv head h // group
            s = np.einsum("btd,bsd->bts", q[:, :, head], k[:, :, kv]) / np.sqrt(dh)
            s = np.where(visible, s, -1e300)  # a padding query that sees nothing: uniform, never compared
            s = s - s.max(axis=-1, keepdims=True)
            w = np.exp(s)
            w = w / w.sum(axis=-1, keepdims=True)
            out[:, :, head] = np.einsum("bts,bsd->btd", w, v[:, :, kv])
        r = x + out.reshape(b, t, -1) @ at["o_proj"]["weight"].T
        m = lp["mlp"]
        h2 = _rms(r, lp["post_attention_layernorm"]["weight"], cfg.rms_norm_eps)
        gate, up = h2 @ m["gate_proj"]["weight"].T, h2 @ m["up_proj"]["weight"].T
        x = r + (gate / (1 + np.exp(-gate)) * up) @ m["down_proj"]["weight"].T
    x = _rms(x, p["norm"]["weight"], cfg.rms_norm_eps)
    head = p["embed_tokens"]["embedding"] if cfg.tie_embeddings else p["lm_head"]["weight"]
    return x @ head.T


# ---- forward ------------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [GQA, TIED], ids=["gqa_untied", "mha_tied"])
def test_forward_matches_numpy_float64_oracle(cfg):
    params = random_params(cfg, 1)
    tokens = np.random.default_rng(2).integers(0, cfg.vocab_size, (2, 11))
    logits, state = jax.jit(TransformerLM(cfg).apply)({"params": params}, jnp.asarray(tokens, jnp.int32))
    want = numpy_forward(params, cfg, tokens)
    assert logits.shape == (2, 11, cfg.vocab_size) and logits.dtype == jnp.float32
    err = np.abs(np.asarray(logits, np.float64) - want)
    assert err.max() < 2e-4 * max(1.0, np.abs(want).max()), f"max err {err.max():.3g}, mean {err.mean():.3g}"
    assert int(state.length) == 11 and state.layers[0].k.shape == (2, 11, cfg.num_kv_heads, cfg.attention_head_dim)


def test_left_padding_matches_the_unpadded_row():
    """A left-padded row's logits at its real positions equal the unpadded row's (positions count real tokens)."""
    params = random_params(GQA, 3)
    rng = np.random.default_rng(4)
    row = rng.integers(0, GQA.vocab_size, (1, 7))
    pad = 3
    batch = np.concatenate([rng.integers(0, GQA.vocab_size, (1, pad)), row], axis=1)
    mask = np.ones_like(batch, np.float32)
    mask[0, :pad] = 0
    apply = jax.jit(TransformerLM(GQA).apply)
    alone, _ = apply({"params": params}, jnp.asarray(row, jnp.int32))
    padded, _ = apply({"params": params}, jnp.asarray(batch, jnp.int32), None, jnp.asarray(mask))
    np.testing.assert_allclose(np.asarray(padded)[0, pad:], np.asarray(alone)[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(padded, np.float64)[0, pad:],
                               numpy_forward(params, GQA, batch, mask > 0)[0, pad:], rtol=2e-4, atol=2e-4)
    unmasked, _ = apply({"params": params}, jnp.asarray(batch, jnp.int32))
    assert not np.allclose(np.asarray(unmasked)[0, pad:], np.asarray(alone)[0], atol=1e-3)  # the mask mattered


# ---- KV cache -----------------------------------------------------------------------------------

def test_cached_greedy_decoding_equals_full_recompute():
    """Prefill + one-token decode steps with the explicit cache == re-running the whole sequence each step."""
    cfg = GQA
    params = random_params(cfg, 5)
    model = TransformerLM(cfg)
    prompt = np.random.default_rng(6).integers(0, cfg.vocab_size, (2, 5)).astype(np.int32)
    n = 9
    full = jax.jit(lambda p, t: model.apply({"params": p}, t)[0])
    step = jax.jit(lambda p, tok, s: transformer_decode_step(model, {"params": p}, tok, s))

    # Oracle: greedy by recomputing the whole sequence each step. It lives in one [B, P + n] buffer (one
    # compile): the model is causal, so the unfilled tail cannot change the logits at earlier positions.
    plen = prompt.shape[1]
    seq = np.zeros((2, plen + n), np.int32)
    seq[:, :plen] = prompt
    naive, naive_logits = [], []
    for i in range(n):
        logits = np.asarray(full(params, jnp.asarray(seq)))[:, plen + i - 1]
        nxt = logits.argmax(-1).astype(np.int32)
        naive.append(nxt)
        naive_logits.append(logits)
        if i + 1 < n:
            seq[:, plen + i] = nxt

    state = transformer_initial_state(cfg, 2, prompt.shape[1] + n)
    logits, state = jax.jit(model.apply)({"params": params}, jnp.asarray(prompt), state)
    last = np.asarray(logits)[:, -1]
    cached = []
    for i in range(n):
        np.testing.assert_allclose(last, naive_logits[i], rtol=1e-5, atol=1e-5)
        tok = last.argmax(-1).astype(np.int32)
        cached.append(tok)
        step_logits, state = step(params, jnp.asarray(tok), state)
        last = np.asarray(step_logits)
    np.testing.assert_array_equal(np.stack(cached, 1), np.stack(naive, 1))
    assert int(state.length) == prompt.shape[1] + n

    # The library's generate (jitted prefill + lax.scan of decode steps, cache sized prompt + n - 1).
    got = np.asarray(generate(model, {"params": params}, prompt, n, jax.random.PRNGKey(0), GREEDY))
    np.testing.assert_array_equal(got, np.stack(naive, 1))


def test_chunked_prefill_equals_one_pass():
    cfg = TIED
    params = random_params(cfg, 7)
    apply = jax.jit(TransformerLM(cfg).apply)
    tokens = jnp.asarray(np.random.default_rng(8).integers(0, cfg.vocab_size, (2, 12)), jnp.int32)
    whole, _ = apply({"params": params}, tokens)
    state = transformer_initial_state(cfg, 2, 16)
    parts = []
    for a, b in ((0, 5), (5, 6), (6, 12)):
        out, state = apply({"params": params}, tokens[:, a:b], state)
        parts.append(out)
    np.testing.assert_allclose(np.asarray(jnp.concatenate(parts, 1)), np.asarray(whole), rtol=1e-5, atol=1e-5)
    assert int(state.length) == 12 and np.asarray(state.valid)[:, :12].all() and not np.asarray(state.valid)[:, 12:].any()


def test_generate_with_left_padding_matches_the_unpadded_prompt():
    params = random_params(GQA, 9)
    model = TransformerLM(GQA)
    rng = np.random.default_rng(10)
    prompt = rng.integers(0, GQA.vocab_size, (2, 5)).astype(np.int32)
    pad = 2
    batch = np.concatenate([rng.integers(0, GQA.vocab_size, (2, pad)).astype(np.int32), prompt], axis=1)
    batch[1] = rng.integers(0, GQA.vocab_size, 7)  # row 1: a longer prompt, all real
    mask = np.ones_like(batch, np.float32)
    mask[0, :pad] = 0
    alone = np.asarray(generate(model, {"params": params}, prompt, 6, jax.random.PRNGKey(0), GREEDY))
    got = np.asarray(generate(model, {"params": params}, batch, 6, jax.random.PRNGKey(0), GREEDY, prompt_mask=mask))
    np.testing.assert_array_equal(got[0], alone[0])
    row1 = np.asarray(generate(model, {"params": params}, batch[1:], 6, jax.random.PRNGKey(0), GREEDY))
    np.testing.assert_array_equal(got[1], row1[0])


def test_cache_and_budget_errors():
    params = random_params(GQA, 11)
    model = TransformerLM(GQA)
    tokens = jnp.zeros((1, 4), jnp.int32)
    state = transformer_initial_state(GQA, 1, 6)
    _, state = model.apply({"params": params}, tokens, state)
    with pytest.raises(NeurojaxError, match="KV cache is full"):
        model.apply({"params": params}, tokens, state)
    with pytest.raises(NeurojaxError, match="do not fit a KV cache of 6 slots"):
        model.apply({"params": params}, jnp.zeros((1, 7), jnp.int32), transformer_initial_state(GQA, 1, 6))
    with pytest.raises(NeurojaxError, match="expected keys and values of shape"):
        model.apply({"params": params}, tokens, transformer_initial_state(GQA, 2, 6)._replace(
            valid=jnp.zeros((1, 6), bool)))
    with pytest.raises(NeurojaxError, match="exceed the sequence budget"):
        model.apply({"params": params}, jnp.zeros((1, 33), jnp.int32))
    with pytest.raises(NeurojaxError, match="exceeds the sequence budget"):
        transformer_initial_state(GQA, 1, 33)
    with pytest.raises(NeurojaxError, match="sequence budget max_seq_len=32"):
        generate(model, {"params": params}, np.zeros((1, 30), np.int32), 4, jax.random.PRNGKey(0), GREEDY)
    with pytest.raises(NeurojaxError, match="batch_size must be a positive integer"):
        transformer_initial_state(GQA, 0)
    # Exactly at the budget is fine: 30 + 3 - 1 = 32 consumed tokens.
    assert generate(model, {"params": params}, np.zeros((1, 30), np.int32), 3, jax.random.PRNGKey(0),
                    GREEDY).shape == (1, 3)
    # Keys and values (float32, 2 layers x 10 slots x 2 kv heads x 4 channels), the validity mask, the counter.
    assert transformer_state_bytes(GQA, 1, 10) == 2 * 2 * 10 * 2 * 4 * 4 + 10 + 4


# ---- parameters, presets, configs ---------------------------------------------------------------

def test_parameter_names_mirror_a_llama_checkpoint():
    flat = {"/".join(k): v.shape for k, v in flax.traverse_util.flatten_dict(transformer_abstract_params(GQA)).items()}
    assert flat["embed_tokens/embedding"] == (23, 16)
    assert flat["layers_0/self_attn/q_proj/weight"] == (6 * 4, 16)  # [out, in], as HF q_proj.weight
    assert flat["layers_0/self_attn/k_proj/weight"] == flat["layers_0/self_attn/v_proj/weight"] == (2 * 4, 16)
    assert flat["layers_0/self_attn/o_proj/weight"] == (16, 6 * 4)
    assert flat["layers_1/mlp/gate_proj/weight"] == flat["layers_1/mlp/up_proj/weight"] == (24, 16)
    assert flat["layers_1/mlp/down_proj/weight"] == (16, 24)
    assert flat["layers_1/input_layernorm/weight"] == flat["layers_1/post_attention_layernorm/weight"] == (16,)
    assert flat["norm/weight"] == (16,) and flat["lm_head/weight"] == (23, 16)
    assert not any("bias" in k for k in flat)
    tied = {"/".join(k) for k in flax.traverse_util.flatten_dict(transformer_abstract_params(TIED))}
    assert "lm_head/weight" not in tied


def test_parameter_counts():
    # SmolLM2-135M by hand: embedding 49152*576 (tied), per layer q,o 576^2, k,v 576*192, MLP 3*576*1536,
    # two norms of 576; final norm 576. The published model has 134,515,008 parameters.
    per_layer = 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536 + 2 * 576
    assert transformer_count_params(transformer_preset("smollm2_135M")) == 49152 * 576 + 30 * per_layer + 576 \
        == 134_515_008
    # transformer_tiny has the MatMul-free tiny preset's projection sizes; the MatMul-free LM adds one norm per
    # projection (7 per layer + the head's) and the lower bounds [L, d].
    tiny, mmf = transformer_preset("transformer_tiny"), preset("tiny")
    extra = 4 * (6 * 256 + 512) + 256 + 4 * 256
    assert count_params(mmf) - transformer_count_params(tiny) == extra
    params = transformer_init_params(TransformerLM(GQA), jax.random.PRNGKey(0))
    assert transformer_count_params(params) == transformer_count_params(GQA)


def test_presets_build_through_the_model_factory():
    for name in TRANSFORMER_PRESETS:
        section = model_section(name)
        assert section["family"] == "transformer"
        cfg = model_config(section)
        assert cfg == transformer_preset(name) and isinstance(make_model(cfg), TransformerLM)
    assert transformer_preset("TRANSFORMER_TINY", num_kv_heads=2).num_kv_heads == 2
    # head_dim=None stays settable from the command line (an int-typed reference in the run config).
    from neurojax.train import run_config, validate_run_config

    cfg = run_config("transformer_tiny")
    assert cfg.model.get_type("head_dim") is int and cfg.model.head_dim is None
    cfg.model.head_dim = 32
    assert validate_run_config(cfg).attention_head_dim == 32


@pytest.mark.parametrize("change, match", [
    ({"num_heads": 5}, "num_heads=5 is not divisible by transformer.num_kv_heads=2"),
    ({"num_kv_heads": 0}, "num_kv_heads must be a positive integer"),
    ({"d_model": 15, "head_dim": None}, "not divisible by transformer.num_heads"),
    ({"head_dim": 3}, "must be even"),
    ({"rope_theta": 0.0}, "rope_theta must be a number > 0"),
    ({"rms_norm_eps": -1.0}, "rms_norm_eps must be a number >= 0"),
    ({"max_seq_len": 0}, "max_seq_len must be a positive integer"),
    ({"tie_embeddings": "yes"}, "tie_embeddings must be True or False"),
    ({"vocab_size": 2.5}, "vocab_size must be a positive integer"),
])
def test_bad_config_values(change, match):
    with pytest.raises(NeurojaxError, match=match):
        GQA.replace(**change)


def test_unknown_field_and_preset():
    with pytest.raises(NeurojaxError, match="unknown transformer config fields"):
        model_config({**model_section("transformer_micro"), "window": 4})
    with pytest.raises(NeurojaxError, match="unknown transformer preset"):
        transformer_preset("transformer_huge")
    with pytest.raises(NeurojaxError, match="tokens must be integers"):
        TransformerLM(GQA).apply({"params": random_params(GQA, 0)}, jnp.zeros((1, 3), jnp.float32))
