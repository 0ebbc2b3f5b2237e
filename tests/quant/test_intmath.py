"""Integer 1/sqrt, 1/x, interpolated lookup tables, sigmoid and SiLU.

Oracles are independent of the module: exact `Fraction` / Python-int arithmetic for the
relative-error bounds and for the documented interpolation formula (bit-exact), float64
NumPy for the sigmoid and SiLU error bounds. Hypothesis examples are batched into one
fixed-size array call (padded), so each jitted function compiles once.
"""
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurojax.errors import NeurojaxError
from neurojax.quant.intmath import (
    INV_SQRT_REL_ERROR,
    INV_SQRT_TABLE,
    RECIPROCAL_REL_ERROR,
    RECIPROCAL_TABLE,
    SIGMOID_MAX_ABS_ERROR,
    SILU_EXCESS_ERROR,
    IntLUT,
    inv_sqrt,
    lut_eval,
    make_lut,
    reciprocal,
    sigmoid_lut,
    silu_int,
)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MODES = ("floor", "toward_zero", "half_away", "half_even")
BATCH = 64

_inv_sqrt = jax.jit(inv_sqrt)
_reciprocal = jax.jit(reciprocal)
_lut_eval = jax.jit(lut_eval, static_argnums=(1, 2))

EDGE_X = sorted({1, 2, 3, 5, 6, 7, 10, 255, 256, 257, 1000, 65535, 65536, INT32_MAX, INT32_MAX - 1}
                | {2**k for k in range(31)} | {2**k - 1 for k in range(2, 32)} | {2**k + 1 for k in range(1, 31)}
                | {4**k for k in range(16)} | {3 * 2**k for k in range(30)})


def _np_int32(xs):
    return np.asarray(xs, dtype=np.int64).astype(np.int32)


def _pad(xs, size=BATCH, fill=1):
    return _np_int32(list(xs) + [fill] * (size - len(xs)))


# ----------------------------------------------------------------------------- exact oracles

def _inv_sqrt_within(x: int, m: int, e: int, bound: Fraction) -> bool:
    """|m * 2**-e * sqrt(x) - 1| <= bound, decided exactly: square both sides (all positive)."""
    v2x = Fraction(m * m * x, 2 ** (2 * e))
    return (1 - bound) ** 2 <= v2x <= (1 + bound) ** 2


def _reciprocal_within(x: int, m: int, e: int, bound: Fraction) -> bool:
    return abs(Fraction(m * x, 2**e) - 1) <= bound


def _check_pairs(fn, xs, within, bound, e_range):
    m, e = (np.asarray(v) for v in fn(jnp.asarray(_np_int32(xs))))
    assert m.dtype == np.int32 and e.dtype == np.int32
    bad = []
    for x, mi, ei in zip(xs, m.tolist(), e.tolist()):
        if not (2**14 <= mi < 2**15 and e_range[0] <= ei <= e_range[1] and within(x, mi, ei, Fraction(bound))):
            bad.append((x, mi, ei))
    assert not bad, f"{len(bad)} bad (x, m, e), first {bad[:5]}"


def _inv_sqrt_check(xs):
    _check_pairs(_inv_sqrt, xs, _inv_sqrt_within, INV_SQRT_REL_ERROR, (14, 30))


def _reciprocal_check(xs):
    _check_pairs(_reciprocal, xs, _reciprocal_within, RECIPROCAL_REL_ERROR, (14, 45))


_x_values = st.one_of(
    st.integers(1, INT32_MAX),
    st.integers(1, 4096),
    st.integers(0, 30).map(lambda k: 2**k),
    st.tuples(st.integers(1, 31), st.integers(-3, 3)).map(lambda t: min(max(2 ** t[0] + t[1], 1), INT32_MAX)),
)


# ----------------------------------------------------------------------------- 1/sqrt

def test_inv_sqrt_edge_values_exact_bound():
    assert 1 in EDGE_X and 2 in EDGE_X and 3 in EDGE_X and INT32_MAX in EDGE_X
    _inv_sqrt_check(EDGE_X)


def test_inv_sqrt_hand_values():
    # 1/sqrt(1) = 1 = 2**14 * 2**-14; 1/sqrt(4**k) = 2**-k exactly representable.
    m, e = _inv_sqrt(jnp.asarray(_np_int32([1, 4, 16, 4**15])))
    np.testing.assert_array_equal(np.asarray(m), [2**14] * 4)
    np.testing.assert_array_equal(np.asarray(e), [14, 15, 16, 29])


@settings(max_examples=60, deadline=None)
@given(st.lists(_x_values, min_size=1, max_size=BATCH))
def test_inv_sqrt_random_exact_bound(xs):
    _inv_sqrt_check(_pad(xs).tolist())


def _dense_x(seed: int) -> np.ndarray:
    """Every x below 2**17, the top 2**16 int32 values, and 2**18 log-uniform ones (int64)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([
        np.arange(1, 1 << 17), np.arange(INT32_MAX - (1 << 16), INT32_MAX + 1),
        np.exp2(rng.uniform(0, 31, 1 << 18)).astype(np.int64).clip(1, INT32_MAX),
    ]).astype(np.int64)


def test_inv_sqrt_dense_float64_bound():
    x = _dense_x(seed=0)
    m, e = (np.asarray(v) for v in _inv_sqrt(jnp.asarray(x.astype(np.int32))))
    assert m.min() >= 2**14 and m.max() < 2**15
    rel = np.abs(np.ldexp(m.astype(np.float64), -e) * np.sqrt(x.astype(np.float64)) - 1)
    assert rel.max() <= INV_SQRT_REL_ERROR, np.log2(rel.max())


# ----------------------------------------------------------------------------- 1/x

def test_reciprocal_edge_values_exact_bound():
    _reciprocal_check(EDGE_X)


def test_reciprocal_hand_values():
    m, e = _reciprocal(jnp.asarray(_np_int32([1, 2, 2**30])))
    np.testing.assert_array_equal(np.asarray(m), [2**14] * 3)
    np.testing.assert_array_equal(np.asarray(e), [14, 15, 44])


@settings(max_examples=60, deadline=None)
@given(st.lists(_x_values, min_size=1, max_size=BATCH))
def test_reciprocal_random_exact_bound(xs):
    _reciprocal_check(_pad(xs).tolist())


def test_reciprocal_dense_float64_bound():
    # m * x < 2**46 and 2**-e are exact in float64, so this error is computed exactly.
    x = _dense_x(seed=1)
    m, e = (np.asarray(v) for v in _reciprocal(jnp.asarray(x.astype(np.int32))))
    assert m.min() >= 2**14 and m.max() < 2**15
    rel = np.abs(np.ldexp(m.astype(np.float64) * x, -e) - 1)
    assert rel.max() <= RECIPROCAL_REL_ERROR, np.log2(rel.max())


@pytest.mark.parametrize("fn", [inv_sqrt, reciprocal], ids=["inv_sqrt", "reciprocal"])
def test_inputs_below_one_are_treated_as_one(fn):
    m, e = jax.jit(fn)(jnp.asarray(_np_int32([0, -1, -12345, INT32_MIN, 1])))
    np.testing.assert_array_equal(np.asarray(m), [2**14] * 5)
    np.testing.assert_array_equal(np.asarray(e), [14] * 5)


def test_seed_tables_are_q15_and_decreasing():
    for table in (INV_SQRT_TABLE, RECIPROCAL_TABLE):
        assert table.dtype == np.int32 and table.shape == (128,) and not table.flags.writeable
        assert table.min() > 2**14 and table.max() < 2**15
    assert np.all(np.diff(RECIPROCAL_TABLE) < 0)
    assert np.all(np.diff(INV_SQRT_TABLE[:64]) < 0) and np.all(np.diff(INV_SQRT_TABLE[64:]) < 0)
    assert INV_SQRT_TABLE[63] > INV_SQRT_TABLE[64]  # g = 2 continues g -> 2 from below


# ----------------------------------------------------------------------------- lookup tables

def _round_fraction(q: Fraction, mode: str) -> int:
    fl = math.floor(q)
    r = q - fl
    if mode == "floor":
        return fl
    if mode == "toward_zero":
        return math.trunc(q)
    if r != Fraction(1, 2):
        return fl + (r > Fraction(1, 2))
    if mode == "half_away":
        return fl + (q > 0)
    return fl + (fl % 2)  # half_even


def _lut_oracle(x: int, table, x_lo: int, s: int, mode: str) -> int:
    """The documented interpolation rule in Python integers."""
    n = len(table) - 1
    x_hi = x_lo + n * 2**s
    xc = min(max(x, x_lo), x_hi)
    d = xc - x_lo
    i = min(d >> s, n - 1)
    f = d - (i << s)
    return table[i] + _round_fraction(Fraction((table[i + 1] - table[i]) * f, 2**s), mode)


@st.composite
def _lut_and_inputs(draw):
    n = draw(st.integers(1, 40))
    s = draw(st.integers(0, 15))
    span = n * 2**s
    x_lo = draw(st.one_of(st.integers(INT32_MIN, INT32_MAX - span), st.integers(-span, 0),
                          st.sampled_from([INT32_MIN, INT32_MAX - span])))
    big = draw(st.booleans())
    lim = 2**30 if big else 2**10
    table = draw(st.lists(st.integers(-lim, lim - 1), min_size=n + 1, max_size=n + 1))
    x_hi = x_lo + span
    special = [INT32_MIN, INT32_MAX, x_lo, x_hi, max(x_lo - 1, INT32_MIN), min(x_hi + 1, INT32_MAX)]
    special += [x_lo + j * 2**s for j in range(n + 1)]                              # breakpoints
    special += [x_lo + j * 2**s + (2**s >> 1) for j in range(n)]                     # midpoints (ties)
    special += [x_lo + j * 2**s + d for j in range(n) for d in (1, -1) if 0 <= j * 2**s + d <= span]
    rand = draw(st.lists(st.one_of(st.integers(INT32_MIN, INT32_MAX), st.integers(x_lo, x_hi),
                                   st.integers(max(x_lo - 2**s, INT32_MIN), min(x_hi + 2**s, INT32_MAX))),
                         min_size=0, max_size=64))
    return table, x_lo, s, (special + rand)[:256]


@settings(max_examples=40, deadline=None)
@given(_lut_and_inputs(), st.sampled_from(MODES))
def test_lut_eval_matches_integer_oracle(case, mode):
    table, x_lo, s, xs = case
    lut = IntLUT(np.asarray(table, np.int32), 0, x_lo, s, 0)
    got = np.asarray(_lut_eval(jnp.asarray(_pad(xs, 256, x_lo)), lut, mode)).tolist()[:len(xs)]
    want = [_lut_oracle(x, table, x_lo, s, mode) for x in xs]
    bad = [(x, g, w) for x, g, w in zip(xs, got, want) if g != w]
    assert not bad, f"{len(bad)} mismatches (x, got, want), first {bad[:5]}"


def test_lut_eval_breakpoints_clamps_and_ties_by_hand():
    # breakpoints at -8, -4, 0, 4, 8 (step_shift 2) with values 0, 10, -3, 1000, 1001
    lut = IntLUT(np.array([0, 10, -3, 1000, 1001], np.int32), 0, -8, 2, 0)
    x = jnp.asarray(_np_int32([INT32_MIN, -9, -8, -4, 0, 4, 8, 9, INT32_MAX, -7, -6, -2, 2, 6]))
    want_common = [0, 0, 0, 10, -3, 1000, 1001, 1001, 1001]
    # The increment is rounded, not the sum: -7: 0 + r(10/4 = 2.5); -6: 0 + 5;
    # -2: 10 + r(-13*2/4 = -6.5); 2: -3 + r(1003*2/4 = 501.5); 6: 1000 + r(1*2/4 = 0.5)
    want = {"half_away": [3, 5, 3, 499, 1001], "half_even": [2, 5, 4, 499, 1000],
            "floor": [2, 5, 3, 498, 1000], "toward_zero": [2, 5, 4, 498, 1000]}
    for mode, tail in want.items():
        np.testing.assert_array_equal(np.asarray(_lut_eval(x, lut, mode)), want_common + tail, err_msg=mode)


def test_make_lut_rounds_half_even_at_breakpoints():
    lut = make_lut(lambda v: v + 0.5, in_frac=0, out_frac=0, x_lo=-4, x_hi=4, log2_entries=3)
    assert (lut.x_lo, lut.step_shift, lut.x_hi, lut.n_intervals) == (-4, 0, 4, 8)
    np.testing.assert_array_equal(lut.table, [-4, -2, -2, 0, 0, 2, 2, 4, 4])


def test_make_lut_grid_and_scaling():
    lut = make_lut(lambda v: v * 0.25, in_frac=8, out_frac=10, x_lo=-16.0, x_hi=16.0, log2_entries=9)
    assert (lut.in_frac, lut.out_frac, lut.x_lo, lut.step_shift, lut.x_hi) == (8, 10, -4096, 4, 4096)
    # v = X / 2**8, so v / 4 in Q10 is X itself: the table holds the breakpoints' own codes
    np.testing.assert_array_equal(lut.table, np.arange(-4096, 4097, 16))
    # and a linear function is reproduced exactly between breakpoints, clamped outside
    x = jnp.arange(-4200, 4200, dtype=jnp.int32)
    want = np.clip(np.arange(-4200, 4200), -4096, 4096)
    np.testing.assert_array_equal(np.asarray(_lut_eval(x, lut, "half_away")), want)


@pytest.mark.parametrize("kwargs", [
    dict(in_frac=4, x_lo=0.03, x_hi=1.0, log2_entries=0),     # x_lo off the input grid
    dict(in_frac=0, x_lo=0.0, x_hi=3.0, log2_entries=0),      # step of 3 input units
    dict(in_frac=0, x_lo=0.0, x_hi=4.0, log2_entries=3),      # half an input unit per step
    dict(in_frac=20, x_lo=0.0, x_hi=1.0, log2_entries=0),     # step_shift 20 > 15
    dict(in_frac=0, x_lo=4.0, x_hi=0.0, log2_entries=0),      # empty range
])
def test_make_lut_rejects_bad_grids(kwargs):
    with pytest.raises(NeurojaxError):
        make_lut(lambda v: v, out_frac=0, **kwargs)


def test_make_lut_rejects_bad_fn_values():
    with pytest.raises(NeurojaxError):
        make_lut(lambda v: 1.0, 0, 0, 0.0, 4.0, 2)                      # not an array of the right shape
    with pytest.raises(NeurojaxError):
        make_lut(lambda v: v * 2.0**31, 0, 0, 0.0, 4.0, 2)              # does not fit int32
    with pytest.raises(NeurojaxError):
        IntLUT(np.array([INT32_MIN, INT32_MAX], np.int64), 0, 0, 0, 0)  # difference does not fit int32


def test_intlut_is_hashable_by_value_and_read_only():
    a = sigmoid_lut(8)
    b = sigmoid_lut(8)
    assert a == b and hash(a) == hash(b) and a != sigmoid_lut(7)
    with pytest.raises(ValueError):
        a.table[0] = 1


# ----------------------------------------------------------------------------- sigmoid and SiLU

def _sigmoid64(x):
    # An independent float64 form (exp, not the module's tanh), stable for both signs.
    ex = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + ex), ex / (1.0 + ex))


def _grid(in_frac, bound=20):
    return np.arange(-bound * 2**in_frac, bound * 2**in_frac + 1, dtype=np.int64)


@pytest.mark.parametrize("in_frac", list(range(0, 17)))
def test_sigmoid_lut_max_error_over_all_inputs(in_frac):
    lut = sigmoid_lut(in_frac)
    assert lut.table.shape[0] <= 513 and lut.table[0] == 0 and lut.table[-1] == 2**15
    X = _grid(in_frac)
    y = np.asarray(_lut_eval(jnp.asarray(X.astype(np.int32)), lut, "half_away"))
    err = np.abs(y / 2.0**15 - _sigmoid64(X / 2.0**in_frac))
    assert err.max() <= SIGMOID_MAX_ABS_ERROR, np.log2(err.max())


_LARGE = [INT32_MIN, INT32_MIN + 1, INT32_MAX, INT32_MAX - 1] + [s * 2**k for k in range(31) for s in (1, -1)]


@pytest.mark.parametrize("in_frac", [0, 3, 5, 8, 12, 16])
def test_silu_int_error_bounds(in_frac):
    lut = sigmoid_lut(in_frac)
    X = np.concatenate([_grid(in_frac), np.asarray(_LARGE, np.int64)])
    got = np.asarray(jax.jit(lambda v: silu_int(v, in_frac, lut))(jnp.asarray(X.astype(np.int32))))
    assert got.dtype == np.int32
    x = X / 2.0**in_frac
    err = np.abs(got / 2.0**in_frac - x * _sigmoid64(x))
    half_step = 2.0 ** -(in_frac + 1)
    # every input: |x| * sigmoid bound + half an output step (2**-40 |x| covers float64 rounding)
    assert np.all(err <= np.abs(x) * (SIGMOID_MAX_ABS_ERROR + 2.0**-40) + half_step)
    dense = np.abs(x) <= 20
    assert err[dense].max() <= half_step + SILU_EXCESS_ERROR, np.log2(err[dense].max() - half_step)
    # saturation: silu(x) == x exactly for x >= 16, == 0 for x <= -16
    hi, lo = X >= 16 * 2**in_frac, X <= -16 * 2**in_frac
    np.testing.assert_array_equal(got[hi], X[hi])
    np.testing.assert_array_equal(got[lo], 0)


def test_silu_int_rejects_mismatched_tables():
    with pytest.raises(NeurojaxError):
        silu_int(jnp.zeros(3, jnp.int32), 8, sigmoid_lut(7))
    with pytest.raises(NeurojaxError):
        silu_int(jnp.zeros(3, jnp.int32), 8, sigmoid_lut(8, out_frac=16))


# ----------------------------------------------------------------------------- integer-only jaxprs, jit, vmap

_ALLOWED = {np.dtype(t) for t in (np.bool_, np.int8, np.int16, np.int32, np.uint8, np.uint16, np.uint32)}


def _sub_jaxprs(param):
    if hasattr(param, "eqns"):                                  # a Jaxpr
        yield param
    elif hasattr(param, "jaxpr") and hasattr(param, "consts"):  # a ClosedJaxpr
        yield param.jaxpr
    elif isinstance(param, (tuple, list)):
        for p in param:
            yield from _sub_jaxprs(p)


def _collect_dtypes(jaxpr, dtypes, counter):
    def add(v):
        aval = getattr(v, "aval", None)
        if getattr(aval, "dtype", None) is not None:
            dtypes.add(np.dtype(aval.dtype))

    for v in (*jaxpr.constvars, *jaxpr.invars, *jaxpr.outvars):
        add(v)
    for eqn in jaxpr.eqns:
        counter[0] += 1
        for v in (*eqn.invars, *eqn.outvars):
            add(v)
        for p in eqn.params.values():
            for sub in _sub_jaxprs(p):
                _collect_dtypes(sub, dtypes, counter)


def _jaxpr_dtypes(fn, *args):
    closed = jax.make_jaxpr(fn)(*args)
    dtypes, counter = {np.dtype(np.asarray(c).dtype) for c in closed.consts}, [0]
    _collect_dtypes(closed.jaxpr, dtypes, counter)
    return dtypes, counter[0]


_SIG8 = sigmoid_lut(8)
_RAND_LUT = IntLUT(np.array([5, -7, 100, 3], np.int32), 0, -10, 3, 0)
_FNS = {
    "inv_sqrt": inv_sqrt,
    "reciprocal": reciprocal,
    "lut_eval": lambda x: lut_eval(x, _SIG8),
    "lut_eval_half_even": lambda x: lut_eval(x, _RAND_LUT, "half_even"),
    "silu_int": lambda x: silu_int(x, 8, _SIG8),
}


@pytest.mark.parametrize("name", list(_FNS))
def test_jaxpr_holds_only_integer_and_bool_values(name):
    dtypes, n_eqns = _jaxpr_dtypes(_FNS[name], jnp.arange(1, 9, dtype=jnp.int32))
    assert n_eqns > 10 and np.dtype(np.int32) in dtypes
    assert dtypes <= _ALLOWED, sorted(map(str, dtypes - _ALLOWED))


def test_jaxpr_walker_finds_floats_inside_sub_jaxprs():
    inner = jax.jit(lambda v: (v.astype(jnp.float32) * 0.5).astype(jnp.int32))

    def sneaky(x):
        y = jax.lax.cond(x[0] > 0, lambda v: inner(v), lambda v: v, x)
        return y + 1

    dtypes, _ = _jaxpr_dtypes(sneaky, jnp.arange(1, 9, dtype=jnp.int32))
    assert np.dtype(np.float32) in dtypes


def _assert_trees_equal(a, b):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


@pytest.mark.parametrize("name", list(_FNS))
def test_jit_and_vmap_agree_with_eager(name):
    fn = _FNS[name]
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.integers(1, 5000, size=(6, 10)).astype(np.int32))
    eager = fn(x)
    _assert_trees_equal(jax.jit(fn)(x), eager)
    _assert_trees_equal(jax.jit(jax.vmap(fn))(x), eager)
    _assert_trees_equal(jax.jit(jax.vmap(fn, in_axes=1, out_axes=1))(x), eager)
    flat = jax.jit(fn)(x.reshape(-1))  # one long row: per-element results do not depend on neighbours
    _assert_trees_equal(jax.tree_util.tree_map(lambda v: v.reshape(x.shape), flat), eager)


def test_lut_eval_jits_with_the_table_as_static_argument():
    x = jnp.arange(-5000, 5000, 7, dtype=jnp.int32)
    _assert_trees_equal(_lut_eval(x, _SIG8, "half_away"), jax.jit(lambda v: lut_eval(v, _SIG8))(x))
    _assert_trees_equal(_lut_eval(x, sigmoid_lut(8), "half_away"), _lut_eval(x, _SIG8, "half_away"))  # equal by value
