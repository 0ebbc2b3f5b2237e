"""Spike coding: threshold and counts vs a NumPy float64 oracle, integrate-fire vs a Python loop,
spike trains vs per-element string/loop oracles (T rules, MSB first, zero points, exact decode),
the straight-through gradient, statistics and energy against hand counts, and every bad input.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurojax.errors import NeurojaxError
from neurojax.spiking.coding import (
    CODINGS,
    ENERGY_45NM,
    ENERGY_SOURCES,
    MAX_STEPS_TWOS,
    SpikeTrain,
    adaptive_threshold,
    decode,
    decode_raw,
    dense_energy_pj,
    dense_macs,
    encode,
    encode_static,
    energy_per_pair_pj,
    energy_report,
    min_steps,
    op_energy_pj,
    sparsity,
    spike_coded,
    spike_counts,
    spike_energy_pj,
    spikes_per_element,
    synaptic_ops,
)

SETTINGS = settings(max_examples=80, deadline=None, derandomize=True)
I32_MAX = 2**31 - 1


def _np(a):
    return np.asarray(a)


# ----------------------------------------------------------------------------- oracles (plain Python / NumPy)

def oracle_threshold(x, k):
    """float64 `clip(mean|x| / k, 1e-5, 1e4)` per row."""
    m = np.mean(np.abs(np.asarray(x, np.float64)), axis=-1, keepdims=True)
    return np.clip(m / k, 1e-5, 1e4)


def oracle_if(x, v_th, limit=None):
    """Integrate-and-fire count of one neuron, float32 arithmetic, one input at t = 0."""
    v, vt, n = np.float32(x), np.float32(v_th), 0
    while (limit is None or n < limit) and v >= vt:
        v = np.float32(v - vt)
        n += 1
    return n


def oracle_shift(counts, coding, half_shift):
    """Shifted counts and zero points, element by element (Python ints)."""
    c = [int(v) for v in np.ravel(counts)]
    zp = [0] * len(c)
    if coding == "binary" and c and min(c) < 0:
        m = min(c)
        c, zp = [v - m for v in c], [-m] * len(c)
    elif coding != "binary" and half_shift and all(v >= 0 for v in c):
        h = [-(-v // 2) for v in c]  # ceil(v / 2)
        c, zp = [v - hv for v, hv in zip(c, h)], [-hv for hv in h]
    return c, zp


def oracle_T(coding, c):
    """The spec's T rules, written with log2 as the spec does."""
    a = max((abs(v) for v in c), default=0)
    if coding == "binary":
        return max(c, default=0)
    if coding == "ternary":
        return a
    if coding == "bitwise":
        return max(1, math.ceil(math.log2(a + 1)))
    return max(2, math.ceil(math.log2(a + 1)) + 1)


def oracle_column(coding, v, T):
    """One element's spike train (list of T ints): loops and binary strings."""
    if coding == "binary":  # emit 1 while the remaining count is positive
        out, r = [], v
        for _ in range(T):
            s = 1 if r > 0 else 0
            out.append(s)
            r -= s
        return out
    if coding == "ternary":  # emit sign(remaining), subtract it
        out, r = [], v
        for _ in range(T):
            s = (r > 0) - (r < 0)
            out.append(s)
            r -= s
        return out
    if coding == "bitwise":
        sign = -1 if v < 0 else 1
        return [sign * int(b) for b in format(abs(v), f"0{T}b")] if T else []
    return [int(b) for b in format(v % 2**T, f"0{T}b")]  # two's complement, MSB first


# ----------------------------------------------------------------------------- encode / decode, randomized

BOUND = {"binary": 40, "ternary": 40, "bitwise": I32_MAX, "twos_complement": 2**29 - 1}
SHAPES = [(), (1,), (5,), (2, 3), (3, 1, 2), (0,), (2, 0)]


@st.composite
def count_tensors(draw):
    coding = draw(st.sampled_from(CODINGS))
    b = BOUND[coding]
    shape = draw(st.sampled_from(SHAPES))
    kind = draw(st.sampled_from(["any", "any", "nonneg", "zero", "extreme", "small"]))
    elements = {
        "any": st.integers(-b, b),
        "nonneg": st.integers(0, b),
        "zero": st.just(0),
        "extreme": st.sampled_from([-b, b, 0, 1, -1, b - 1, -b + 1]),
        "small": st.integers(-3, 3),
    }[kind]
    counts = draw(hnp.arrays(np.int32, shape, elements=elements))
    return coding, counts, draw(st.booleans())


@SETTINGS
@given(count_tensors())
def test_encode_decode_identity_and_layout(case):
    coding, counts, half_shift = case
    tr = encode(jnp.asarray(counts), coding, half_shift=half_shift)
    # exact identity, for every coding, including all-non-negative and all-zero tensors
    np.testing.assert_array_equal(_np(decode(tr)), counts)
    np.testing.assert_array_equal(_np(decode_raw(tr)), counts.astype(np.int64) + _np(tr.zero_point))
    # spec T, shapes, dtypes
    shifted, zp = oracle_shift(counts, coding, half_shift)
    T = oracle_T(coding, shifted)
    assert tr.T == T == min_steps(counts, coding, half_shift=half_shift)
    assert tr.coding == coding and tr.shape == counts.shape
    assert tr.train.dtype == jnp.int8 and tr.train.shape == (T,) + counts.shape
    assert tr.zero_point.dtype == jnp.int32
    # train contents element by element (MSB first) and zero points (2^T where two's complement is negative)
    train = _np(tr.train).reshape(T, counts.size)
    if coding == "twos_complement":
        zp = [z + (2**T if v < 0 else 0) for z, v in zip(zp, shifted)]
    assert _np(tr.zero_point).ravel().tolist() == zp
    for i, v in enumerate(shifted):
        assert train[:, i].tolist() == oracle_column(coding, v, T), (i, v)
    alphabet = {"binary": {0, 1}, "twos_complement": {0, 1}}.get(coding, {-1, 0, 1})
    assert set(np.unique(train).tolist()) <= alphabet


_static_roundtrip = jax.jit(lambda c, coding, T: decode(encode_static(c, coding, T)), static_argnums=(1, 2))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.sampled_from(CODINGS), hnp.arrays(np.int32, (2, 3), elements=st.integers(-20, 20)),
       st.integers(0, 3))
def test_explicit_T_at_or_above_the_minimum_decodes(coding, counts, extra):
    """Any T >= the smallest representable one works, and the jitted static core agrees."""
    shifted, _ = oracle_shift(counts, coding, False)
    lo, hi = min(shifted), max(shifted)
    need = {"binary": hi, "ternary": max(-lo, hi), "bitwise": max(-lo, hi).bit_length(),
            "twos_complement": max(1, hi.bit_length() + 1, (-lo - 1).bit_length() + 1 if lo < 0 else 1)}[coding]
    tr = encode(counts, coding, T=need + extra)
    assert tr.T == need + extra
    np.testing.assert_array_equal(_np(decode(tr)), counts)
    if need > 0:
        with pytest.raises(NeurojaxError, match=f"needs T >= {need}"):
            encode(counts, coding, T=need - 1)
    np.testing.assert_array_equal(_np(_static_roundtrip(jnp.asarray(counts), coding, need + extra)), counts)


# ----------------------------------------------------------------------------- T rules and layouts by hand

@pytest.mark.parametrize("coding, counts, T", [
    ("twos_complement", [-8, 7], 5),  # the spec's example
    ("twos_complement", [0, 0], 2),
    ("twos_complement", [1], 2),
    ("twos_complement", [-1], 2),
    ("twos_complement", [3, -2], 3),
    ("twos_complement", [-4], 4),
    ("bitwise", [0, 0], 1),
    ("bitwise", [1], 1),
    ("bitwise", [7, -7], 3),
    ("bitwise", [-8], 4),
    ("bitwise", [I32_MAX, -I32_MAX], 31),
    ("ternary", [0], 0),
    ("ternary", [-5, 2], 5),
    ("binary", [0, 0, 0], 0),
    ("binary", [0, 3, 1], 3),
    ("binary", [-2, 1], 3),  # shifted by the minimum: [0, 3]
])
def test_min_steps_hand(coding, counts, T):
    assert min_steps(np.array(counts, np.int32), coding) == T
    assert encode(np.array(counts, np.int32), coding).T == T


def test_layouts_hand():
    c = jnp.array([5, -5, 2, 0], jnp.int32)
    bw = encode(c, "bitwise")  # T = 3; 5 = 101, 2 = 010, MSB first, negatives as -1
    assert _np(bw.train).tolist() == [[1, -1, 0, 0], [0, 0, 1, 0], [1, -1, 0, 0]]
    assert _np(bw.zero_point).tolist() == [0, 0, 0, 0]
    tc = encode(c, "twos_complement")  # T = 4; -5 mod 16 = 11 = 1011, 5 = 0101
    assert _np(tc.train).T.tolist() == [[0, 1, 0, 1], [1, 0, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert _np(tc.zero_point).tolist() == [0, 16, 0, 0]
    assert _np(decode_raw(tc)).tolist() == [5, 11, 2, 0]
    tc = encode(jnp.array([-8, 7]), "twos_complement")  # T = 5: -8 = 11000, 7 = 00111
    assert _np(tc.train).T.tolist() == [[1, 1, 0, 0, 0], [0, 0, 1, 1, 1]]
    assert _np(tc.zero_point).tolist() == [32, 0]
    tc4 = encode(jnp.array([-8, 7]), "twos_complement", T=4)  # the smallest T that holds [-8, 7]
    assert _np(tc4.train).T.tolist() == [[1, 0, 0, 0], [0, 1, 1, 1]]
    assert _np(decode(tc4)).tolist() == [-8, 7]
    bi = encode(jnp.array([3, 0, 1]), "binary")
    assert _np(bi.train).tolist() == [[1, 0, 1], [1, 0, 0], [1, 0, 0]]
    te = encode(jnp.array([2, -3, 0]), "ternary")
    assert _np(te.train).tolist() == [[1, -1, 0], [1, -1, 0], [0, -1, 0]]
    # unsigned coder given a negative count: the whole tensor shifts by its minimum
    bn = encode(jnp.array([-2, 1, 0]), "binary")
    assert bn.T == 3 and _np(bn.zero_point).tolist() == [2, 2, 2]
    assert _np(bn.train).tolist() == [[0, 1, 1], [0, 1, 1], [0, 1, 0]]
    assert _np(decode(bn)).tolist() == [-2, 1, 0]
    # opt-in half shift of an all-non-negative tensor under a signed coder
    hs = encode(jnp.array([7, 2, 0]), "ternary", half_shift=True)
    assert hs.T == 3 and _np(hs.zero_point).tolist() == [-4, -1, 0]
    assert _np(decode_raw(hs)).tolist() == [3, 1, 0] and _np(decode(hs)).tolist() == [7, 2, 0]
    # without it, all-non-negative input is encoded as is (upstream raises here)
    nn = encode(jnp.array([7, 2, 0]), "ternary")
    assert nn.T == 7 and _np(nn.zero_point).tolist() == [0, 0, 0]
    # a SpikeTrain is a pytree: decode runs under jit
    np.testing.assert_array_equal(_np(jax.jit(decode)(bw)), _np(c))


# ----------------------------------------------------------------------------- threshold and counts vs float64 oracle

ROW_SHAPES = [(1, 1), (3, 4), (2, 2, 7)]


@st.composite
def activations(draw):
    shape = draw(st.sampled_from(ROW_SHAPES))
    scale = draw(st.sampled_from([1.0, 1e-7, 1e6, 0.5]))
    elements = st.floats(-1e3, 1e3, width=32, allow_nan=False)
    x = draw(hnp.arrays(np.float32, shape, elements=elements))
    return (x * np.float32(scale)).astype(np.float32), draw(st.sampled_from([3.0, 1.0, 5.5]))


def _assert_round_counts(x, v_th, counts):
    q = x.astype(np.float64) / v_th.astype(np.float64)
    expected = np.round(q)  # half to even
    frac = np.abs(q) - np.floor(np.abs(q))
    near_tie = np.abs(frac - 0.5) <= 1e-6 * np.maximum(1.0, np.abs(q))  # float32 vs float64 division
    np.testing.assert_array_equal(counts[~near_tie], expected[~near_tie])
    assert np.all(np.abs(counts[near_tie] - expected[near_tie]) <= 1)


@SETTINGS
@given(activations())
def test_threshold_and_counts_match_float64_oracle(case):
    x, k = case
    counts, v_th = spike_counts(jnp.asarray(x), k=k)
    counts, v_th = _np(counts), _np(v_th)
    assert counts.dtype == np.int32 and counts.shape == x.shape
    assert v_th.dtype == np.float32 and v_th.shape == x.shape[:-1] + (1,)
    np.testing.assert_allclose(v_th, oracle_threshold(x, k), rtol=1e-5)
    np.testing.assert_array_equal(_np(adaptive_threshold(jnp.asarray(x), k)), v_th)
    _assert_round_counts(x, v_th, counts)
    # unclipped V_th: |count| <= k * D (one non-zero channel reaches it)
    unclipped = (v_th > np.float32(1e-5)) & (v_th < np.float32(1e4))
    bound = np.ceil(k * x.shape[-1] * (1 + 1e-5))
    assert np.all(np.abs(counts) <= np.where(unclipped, bound, np.inf))
    # symmetric clipping
    c2, _ = spike_counts(jnp.asarray(x), k=k, clip=2)
    np.testing.assert_array_equal(_np(c2), np.clip(counts, -2, 2))


def test_counts_hand_ties_and_clips():
    x = jnp.array([
        [0.5, 2.5, -1.5, 7.5],    # mean|x| = 3 -> V_th = 1: ties 0.5 -> 0, 2.5 -> 2, -1.5 -> -2, 7.5 -> 8
        [-0.5, 3.5, -4.5, 3.5],   # V_th = 1: -0.5 -> 0, 3.5 -> 4, -4.5 -> -4
        [0.0, 0.0, 0.0, -6.0],    # one non-zero channel: V_th = 0.5, count -k*D = -12
        [0.0, 0.0, 0.0, 0.0],     # all zero: V_th floor 1e-5
        [1e-7, -1e-7, 0.0, 0.0],  # tiny: V_th floor 1e-5, counts round(0.01) = 0
        [3e5, 3e5, -3e5, 3e5],    # huge: mean/3 = 1e5 -> ceiling 1e4, counts +-30
    ], jnp.float32)
    counts, v_th = spike_counts(x)
    assert _np(counts).tolist() == [[0, 2, -2, 8], [0, 4, -4, 4], [0, 0, 0, -12], [0] * 4, [0] * 4,
                                    [30, 30, -30, 30]]
    np.testing.assert_array_equal(_np(v_th)[:, 0], np.array([1, 1, 0.5, 1e-5, 1e-5, 1e4], np.float32))
    counts, _ = spike_counts(x, clip=5)
    assert _np(counts)[[0, 2, 5]].tolist() == [[0, 2, -2, 5], [0, 0, 0, -5], [5, 5, -5, 5]]
    # k = 1.5: V_th = 2 on [1, -3, 5, 3] -> ties 0.5, -1.5, 2.5, 1.5 -> 0, -2, 2, 2
    counts, v_th = spike_counts(jnp.array([1.0, -3.0, 5.0, 3.0]), k=1.5)
    assert _np(counts).tolist() == [0, -2, 2, 2] and float(v_th[0]) == 2.0


# ----------------------------------------------------------------------------- integrate-and-fire vs a Python loop

@settings(max_examples=50, deadline=None, derandomize=True)
@given(hnp.arrays(np.float32, (3, 5), elements=st.floats(-1e2, 1e2, width=32, allow_nan=False)),
       st.sampled_from([None, 1, 4]))
def test_integrate_fire_matches_python_loop(x, clip):
    lit, v_th = spike_counts(jnp.asarray(x), mode="integrate_fire", clip=clip)
    sig, v_th2 = spike_counts(jnp.asarray(x), mode="integrate_fire_signed", clip=clip)
    lit, sig, v_th = _np(lit), _np(sig), _np(v_th)
    np.testing.assert_array_equal(v_th, _np(v_th2))
    for (i, j), xv in np.ndenumerate(x):
        on = oracle_if(xv, v_th[i, 0], clip)
        off = oracle_if(-xv, v_th[i, 0], clip)
        assert lit[i, j] == on, (xv, v_th[i, 0])
        assert sig[i, j] == on - off, (xv, v_th[i, 0])
    assert np.all(lit >= 0) and np.all(lit[x < 0] == 0)  # literal form: non-negative, negatives silent
    # floor-like: within one of floor (literal) / trunc (signed) of x / V_th
    q = x.astype(np.float64) / v_th.astype(np.float64)
    lim = np.inf if clip is None else clip
    assert np.all(np.abs(lit - np.minimum(np.floor(np.maximum(q, 0)), lim)) <= 1)
    assert np.all(np.abs(sig - np.clip(np.trunc(q), -lim, lim)) <= 1)


def test_integrate_fire_hand():
    x = jnp.array([0.5, 2.5, -1.5, 7.5])  # V_th = 1
    assert _np(spike_counts(x, mode="integrate_fire")[0]).tolist() == [0, 2, 0, 7]
    assert _np(spike_counts(x, mode="integrate_fire_signed")[0]).tolist() == [0, 2, -1, 7]
    assert _np(spike_counts(x, mode="integrate_fire", clip=3)[0]).tolist() == [0, 2, 0, 3]
    assert _np(spike_counts(x, mode="integrate_fire_signed", clip=1)[0]).tolist() == [0, 1, -1, 1]


# ----------------------------------------------------------------------------- straight-through spike_coded

@pytest.mark.parametrize("mode", ["round", "integrate_fire_signed"])
def test_spike_coded_value_and_identity_gradient(mode):
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 6), jnp.float32) * 2.0
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 6), jnp.float32)
    counts, v_th = spike_counts(x, clip=4, mode=mode)
    y = spike_coded(x, clip=4, mode=mode)
    np.testing.assert_array_equal(_np(y), _np(counts).astype(np.float32) * _np(v_th))
    np.testing.assert_array_equal(_np(jax.jit(lambda x: spike_coded(x, clip=4, mode=mode))(x)), _np(y))
    g = jax.grad(lambda x: jnp.sum(w * spike_coded(x, clip=4, mode=mode)))(x)
    np.testing.assert_array_equal(_np(g), _np(w))
    # full Jacobian of one token is the identity: no path through V_th
    jac = jax.jacfwd(lambda r: spike_coded(r, mode=mode))(x[0])
    np.testing.assert_array_equal(_np(jac), np.eye(6, dtype=np.float32))
    yb = spike_coded(x.astype(jnp.bfloat16), mode=mode)
    assert yb.dtype == jnp.bfloat16


# ----------------------------------------------------------------------------- statistics and energy by hand

def test_statistics_hand():
    bw = encode(jnp.array([5, -5, 2, 0]), "bitwise")  # 5 non-zero of 12 entries
    assert float(sparsity(bw)) == pytest.approx(7 / 12, abs=1e-7)
    assert float(sparsity(bw.train)) == pytest.approx(7 / 12, abs=1e-7)
    assert float(spikes_per_element(bw)) == 1.25
    assert synaptic_ops(bw, 10) == 50 and dense_macs((4,), 10) == 40
    assert dense_macs((2, 3, 4), 7) == 168
    bi = encode(jnp.array([[3, 0, 1]]), "binary")  # 4 spikes over 3 steps x 3 elements
    assert float(sparsity(bi)) == pytest.approx(5 / 9, abs=1e-7) and synaptic_ops(bi, 2) == 8
    empty = encode(jnp.zeros((2, 2), jnp.int32), "binary")  # T = 0
    assert empty.T == 0 and float(sparsity(empty)) == 1.0 and float(spikes_per_element(empty)) == 0.0
    assert synaptic_ops(empty, 5) == 0
    assert float(jax.jit(sparsity)(bw)) == pytest.approx(7 / 12, abs=1e-7)


def test_energy_hand():
    assert ENERGY_45NM["fp16_mac"] == 1.5 and ENERGY_45NM["int8_mac"] == 0.23 and ENERGY_45NM["int8_add"] == 0.03
    assert (ENERGY_45NM["fp32_mul"], ENERGY_45NM["fp32_add"], ENERGY_45NM["int32_mul"],
            ENERGY_45NM["int32_add"], ENERGY_45NM["int8_mul"]) == (3.7, 0.9, 3.1, 0.1, 0.2)
    assert set(ENERGY_SOURCES) == set(ENERGY_45NM)
    assert op_energy_pj(("int8_mul", "int8_add")) == pytest.approx(ENERGY_45NM["int8_mac"])
    assert op_energy_pj(("fp32_mul", "fp32_add")) == pytest.approx(4.6)
    bw = encode(jnp.array([5, -5, 2, 0]), "bitwise")
    assert spike_energy_pj(bw, 10) == pytest.approx(50 * 0.03)
    assert dense_energy_pj((4,), 10) == pytest.approx(40 * 1.5)
    assert dense_energy_pj((4,), 10, ("fp32_mul", "fp32_add")) == pytest.approx(40 * 4.6)
    rep = energy_report(bw, 10)
    assert rep["synaptic_ops"] == 50 and rep["dense_macs"] == 40
    assert rep["constants"] == {"int8_add": 0.03, "fp16_mac": 1.5, "int8_mac": 0.23}
    assert rep["saving"]["fp16_mac"] == pytest.approx(1 - 1.5 / 60)
    # the report's figures: 1.13 spikes per element x 0.03 pJ ~ 0.034 pJ per pair,
    # 97.7% below FP16 MAC and 85.2% below INT8 MAC
    counts = jnp.array([2] * 13 + [1] * 87)  # 113 spikes over 100 elements
    tr = encode(counts, "binary")
    assert float(spikes_per_element(tr)) == pytest.approx(1.13)
    pair = round(energy_per_pair_pj(tr), 3)
    assert pair == 0.034
    assert round(100 * (1 - pair / ENERGY_45NM["fp16_mac"]), 1) == 97.7
    assert round(100 * (1 - pair / ENERGY_45NM["int8_mac"]), 1) == 85.2


# ----------------------------------------------------------------------------- bad input

X = jnp.ones((2, 4), jnp.float32)


@pytest.mark.parametrize("call, match", [
    (lambda: encode(jnp.array([1.0, 2.0]), "ternary"), "integer dtype"),
    (lambda: encode(np.array([0.5, 1.0]), "bitwise"), "non-integral value 0.5"),
    (lambda: encode(np.array([np.nan]), "binary"), "non-integral"),
    (lambda: min_steps(jnp.array([1.5]), "binary"), "non-integral"),
    (lambda: encode(np.array([True]), "binary"), "integer dtype"),
    (lambda: encode(np.array([2**31], np.int64), "bitwise"), "fit in int32"),
    (lambda: encode(jnp.array([-8, 7]), "twos_complement", T=3), "needs T >= 4"),
    (lambda: encode(jnp.array([3]), "binary", T=2), "needs T >= 3"),
    (lambda: encode(jnp.array([8]), "bitwise", T=3), "needs T >= 4"),
    (lambda: encode(jnp.array([-5]), "ternary", T=4), "needs T >= 5"),
    (lambda: encode(jnp.array([-2, 1]), "binary", T=2), "needs T >= 3"),  # shifted span
    (lambda: encode(jnp.array([1]), "ternary", T=-1), "non-negative integer"),
    (lambda: encode(jnp.array([1]), "ternary", T=2.0), "non-negative integer"),
    (lambda: encode(jnp.array([-1, 2]), "binary", allow_zero_point=False), "unsigned.*negative"),
    (lambda: min_steps(jnp.array([-1]), "binary", allow_zero_point=False), "allow_zero_point"),
    (lambda: encode(jnp.array([1]), "ternary", allow_zero_point=False, half_shift=True), "allow_zero_point"),
    (lambda: encode(jnp.array([2**29]), "twos_complement"), f"limited to {MAX_STEPS_TWOS}"),
    (lambda: encode(jnp.array([1]), "twos_complement", T=31), f"limited to {MAX_STEPS_TWOS}"),
    (lambda: encode(jnp.array([-(2**31)], jnp.int32), "bitwise"), "no int32 magnitude"),
    (lambda: encode(jnp.array([-(2**31), 2**31 - 1], jnp.int32), "binary"), "exceed int32"),
    (lambda: encode(jnp.array([1]), "unary"), "unknown spike coding 'unary'"),
    (lambda: min_steps(jnp.array([1]), "Binary"), "unknown spike coding"),
    (lambda: decode(SpikeTrain(jnp.zeros((1, 1), jnp.int8), jnp.zeros((1,), jnp.int32), "sm", 1)),
     "unknown spike coding"),
    (lambda: jax.jit(lambda c: encode(c, "ternary").train)(jnp.array([1])), "encode_static"),
    (lambda: adaptive_threshold(X, 0.0), "positive"),
    (lambda: spike_counts(X, k=-1.0), "positive"),
    (lambda: spike_counts(X, k=float("nan")), "positive"),
    (lambda: spike_coded(X, k=0), "positive"),
    (lambda: spike_counts(X, mode="lif"), "unknown spike-count mode"),
    (lambda: spike_coded(X, mode="floor"), "unknown spike-count mode"),
    (lambda: spike_counts(X, clip=0), "clip"),
    (lambda: spike_counts(X, clip=1.5), "clip"),
    (lambda: spike_counts(jnp.ones((2, 0))), "channel"),
    (lambda: adaptive_threshold(jnp.float32(1.0)), "channel"),
    (lambda: synaptic_ops(jnp.zeros((1, 2), jnp.int8), 0), "fan_out"),
    (lambda: dense_macs((2,), -3), "fan_out"),
    (lambda: op_energy_pj("fp8_mac"), "unknown energy constant"),
    (lambda: spike_energy_pj(jnp.zeros((1, 2), jnp.int8), 4, op="int4_add"), "unknown energy constant"),
])
def test_bad_input(call, match):
    with pytest.raises(NeurojaxError, match=match):
        call()
