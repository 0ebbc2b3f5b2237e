"""Per-token absmax int8 activations: hand values, range, STE gradient, NumPy oracle."""
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurojax.quant import ACT_QMAX, ACT_QMIN, absmax_int8, absmax_scale

FLOOR_SCALE = np.float32(127.0) / np.float32(1e-5)


_absmax_int8_jit = jax.jit(absmax_int8)


def _quant(y):
    q, s = _absmax_int8_jit(jnp.asarray(y, jnp.float32))
    return np.asarray(q), np.asarray(s)


def test_constants():
    assert (ACT_QMIN, ACT_QMAX) == (-128, 127)


def test_hand_values():
    y = np.array([
        # max|y| = 127 -> s_x = 1; ties 62.5, -62.5, 0.5, -1.5, 2.5 round away from zero.
        [127.0, 62.5, -62.5, 0.5, -1.5, 2.5, -127.0, 3.49],
        # max|y| = 254 -> s_x = 0.5: v = [127, 62.5, -1.5, 0.5, -0.25, 0, -126.5, 2.5].
        [254.0, 125.0, -3.0, 1.0, -0.5, 0.0, -253.0, 5.0],
        # max|y| = 4 (negative) -> s_x = 31.75: v = [-127, 31.75, 63.5, 95.25, -31.75, 15.875, 0, 0].
        [-4.0, 1.0, 2.0, 3.0, -1.0, 0.5, 0.0, 0.0],
        # all zero: floor 1e-5 -> s_x = 1.27e7, codes 0
        [0.0] * 8,
        # max|y| = 2e-6 < 1e-5: s_x = 127 / 1e-5 = 1.27e7 -> v = [12.7, -25.4, 6.35, 0...]
        [1e-6, -2e-6, 5e-7, 0.0, 0.0, 0.0, 0.0, 0.0],
    ], np.float32)
    q, s = _quant(y)
    np.testing.assert_array_equal(q, [
        [127, 63, -63, 1, -2, 3, -127, 3],
        [127, 63, -2, 1, 0, 0, -127, 3],
        [-127, 32, 64, 95, -32, 16, 0, 0],
        [0] * 8,
        [13, -25, 6, 0, 0, 0, 0, 0],
    ])
    np.testing.assert_array_equal(s[:, 0], [1.0, 0.5, 31.75, FLOOR_SCALE, FLOOR_SCALE])
    assert s.shape == (5, 1) and q.dtype == np.float32 and s.dtype == np.float32


def test_half_even_would_differ_on_these_ties():
    # Guard that the hand case above discriminates the two modes: half-even gives 62, -62, 0, 2.
    q, _ = _quant(np.array([[127.0, 62.5, -62.5, 0.5, 2.5]], np.float32))
    assert list(q[0]) == [127, 63, -63, 1, 3]
    assert list(np.round(np.array([127.0, 62.5, -62.5, 0.5, 2.5]))) == [127, 62, -62, 0, 2]


def test_row_max_maps_to_plus_minus_127():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, 4, 17)).astype(np.float32) * np.float32(3.0)
    q, _ = _quant(y)
    idx = np.argmax(np.abs(y), axis=-1)
    qmax = np.take_along_axis(q, idx[..., None], axis=-1)[..., 0]
    ymax = np.take_along_axis(y, idx[..., None], axis=-1)[..., 0]
    np.testing.assert_array_equal(qmax, np.sign(ymax) * 127)
    assert np.all(np.abs(q) <= 127)


def test_just_below_half_is_not_a_tie():
    below = np.nextafter(np.float32(0.5), np.float32(0.0))
    q, s = _quant(np.array([[127.0, below, -below]], np.float32))
    assert s[0, 0] == 1.0
    np.testing.assert_array_equal(np.abs(q), [[127, 0, 0]])


def _oracle(y: np.ndarray):
    """Independent NumPy oracle: float32 scale and product, exact half-away rounding."""
    y = y.astype(np.float32)
    s = np.float32(127.0) / np.maximum(np.abs(y).max(axis=-1, keepdims=True), np.float32(1e-5))
    v = (y * s).astype(np.float32)
    # |v| + 0.5 is exact in float64 for any float32 v, so this is true round-half-away.
    v64 = v.astype(np.float64)
    q = np.clip(np.sign(v64) * np.floor(np.abs(v64) + 0.5), -128, 127)
    return q, s


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=8),
                  elements=st.floats(-1e6, 1e6, width=32, allow_subnormal=False)))
def test_matches_numpy_oracle(y):
    q, s = _quant(y)
    q_ref, s_ref = _oracle(y)
    np.testing.assert_array_equal(s, s_ref)
    np.testing.assert_array_equal(q, q_ref)
    assert np.all((q >= -128) & (q <= 127)) and np.all(q == np.trunc(q))


@settings(max_examples=20, deadline=None)
@given(hnp.arrays(np.int32, st.tuples(st.integers(1, 3), st.integers(2, 8)), elements=st.integers(-253, 253)))
def test_exact_ties_round_half_away(k):
    # Half-integers with a row max of exactly 127, so s_x = 1 and every odd k/2 is an exact tie.
    y = (k / 2).astype(np.float32)
    y[:, 0] = 127.0
    q, s = _quant(y)
    np.testing.assert_array_equal(s, np.ones((y.shape[0], 1), np.float32))
    expected = np.where(k % 2 == 0, k // 2, np.sign(k) * ((np.abs(k) + 1) // 2))
    expected[:, 0] = 127
    np.testing.assert_array_equal(q, expected)


_grad_q = jax.jit(jax.grad(lambda x, g: jnp.sum(absmax_int8(x)[0] * g)))


@settings(max_examples=20, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 6)),
                  elements=st.floats(-100, 100, width=32, allow_subnormal=False)),
       st.integers(0, 2**31 - 1))
def test_ste_gradient_is_scale(y, seed):
    g = np.random.default_rng(seed).normal(size=y.shape).astype(np.float32)
    grad = _grad_q(jnp.asarray(y), jnp.asarray(g))
    _, s_ref = _oracle(y)
    np.testing.assert_allclose(np.asarray(grad), g * s_ref, rtol=1e-6)


def test_scale_has_no_gradient():
    y = jnp.asarray(np.random.default_rng(3).normal(size=(2, 5)).astype(np.float32))
    grad = jax.grad(lambda x: jnp.sum(absmax_scale(x)))(y)
    np.testing.assert_array_equal(np.asarray(grad), np.zeros((2, 5)))


def test_bf16_input_is_quantized_in_float32():
    y = jnp.asarray(np.array([[3.0, -1.0, 0.5, 0.25]], np.float32)).astype(jnp.bfloat16)
    q, s = absmax_int8(y)
    assert q.dtype == jnp.float32 and s.dtype == jnp.float32
    # s_x = 127/3 in float32; v = [127, -42.33, 21.17, 10.58] -> [127, -42, 21, 11]
    np.testing.assert_array_equal(np.asarray(q), [[127, -42, 21, 11]])
