"""The native C++ ternary kernel: both builds (SIMD and portable) against the int64 oracle
on the shapes its two loops and its work split care about, the build cache, and the
fallback when it cannot be built. (`test_ternary_matmul.py` runs it with every impl.)"""
import importlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurojax import NeurojaxError

native = importlib.import_module("neurojax.kernels.ternary_matmul.native")
native_build = importlib.import_module("neurojax.kernels.native_build")
api = importlib.import_module("neurojax.kernels.ternary_matmul.api")
pack = importlib.import_module("neurojax.kernels.ternary_matmul.pack").pack



def _case(seed, m, k, n):
    rng = np.random.default_rng(seed)
    w = rng.integers(-1, 2, (n, k)).astype(np.int8)
    x = rng.integers(-128, 128, (m, k)).astype(np.int8)
    return x, w


def _check(x, w, portable):
    got = jax.jit(lambda a, p: native.ternary_matmul(a, p, portable=portable))(jnp.asarray(x), pack(w))
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), np.asarray(x, np.int64) @ np.asarray(w, np.int64).T)


@pytest.mark.parametrize("portable", [False, True])
@pytest.mark.parametrize("m", [1, 4, 5, 6, 13])  # decode streams <= 4 rows; prefill blocks 6 (+ ragged)
@pytest.mark.parametrize("n", [1, 63, 64, 130, 2048 + 64 + 5])  # vector tails; > one 2048-column unit
def test_both_builds_equal_the_oracle_on_loop_boundaries(portable, m, n):
    x, w = _case(m * 1000 + n, m, 300, n)
    x[0, :] = -128  # the extreme input: (w + 1) * x and the subtracted row sum at their limits
    _check(x, w, portable)


@pytest.mark.parametrize("portable", [False, True])
@settings(max_examples=10, deadline=None)
@given(m=st.integers(1, 20), k=st.integers(1, 700), n=st.integers(1, 300), seed=st.integers(0, 2**16))
def test_randomized_shapes(portable, m, k, n, seed):
    _check(*_case(seed, m, k, n), portable)


def test_simd_path_is_reported():
    assert native.simd_path(portable=True) == "portable"
    assert native.simd_path() in native.PATHS.values()


def test_vmap_and_empty_rows():
    x, w = _case(3, 6, 70, 40)
    p = pack(w)
    got = jax.vmap(lambda a: native.ternary_matmul(a, p))(jnp.asarray(x).reshape(3, 2, 70))
    np.testing.assert_array_equal(np.asarray(got).reshape(6, 40), x.astype(np.int64) @ w.T.astype(np.int64))
    empty = api.ternary_matmul(jnp.zeros((0, 3, 70), jnp.int8), p, impl="native")
    assert empty.shape == (0, 3, 40)


def test_disabled_native_falls_back_with_a_warning_but_a_request_raises(monkeypatch):
    monkeypatch.setenv(native_build.DISABLE_VAR, "0")
    monkeypatch.setattr(native_build, "_warned", set())
    assert not native.available() and "NEUROJAX_NATIVE" in native.why_unavailable()
    x, w = _case(4, 3, 50, 20)
    want = x.astype(np.int64) @ w.T.astype(np.int64)
    with pytest.warns(RuntimeWarning, match="native CPU kernel is unavailable"):
        got = api.ternary_matmul(jnp.asarray(x), pack(w))
    np.testing.assert_array_equal(np.asarray(got), want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per reason, not one per call
        api.ternary_matmul(jnp.asarray(x), pack(w), integer_only=True)
    assert api._choose(None, integer_only=True) == "xla"
    with pytest.raises(NeurojaxError, match="impl 'native' is unavailable"):
        api.ternary_matmul(jnp.asarray(x), pack(w), impl="native")


def test_concurrent_callers_each_get_their_own_result():
    """The kernel's helper threads serve one call at a time; a call that finds them busy
    (XLA or the user running several at once) computes alone. Either way: exact."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [_case(s, m, 700, 300) for s, m in enumerate([1, 2, 4, 9] * 3)]
    f = jax.jit(native.ternary_matmul)

    def one(case):
        x, w = case
        return [np.asarray(f(jnp.asarray(x), pack(w))) for _ in range(5)]

    with ThreadPoolExecutor(6) as ex:
        results = list(ex.map(one, cases))
    for (x, w), got in zip(cases, results):
        for g in got:
            np.testing.assert_array_equal(g, x.astype(np.int64) @ w.T.astype(np.int64))


def test_default_skips_the_portable_build(monkeypatch):
    """Where only the portable loop can be built (no AVX-512 VNNI), the default stays XLA."""
    monkeypatch.setattr(native, "simd_path", lambda portable=False: "portable")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert api._choose(None, integer_only=False) == "xla_float"
        assert api._choose(None, integer_only=True) == "xla"
    assert api._choose("native", integer_only=True) == "native"
