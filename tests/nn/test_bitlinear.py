"""BitLinear: integer formulation (bit-exact), float formulation, STE gradients, inference path."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from neurojax.kernels.ternary_matmul import PackedTernary, packed_rows, unpack

import neurojax.nn as nj
from neurojax.nn import QUANTIZED, BitLinear
from neurojax.quant import absmean_scale

EPS = 1e-6  # every BitLinear normalises with 1e-6 (spec)


# ---------------------------------------------------------------- NumPy oracles
def np_act_int8(y):
    """(q int64, s_x float32): per-token absmax int8, round half away from zero."""
    y = np.asarray(y, np.float32)
    s_x = np.float32(127.0) / np.maximum(np.abs(y).max(-1, keepdims=True), np.float32(1e-5))
    v = (y * s_x).astype(np.float32).astype(np.float64)
    q = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -128, 127).astype(np.int64)
    return q, s_x


def np_ternary(w, s_w):
    """int64 codes clip(round_half_even(W * s_w), -1, 1) computed in float32."""
    v = (np.asarray(w, np.float32) * np.float32(s_w)).astype(np.float32)
    return np.clip(np.round(v), -1, 1).astype(np.int64)


def np_rms64(x, w, eps=EPS):
    x = np.asarray(x, np.float64)
    return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + eps) * np.asarray(w, np.float64)


def scale_w(w):
    """s_w from the library (its float32 mean may be 1 ulp off a correctly rounded mean, so
    the bit-exact test takes the library's scale); checked here against float64."""
    s = np.float32(np.asarray(absmean_scale(jnp.asarray(w))))
    ref = 1.0 / max(np.abs(np.asarray(w, np.float64)).mean(), 1e-5)
    np.testing.assert_allclose(s, ref, rtol=2e-6)
    return s


def _make(rng, shape_x, d_out, w_scale=0.05):
    x = (rng.normal(size=shape_x) * 2.0).astype(np.float32)
    w = (rng.normal(size=(d_out, shape_x[-1])) * w_scale).astype(np.float32)
    nw = rng.uniform(0.5, 1.5, size=shape_x[-1]).astype(np.float32) * rng.choice([-1, 1], size=shape_x[-1])
    params = {"weight": jnp.asarray(w), "norm": {"weight": jnp.asarray(nw.astype(np.float32))}}
    return x, w, nw.astype(np.float32), params


def _apply_with_y(mod, params, x):
    """Forward pass, plus the normalised input `y` BitLinear quantized (captured in-program)."""
    out, state = mod.apply({"params": params}, jnp.asarray(x), capture_intermediates=True)
    y = state["intermediates"]["norm"]["__call__"][0]
    return np.asarray(out), np.asarray(y)


def _integer_reference(x, w, nw, y):
    """NumPy integer formulation: (int8 q) @ (ternary codes).T accumulated in int64, float32 scale."""
    # y is the block's own RMSNorm with its own weight
    np.testing.assert_allclose(y, np_rms64(x, nw), rtol=1e-5, atol=1e-6)
    q, s_x = np_act_int8(y)
    s_w = scale_w(w)
    codes = np_ternary(w, s_w)
    acc = np.einsum("...i,oi->...o", q, codes)  # int64 accumulation
    assert np.abs(acc).max(initial=0) < 2**24
    return acc, s_x, s_w


# A few shapes (each new shape recompiles every op of the un-jitted apply), many seeds.
@settings(max_examples=20, deadline=None)
@given(bt=st.sampled_from([(2, 3)]), d_in=st.sampled_from([1, 7, 24]), d_out=st.sampled_from([1, 6]),
       seed=st.integers(0, 2**31 - 1), w_scale=st.sampled_from([0.05, 1e-7]))
def test_integer_accumulator_exact_and_output_within_one_ulp(bt, d_in, d_out, seed, w_scale):
    batch, seq = bt
    rng = np.random.default_rng(seed)
    x, w, nw, params = _make(rng, (batch, seq, d_in), d_out, w_scale=w_scale)
    # Un-jitted apply: `y` is materialised once, so the captured `y` is the one quantized.
    out, y = _apply_with_y(BitLinear(d_out), params, x)
    acc, s_x, s_w = _integer_reference(x, w, nw, y)
    assert out.dtype == np.float32 and out.shape == (batch, seq, d_out)
    # The integer accumulator is recovered exactly from the output ...
    recovered = np.rint(out.astype(np.float64) * s_x.astype(np.float64) * np.float64(s_w))
    np.testing.assert_array_equal(recovered, acc)
    # ... and the output is the float32 rescale of it to within one ulp.
    want = acc.astype(np.float32) / (s_x * s_w).astype(np.float32)
    np.testing.assert_array_max_ulp(out, want, maxulp=1)


def test_output_equals_integer_formulation_bit_exact():
    mismatches = 0
    for seed in range(4):
        rng = np.random.default_rng(seed)
        x, w, nw, params = _make(rng, (2, 3, 16), 8)
        out, y = _apply_with_y(BitLinear(8), params, x)
        acc, s_x, s_w = _integer_reference(x, w, nw, y)
        want = acc.astype(np.float32) * (np.float32(1) / (s_x * s_w).astype(np.float32))
        mismatches += int((out != want).sum())
    assert mismatches == 0, f"{mismatches} of 192 outputs differ from acc * (1 / (s_x * s_w))"


def test_output_close_to_float_formulation():
    rng = np.random.default_rng(0)
    x, w, nw, params = _make(rng, (2, 3, 24), 6)
    out, y = _apply_with_y(BitLinear(6), params, x)
    q, s_x = np_act_int8(y)
    s_w = scale_w(w)
    y_q = q.astype(np.float32) / s_x                      # de-quantised activations (float32)
    w_q = np_ternary(w, s_w).astype(np.float32) / s_w    # de-quantised weights (float32)
    ref = y_q @ w_q.T
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_all_zero_input_gives_zero_output():
    rng = np.random.default_rng(1)
    _, _, _, params = _make(rng, (2, 3, 24), 6)
    out, _ = _apply_with_y(BitLinear(6), params, np.zeros((2, 3, 24), np.float32))
    np.testing.assert_array_equal(out, np.zeros((2, 3, 6)))


def test_param_layout_is_torch_out_in():
    params = jax.eval_shape(BitLinear(7).init, jax.random.PRNGKey(0), jnp.zeros((2, 5)))["params"]
    assert params["weight"].shape == (7, 5)
    assert params["norm"]["weight"].shape == (5,)
    assert set(params) == {"weight", "norm"}


def test_full_precision_is_rms_then_matmul():
    rng = np.random.default_rng(2)
    x, w, nw, params = _make(rng, (3, 4, 16), 8)
    out = BitLinear(8, full_precision=True).apply({"params": params}, jnp.asarray(x))
    ref = np_rms64(x, nw) @ w.astype(np.float64).T
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-5, atol=1e-6)
    # and it is not the quantized output
    q_out, _ = _apply_with_y(BitLinear(8), params, x)
    assert not np.allclose(q_out, np.asarray(out), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- STE gradients
def test_ste_gradients_match_numpy():
    rng = np.random.default_rng(3)
    x, w, nw, params = _make(rng, (2, 3, 24), 6, w_scale=0.1)
    g = rng.normal(size=(2, 3, 6)).astype(np.float32)
    mod = BitLinear(6)

    def loss(p, x):
        return jnp.sum(mod.apply({"params": p}, x) * g)

    dparams, dx = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, jnp.asarray(x))
    _, y = _apply_with_y(mod, params, x)
    q, s_x = np_act_int8(y)
    s_w = scale_w(w)
    w_q = np_ternary(w, s_w).astype(np.float64) / np.float64(s_w)
    y_q = q.astype(np.float64) / s_x.astype(np.float64)
    g64 = g.astype(np.float64)

    # dL/dW = dout^T @ y_q (summed over tokens): both quantizers are identity for W.
    dw_ref = np.einsum("bto,bti->oi", g64, y_q)
    np.testing.assert_allclose(np.asarray(dparams["weight"]), dw_ref, rtol=1e-5, atol=1e-5)

    # dL/dy = dout @ W_q (quantized weight), then back through the RMSNorm.
    gy = g64 @ w_q
    x64, nw64 = x.astype(np.float64), nw.astype(np.float64)
    r = 1 / np.sqrt(np.mean(x64 * x64, -1, keepdims=True) + EPS)
    gw = gy * nw64
    dx_ref = r * gw - x64 * r ** 3 * np.mean(gw * x64, -1, keepdims=True)
    np.testing.assert_allclose(np.asarray(dx), dx_ref, rtol=1e-4, atol=1e-5 * np.abs(dx_ref).max())
    # dL/d norm.weight = sum_tokens dL/dy * x * r
    dnw_ref = np.einsum("bti,bti->i", gy, x64 * r)
    np.testing.assert_allclose(np.asarray(dparams["norm"]["weight"]), dnw_ref, rtol=1e-4,
                               atol=1e-5 * np.abs(dnw_ref).max())
    # The latent weight (not W_q) would give a different dx: the test discriminates.
    gy_latent = g64 @ w.astype(np.float64)
    gw_l = gy_latent * nw64
    dx_latent = r * gw_l - x64 * r ** 3 * np.mean(gw_l * x64, -1, keepdims=True)
    assert not np.allclose(dx_latent, dx_ref, rtol=1e-2)


# ---------------------------------------------------------------- inference path
def test_bitlinear_quantized_collection_bit_identical():
    rng = np.random.default_rng(4)
    x, w, nw, params = _make(rng, (2, 3, 16), 8)
    mod = BitLinear(8)
    out, extra = mod.apply({"params": params}, jnp.asarray(x), mutable=[QUANTIZED])
    quant = extra[QUANTIZED]
    assert quant["packed"].dtype == jnp.uint8 and quant["packed"].shape == (packed_rows(16), 8)
    s_w = scale_w(w)
    np.testing.assert_array_equal(np.asarray(unpack(PackedTernary(quant["packed"]), 16)), np_ternary(w, s_w))
    assert np.float32(np.asarray(quant["scale"])) == s_w
    out2 = mod.apply({"params": {"norm": params["norm"]}, QUANTIZED: quant}, jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(out2), np.asarray(out))


@pytest.fixture(scope="module")
def micro_lm():
    cfg = nj.preset("micro")
    model = nj.MatMulFreeLM(cfg)
    params = jax.jit(lambda k: nj.init_params(model, k))(jax.random.PRNGKey(0))
    # non-trivial norm weights and lower bounds so every parameter matters
    leaves, tree = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(0)
    leaves = [l + 0.1 * rng.normal(size=l.shape).astype(np.float32) if l.ndim == 1 else l for l in leaves]
    return model, jax.tree_util.tree_unflatten(tree, leaves)


@pytest.fixture(scope="module")
def micro_ivars(micro_lm):
    """`inference_variables` called the way users call it (not under jit)."""
    model, params = micro_lm
    return nj.inference_variables(model, params)


def test_inference_variables_hold_packed_codes_and_no_float_weight(micro_lm, micro_ivars):
    model, params = micro_lm
    ivars = micro_ivars
    assert set(ivars) == {"params", QUANTIZED}
    pflat = flax.traverse_util.flatten_dict(params, sep="/")
    iflat = flax.traverse_util.flatten_dict(ivars["params"], sep="/")
    qflat = flax.traverse_util.flatten_dict(ivars[QUANTIZED], sep="/")
    projections = sorted(k[: -len("/weight")] for k, v in pflat.items() if k.endswith("/weight") and v.ndim == 2)
    # 4 MLGRU + 2 GLU projections per layer, plus the head
    assert len(projections) == 6 * model.config.num_layers + 1
    for p in projections:
        assert f"{p}/weight" not in iflat, f"{p} still holds its float latent weight"
        assert f"{p}/norm/weight" in iflat
        packed, scale = qflat[f"{p}/packed"], qflat[f"{p}/scale"]
        n_out, k_in = pflat[f"{p}/weight"].shape
        assert packed.dtype == jnp.uint8 and packed.shape == (packed_rows(k_in), n_out)
        codes = unpack(PackedTernary(packed), k_in)
        assert scale.dtype == jnp.float32 and scale.shape == ()
        w = np.asarray(pflat[f"{p}/weight"])
        np.testing.assert_allclose(np.asarray(scale), 1.0 / np.abs(w.astype(np.float64)).mean(), rtol=2e-6)
        np.testing.assert_array_equal(np.asarray(codes), np_ternary(w, np.asarray(scale)))
    assert set(qflat) == {f"{p}/{n}" for p in projections for n in ("packed", "scale")}
    # every other parameter is kept unchanged
    assert set(iflat) == set(pflat) - {f"{p}/weight" for p in projections}
    for k, v in iflat.items():
        np.testing.assert_array_equal(np.asarray(v), np.asarray(pflat[k]))
    assert "embeddings/embedding" in iflat and "lower_bounds" in iflat


# The packed path computes the same integers (checked per layer above and in
# tests/kernels), but it is a different XLA program: the float RMSNorm around it may fuse
# differently and round in the last bit, so whole-model logits agree to float round-off.
LOGIT_TOL = 1e-5


def test_inference_variables_same_logits_and_state(micro_lm):
    model, params = micro_lm
    tokens = jax.random.randint(jax.random.PRNGKey(2), (2, 7), 0, model.config.vocab_size)
    apply = jax.jit(model.apply)
    logits, state = apply({"params": params}, tokens)
    ivars = jax.jit(lambda p: nj.inference_variables(model, p))(params)
    logits_i, state_i = apply(ivars, tokens)
    np.testing.assert_allclose(np.asarray(logits_i), np.asarray(logits), rtol=0, atol=LOGIT_TOL)
    np.testing.assert_array_equal(np.argmax(logits_i, -1), np.argmax(logits, -1))
    for a, b in zip(state_i, state):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=LOGIT_TOL)
    # decoding with the inference variables gives the first position's logits too
    lg, _ = jax.jit(lambda v, t, s: nj.decode_step(model, v, t, s))(
        ivars, tokens[:, 0], nj.initial_state(model.config, 2))
    np.testing.assert_allclose(np.asarray(lg), np.asarray(logits[:, 0]), rtol=0, atol=1e-5)


def test_inference_variables_same_logits_when_built_eagerly(micro_lm, micro_ivars):
    model, params = micro_lm
    tokens = jax.random.randint(jax.random.PRNGKey(2), (2, 7), 0, model.config.vocab_size)
    apply = jax.jit(model.apply)
    logits, _ = apply({"params": params}, tokens)
    logits_i, _ = apply(micro_ivars, tokens)
    np.testing.assert_allclose(np.asarray(logits_i), np.asarray(logits), rtol=0, atol=LOGIT_TOL)


def test_inference_variables_full_precision_unchanged(micro_lm):
    model, params = micro_lm
    fp = nj.MatMulFreeLM(model.config.replace(full_precision=True))
    ivars = jax.jit(lambda p: nj.inference_variables(fp, p))(params)
    assert set(ivars) == {"params"}
    assert jax.tree_util.tree_structure(ivars["params"]) == jax.tree_util.tree_structure(params)
