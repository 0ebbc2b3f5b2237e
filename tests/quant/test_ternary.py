"""Absmean ternary weights: scale, codes (half to even), float32 codes, straight-through gradient."""
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurojax.quant import absmean_scale, ternarize, ternary_codes

_ternary_codes_jit = jax.jit(ternary_codes)


def _codes(w):
    codes, s_w = _ternary_codes_jit(jnp.asarray(w))
    return np.asarray(codes), np.asarray(s_w)


def test_unit_scale_ties_go_to_zero_and_large_values_clip():
    # sum|W| = 4, mean = 1 -> s_w = 1; 0.5 and -0.5 are exact ties -> 0 (half to even),
    # 1.5 -> 2 -> clipped to 1, 2.5 -> 2 -> 1, -0.75 -> -1, 0.25 -> 0.
    w = np.array([[0.5, -0.5, 1.5, -1.5], [2.5, -0.75, 0.25, -0.5]], np.float32)
    # sum|W| = 0.5+0.5+1.5+1.5+2.5+0.75+0.25+0.5 = 8, n = 8 -> mean 1.
    codes, s_w = _codes(w)
    assert s_w == np.float32(1.0)
    np.testing.assert_array_equal(codes, [[0, 0, 1, -1], [1, -1, 0, 0]])
    np.testing.assert_array_equal(np.asarray(ternarize(jnp.asarray(w))), [[0, 0, 1, -1], [1, -1, 0, 0]])


def test_non_unit_scale_ties_at_half_over_s_w():
    # mean|W| = (1+1+3+3)/4 = 2 -> s_w = 0.5; W*s_w = [0.5, -0.5, 1.5, 1.5] -> [0, 0, 1, 1].
    w = np.array([[1.0, -1.0], [3.0, 3.0]], np.float32)
    codes, s_w = _codes(w)
    assert s_w == np.float32(0.5)
    np.testing.assert_array_equal(codes, [[0, 0], [1, 1]])
    # fake-quantized weight = codes / s_w
    np.testing.assert_array_equal(np.asarray(ternarize(jnp.asarray(w))), [[0, 0], [2, 2]])


def test_hand_matrix_with_mixed_codes():
    # mean|W| = (1+2+3+2)/4 = 2 -> s_w = 0.5; W*s_w = [0.5, 1, 1.5, -1] -> [0, 1, 1, -1].
    w = np.array([[1.0, 2.0], [3.0, -2.0]], np.float32)
    codes, s_w = _codes(w)
    assert s_w == np.float32(0.5)
    np.testing.assert_array_equal(codes, [[0, 1], [1, -1]])
    np.testing.assert_array_equal(np.asarray(ternarize(jnp.asarray(w))), [[0, 2], [2, -2]])


def test_all_zero_weight_uses_scale_floor():
    codes, s_w = _codes(np.zeros((3, 5), np.float32))
    assert s_w == np.float32(1.0) / np.float32(1e-5)
    np.testing.assert_array_equal(codes, np.zeros((3, 5)))
    assert np.all(np.isfinite(np.asarray(ternarize(jnp.zeros((3, 5))))))


def test_tiny_weight_uses_scale_floor():
    # mean|W| = 2e-6 < 1e-5, so s_w = 1e5 (not 5e5): W*s_w = [0.6, 0.2, 0, 0] -> [1, 0, 0, 0].
    # Without the floor the codes would be [1, 1, 0, 0].
    w = np.array([[6e-6, 2e-6], [0.0, 0.0]], np.float32)
    codes, s_w = _codes(w)
    assert s_w == np.float32(1.0) / np.float32(1e-5)
    np.testing.assert_array_equal(codes, [[1, 0], [0, 0]])


def test_codes_are_float32_for_bf16_input():
    # bf16 weights [1, 2, 2, 2.984375] (all exact in bf16): sum 7.984375, mean 1.99609375 = 511/256.
    # In float32: s_w = 256/511 = 0.50098, so 1 * s_w = 0.50098 -> code 1 (all codes are 1).
    # In bf16, 511/256 is not representable and rounds (tie, to even) to 2.0, s_w = 0.5, and the
    # first code becomes round_half_even(0.5) = 0. The spec defines the codes in float32.
    w = jnp.asarray(np.array([[1.0, 2.0], [2.0, 2.984375]], np.float32)).astype(jnp.bfloat16)
    codes, s_w = ternary_codes(w)
    assert codes.dtype == jnp.float32 and s_w.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(codes), [[1, 1], [1, 1]])
    assert np.asarray(s_w) == np.float32(1.0) / np.float32(511.0 / 256.0)
    # The case discriminates: emulate the bf16 arithmetic with ml_dtypes.
    bf = ml_dtypes.bfloat16
    wb = np.asarray(w).astype(bf)
    mean_b = (np.abs(wb).astype(np.float32).sum() / np.float32(wb.size)).astype(bf)
    s_b = (np.float32(1) / mean_b.astype(np.float32)).astype(bf)
    codes_b = np.clip(np.round((wb.astype(np.float32) * s_b.astype(np.float32)).astype(bf).astype(np.float32)), -1, 1)
    assert codes_b[0, 0] == 0
    out = ternarize(w)
    assert out.dtype == jnp.float32


@settings(max_examples=25, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=6),
                  elements=st.floats(-1e4, 1e4, width=32, allow_subnormal=False)))
def test_codes_always_ternary_and_match_numpy_oracle(w):
    codes, s_w = _codes(w)
    assert set(np.unique(codes)).issubset({-1.0, 0.0, 1.0})
    # Scale: 1 / max(mean|W|, 1e-5), checked against a float64 oracle (the float32 mean may
    # differ by an ulp in summation order).
    mean64 = np.abs(w.astype(np.float64)).mean()
    np.testing.assert_allclose(s_w, 1.0 / max(mean64, 1e-5), rtol=1e-6)
    # Codes: round half to even of W*s_w in float32 with the library's own scale, then clip.
    v = w * np.float32(s_w)
    np.testing.assert_array_equal(codes, np.clip(np.round(v), -1, 1))


def test_ste_gradient_is_identity_including_clipped_entries():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 7)).astype(np.float32)
    w[0, 0] = 25.0  # |W * s_w| >> 1: clipped to 1 in the forward pass
    w[1, 1] = -30.0
    g = rng.normal(size=w.shape).astype(np.float32)
    codes, _ = _codes(w)
    assert codes[0, 0] == 1 and codes[1, 1] == -1
    grad = jax.grad(lambda x: jnp.sum(ternarize(x) * g))(jnp.asarray(w))
    # Identity up to float32 round-off (the backward computes g * s_w / s_w).
    np.testing.assert_allclose(np.asarray(grad), g, rtol=2.5e-7, atol=0)


def test_ste_gradient_is_bit_exact_identity():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 7)).astype(np.float32)
    g = rng.normal(size=w.shape).astype(np.float32)
    grad = jax.grad(lambda x: jnp.sum(ternarize(x) * g))(jnp.asarray(w))
    np.testing.assert_array_equal(np.asarray(grad), g)


def test_codes_gradient_is_scale():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 5)).astype(np.float32)
    g = rng.normal(size=w.shape).astype(np.float32)
    grad = jax.grad(lambda x: jnp.sum(ternary_codes(x)[0] * g))(jnp.asarray(w))
    s_w = 1.0 / np.abs(w.astype(np.float64)).mean()
    np.testing.assert_allclose(np.asarray(grad), g * s_w, rtol=1e-5)


def test_absmean_scale_has_no_gradient():
    w = jnp.asarray(np.random.default_rng(2).normal(size=(3, 3)).astype(np.float32))
    grad = jax.grad(lambda x: absmean_scale(x))(w)
    np.testing.assert_array_equal(np.asarray(grad), np.zeros((3, 3)))


@pytest.mark.parametrize("shape", [(1,), (2, 3), (2, 3, 4)])
def test_scale_is_a_scalar(shape):
    assert absmean_scale(jnp.ones(shape)).shape == ()
