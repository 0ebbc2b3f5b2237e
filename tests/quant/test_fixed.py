"""Integer fixed-point primitives against plain-Python-integer oracles (exact `Fraction`s).

Randomized cases are drawn as lists and run as one padded, fixed-shape array call per
hypothesis example (fast: one compilation per function and mode); edge values (INT32_MIN/MAX,
width limits, exact ties for every mode, n = 0 / 31 / 62, b = +-2**15 / +-2**16) are mixed in
and also checked on deterministic grids. The jaxpr checks prove the forward functions use
only int32/bool (no float, no 64-bit) types.
"""
from fractions import Fraction
from functools import lru_cache
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurojax.errors import NeurojaxError
from neurojax.quant.fixed import (
    OVERFLOW, ROUNDING, FxFormat, apply_multiplier, bit_length, dequantize, fit, mul_shift,
    mul_shift_split, mul_shift_wide, multiplier_shift, normalize_shift, overflows, quantize, rescale, saturate,
    shift_left, shift_right, wrap,
)

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
PAD = 64  # every randomized batch is padded to this many elements (one compiled shape)
SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)


# ----------------------------------------------------------------------------- oracles (Python ints)

def o_round(v: Fraction, mode: str) -> int:
    """Round an exact rational with the named mode, independently of the implementation."""
    if mode == "floor":
        return math.floor(v)
    if mode == "toward_zero":
        return math.trunc(v)
    if mode == "half_even":
        return round(v)  # Fraction.__round__ rounds ties to even
    assert mode == "half_away"
    return (1 if v > 0 else -1) * math.floor(abs(v) + Fraction(1, 2))  # exact (copysign would go through float)


def o_div(num: int, n: int, mode: str) -> int:
    return o_round(Fraction(num, 2**n), mode)


def o_wrap(v: int, bits: int) -> int:
    m = 2**bits
    v %= m
    return v - m if v >= m // 2 else v


def o_sat(v: int, bits: int) -> int:
    return max(-(2 ** (bits - 1)), min(2 ** (bits - 1) - 1, v))


def o_out(v: int, bits: int) -> bool:
    return not -(2 ** (bits - 1)) <= v <= 2 ** (bits - 1) - 1


def pad(values, fill=0):
    values = list(values)
    assert len(values) <= PAD
    return values + [fill] * (PAD - len(values))


def arr(values):
    return jnp.asarray(np.array(pad(values), dtype=np.int64).astype(np.int32))


def ints(x):
    return [int(v) for v in np.asarray(x).reshape(-1)]


# ----------------------------------------------------------------------------- strategies

EDGES32 = [I32_MIN, I32_MIN + 1, -(2**30), -65537, -65536, -32769, -32768, -2, -1, 0, 1, 2,
           32767, 32768, 65535, 65536, 2**30, I32_MAX - 1, I32_MAX]
int32s = st.one_of(st.integers(I32_MIN, I32_MAX), st.sampled_from(EDGES32), st.integers(-300, 300))


@st.composite
def shift_case(draw, max_n=31):
    """(x, n) with x random, an edge value, an exact tie of x / 2**n, or one off a tie."""
    n = draw(st.integers(0, max_n))
    x = draw(int32s)
    kind = draw(st.sampled_from(["any", "tie", "tie-1", "tie+1"]))
    if kind != "any" and n >= 1:
        x = (x // 2**n) * 2**n + 2 ** (n - 1)  # k * 2**n + 2**(n-1), always inside int32
        x = max(I32_MIN, min(I32_MAX, x + {"tie": 0, "tie-1": -1, "tie+1": 1}[kind]))
    return x, n


def _odd(draw, lo, hi):
    """An odd integer in [lo, hi] (the range must contain one)."""
    return 2 * draw(st.integers(-((1 - lo) // 2), (hi - 1) // 2)) + 1


@st.composite
def product_case(draw, bmax):
    """(a, b, n) with |b| <= bmax, 0 <= n <= 62; ties of a*b / 2**n built from 2-adic valuations."""
    jmax = bmax.bit_length() - 1  # b = +-2**jmax is allowed
    kind = draw(st.sampled_from(["any", "any", "tie", "edge"]))
    if kind == "tie":  # a * b = odd * 2**(n-1): exactly half way
        n = draw(st.integers(1, 32 + jmax))
        j = draw(st.integers(max(0, n - 32), min(n - 1, jmax)))
        i = n - 1 - j
        b = _odd(draw, -(bmax >> j), bmax >> j) * 2**j
        a = _odd(draw, -(2**31 >> i), (2**31 - 1) >> i) * 2**i
        return a, b, n
    a = draw(int32s)
    if kind == "edge":
        b = draw(st.sampled_from([bmax, -bmax, bmax - 1, -bmax + 1, 1, -1, 0]))
        n = draw(st.sampled_from([0, 1, 15, 16, 17, 18, 30, 31, 32, 47, 48, 49, 62]))
    else:
        b = draw(st.integers(-bmax, bmax))
        n = draw(st.integers(0, 62))
    return a, b, n


def batches(case):
    return st.lists(case, min_size=1, max_size=PAD)


# ----------------------------------------------------------------------------- jitted kernels (one compile per mode)

@lru_cache(maxsize=None)
def jitted(fn, **static):
    return jax.jit(lambda *args: fn(*args, **static))


@lru_cache(maxsize=None)
def _compiled(fn, static_pos, static_kw):
    def run(*dyn):
        args = list(dyn)
        for i, v in static_pos:
            args.insert(i, v)
        return fn(*args, **dict(static_kw))
    return jax.jit(run)


def J(fn, *args, **kw):
    """`fn(*args, **kw)` under jit: arrays are traced, Python values (ints, modes, formats) static.

    Eager JAX compiles every primitive anew for each shape; one jit per call site is faster.
    """
    is_arr = [isinstance(a, (jax.Array, np.ndarray)) for a in args]
    static = tuple((i, a) for i, (a, d) in enumerate(zip(args, is_arr)) if not d)
    return _compiled(fn, static, tuple(sorted(kw.items())))(*[a for a, d in zip(args, is_arr) if d])


# ----------------------------------------------------------------------------- shift_right

@SETTINGS
@given(cases=batches(shift_case()))
def test_shift_right_per_element_n_matches_oracle(cases):
    xs, ns = zip(*cases)
    for mode in ROUNDING:
        got = ints(jitted(shift_right, mode=mode)(arr(xs), arr(ns)))
        assert got == [o_div(x, n, mode) for x, n in zip(pad(xs), pad(ns))], mode


@pytest.mark.parametrize("mode", ROUNDING)
def test_shift_right_static_n_grid(mode):
    for n in range(32):
        xs = [I32_MIN, I32_MIN + 1, I32_MAX, I32_MAX - 1, -1, 0, 1, 3, -3, 2**n - 1, -(2**n) + 1]
        if n >= 1:
            for k in (-5, -2, -1, 0, 1, 2, 7):  # exact ties k*2**n + 2**(n-1), and +-1 around them
                t = k * 2**n + 2 ** (n - 1)
                xs += [v for v in (t - 1, t, t + 1) if I32_MIN <= v <= I32_MAX]
            xs += [I32_MIN + 2 ** (n - 1), I32_MAX - 2 ** (n - 1) + 1]  # largest/smallest ties
        got = ints(jitted(shift_right, mode=mode)(arr(xs), jnp.int32(n)))
        assert got == [o_div(x, n, mode) for x in pad(xs)], n


def test_shift_right_hand_values():
    x = jnp.array([5, -5, 6, -6, 7, -7], jnp.int32)  # /2: 2.5, -2.5, 3, -3, 3.5, -3.5
    assert ints(J(shift_right, x, 1, "floor")) == [2, -3, 3, -3, 3, -4]
    assert ints(J(shift_right, x, 1, "toward_zero")) == [2, -2, 3, -3, 3, -3]
    assert ints(J(shift_right, x, 1, "half_away")) == [3, -3, 3, -3, 4, -4]
    assert ints(J(shift_right, x, 1, "half_even")) == [2, -2, 3, -3, 4, -4]
    assert ints(J(shift_right, x, 0)) == ints(x)
    big = jnp.array([I32_MAX, I32_MIN], jnp.int32)
    assert ints(J(shift_right, big, 31, "half_away")) == [1, -1]
    assert ints(J(shift_right, big, 1, "half_away")) == [2**30, -(2**30)]  # no overflow at INT32_MAX


def test_shift_right_broadcast_per_token():
    x = jnp.arange(-12, 12, dtype=jnp.int32).reshape(4, 6) * 1001
    n = jnp.array([[0], [3], [9], [31]], jnp.int32)
    got = np.asarray(J(shift_right, x, n, "half_even"))
    want = [[o_div(int(v), int(k), "half_even") for v in row] for row, k in zip(np.asarray(x), np.asarray(n)[:, 0])]
    np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------- wrap / saturate / overflows / fit

@st.composite
def width_case(draw):
    bits = draw(st.integers(1, 32))
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    edge = [v for v in (lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, 0, -1, I32_MIN, I32_MAX) if I32_MIN <= v <= I32_MAX]
    xs = draw(st.lists(st.one_of(int32s, st.sampled_from(edge), st.integers(max(I32_MIN, 2 * lo), min(I32_MAX, 2 * hi))),
                       min_size=1, max_size=PAD))
    return bits, xs


@SETTINGS
@given(case=width_case(), overflow=st.sampled_from(OVERFLOW))
def test_wrap_saturate_overflows_fit_match_oracle(case, overflow):
    bits, xs = case
    x = arr(xs)
    vals = pad(xs)
    assert ints(wrap(x, bits)) == [o_wrap(v, bits) for v in vals]
    assert ints(saturate(x, bits)) == [o_sat(v, bits) for v in vals]
    assert [bool(b) for b in np.asarray(overflows(x, bits))] == [o_out(v, bits) for v in vals]
    value, count = fit(x, bits, overflow)
    oracle = o_wrap if overflow == "wrap" else o_sat
    assert ints(value) == [oracle(v, bits) for v in vals]
    assert count.dtype == jnp.int32 and int(count) == sum(o_out(v, bits) for v in vals)


@pytest.mark.parametrize("bits", range(1, 33))
def test_width_limits_every_width(bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    xs = pad(v for v in (lo - 1, lo, hi, hi + 1, I32_MIN, I32_MAX) if I32_MIN <= v <= I32_MAX)
    x = arr(xs)
    assert ints(wrap(x, bits)) == [o_wrap(v, bits) for v in xs]
    assert ints(saturate(x, bits)) == [o_sat(v, bits) for v in xs]
    _, count = fit(x, bits, "saturate")
    assert int(count) == sum(o_out(v, bits) for v in xs)
    if bits < 32:
        assert ints(wrap(jnp.int32(hi + 1), bits)) == [lo] and ints(wrap(jnp.int32(lo - 1), bits)) == [hi]


# ----------------------------------------------------------------------------- shift_left

@SETTINGS
@given(case=width_case(), ns=st.lists(st.one_of(st.integers(0, 31), st.sampled_from([0, 31])), min_size=PAD, max_size=PAD),
       overflow=st.sampled_from(OVERFLOW))
def test_shift_left_matches_oracle(case, ns, overflow):
    bits, xs = case
    got = ints(shift_left(arr(xs), jnp.asarray(ns, jnp.int32), overflow, bits))
    oracle = o_wrap if overflow == "wrap" else o_sat
    assert got == [oracle(x * 2**n, bits) for x, n in zip(pad(xs), ns)]


def test_shift_left_saturates_on_exact_product():
    x = jnp.array([1, -1, 3, -3, 2**16, -(2**16), 0], jnp.int32)
    # 3 << 31 wraps to INT32_MIN in int32, but the exact value is positive: it must saturate high.
    assert ints(J(shift_left, x, 31, "saturate")) == [I32_MAX, I32_MIN, I32_MAX, I32_MIN, I32_MAX, I32_MIN, 0]
    assert ints(J(shift_left, x, 15, "saturate", bits=16)) == [2**15 - 1, -(2**15), 2**15 - 1, -(2**15), 2**15 - 1, -(2**15), 0]
    assert ints(J(shift_left, x, 0, "wrap", bits=2)) == [1, -1, -1, 1, 0, 0, 0]


# ----------------------------------------------------------------------------- bit_length

@SETTINGS
@given(xs=st.lists(st.one_of(st.integers(0, I32_MAX), st.sampled_from([0, 1, 2, 3, 2**30, I32_MAX]),
                             st.integers(0, 30).map(lambda k: 2**k), st.integers(1, 31).map(lambda k: 2**k - 1)),
                   min_size=1, max_size=PAD))
def test_bit_length_matches_python(xs):
    assert ints(jitted(bit_length)(arr(xs))) == [v.bit_length() for v in pad(xs)]


# ----------------------------------------------------------------------------- mul_shift / mul_shift_wide

@pytest.mark.parametrize("fn,bmax", [(mul_shift, 2**15), (mul_shift_wide, 2**16)], ids=["narrow", "wide"])
@SETTINGS
@given(data=st.data())
def test_mul_shift_matches_oracle(fn, bmax, data):
    cases = data.draw(batches(product_case(bmax)))
    a, b, n = zip(*cases)
    for mode in ROUNDING:
        got = ints(jitted(fn, mode=mode)(arr(a), arr(b), arr(n)))
        # exact rounding of the infinite-precision product; beyond int32 the contract is a wrap
        assert got == [o_wrap(o_div(x * y, k, mode), 32) for x, y, k in zip(pad(a), pad(b), pad(n))], mode


@pytest.mark.parametrize("mode", ROUNDING)
@pytest.mark.parametrize("fn,bmax", [(mul_shift, 2**15), (mul_shift_wide, 2**16)], ids=["narrow", "wide"])
def test_mul_shift_static_n_and_extreme_multipliers(fn, bmax, mode):
    a_vals = [I32_MIN, I32_MIN + 1, I32_MAX, -1, 0, 1, 12345, -98765, 2**16 - 1, -(2**16)]
    b_vals = [bmax, -bmax, bmax - 1, -1, 1, 3]
    a = jnp.asarray(np.array([x for x in a_vals for _ in b_vals], np.int64).astype(np.int32))
    b = jnp.asarray(np.array([y for _ in a_vals for y in b_vals], np.int32))
    for n in (0, 1, 15, 16, 17, 18, 31, 32, 46, 47, 48, 62):
        got = ints(fn(a, b, n, mode))
        assert got == [o_wrap(o_div(int(x) * int(y), n, mode), 32) for x, y in zip(ints(a), ints(b))], n
    got = ints(fn(a, bmax, 31, mode))  # a scalar multiplier at the contract limit
    assert got == [o_wrap(o_div(int(x) * bmax, 31, mode), 32) for x in ints(a)]


@SETTINGS
@given(data=st.data())
def test_mul_shift_split_matches_oracle(data):
    """The two-product `mulsh` by an immediate: exact for every int32 `a` and |b| < 2**(31 - n),
    every rounding mode, the edges of both ranges included (and equal to `mul_shift`)."""
    n = data.draw(st.integers(1, 31))
    lim = 2 ** (31 - n) - 1
    a = data.draw(st.lists(st.one_of(st.integers(I32_MIN, I32_MAX), st.sampled_from([I32_MIN, I32_MAX, -1, 0, 1])),
                           min_size=PAD, max_size=PAD))
    b = data.draw(st.lists(st.one_of(st.integers(-lim, lim), st.sampled_from([-lim, lim, 0, 1, -1])),
                           min_size=PAD, max_size=PAD))
    for mode in ROUNDING:
        got = ints(mul_shift_split(arr(a), arr(b), n, mode))
        assert got == [o_wrap(o_div(x * y, n, mode), 32) for x, y in zip(a, b)], (mode, n)
    with pytest.raises(NeurojaxError, match="static shift"):
        mul_shift_split(arr(a), arr(b), 0)


def test_mul_shift_broadcast_per_channel_and_per_token():
    a = jnp.arange(-60000, 60000, 5000, dtype=jnp.int32).reshape(4, 6) * 9973
    b = jnp.array([-32768, -3, 0, 1, 20000, 32768], jnp.int32)  # per channel
    n = jnp.array([[0], [12], [20], [31]], jnp.int32)  # per token
    got = np.asarray(J(mul_shift, a, b, n, "half_even"))
    want = [[o_wrap(o_div(int(x) * int(y), int(k), "half_even"), 32) for x, y in zip(row, np.asarray(b))]
            for row, k in zip(np.asarray(a), np.asarray(n)[:, 0])]
    np.testing.assert_array_equal(got, want)


def test_mul_shift_wide_q016_gate_is_exact():
    state = jnp.array([2**23 - 1, -(2**23), 12345, -1], jnp.int32)  # 24-bit state
    assert ints(J(mul_shift_wide, state, 65536, 16)) == ints(state)  # gate == 1.0
    assert ints(J(mul_shift_wide, state, 32768, 16, "half_even")) == [o_div(int(s), 1, "half_even") for s in ints(state)]


def test_jit_and_vmap_match_oracle():
    """Per-row vmapped calls (a per-token multiplier and shift) equal the batched call and the oracle."""
    a = jnp.array([[I32_MIN, 7, -9], [I32_MAX, 3, 5]], jnp.int32)
    b = jnp.array([[2**15, -3, 5], [-(2**15), 11, 1]], jnp.int32)
    n = jnp.array([[31], [1]], jnp.int32)
    want = [[o_wrap(o_div(int(x) * int(y), int(k[0]), "half_away"), 32) for x, y in zip(ra, rb)]
            for ra, rb, k in zip(np.asarray(a), np.asarray(b), np.asarray(n))]
    np.testing.assert_array_equal(jax.jit(mul_shift)(a, b, n), want)
    np.testing.assert_array_equal(jax.jit(jax.vmap(mul_shift))(a, b, n), want)
    want_sr = [[o_div(int(x), int(k[0]), "half_away") for x in ra] for ra, k in zip(np.asarray(a), np.asarray(n))]
    np.testing.assert_array_equal(jax.jit(jax.vmap(shift_right))(a, n), want_sr)
    y, k = jax.jit(jax.vmap(lambda x: normalize_shift(x, 4)))(a)
    y0, k0 = J(normalize_shift, a, 4)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(k, k0)
    assert ints(k0) == [29, 29]  # 2**31 / 2**28 = 8 and (2**31 - 1) / 2**28 rounds to 8: both need 29


# ----------------------------------------------------------------------------- normalize_shift

@SETTINGS
@given(xs=st.lists(st.one_of(int32s, st.integers(-70, 70)), min_size=1, max_size=PAD),
       target_bits=st.one_of(st.integers(2, 32), st.sampled_from([2, 8, 24, 31, 32])))
def test_normalize_shift_bound_and_minimality(xs, target_bits):
    x = arr(xs).reshape(4, PAD // 4)
    y, k = normalize_shift(x, target_bits)
    assert y.dtype == jnp.int32 and k.dtype == jnp.int32 and k.shape == (4, 1)
    bound = 2 ** (target_bits - 1)
    for row, yrow, kk in zip(np.asarray(x).tolist(), np.asarray(y).tolist(), ints(k)):
        assert 0 <= kk <= 31
        assert yrow == [o_div(v, kk, "half_away") for v in row]
        assert max(abs(v) for v in yrow) < bound
        if kk > 0:  # one bit less would not do: k is the smallest shift that works
            assert max(abs(o_div(v, kk - 1, "half_away")) for v in row) >= bound


def test_normalize_shift_hand_values_and_axis():
    x = jnp.array([[100, -3], [127, 0], [-128, 5], [0, 0], [255, -255], [I32_MIN, I32_MAX]], jnp.int32)
    y, k = J(normalize_shift, x, 8)  # |y| < 128
    assert ints(k) == [0, 0, 1, 0, 2, 25]
    assert ints(y) == [100, -3, 127, 0, -64, 3, 0, 0, 64, -64, -64, 64]
    y0, k0 = J(normalize_shift, x.T, 8, axis=0)
    assert k0.shape == (1, 6) and ints(k0) == ints(k)
    np.testing.assert_array_equal(y0, y.T)
    # 127.5 rounds away to 128, so 255 needs two shifts, not one; 254 / 2 = 127 needs one
    assert ints(J(normalize_shift, jnp.array([254], jnp.int32), 8)[1]) == [1]


# ----------------------------------------------------------------------------- multiplier_shift / apply_multiplier

@SETTINGS
@given(mult_bits=st.integers(1, 16), mantissa=st.floats(1.0, 2.0, exclude_max=True), data=st.data())
def test_multiplier_shift_error_bound(mult_bits, mantissa, data):
    e = data.draw(st.integers(mult_bits - 63, mult_bits - 2))  # every such real has 0 <= S <= 62
    real = math.ldexp(mantissa, e)
    m, s = multiplier_shift(real, mult_bits)
    assert isinstance(m, int) and isinstance(s, int) and 0 <= s <= 62
    assert 2 ** (mult_bits - 1) <= m < 2**mult_bits
    assert abs(Fraction(m, 2**s) - Fraction(real)) <= Fraction(real) / 2**mult_bits


def test_multiplier_shift_edges_and_errors():
    assert multiplier_shift(0.0) == (0, 0)
    assert multiplier_shift(1.0) == (2**14, 14)
    assert multiplier_shift(0.5, 16) == (2**15, 16)
    assert multiplier_shift(2.0**15 - 1, 15) == (2**15 - 1, 0)
    m, s = multiplier_shift(1.0 - 2.0**-20, 15)  # rounds up to 2**15: renormalized to 2**14
    assert (m, s) == (2**14, 14)
    for bad in (-1.0, float("nan"), float("inf"), 2.0**15, 2.0**15 - 0.25, 2.0**-60):
        with pytest.raises(NeurojaxError):
            multiplier_shift(bad, 15)
    for bad_bits in (0, 17):
        with pytest.raises(NeurojaxError):
            multiplier_shift(0.5, bad_bits)


@SETTINGS
@given(xs=st.lists(int32s, min_size=1, max_size=PAD),
       m=st.one_of(st.integers(0, 2**16), st.sampled_from([0, 1, 2**15, 2**15 + 1, 2**16])),
       s=st.one_of(st.integers(0, 62), st.sampled_from([0, 31, 32, 47, 48, 62])),
       mode=st.sampled_from(ROUNDING))
def test_apply_multiplier_matches_oracle(xs, m, s, mode):
    got = ints(apply_multiplier(arr(xs), m, s, mode))
    assert got == [o_wrap(o_div(x * m, s, mode), 32) for x in pad(xs)]


def test_apply_multiplier_per_channel_and_conversion_round_trip():
    x = jnp.array([[1000, -1000, 7], [I32_MAX, I32_MIN, 0]], jnp.int32)
    m = jnp.array([65536, 3, 40000], jnp.int32)
    got = np.asarray(J(apply_multiplier, x, m, 40))
    np.testing.assert_array_equal(got, [[o_div(int(v) * int(k), 40, "half_away") for v, k in zip(row, np.asarray(m))]
                                        for row in np.asarray(x)])
    m1, s1 = multiplier_shift(0.1234567)
    y = ints(J(apply_multiplier, jnp.array([10**6, -(10**6)], jnp.int32), m1, s1))
    assert all(abs(v - w) <= 123456.7 * 2**-15 + 1 for v, w in zip(y, [123457, -123457]))


# ----------------------------------------------------------------------------- FxFormat, quantize, dequantize, rescale

def test_fxformat_properties_and_validation():
    f = FxFormat(24, 12)
    assert (f.min_int, f.max_int, f.resolution) == (-(2**23), 2**23 - 1, 2.0**-12)
    assert f.max_value == (2**23 - 1) / 4096 and f.min_value == -2048.0
    assert FxFormat(32, 0).min_int == I32_MIN and FxFormat(2, -3).max_int == 1
    for bits, frac in ((1, 0), (33, 0), (0, 0), (8.0, 0), (8, 65), (8, 0.5)):
        with pytest.raises(NeurojaxError):
            FxFormat(bits, frac)
    with pytest.raises(Exception):
        f.bits = 8  # frozen


fmts = st.builds(FxFormat, st.integers(2, 32), st.integers(-8, 40))


@SETTINGS
@given(xs=st.lists(st.one_of(st.floats(-(2.0**40), 2.0**40, width=32), st.floats(-4, 4, width=32),
                             st.integers(-64, 64).map(lambda k: k / 8)), min_size=1, max_size=PAD),
       fmt=fmts, mode=st.sampled_from(ROUNDING), overflow=st.sampled_from(OVERFLOW))
def test_quantize_matches_oracle(xs, fmt, mode, overflow):
    got = ints(quantize(np.array(xs, np.float32), fmt, mode, overflow))
    fit_o = o_wrap if overflow == "wrap" else o_sat
    assert got == [fit_o(o_round(Fraction(float(np.float32(x))) * Fraction(2) ** fmt.frac, mode), fmt.bits) for x in xs]


def test_quantize_ties_specials_and_dequantize():
    f = FxFormat(8, 1)  # step 0.5, codes -128..127
    x = np.array([0.25, -0.25, 0.75, -0.75, 100.0, -100.0], np.float32)
    assert ints(quantize(x, f)) == [0, 0, 2, -2, 127, -128]  # half_even, saturate
    assert ints(quantize(x, f, "half_away")) == [1, -1, 2, -2, 127, -128]
    assert ints(quantize(x, f, "half_away", "wrap")) == [1, -1, 2, -2, -56, 56]  # 200 - 256
    assert ints(quantize(np.array([np.inf, -np.inf]), f)) == [127, -128]
    with pytest.raises(NeurojaxError):
        quantize(np.array([np.nan]), f)
    with pytest.raises(NeurojaxError):
        quantize(np.array([np.inf]), f, overflow="wrap")
    q = jnp.array([-128, -1, 0, 3, 127], jnp.int32)
    d = dequantize(q, f)
    assert d.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(d), np.array([-64.0, -0.5, 0.0, 1.5, 63.5], np.float32))
    big = FxFormat(32, 4)
    vals = np.array([I32_MAX, I32_MIN, 2**24 + 1, 12345], np.int64)
    np.testing.assert_array_equal(np.asarray(dequantize(jnp.asarray(vals.astype(np.int32)), big)),
                                  (vals.astype(np.float64) / 16).astype(np.float32))


@st.composite
def rescale_case(draw):
    src = draw(fmts)
    dst = FxFormat(draw(st.integers(2, 32)), draw(st.integers(max(-64, src.frac - 31), min(64, src.frac + 31))))
    xs = draw(st.lists(st.one_of(st.integers(src.min_int, src.max_int), st.sampled_from([src.min_int, src.max_int, 0, -1])),
                       min_size=1, max_size=PAD))
    return src, dst, xs


@SETTINGS
@given(case=rescale_case(), mode=st.sampled_from(ROUNDING), overflow=st.sampled_from(OVERFLOW))
def test_rescale_matches_oracle(case, mode, overflow):
    src, dst, xs = case
    value, count = rescale(arr(xs), src, dst, mode, overflow)
    exact = [o_round(Fraction(x) * Fraction(2) ** (dst.frac - src.frac), mode) for x in pad(xs)]
    fit_o = o_wrap if overflow == "wrap" else o_sat
    assert ints(value) == [fit_o(v, dst.bits) for v in exact]
    assert int(count) == sum(o_out(v, dst.bits) for v in exact)


def test_rescale_hand_values():
    x = jnp.array([3, -3, 127, -128], jnp.int32)
    v, c = J(rescale, x, FxFormat(8, 2), FxFormat(8, 1))  # /2 half away: 1.5 -> 2
    assert ints(v) == [2, -2, 64, -64] and int(c) == 0
    v, c = J(rescale, x, FxFormat(8, 2), FxFormat(8, 4))  # *4: 508 and -512 saturate
    assert ints(v) == [12, -12, 127, -128] and int(c) == 2
    v, c = J(rescale, jnp.array([I32_MAX], jnp.int32), FxFormat(32, 0), FxFormat(32, 31), overflow="wrap")
    assert ints(v) == [o_wrap(I32_MAX * 2**31, 32)] and int(c) == 1
    with pytest.raises(NeurojaxError):
        rescale(x, FxFormat(8, 0), FxFormat(8, 32))


# ----------------------------------------------------------------------------- errors

def test_user_errors():
    x = jnp.array([1, 2], jnp.int32)
    cases = [
        lambda: shift_right(x, 1, "nearest"),
        lambda: shift_right(x, 32),
        lambda: shift_right(x, -1),
        lambda: shift_right(x, np.array([0, 40])),
        lambda: shift_right(jnp.array([1.5]), 1),
        lambda: shift_right(x.astype(jnp.uint32), 1),
        lambda: shift_left(x, 1, "clip"),
        lambda: wrap(x, 0),
        lambda: saturate(x, 33),
        lambda: fit(x, 8, "clamp"),
        lambda: mul_shift(x, 2**15 + 1, 3),
        lambda: mul_shift(x, 3, 63),
        lambda: mul_shift_wide(x, -(2**16) - 1, 3),
        lambda: normalize_shift(x, 1),
        lambda: apply_multiplier(x, 2**16 + 1, 3),
        lambda: apply_multiplier(x, -1, 3),
        lambda: quantize(np.zeros(2), FxFormat(8, 0), "round"),
        lambda: quantize(np.zeros(2), (8, 0)),
        lambda: rescale(x, FxFormat(8, 0), 8),
        lambda: dequantize(x, None),
    ]
    for i, case in enumerate(cases):
        with pytest.raises(NeurojaxError):
            case()
            pytest.fail(f"case {i} did not raise")
    assert issubclass(NeurojaxError, ValueError)


# ----------------------------------------------------------------------------- integer-only jaxprs

ALLOWED = {np.dtype(np.int32), np.dtype(np.bool_)}


def _jaxpr_dtypes(jaxpr, out):
    """Collect the dtype of every variable, literal and dtype parameter, recursing into sub-jaxprs."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)  # ClosedJaxpr -> Jaxpr
    for v in list(jaxpr.invars) + list(jaxpr.outvars) + list(jaxpr.constvars):
        out.add(np.dtype(v.aval.dtype))
    for eqn in jaxpr.eqns:
        for v in list(eqn.invars) + list(eqn.outvars):
            out.add(np.dtype(v.aval.dtype))
        params = list(eqn.params.values())
        while params:
            p = params.pop()
            if isinstance(p, (tuple, list)):
                params.extend(p)
            elif hasattr(p, "eqns") or hasattr(getattr(p, "jaxpr", None), "eqns"):
                _jaxpr_dtypes(p, out)
            elif isinstance(p, np.dtype) or (isinstance(p, type) and issubclass(p, np.generic)):
                out.add(np.dtype(p))
    return out


def _dtypes_of(fn, *args):
    return _jaxpr_dtypes(jax.make_jaxpr(fn)(*args), set())


def test_dtype_checker_detects_floats_and_int64():
    """The check below can fail: a float op, also hidden in a sub-jaxpr, is found."""
    x = jnp.arange(4, dtype=jnp.int32)
    assert np.dtype(np.float32) in _dtypes_of(lambda v: (v.astype(jnp.float32) * 0.5).astype(jnp.int32), x)
    # int32 in and out, float only inside a nested jit / a cond branch: found by the recursion
    nested = jax.make_jaxpr(lambda v: jax.jit(lambda w: jnp.round(w * 0.5).astype(jnp.int32))(v))(x)
    assert {np.dtype(v.aval.dtype) for e in nested.jaxpr.eqns for v in e.invars + e.outvars} == {np.dtype(np.int32)}
    assert np.dtype(np.float32) in _jaxpr_dtypes(nested, set())
    assert np.dtype(np.float32) in _dtypes_of(
        lambda v: jax.lax.cond(v[0] > 0, lambda w: (w * 1.5).astype(jnp.int32), lambda w: w, v), x)
    assert np.dtype(np.int64) not in _dtypes_of(lambda v: v + 1, x)


@pytest.mark.parametrize("mode", ROUNDING)
def test_forward_jaxprs_are_int32_only(mode):
    a = jnp.zeros((3, 8), jnp.int32)
    b = jnp.zeros((8,), jnp.int32)
    n_tok = jnp.zeros((3, 1), jnp.int32)
    fns = {
        "shift_right static": (lambda x: shift_right(x, 7, mode), a),
        "shift_right dynamic": (lambda x, k: shift_right(x, k, mode), a, n_tok),
        "mul_shift static": (lambda x, y: mul_shift(x, y, 40, mode), a, b),
        "mul_shift dynamic": (lambda x, y, k: mul_shift(x, y, k, mode), a, b, n_tok),
        "mul_shift_wide": (lambda x, y, k: mul_shift_wide(x, y, k, mode), a, b, n_tok),
        "jit(mul_shift)": (jax.jit(lambda x, y, k: mul_shift(x, y, k, mode)), a, b, n_tok),
        "normalize_shift": (lambda x: normalize_shift(x, 12), a),
        "apply_multiplier": (lambda x: apply_multiplier(x, 40000, 45, mode), a),
        "rescale down": (lambda x: rescale(x, FxFormat(24, 12), FxFormat(8, 4), mode), a),
        "rescale up": (lambda x: rescale(x, FxFormat(8, 4), FxFormat(24, 12), mode, "wrap"), a),
        "shift_left": (lambda x, k: shift_left(x, k, "saturate", 24), a, n_tok),
        "fit": (lambda x: fit(x, 24, "saturate"), a),
        "bit_length": (bit_length, a),
    }
    for name, (fn, *args) in fns.items():
        dts = _dtypes_of(fn, *args)
        assert dts <= ALLOWED, (name, dts)
