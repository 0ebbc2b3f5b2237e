"""Fused RMSNorm + per-token absmax int8: each impl vs the reference, the reference vs a
float64 NumPy oracle, dispatch, and input checks."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from neurojax.kernels import dispatch
from neurojax.kernels.rmsnorm_quant import (
    IMPLEMENTATIONS,
    OP,
    pallas,
    reference,
    rms_norm,
    rmsnorm_quant,
    xla,
)

import neurojax.nn as nj
import neurojax.nn.norm as nn_norm
from neurojax import NeurojaxError
from neurojax.quant import absmax_int8

EPS = 1e-6
TIE_WINDOW = 1e-4   # |frac(|v|) - 0.5| below this: a near-tie, where float order may flip the code
SCALE_MAX_REL, SCALE_MEAN_REL = 1e-5, 1e-6
# A fixed pool of shapes (each new shape compiles every impl): leading dims from none to
# three, rows that are not a multiple of the Pallas row block, d odd / tiny / large.
SHAPES = [(1,), (5, 3), (37, 33), (2, 3, 1), (3, 7, 16), (2, 3, 5, 257), (9, 1100), (70, 128)]
ROW_SCALES = [0.0, 1e-9, 1e-7, 1e-6, 1e-3, 1.0, 3.0, 1e3, 1e6, 1e15]  # 0.0: all-zero rows


@functools.cache
def _jitted(name, block_rows=None):
    fn = IMPLEMENTATIONS[name]
    if block_rows is not None:
        fn = functools.partial(pallas.rmsnorm_quant, block_rows=block_rows)
    return jax.jit(fn, static_argnums=2)


def _run(name, x, w, eps=EPS, block_rows=None):
    q, s = _jitted(name, block_rows)(jnp.asarray(x), jnp.asarray(w), eps)
    assert q.dtype == jnp.int8 and q.shape == x.shape, (name, q.dtype, q.shape)
    assert s.dtype == jnp.float32 and s.shape == (*x.shape[:-1], 1), (name, s.dtype, s.shape)
    return np.asarray(q, np.int64), np.asarray(s)


def np_rmsnorm_quant64(x, w, eps=EPS):
    """float64 oracle of the same formula: (q int64, s float64, v = y * s before rounding)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    y = x / np.sqrt(np.mean(x * x, -1, keepdims=True) + eps) * w
    s = 127.0 / np.maximum(np.abs(y).max(-1, keepdims=True), 1e-5)
    v = y * s
    q = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -128, 127).astype(np.int64)
    return q, s, v


def _near_tie(v):
    a = np.abs(np.asarray(v, np.float64))
    return np.abs(a - np.floor(a) - 0.5) < TIE_WINDOW


def _check_scale(s, s_ref, what):
    rel = np.abs(np.asarray(s, np.float64) / np.asarray(s_ref, np.float64) - 1.0)
    assert rel.max(initial=0) <= SCALE_MAX_REL and rel.mean() <= SCALE_MEAN_REL, (
        f"{what}: scale rel err max {rel.max(initial=0):.3e}, mean {rel.mean():.3e}")


def _check_codes(q, q_ref, v_ref, what, max_count=None):
    """Codes equal except at near-ties of the reference's pre-rounding value, and there by one.

    `max_count`: how many such differences are allowed (default: 0.1% of the codes, at least 2).
    """
    diff = q != q_ref
    n = int(diff.sum())
    if n:
        assert np.abs(q - q_ref).max() <= 1, f"{what}: a code differs by more than one"
        assert _near_tie(v_ref)[diff].all(), f"{what}: {n} codes differ away from a .5 tie"
        limit = max(2, q.size // 1000) if max_count is None else max_count
        assert n <= limit, f"{what}: {n} of {q.size} codes differ at near-ties"
    return n


def _inputs(seed, shape, scales):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    row_scale = rng.choice(np.asarray(scales), size=(*shape[:-1], 1))
    x = (x * row_scale).astype(np.float32)
    w = (rng.normal(size=shape[-1]) * rng.uniform(0.5, 2.0)).astype(np.float32)
    return x, w


@functools.cache
def _ref_and_y(eps):
    return jax.jit(lambda x, w: (*reference.rmsnorm_quant(x, w, eps), rms_norm(x, w, eps)))


def _reference(x, w, eps=EPS):
    """The reference's `(q, s)` and its own pre-rounding value `v = y * s` (float32), one program."""
    q, s, y = _ref_and_y(eps)(jnp.asarray(x), jnp.asarray(w))
    q_, s_ = _run("reference", x, w, eps)  # the standalone program computes the same
    np.testing.assert_array_equal(np.asarray(q, np.int64), q_)
    np.testing.assert_array_equal(np.asarray(s), s_)
    s = np.asarray(s)
    return q_, s, (np.asarray(y) * s).astype(np.float32)


# ------------------------------------------------------------------ parity
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shape=st.sampled_from(SHAPES),
       scales=st.sampled_from([ROW_SCALES, [1.0], [0.0, 1e-6], [1e-9, 1e15], [1e-3, 1e3]]))
def test_impls_match_reference(seed, shape, scales):
    x, w = _inputs(seed, shape, scales)
    q_ref, s_ref, v_ref = _reference(x, w)
    # xla keeps every float op of the reference (only the int8 cast differs): bit-exact.
    q, s = _run("xla", x, w)
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_array_equal(s, s_ref)
    # pallas sums each row in its own order: scales within round-off, codes up to near-ties.
    for block_rows in (None, 4):
        q, s = _run("pallas", x, w, block_rows=block_rows)
        what = f"pallas block_rows={block_rows} {shape}"
        _check_scale(s, s_ref, what)
        _check_codes(q, q_ref, v_ref, what)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shape=st.sampled_from(SHAPES), scales=st.sampled_from([ROW_SCALES]),
       eps=st.sampled_from([1e-6, 1e-5, 0.1]))
def test_reference_matches_float64_oracle(seed, shape, scales, eps):
    x, w = _inputs(seed, shape, scales)
    q, s = _run("reference", x, w, eps)
    q64, s64, v64 = np_rmsnorm_quant64(x, w, eps)
    _check_scale(s, s64, "reference vs float64")
    _check_codes(q, q64, v64, "reference vs float64")


def _tie_dense_inputs(seed, rows, d):
    """Rows whose `y * s` lands within a few ulps of `k + 0.5` almost everywhere (about half
    exactly on the tie): any change of float op order, or of rounding mode, flips codes."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    w[np.abs(w) < 0.1] = 0.5
    top = rng.uniform(0.5, 2.0, size=(rows, 1)) * 10.0 ** rng.integers(-3, 4, size=(rows, 1))
    x = top * (rng.integers(-127, 127, size=(rows, d)) + 0.5) / 127 / w
    x[:, 0] = top[:, 0] / np.abs(w[0])  # |x_0 w_0| = top, the row max of |x w|
    return x.astype(np.float32), w.astype(np.float32)


@pytest.mark.parametrize("rows, d", [(64, 128), (37, 101)])
def test_tie_dense_rows(rows, d):
    x, w = _tie_dense_inputs(rows + d, rows, d)
    q_ref, s_ref, v = _reference(x, w)
    assert _near_tie(v).mean() > 0.9
    exact = np.abs(v) - np.floor(np.abs(v)) == 0.5
    assert exact.sum() > rows * d // 4, "too few exact ties to test the rounding mode"
    # exact ties round half away from zero (half-even would differ on every even floor)
    np.testing.assert_array_equal(q_ref[exact], (np.sign(v) * (np.abs(v) + 0.5))[exact])
    # xla: the reference's float ops, so bit-exact even here
    q, s = _run("xla", x, w)
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_array_equal(s, s_ref)
    # pallas: its row sums may be ordered differently; codes then differ only at these near-ties
    for block_rows in (None, 8):
        q, s = _run("pallas", x, w, block_rows=block_rows)
        _check_scale(s, s_ref, f"pallas tie-dense {rows}x{d}")
        _check_codes(q, q_ref, v, f"pallas tie-dense {rows}x{d}", max_count=q.size)


def test_reference_is_absmax_int8_of_rms_norm():
    x, w = _inputs(0, (4, 6, 40), ROW_SCALES)
    q, s = jax.jit(lambda x, w: reference.rmsnorm_quant(x, w, EPS))(x, w)
    q_f, s_f = jax.jit(lambda x, w: absmax_int8(rms_norm(x, w, EPS)))(x, w)
    np.testing.assert_array_equal(np.asarray(q), np.asarray(q_f).astype(np.int8))
    np.testing.assert_array_equal(np.asarray(s), np.asarray(s_f))


def test_zero_rows_use_the_scale_floor_and_all_impls_agree_on_them():
    x = np.zeros((3, 10), np.float32)
    x[1] = np.linspace(-1, 1, 10)
    w = np.ones(10, np.float32)
    floor_scale = np.float32(127.0) / np.float32(1e-5)
    for name in IMPLEMENTATIONS:
        q, s = _run(name, x, w)
        assert s[0, 0] == s[2, 0] == floor_scale, name
        assert not q[[0, 2]].any(), name
        assert q[1].max() == 127 and q[1].min() == -127, name


def test_exact_ties_round_half_away_in_every_impl():
    # Rows [254, 125, -125, 1, -1, 5, -5, c] * 2^10: every sum of squares is an exact float32
    # (in any order), so all impls share inv, y and s. y_i * s is near 127 * x_i / 254, i.e.
    # 62.5, 0.5, 2.5 (even floors), and exactly on the tie in most rows: there half-away and
    # half-even disagree.
    x = np.stack([[254.0, 125.0, -125.0, 1.0, -1.0, 5.0, -5.0, c]
                  for c in np.arange(-200, 201) / 8.0]).astype(np.float32) * 1024
    w = np.ones(8, np.float32)
    q_ref, s_ref, v = _reference(x, w)
    a = np.abs(v)
    tie = a - np.floor(a) == 0.5
    assert (tie & (np.floor(a) % 2 == 0)).sum() >= 500, "too few exact even-floor ties to test"
    away = (np.sign(v) * (a + 0.5)).astype(np.int64)
    for name in IMPLEMENTATIONS:
        q, s = _run(name, x, w)
        np.testing.assert_array_equal(s, s_ref, err_msg=name)
        np.testing.assert_array_equal(q[tie], away[tie], err_msg=name)
        np.testing.assert_array_equal(q, q_ref, err_msg=name)


def test_bf16_input_and_empty_rows():
    x = jnp.asarray(_inputs(1, (6, 24), [1.0])[0]).astype(jnp.bfloat16)
    w = jnp.linspace(0.5, 1.5, 24).astype(jnp.bfloat16)
    q_ref, s_ref, v_ref = _reference(x, w)
    for name in IMPLEMENTATIONS:
        q, s = _run(name, x, w)
        _check_scale(s, s_ref, name)
        _check_codes(q, q_ref, v_ref, name)
        q0, s0 = IMPLEMENTATIONS[name](jnp.zeros((0, 8)), jnp.ones(8), EPS)
        assert q0.shape == (0, 8) and q0.dtype == jnp.int8 and s0.shape == (0, 1), name


def test_pallas_block_rows():
    for n, d in [(1, 3), (5, 33), (2048, 1024), (3, 1 << 15)]:
        d_pad = 1 << (d - 1).bit_length()
        br = pallas.block_rows_for(n, d_pad)
        assert br >= 1 and br & (br - 1) == 0 and (br == 1 or br * d_pad <= pallas.MAX_BLOCK_ELEMS)
        assert br <= max(1, 1 << (n - 1).bit_length())
    with pytest.raises(ValueError, match="power of two"):
        pallas.rmsnorm_quant(jnp.ones((4, 8)), jnp.ones(8), EPS, block_rows=3)


# ------------------------------------------------------------------ one definition of rms_norm
def test_rms_norm_is_defined_once():
    assert nn_norm.rms_norm is reference.rms_norm is nj.rms_norm is rms_norm


# ------------------------------------------------------------------ dispatch
def _sentinel(monkeypatch, name):
    calls = []

    def fake(x, weight, eps):
        calls.append(name)
        return IMPLEMENTATIONS["reference"](x, weight, eps)

    monkeypatch.setitem(OP.impls, name, fake)
    return calls


def test_registry_and_default():
    assert IMPLEMENTATIONS == {"reference": reference.rmsnorm_quant, "xla": xla.rmsnorm_quant,
                               "pallas": pallas.rmsnorm_quant}
    assert dispatch.OPS["rmsnorm_quant"] is OP
    assert OP.choose() == "xla"  # CPU default: measured fastest of reference / xla


def test_force_selects_pallas(monkeypatch):
    calls = _sentinel(monkeypatch, "pallas")
    x, w = jnp.ones((2, 8)), jnp.ones(8)
    with dispatch.force("pallas"):
        assert OP.choose() == "pallas"
        rmsnorm_quant(x, w, EPS)
        jax.jit(lambda x: rmsnorm_quant(x, w, EPS))(x)  # traced inside the block
    assert calls == ["pallas", "pallas"]
    rmsnorm_quant(x, w, EPS)  # outside: the default again
    assert calls == ["pallas", "pallas"]


def test_force_for_this_op_and_explicit_impl_wins(monkeypatch):
    calls = _sentinel(monkeypatch, "xla")
    x, w = jnp.ones((2, 8)), jnp.ones(8)
    with dispatch.force("pallas"), dispatch.force("xla", op="rmsnorm_quant"):
        assert OP.choose() == "xla"
        rmsnorm_quant(x, w, EPS)
        assert OP.choose("reference") == "reference"
        rmsnorm_quant(x, w, EPS, impl="reference")
    assert calls == ["xla"]


def test_env_var_selects_pallas(monkeypatch):
    calls = _sentinel(monkeypatch, "pallas")
    monkeypatch.setenv(dispatch.ENV_VAR, "rmsnorm_quant=pallas")
    assert OP.choose() == "pallas"
    rmsnorm_quant(jnp.ones((3, 5)), jnp.ones(5), EPS)
    assert calls == ["pallas"]


def test_unknown_impl_raises():
    with pytest.raises(NeurojaxError, match="unknown rmsnorm_quant impl"):
        rmsnorm_quant(jnp.ones((2, 4)), jnp.ones(4), EPS, impl="triton")
    with pytest.raises(NeurojaxError, match="unknown rmsnorm_quant impl"):
        with dispatch.force("nope", op="rmsnorm_quant"):
            pass


def test_api_matches_reference_under_jit():
    x, w = _inputs(3, (2, 5, 12), ROW_SCALES)
    q, s = jax.jit(lambda x, w: rmsnorm_quant(x, w, EPS))(x, w)
    q_ref, s_ref = _run("reference", x, w)
    np.testing.assert_array_equal(np.asarray(q, np.int64), q_ref)
    np.testing.assert_array_equal(np.asarray(s), s_ref)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("x, w, eps, match", [
    (jnp.ones((2, 4)), jnp.ones(5), EPS, r"weight \[4\]"),
    (jnp.ones((2, 4)), jnp.ones((1, 4)), EPS, r"weight \[4\]"),
    (jnp.ones((2, 4)), jnp.ones(4), 0.0, "eps > 0"),
    (jnp.ones((2, 4)), jnp.ones(4), -1e-6, "eps > 0"),
    (jnp.ones((2, 4)), jnp.ones(4), float("nan"), "eps > 0"),
    (jnp.ones((2, 4)), jnp.ones(4), True, "eps > 0"),
    (jnp.ones((2, 4), jnp.int32), jnp.ones(4), EPS, "floating-point x"),
    (jnp.ones((2, 4), jnp.int8), jnp.ones(4), EPS, "floating-point x"),
    (jnp.float32(1.0), jnp.ones(1), EPS, "scalar"),
    (jnp.ones((2, 0)), jnp.ones(0), EPS, "non-empty last axis"),
    ([[1.0, 2.0]], jnp.ones(2), EPS, "an array"),
])
def test_bad_inputs_raise(x, w, eps, match):
    with pytest.raises(NeurojaxError, match=match):
        rmsnorm_quant(x, w, eps)


def test_traced_eps_raises():
    with pytest.raises(NeurojaxError, match="static Python number"):
        jax.jit(lambda e: rmsnorm_quant(jnp.ones((2, 4)), jnp.ones(4), e))(1e-6)
