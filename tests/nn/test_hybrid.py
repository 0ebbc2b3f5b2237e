"""Hybrid GLA / sliding-window LM: references in NumPy, GQA, sequence vs decoding, state, presets, training."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from neurojax import NeurojaxError
from neurojax.nn.hybrid import (
    HybridLM,
    HybridState,
    hybrid_abstract_params,
    hybrid_count_params,
    hybrid_decode_step,
    hybrid_init_params,
    hybrid_initial_state,
    hybrid_state_bytes,
)
from neurojax.nn.hybrid_config import HYBRID_PRESETS, HybridConfig, hybrid_preset
from neurojax.nn.linear_attention import GatedLinearAttention
from neurojax.nn.loss import next_token_loss
from neurojax.nn.rope import apply_rope, rope_cos_sin
from neurojax.nn.sliding_window import SlidingWindowAttention, SWAState, ring_positions, sliding_window_mask

TOL = 1e-5
# Larger init than the default 0.02 so that logits are O(1) and comparisons are meaningful.
MICRO = hybrid_preset("hybrid_micro", init_std=0.3)


def _maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _randomise_norms(params, seed=0):
    """Norm weights are ones at init: perturb them so that they matter."""
    rng = np.random.default_rng(seed)
    flat = flax.traverse_util.flatten_dict(params)
    for k, v in flat.items():
        if k[-1] == "weight":
            flat[k] = v + jnp.asarray(rng.normal(size=v.shape).astype(np.float32)) * 0.3
    return flax.traverse_util.unflatten_dict(flat)


def _x(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def _tokens(seed, shape, vocab):
    return jnp.asarray(np.random.default_rng(seed).integers(0, vocab, size=shape), jnp.int32)


def _np(tree):
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)


# ------------------------------------------------------------------------- NumPy references
def _np_rope(x, positions, theta):
    """x [T, H, D] rotated at `positions` (rotate-half layout), float64."""
    d = x.shape[-1]
    inv = 1.0 / theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    ang = np.asarray(positions, np.float64)[:, None] * inv[None]
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))
    rot = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos[:, None] + rot * sin[:, None]


def _np_swa(p, x, cfg):
    """Brute-force windowed attention over a whole sequence starting at position 0, float64 loops."""
    x = np.asarray(x, np.float64)
    b, t, _ = x.shape
    h, kh, d, w = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.window
    out = np.zeros((b, t, h * d))
    for bi in range(b):
        q = (x[bi] @ p["q_proj"]["weight"].T + p["q_proj"]["bias"]).reshape(t, h, d)
        k = (x[bi] @ p["k_proj"]["weight"].T + p["k_proj"]["bias"]).reshape(t, kh, d)
        v = (x[bi] @ p["v_proj"]["weight"].T + p["v_proj"]["bias"]).reshape(t, kh, d)
        q, k = _np_rope(q, np.arange(t), cfg.rope_theta), _np_rope(k, np.arange(t), cfg.rope_theta)
        for ti in range(t):
            for hi in range(h):
                j = hi // (h // kh)
                keys = list(range(max(0, ti - w + 1), ti + 1))
                s = np.array([q[ti, hi] @ k[si, j] for si in keys]) / np.sqrt(d)
                a = np.exp(s - s.max())
                a /= a.sum()
                out[bi, ti, hi * d:(hi + 1) * d] = sum(ai * v[si, j] for ai, si in zip(a, keys))
    return out @ p["o_proj"]["weight"].T


def _np_gla(p, x, cfg):
    """The GLA recurrence as a float64 loop; returns (output, final state [B, H_kv, dk, dv])."""
    x = np.asarray(x, np.float64)
    b, t, _ = x.shape
    h, kh, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    out = np.zeros((b, t, h * d))
    states = np.zeros((b, kh, d, d))
    for bi in range(b):
        q = relu(x[bi] @ p["q_proj"]["weight"].T + p["q_proj"]["bias"]).reshape(t, h, d)
        k = relu(x[bi] @ p["k_proj"]["weight"].T + p["k_proj"]["bias"]).reshape(t, kh, d)
        v = (x[bi] @ p["v_proj"]["weight"].T + p["v_proj"]["bias"]).reshape(t, kh, d)
        gk = x[bi] @ p["gk_proj_0"]["weight"].T @ p["gk_proj_1"]["weight"].T + p["gk_proj_1"]["bias"]
        g = (-np.logaddexp(0.0, -gk) / cfg.decay_normalizer).reshape(t, kh, d)  # logsigmoid / 16
        S = np.zeros((kh, d, d))
        for ti in range(t):
            for j in range(kh):
                S[j] = np.exp(g[ti, j])[:, None] * S[j] + np.outer(k[ti, j], v[ti, j])
            for hi in range(h):
                o = q[ti, hi] @ S[hi // (h // kh)] / np.sqrt(d)
                o = o / np.sqrt(np.mean(o ** 2) + cfg.gla_norm_eps) * p["g_norm"]["weight"]
                out[bi, ti, hi * d:(hi + 1) * d] = o
        states[bi] = S
    return out @ p["o_proj"]["weight"].T, states


def _mixer(cls, cfg, x, seed=0):
    module = cls(cfg)
    extra = (jnp.zeros((), jnp.int32),) if cls is SlidingWindowAttention else ()
    state = cls.initial_state(cfg, x.shape[0])
    params = module.init(jax.random.PRNGKey(seed), x, state, *extra)["params"]
    return module, _randomise_norms(params, seed), state


# ------------------------------------------------------------------------- config
def test_config_layout_and_presets():
    assert MICRO.layer_kinds == ("gla", "swa")
    assert hybrid_preset("hybrid_micro", num_layers=5).layer_kinds == ("gla", "swa", "gla", "swa", "gla")
    assert hybrid_preset("hybrid_micro", layer_pattern=["swa"]).layer_pattern == ("swa",)
    big = HYBRID_PRESETS["spikingbrain_7B"]
    assert hybrid_preset("SPIKINGBRAIN_7b") == big and big.num_groups == 7
    assert big.layer_kinds[:3] == ("gla", "swa", "gla") and big.layer_kinds.count("gla") == 14
    tiny = hybrid_preset("hybrid_tiny")
    assert (tiny.vocab_size, tiny.d_model, tiny.num_layers, tiny.window) == (259, 256, 4, 64)
    assert HybridConfig.from_dict(tiny.to_dict()) == tiny


@pytest.mark.parametrize("changes", [
    {"num_kv_heads": 3}, {"window": 0}, {"window": -4}, {"head_dim": 7}, {"num_heads": 0},
    {"decay_rank": 0}, {"layer_pattern": ("gla", "mlp")}, {"layer_pattern": "gla"}, {"layer_pattern": ()},
    {"rope_theta": 0.0}, {"rms_norm_eps": -1.0}, {"decay_normalizer": 0.0}, {"window": 2.5},
    {"vocab_size": True},
])
def test_config_rejects_bad_values(changes):
    with pytest.raises(NeurojaxError):
        MICRO.replace(**changes)


def test_config_rejects_unknown_names():
    with pytest.raises(NeurojaxError, match="unknown hybrid preset"):
        hybrid_preset("nope")
    with pytest.raises(NeurojaxError, match="unknown hybrid config fields"):
        HybridConfig.from_dict({**MICRO.to_dict(), "bogus": 1})


# ------------------------------------------------------------------------- sliding window
def test_sliding_window_mask_matches_double_loop():
    for window in (1, 3, 5):
        for offset in (0, 2, 7):
            q_pos = np.arange(offset, offset + 6)
            k_pos = np.concatenate([np.array(ring_positions(offset, window)), q_pos])
            got = np.asarray(sliding_window_mask(jnp.asarray(q_pos), jnp.asarray(k_pos), window))
            want = np.zeros_like(got)
            for i, t in enumerate(q_pos):
                for j, s in enumerate(k_pos):
                    want[i, j] = 0 <= s and t - window < s <= t
            np.testing.assert_array_equal(got, want)
            # each query sees itself and window - 1 earlier tokens, each exactly once
            np.testing.assert_array_equal(got.sum(1), np.minimum(q_pos + 1, window))


def test_ring_positions():
    for window in (1, 4):
        for offset in range(11):
            want = [max([p for p in range(offset) if p % window == i], default=-1) for i in range(window)]
            got = np.asarray(ring_positions(offset, window))
            np.testing.assert_array_equal(np.where(got >= 0, got, -1), want)


def test_rope_is_relative():
    q, k = _x(0, (1, 1, 1, 8)), _x(1, (1, 1, 1, 8))

    def dot(pq, pk):
        cq, sq = rope_cos_sin(jnp.array([pq]), 8, 1e4)
        ck, sk = rope_cos_sin(jnp.array([pk]), 8, 1e4)
        return float(jnp.sum(apply_rope(q, cq, sq) * apply_rope(k, ck, sk)))

    assert abs(dot(5, 2) - dot(13, 10)) < 1e-5 and abs(dot(5, 2) - dot(5, 3)) > 1e-4


def test_swa_matches_numpy_float64_and_chunks():
    cfg = MICRO.replace(window=3)
    x = _x(3, (2, 8, cfg.d_model))
    module, params, state = _mixer(SlidingWindowAttention, cfg, x)
    want = _np_swa(_np(params), x, cfg)
    apply = jax.jit(module.apply)
    out, _ = apply({"params": params}, x, state, jnp.zeros((), jnp.int32))
    assert _maxdiff(out, want) <= TOL, _maxdiff(out, want)
    # chunked from a non-empty state (second chunk longer than the window), and one decode step
    o1, s = apply({"params": params}, x[:, :2], state, jnp.asarray(0, jnp.int32))
    o2, s = apply({"params": params}, x[:, 2:7], s, jnp.asarray(2, jnp.int32))
    o3, s = apply({"params": params}, x[:, 7:], s, jnp.asarray(7, jnp.int32))
    chunked = jnp.concatenate([o1, o2, o3], axis=1)
    assert _maxdiff(chunked, want) <= TOL, _maxdiff(chunked, want)


def test_gla_matches_numpy_loop():
    cfg = MICRO
    x = _x(4, (2, 7, cfg.d_model))
    module, params, state = _mixer(GatedLinearAttention, cfg, x, seed=1)
    want, want_state = _np_gla(_np(params), x, cfg)
    out, final = jax.jit(module.apply)({"params": params}, x, state)
    assert _maxdiff(out, want) <= TOL, _maxdiff(out, want)
    assert _maxdiff(final, want_state) <= TOL
    # the decay is live: the state is not the plain sum of k^T v
    assert float(jnp.max(jnp.abs(final))) > 0.1


def _repeat_heads(weight_or_bias, kh, g):
    """Output axis (first) kh * D -> kh * g * D, repeating each kv head g times (query head h -> kv head h // g)."""
    a = np.asarray(weight_or_bias)
    rest = a.shape[1:]
    a = a.reshape(kh, -1, *rest)
    return jnp.asarray(np.repeat(a, g, axis=0).reshape(-1, *rest))


@pytest.mark.parametrize("cls", [GatedLinearAttention, SlidingWindowAttention])
def test_gqa_equals_repeated_kv_heads(cls):
    cfg = MICRO.replace(window=3)  # 4 query heads, 2 kv heads
    full = cfg.replace(num_kv_heads=cfg.num_heads)
    x = _x(5, (2, 6, cfg.d_model))
    module, params, state = _mixer(cls, cfg, x, seed=2)
    rep = flax.traverse_util.flatten_dict(params)
    for path in list(rep):
        if path[0] in ("k_proj", "v_proj", "gk_proj_1"):
            rep[path] = _repeat_heads(rep[path], cfg.num_kv_heads, cfg.num_groups)
    rep = flax.traverse_util.unflatten_dict(rep)
    extra = (jnp.zeros((), jnp.int32),) if cls is SlidingWindowAttention else ()
    out, s = module.apply({"params": params}, x, state, *extra)
    out_full, s_full = cls(full).apply({"params": rep}, x, cls.initial_state(full, 2), *extra)
    assert _maxdiff(out, out_full) <= TOL, _maxdiff(out, out_full)
    for a, b in zip(jax.tree_util.tree_leaves(s), jax.tree_util.tree_leaves(s_full)):  # state: shared per group
        axis = 1 if cls is GatedLinearAttention else 2
        assert _maxdiff(jnp.repeat(a, cfg.num_groups, axis=axis), b) <= TOL


# ------------------------------------------------------------------------- whole model
@pytest.fixture(scope="module")
def lm():
    cfg = MICRO.replace(num_layers=3)  # gla, swa, gla
    model = HybridLM(cfg)
    params = _randomise_norms(jax.jit(lambda k: hybrid_init_params(model, k))(jax.random.PRNGKey(0)))
    step = jax.jit(lambda v, t, s: hybrid_decode_step(model, v, t, s))
    return cfg, model, {"params": params}, jax.jit(model.apply), step


def _decode_all(step, variables, tokens, state):
    outs = []
    for t in range(tokens.shape[1]):
        logits, state = step(variables, tokens[:, t], state)
        outs.append(logits)
    return jnp.stack(outs, 1), state


def test_sequence_equals_token_by_token_decoding(lm):
    cfg, _, variables, apply, step = lm
    tokens = _tokens(1, (2, 11), cfg.vocab_size)  # 11 > window 4: the ring buffer wraps twice
    logits, state = apply(variables, tokens)
    assert logits.shape == (2, 11, cfg.vocab_size) and logits.dtype == jnp.float32
    assert float(jnp.std(logits)) > 0.3  # O(1) logits: the tolerance below is meaningful
    dec, dstate = _decode_all(step, variables, tokens, hybrid_initial_state(cfg, 2))
    assert _maxdiff(logits, dec) <= TOL, _maxdiff(logits, dec)
    assert int(state.offset) == int(dstate.offset) == 11
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(dstate)):  # relative: |S| ~ 30
        assert a.shape == b.shape and _maxdiff(a, b) <= TOL * max(1.0, float(jnp.max(jnp.abs(a))))
    # chunked prefill from non-empty states (a chunk longer than the window), then decoding
    s = hybrid_initial_state(cfg, 2)
    parts = []
    for lo, hi in ((0, 3), (3, 4), (4, 9)):
        out, s = apply(variables, tokens[:, lo:hi], s)
        parts.append(out)
    tail, s = _decode_all(step, variables, tokens[:, 9:], s)
    chunked = jnp.concatenate(parts + [tail], axis=1)
    assert _maxdiff(chunked, logits) <= TOL, _maxdiff(chunked, logits)


def test_window_bounds_what_an_swa_only_model_sees():
    """With SWA layers only, logits at t depend on tokens t-L(W-1)..t (L layers), nothing earlier."""
    cfg = MICRO.replace(layer_pattern=("swa",), num_layers=1, window=3)
    model = HybridLM(cfg)
    variables = {"params": jax.jit(lambda k: hybrid_init_params(model, k))(jax.random.PRNGKey(1))}
    tokens = _tokens(2, (1, 10), cfg.vocab_size)
    apply = jax.jit(model.apply)
    base, _ = apply(variables, tokens)
    changed, _ = apply(variables, tokens.at[0, 4].set((tokens[0, 4] + 1) % cfg.vocab_size))
    diff = np.max(np.abs(np.asarray(base - changed)), axis=-1)[0]
    assert np.all(diff[:4] == 0) and np.all(diff[4:7] > 0) and np.all(diff[7:] == 0), diff
    # a GLA-only model keeps (decaying) memory beyond any window
    gla = HybridLM(cfg.replace(layer_pattern=("gla",)))
    gv = {"params": jax.jit(lambda k: hybrid_init_params(gla, k))(jax.random.PRNGKey(1))}
    gapply = jax.jit(gla.apply)
    a, _ = gapply(gv, tokens)
    b, _ = gapply(gv, tokens.at[0, 4].set((tokens[0, 4] + 1) % cfg.vocab_size))
    assert float(jnp.max(jnp.abs(a[0, -1] - b[0, -1]))) > 0


def test_decode_state_is_flat_in_sequence_length(lm):
    cfg, _, variables, apply, step = lm
    shapes = []
    for n in (9, 17):  # both beyond the window
        _, s = apply(variables, _tokens(n, (2, n), cfg.vocab_size))
        _, s = step(variables, _tokens(0, (2,), cfg.vocab_size), s)
        assert int(s.offset) == n + 1
        # a state of plain tuples (e.g. after serialisation) is accepted
        plain = (s.offset, tuple(tuple(x) if isinstance(x, SWAState) else x for x in s.layers))
        _, again = step(variables, _tokens(0, (2,), cfg.vocab_size), plain)
        assert int(again.offset) == n + 2
        shapes.append([(a.shape, a.dtype) for a in jax.tree_util.tree_leaves(s)])
    assert shapes[0] == shapes[1]
    nbytes = sum(int(np.prod(sh)) * np.dtype(dt).itemsize for sh, dt in shapes[0])
    assert nbytes == hybrid_state_bytes(cfg, 2)
    # GLA: 2 layers x B2 x 2 kv heads x 8 x 8; SWA: 1 layer x k,v x B2 x window 4 x 2 x 8; + offset
    assert nbytes == 4 * (2 * 2 * 2 * 8 * 8 + 2 * 2 * 4 * 2 * 8 + 1)


def test_bad_inputs_raise(lm):
    cfg, model, variables, _, _ = lm
    tokens = _tokens(0, (2, 5), cfg.vocab_size)
    with pytest.raises(NeurojaxError):
        model.apply(variables, tokens[0])
    with pytest.raises(NeurojaxError):
        model.apply(variables, tokens[:, :0])
    with pytest.raises(NeurojaxError):
        model.apply(variables, tokens.astype(jnp.float32))
    with pytest.raises(NeurojaxError, match="shape"):
        model.apply(variables, tokens, hybrid_initial_state(cfg, 3))
    with pytest.raises(NeurojaxError):
        model.apply(variables, tokens, hybrid_initial_state(cfg.replace(num_layers=2), 2))
    with pytest.raises(NeurojaxError):
        model.apply(variables, tokens, HybridState(jnp.zeros((), jnp.int32), ()))
    with pytest.raises(NeurojaxError):
        hybrid_decode_step(model, variables, tokens, hybrid_initial_state(cfg, 2))
    with pytest.raises(NeurojaxError):
        hybrid_initial_state(cfg, 0)


def test_tied_embeddings_have_no_head():
    cfg = MICRO.replace(tie_embeddings=True)
    params = hybrid_abstract_params(cfg)
    assert "lm_head" not in params
    assert hybrid_count_params(MICRO) - hybrid_count_params(cfg) == cfg.vocab_size * cfg.d_model


# ------------------------------------------------------------------------- 7B layout
QWEN25_7B_PARAMS = 7_615_616_512  # Qwen2.5-7B (untied, q/k/v biases)


def _hand_count(c: HybridConfig) -> int:
    d, h, kh, hd, f, v, r = (c.d_model, c.num_heads, c.num_kv_heads, c.head_dim, c.intermediate_size,
                             c.vocab_size, c.decay_rank)
    attn = d * h * hd + 2 * d * kh * hd + h * hd * d + (h * hd + 2 * kh * hd) * c.qkv_bias
    gla_extra = d * r + r * kh * hd + kh * hd + hd  # gk_proj_0, gk_proj_1 (+bias), per-head g_norm
    per_layer = attn + 3 * d * f + 2 * d
    n_gla = c.layer_kinds.count("gla")
    return c.num_layers * per_layer + n_gla * gla_extra + v * d * (1 if c.tie_embeddings else 2) + d


def test_spikingbrain_7b_param_count_without_allocation():
    cfg = HYBRID_PRESETS["spikingbrain_7B"]
    params = hybrid_abstract_params(cfg)
    n = hybrid_count_params(params)
    assert n == _hand_count(cfg) == 7_616_542_976
    # Qwen2.5-7B plus 14 GLA layers x (3584*16 + 16*512 + 512 decay + 128 per-head norm)
    assert n - QWEN25_7B_PARAMS == 14 * (3584 * 16 + 16 * 512 + 512 + 128)
    gla, swa = params["layers_0"]["self_attn"], params["layers_1"]["self_attn"]
    assert gla["gk_proj_0"]["weight"].shape == (16, 3584) and gla["gk_proj_1"]["weight"].shape == (512, 16)
    assert gla["k_proj"]["weight"].shape == (512, 3584) and gla["q_proj"]["weight"].shape == (3584, 3584)
    assert gla["g_norm"]["weight"].shape == (128,) and "gk_proj_0" not in swa
    assert params["layers_27"]["mlp"]["down_proj"]["weight"].shape == (3584, 18944)
    assert params["lm_head"]["weight"].shape == (152064, 3584)
    for c in (MICRO, MICRO.replace(num_layers=5, qkv_bias=False, tie_embeddings=True), hybrid_preset("hybrid_tiny")):
        assert hybrid_count_params(c) == _hand_count(c)
    # decode state of the 7B, batch 1, float32: 14 x 4x128x128 GLA + 14 x 2 x 4096x4x128 SWA (+ offset)
    assert hybrid_state_bytes(cfg, 1) == 4 * (14 * 4 * 128 * 128 + 14 * 2 * 4096 * 4 * 128 + 1)


# ------------------------------------------------------------------------- training
def test_micro_model_learns_a_repeated_sequence():
    cfg = hybrid_preset("hybrid_micro")
    model = HybridLM(cfg)
    params = hybrid_init_params(model, jax.random.PRNGKey(0))
    tokens = jnp.tile(jnp.arange(1, 9, dtype=jnp.int32), (2, 3))  # [2, 24], period 8 > window 4
    opt = optax.adam(1e-2)

    def loss_fn(p):
        logits, _ = model.apply({"params": p}, tokens[:, :-1])
        return next_token_loss(logits, tokens[:, 1:])[0]

    @jax.jit
    def update(p, o):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        upd, o = opt.update(grads, o, p)
        return optax.apply_updates(p, upd), o, loss

    state = opt.init(params)
    losses = []
    for _ in range(40):
        params, state, loss = update(params, state)
        losses.append(float(loss))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.3 * losses[0], losses  # about 5.56 -> 0.4


def test_window_larger_than_the_sequence_budget_is_refused():
    with pytest.raises(NeurojaxError, match="sequence budget"):
        hybrid_preset("hybrid_micro", window=64, max_seq_len=32)
    cfg = hybrid_preset("hybrid_micro", max_seq_len=8)
    model = HybridLM(cfg)
    with pytest.raises(NeurojaxError, match="max_seq_len=8"):
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 9), jnp.int32)))
