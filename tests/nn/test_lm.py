"""The whole MatMul-free LM: scan vs decoding, padding, state, presets, param layout, registries."""
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurojax
import neurojax.nn as nj
from neurojax import NeurojaxError
from neurojax.nn import CHANNEL_MIXERS, TOKEN_MIXERS, ModelConfig, Registry

TOL = 1e-5
PAD = 0


def _randomise(params, seed=0):
    """Perturb norms and lower bounds (zeros/ones at init) so every parameter matters."""
    rng = np.random.default_rng(seed)
    flat = flax.traverse_util.flatten_dict(params)
    for k, v in flat.items():
        if v.ndim == 1 or k[-1] == "lower_bounds":
            flat[k] = v + jnp.asarray(rng.normal(size=v.shape).astype(np.float32)) * 0.3
    return flax.traverse_util.unflatten_dict(flat)


@pytest.fixture(scope="module")
def lm():
    cfg = nj.preset("micro")
    model = nj.MatMulFreeLM(cfg)
    params = _randomise(jax.jit(lambda k: nj.init_params(model, k))(jax.random.PRNGKey(0)))
    apply = jax.jit(model.apply)
    step = jax.jit(lambda v, t, s, m: nj.decode_step(model, v, t, s, m))
    return cfg, model, {"params": params}, apply, step


def _tokens(seed, shape, vocab):
    return jnp.asarray(np.random.default_rng(seed).integers(1, vocab, size=shape), jnp.int32)


def _decode_all(step, cfg, variables, tokens, mask=None):
    state = nj.initial_state(cfg, tokens.shape[0])
    outs = []
    for t in range(tokens.shape[1]):
        m = None if mask is None else mask[:, t]
        logits, state = step(variables, tokens[:, t], state, m)
        outs.append(logits)
    return jnp.stack(outs, 1), state


def _maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def _assert_states_close(s1, s2, tol=TOL):
    assert len(s1) == len(s2)
    for a, b in zip(s1, s2):
        assert a.shape == b.shape
        assert _maxdiff(a, b) <= tol, _maxdiff(a, b)


# ---------------------------------------------------------------- scan vs decode, padding, state
def test_scan_equals_token_by_token_decoding(lm):
    cfg, _, variables, apply, step = lm
    tokens = _tokens(1, (2, 6), cfg.vocab_size)
    logits, state = apply(variables, tokens)
    assert logits.shape == (2, 6, cfg.vocab_size) and logits.dtype == jnp.float32
    dec, dstate = _decode_all(step, cfg, variables, tokens)
    assert _maxdiff(logits, dec) <= TOL, _maxdiff(logits, dec)
    _assert_states_close(state, dstate)
    # the logits do depend on the past (the recurrence is live)
    alone, _ = apply(variables, tokens[:, -1:])
    assert _maxdiff(alone[:, 0], logits[:, -1]) > 1e-3


def test_scan_equals_decoding_with_padding_mask(lm):
    cfg, _, variables, apply, step = lm
    tokens = _tokens(2, (2, 6), cfg.vocab_size)
    mask = jnp.asarray([[0, 0, 1, 1, 1, 1],
                        [1, 1, 1, 0, 1, 0]], jnp.float32)
    logits, state = apply(variables, tokens, None, mask)
    dec, dstate = _decode_all(step, cfg, variables, tokens, mask)
    assert _maxdiff(logits, dec) <= TOL, _maxdiff(logits, dec)
    _assert_states_close(state, dstate)


def test_left_and_right_padding_leave_real_positions_unchanged(lm):
    cfg, _, variables, apply, _ = lm
    seq = np.asarray(_tokens(3, (1, 4), cfg.vocab_size))[0]
    ref, ref_state = apply(variables, jnp.asarray(seq[None]))
    tokens = jnp.asarray(np.stack([np.concatenate([[PAD, PAD], seq]), np.concatenate([seq, [PAD, PAD]])]))
    mask = jnp.asarray([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], jnp.float32)
    logits, state = apply(variables, tokens, None, mask)
    assert _maxdiff(logits[0, 2:], ref[0]) <= TOL, "left padding changed real positions"
    assert _maxdiff(logits[1, :4], ref[0]) <= TOL, "right padding changed real positions"
    # left padding from a zero state leaves the state exactly where the unpadded run ends
    for s, r in zip(state, ref_state):
        assert _maxdiff(s[0], r[0]) <= TOL
    # without the mask, left padding does change the real positions
    unmasked, _ = apply(variables, tokens)
    assert _maxdiff(unmasked[0, 2:], ref[0]) > 1e-3


def test_state_carried_across_calls_equals_one_call(lm):
    cfg, _, variables, apply, _ = lm
    tokens = _tokens(4, (2, 6), cfg.vocab_size)
    full, full_state = apply(variables, tokens)
    first, s1 = apply(variables, tokens[:, :3])
    second, s2 = apply(variables, tokens[:, 3:], s1)
    assert _maxdiff(jnp.concatenate([first, second], 1), full) <= TOL
    _assert_states_close(s2, full_state)


def test_initial_state_shapes(lm):
    cfg = lm[0]
    state = nj.initial_state(cfg, 3)
    assert isinstance(state, tuple) and len(state) == cfg.num_layers
    for s in state:
        assert s.shape == (3, cfg.d_model) and s.dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(s), 0)
    # an explicit zero state is the same as none
    _, _, variables, apply, _ = lm
    tokens = _tokens(5, (2, 3), cfg.vocab_size)
    state = nj.initial_state(cfg, 2)
    np.testing.assert_array_equal(np.asarray(apply(variables, tokens, state)[0]), np.asarray(apply(variables, tokens)[0]))


def test_full_precision_changes_outputs_not_params(lm):
    cfg, model, variables, apply, _ = lm
    fp = nj.MatMulFreeLM(cfg.replace(full_precision=True))
    shapes = jax.eval_shape(lambda k: nj.init_params(model, k), jax.random.PRNGKey(0))
    fp_shapes = jax.eval_shape(lambda k: nj.init_params(fp, k), jax.random.PRNGKey(0))
    assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(fp_shapes)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a, b: a.shape == b.shape, shapes, fp_shapes))
    tokens = _tokens(6, (2, 6), cfg.vocab_size)
    q_logits, _ = apply(variables, tokens)
    fp_logits, _ = jax.jit(fp.apply)(variables, tokens)
    assert _maxdiff(q_logits, fp_logits) > 1e-3


def test_gradients_reach_every_parameter(lm):
    cfg, model, variables, _, _ = lm
    tokens = _tokens(7, (2, 6), cfg.vocab_size)

    def loss(p):
        logits, _ = model.apply({"params": p}, tokens)
        return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, tokens[..., None], -1)[..., 0])

    grads = jax.jit(jax.grad(loss))(variables["params"])
    for k, g in flax.traverse_util.flatten_dict(grads, sep="/").items():
        g = np.asarray(g)
        assert np.all(np.isfinite(g)), k
        if k != "embeddings/embedding":  # only the used rows of the embedding get gradient
            assert np.any(g != 0), f"no gradient reaches {k}"


# ---------------------------------------------------------------- presets and parameter counts
def _formula_count(V, d, L, I, use_lb=True):
    attn = 4 * (d * d + d) + d                      # i/f/g/o projections + their norms, g_norm
    mlp = (2 * I * d + d) + (d * I + I)             # gate_proj (+norm), down_proj (+norm)
    layer = attn + mlp + 2 * d                      # attn_norm, mlp_norm
    return V * d + (L * d if use_lb else 0) + L * layer + d + (V * d + d)


@pytest.mark.parametrize("name,millions,L,d,I", [
    ("370M", 374.1, 24, 1024, 2816),
    ("1.3B", 1364.8, 24, 2048, 5632),
    ("2.7B", 2702.4, 32, 2560, 6912),
])
def test_preset_param_counts(name, millions, L, d, I):
    cfg = nj.preset(name)
    assert (cfg.num_layers, cfg.d_model, cfg.ffn_size, cfg.vocab_size) == (L, d, I, 32000)
    n = nj.count_params(cfg)
    assert abs(n / 1e6 - millions) / millions < 1e-3, n
    assert n == _formula_count(32000, d, L, I)


def test_micro_count_and_count_of_a_pytree(lm):
    cfg, _, variables, _, _ = lm
    assert nj.count_params(cfg) == _formula_count(259, 32, 2, 64)
    assert nj.count_params(variables["params"]) == nj.count_params(cfg)
    assert nj.count_params(cfg.replace(use_lower_bound=False)) == _formula_count(259, 32, 2, 64, use_lb=False)


@pytest.mark.parametrize("d,I", [(1024, 2816), (2048, 5632), (2560, 6912)])
def test_default_intermediate_size(d, I):
    assert nj.default_intermediate_size(d) == I
    assert ModelConfig(vocab_size=10, d_model=d, num_layers=1).ffn_size == I


def test_default_intermediate_size_hand_values():
    # 256 * ceil(int(d * r * 2/3) / 256)
    assert nj.default_intermediate_size(256) == 768        # int(682.67)=682 -> 3*256
    assert nj.default_intermediate_size(384, 2) == 512     # 512 -> exactly 2*256
    assert nj.default_intermediate_size(100, 3) == 256     # 200 -> 1*256


def test_null_hidden_ratio_means_four():
    cfg = ModelConfig.from_dict({"vocab_size": 32000, "d_model": 1024, "num_layers": 24,
                                 "hidden_ratio": None, "intermediate_size": None})
    assert cfg.ffn_size == 2816


def test_weight_memory_bits_micro():
    bits = nj.weight_memory_bits(nj.preset("micro"))
    d, I, V, L = 32, 64, 259, 2
    proj = L * (4 * d * d + 2 * I * d + d * I) + V * d     # ternary projection weights
    n_proj_tensors = 6 * L + 1
    total = nj.count_params(nj.preset("micro"))
    assert bits["projection"] == 2 * proj + 32 * n_proj_tensors
    assert bits["other"] == 32 * (total - proj)
    assert bits["total"] == bits["projection"] + bits["other"]
    fp = nj.weight_memory_bits(nj.preset("micro", full_precision=True))
    assert fp["projection"] == 32 * proj and fp["other"] == bits["other"]


# ---------------------------------------------------------------- parameter layout (checkpoint mirror)
def _expected_layout(cfg):
    d, I, V, L = cfg.d_model, cfg.ffn_size, cfg.vocab_size, cfg.num_layers
    keys = {"embeddings/embedding": (V, d), "norm/weight": (d,), "lm_head/weight": (V, d),
            "lm_head/norm/weight": (d,)}
    if cfg.use_lower_bound:
        keys["lower_bounds"] = (L, d)
    for l in range(L):
        p = f"layers_{l}"
        keys[f"{p}/attn_norm/weight"] = (d,)
        keys[f"{p}/mlp_norm/weight"] = (d,)
        keys[f"{p}/attn/g_norm/weight"] = (d,)
        for proj in "ifgo":
            keys[f"{p}/attn/{proj}_proj/weight"] = (d, d)
            keys[f"{p}/attn/{proj}_proj/norm/weight"] = (d,)
        keys[f"{p}/mlp/gate_proj/weight"] = (2 * I, d)
        keys[f"{p}/mlp/gate_proj/norm/weight"] = (d,)
        keys[f"{p}/mlp/down_proj/weight"] = (d, I)
        keys[f"{p}/mlp/down_proj/norm/weight"] = (I,)
    return keys


@pytest.mark.parametrize("overrides", [{}, {"use_lower_bound": False}, {"num_layers": 3, "intermediate_size": 48}])
def test_param_tree_mirrors_checkpoint_layout(overrides):
    cfg = nj.preset("micro", **overrides)
    shapes = jax.eval_shape(lambda k: nj.init_params(nj.MatMulFreeLM(cfg), k), jax.random.PRNGKey(0))
    got = {k: tuple(v.shape) for k, v in flax.traverse_util.flatten_dict(shapes, sep="/").items()}
    assert got == _expected_layout(cfg)
    if not cfg.use_lower_bound:
        assert "lower_bounds" not in got
    for v in jax.tree_util.tree_leaves(shapes):
        assert v.dtype == jnp.float32


def test_without_lower_bound_runs_and_differs(lm):
    cfg, _, variables, apply, _ = lm
    cfg_nolb = cfg.replace(use_lower_bound=False)
    model = nj.MatMulFreeLM(cfg_nolb)
    params = dict(variables["params"])
    params.pop("lower_bounds")
    tokens = _tokens(8, (2, 6), cfg.vocab_size)
    out, _ = jax.jit(model.apply)({"params": params}, tokens)
    ref, _ = apply(variables, tokens)
    assert np.all(np.isfinite(np.asarray(out)))
    assert _maxdiff(out, ref) > 1e-4


# ---------------------------------------------------------------- config validation
@pytest.mark.parametrize("kwargs", [
    {"d_model": 30, "num_heads": 4},
    {"d_model": 0},
    {"vocab_size": 0},
    {"num_layers": -1},
    {"num_heads": 0},
    {"intermediate_size": 0},
    {"rms_norm_eps": -1e-6},
])
def test_config_validation(kwargs):
    base = {"vocab_size": 10, "d_model": 32, "num_layers": 1}
    with pytest.raises(NeurojaxError):
        ModelConfig(**{**base, **kwargs})


def test_config_validation_messages_and_from_dict():
    with pytest.raises(NeurojaxError, match="num_heads"):
        ModelConfig(vocab_size=10, d_model=30, num_layers=1, num_heads=4)
    with pytest.raises(NeurojaxError, match="bogus"):
        ModelConfig.from_dict({"vocab_size": 10, "d_model": 8, "num_layers": 1, "bogus": 1})
    cfg = nj.preset("micro")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert neurojax.NeurojaxError is NeurojaxError


def test_presets_lookup():
    assert nj.preset("370m") == nj.PRESETS["370M"]
    assert nj.preset("micro", d_model=64).d_model == 64
    with pytest.raises(NeurojaxError, match="unknown model preset"):
        nj.preset("7B")


# ---------------------------------------------------------------- registries
def test_unknown_mixer_names_raise():
    for field in ("token_mixer", "channel_mixer"):
        cfg = nj.preset("micro", **{field: "no_such_mixer"})
        with pytest.raises(NeurojaxError, match="no_such_mixer"):
            jax.eval_shape(lambda k: nj.init_params(nj.MatMulFreeLM(cfg), k), jax.random.PRNGKey(0))
    with pytest.raises(NeurojaxError, match="no_such_mixer"):
        nj.initial_state(nj.preset("micro", token_mixer="no_such_mixer"), 1)
    assert "mlgru" in TOKEN_MIXERS and "glu" in CHANNEL_MIXERS
    assert TOKEN_MIXERS.get("mlgru") is nj.MLGRU and CHANNEL_MIXERS.get("glu") is nj.GLU


def test_registry_duplicates_and_overwrite():
    reg = Registry("thing")
    reg.register("a")(1)
    with pytest.raises(NeurojaxError, match="already registered"):
        reg.register("a")(2)
    reg.register("a", overwrite=True)(3)
    assert reg.get("a") == 3 and reg.names() == ["a"] and "a" in reg and "b" not in reg
    with pytest.raises(NeurojaxError, match="unknown thing 'b'"):
        reg.get("b")


@pytest.fixture
def scratch_registries(monkeypatch):
    """Registrations made by a test are dropped afterwards."""
    monkeypatch.setattr(TOKEN_MIXERS, "_items", dict(TOKEN_MIXERS._items))
    monkeypatch.setattr(CHANNEL_MIXERS, "_items", dict(CHANNEL_MIXERS._items))


def test_custom_token_and_channel_mixers(scratch_registries):
    @TOKEN_MIXERS.register("test_cumsum")
    class CumSum(nn.Module):
        """Running sum of a learned scaling of x; the state is the running sum [B, d]."""

        config: ModelConfig
        layer_index: int = 0

        @staticmethod
        def initial_state(config, batch_size):
            return jnp.zeros((batch_size, config.d_model), jnp.float32)

        @nn.compact
        def __call__(self, x, state, mask=None, lower_bound=None):
            scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
            v = x * scale
            if mask is not None:
                v = v * mask[..., None]
            h = state[:, None] + jnp.cumsum(v, axis=1)
            return h, h[:, -1]

    @CHANNEL_MIXERS.register("test_zero")
    class Zero(nn.Module):
        config: ModelConfig

        @nn.compact
        def __call__(self, x):
            return x * self.param("w", nn.initializers.zeros, ())

    cfg = nj.preset("micro", token_mixer="test_cumsum", channel_mixer="test_zero")
    model = nj.MatMulFreeLM(cfg)
    params = jax.jit(lambda k: nj.init_params(model, k))(jax.random.PRNGKey(0))
    flat = {k: v.shape for k, v in flax.traverse_util.flatten_dict(params, sep="/").items()}
    assert flat["layers_0/attn/scale"] == (cfg.d_model,)
    assert flat["layers_1/mlp/w"] == ()
    assert not any("i_proj" in k or "gate_proj" in k for k in flat)
    tokens = _tokens(9, (2, 4), cfg.vocab_size)
    logits, state = jax.jit(model.apply)({"params": params}, tokens)
    assert logits.shape == (2, 4, cfg.vocab_size) and len(state) == cfg.num_layers
    # the custom mixer really ran: the state is the running sum of its normalised inputs, and
    # decoding token by token with the custom state gives the same logits
    dec, dstate = _decode_all(jax.jit(lambda v, t, s, m: nj.decode_step(model, v, t, s, m)), cfg,
                              {"params": params}, tokens)
    assert _maxdiff(dec, logits) <= TOL
    _assert_states_close(dstate, state)
    assert float(np.abs(np.asarray(state[0])).max()) > 0
