"""W8ASpike int8 weights per group of input channels: hand values, a NumPy oracle, ragged groups, bad input."""
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurojax.errors import NeurojaxError
from neurojax.quant.group_int8 import (
    INT8_GROUP,
    int8_group_dequantize,
    int8_group_fake_quant,
    int8_group_quantize,
)


def _oracle(w: np.ndarray, group: int):
    """Plain NumPy: per row, per slice of `group` columns, scale = absmax / 127, codes half-to-even."""
    w = np.asarray(w, np.float64)
    codes = np.zeros(w.shape, np.int64)
    scales = []
    for start in range(0, w.shape[1], group):
        block = w[:, start:start + group]
        amax = np.abs(block).max(axis=1)
        s = np.where(amax > 0, amax / 127.0, 1.0)
        codes[:, start:start + group] = np.round(block / s[:, None])  # np.round is half to even
        scales.append(s)
    return codes, np.stack(scales, axis=1)


def test_hand_values_ties_to_even():
    # absmax 127 -> scale 1: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0 (ties to even, as torch.round).
    w = np.array([[127.0, 0.5, 1.5, 2.5, -0.5, -127.0]], np.float32)
    codes, scale = int8_group_quantize(jnp.asarray(w), group=6)
    np.testing.assert_array_equal(np.asarray(codes), [[127, 0, 2, 2, 0, -127]])
    np.testing.assert_allclose(np.asarray(scale), [[1.0]])
    assert codes.dtype == jnp.int8


def test_ragged_last_group_and_zero_group():
    # in = 5 with groups of 2: groups [0:2], [2:4], [4:5]; the middle group is all zero -> scale 1, codes 0.
    w = np.array([[254.0, -127.0, 0.0, 0.0, 3.0]], np.float32)
    codes, scale = int8_group_quantize(jnp.asarray(w), group=2)
    np.testing.assert_array_equal(np.asarray(codes), [[127, -64, 0, 0, 127]])  # -127 / 2 = -63.5 -> -64 (even)
    np.testing.assert_allclose(np.asarray(scale), [[2.0, 1.0, 3.0 / 127.0]], rtol=1e-7)
    np.testing.assert_allclose(np.asarray(int8_group_fake_quant(jnp.asarray(w), 2)), [[254.0, -128.0, 0, 0, 3.0]],
                               rtol=1e-6)


# Few distinct shapes (each new one compiles); magnitudes >= 2^-100 or 0 keep absmax / 127 a normal float32.
_VALUES = st.one_of(st.just(0.0), st.floats(2.0**-100, 8, width=32), st.floats(-8, -(2.0**-100), width=32))


@settings(max_examples=25, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.sampled_from([1, 3]), st.sampled_from([1, 5, 130, 300])),
                  elements=_VALUES), st.sampled_from([1, 7, INT8_GROUP]))
def test_against_numpy_oracle(w, group):
    codes, scale = int8_group_quantize(jnp.asarray(w), group)
    want_codes, want_scale = _oracle(w, group)
    np.testing.assert_allclose(np.asarray(scale), want_scale, rtol=1e-6)
    # float32 division may land a hair off an exact .5 the float64 oracle sees: allow 1 code there only.
    diff = np.abs(np.asarray(codes, np.int64) - want_codes)
    assert diff.max(initial=0) <= 1 and np.mean(diff) < 0.01
    assert np.abs(np.asarray(codes, np.int64)).max(initial=0) <= 127
    back = np.asarray(int8_group_dequantize(codes, scale, group))
    # each weight within half a step (+ float32 rounding) of its group's grid
    step = np.repeat(want_scale, group, axis=1)[:, : w.shape[1]]
    assert np.all(np.abs(back - w) <= 0.5 * step * (1 + 1e-5) + 1e-12)


def test_bad_input():
    with pytest.raises(NeurojaxError, match="group size must be a positive integer"):
        int8_group_quantize(jnp.ones((2, 4)), group=0)
    with pytest.raises(NeurojaxError, match=r"expects a weight \[out, in\]"):
        int8_group_quantize(jnp.ones((2, 4, 3)))
