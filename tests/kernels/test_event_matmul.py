"""The event-driven integer matmul (dense and CSR fan-outs): every implementation against an
int64 oracle wrapped to int32, on random shapes across the native kernel's loop boundaries
(64-source event masks, the <= 64-output register path, 2048-column blocks, threaded calls),
binary and graded events, int8 and int32 weights, and the dispatch rules."""
import importlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurojax import NeurojaxError
from neurojax.kernels import dispatch

api = importlib.import_module("neurojax.kernels.event_matmul.api")
native = importlib.import_module("neurojax.kernels.event_matmul.native")
native_build = importlib.import_module("neurojax.kernels.native_build")
IMPLS = ["reference", "xla", "native"]
CSR_IMPLS = ["reference", "native"]


def wrap32(x: np.ndarray) -> np.ndarray:
    """int64 -> the int32 that wrap-around arithmetic gives."""
    return ((np.asarray(x, np.int64) + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.int64)


def oracle(events: np.ndarray, fanout: np.ndarray) -> np.ndarray:
    out = np.zeros((events.shape[0], fanout.shape[1]), np.int64)
    for t, s in zip(*np.nonzero(events)):  # one event at a time, like the definition
        out[t] += int(events[t, s]) * fanout[s].astype(np.int64)
    return wrap32(out)


def problem(seed, t, k, n, activity, graded, wide):
    rng = np.random.default_rng(seed)
    fire = rng.random((t, k)) < activity
    payload = rng.integers(-2 ** 23, 2 ** 23, (t, k)) if graded else np.ones((t, k), np.int64)
    events = np.where(fire, payload, 0).astype(np.int32)
    fanout = (rng.integers(-2 ** 31, 2 ** 31, (k, n)) if wide else rng.integers(-128, 128, (k, n)))
    return events, fanout.astype(np.int32 if wide else np.int8)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 31), t=st.integers(0, 20), k=st.sampled_from([1, 5, 63, 64, 65, 130]),
       n=st.sampled_from([1, 16, 17, 64, 65, 300]), activity=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       graded=st.booleans(), wide=st.booleans())
def test_dense_equals_the_oracle(impl, seed, t, k, n, activity, graded, wide):
    events, fanout = problem(seed, t, k, n, activity, graded, wide)
    got = jax.jit(lambda e, f: api.event_matmul(e, f, impl=impl))(jnp.asarray(events), jnp.asarray(fanout))
    assert got.dtype == jnp.int32 and got.shape == (t, n)
    np.testing.assert_array_equal(np.asarray(got, np.int64), oracle(events, fanout))


@pytest.mark.parametrize("shape", [(64, 512, 1024), (3, 70, 2048 + 64 + 5)])  # threaded; column blocks
def test_native_large_calls(shape):
    events, fanout = problem(7, *shape, 0.1, graded=False, wide=False)
    got = api.event_matmul(jnp.asarray(events), jnp.asarray(fanout), impl="native")
    np.testing.assert_array_equal(np.asarray(got, np.int64), oracle(events, fanout))


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2 ** 31), t=st.integers(0, 20), k=st.sampled_from([1, 63, 64, 65, 700]),
       n=st.sampled_from([1, 17, 64, 300]), binary=st.booleans())
def test_float32_events(impl, seed, t, k, n, binary):
    """Float32 events (a spiking network's inputs) and fan-out: exactly the dot where every
    sum is exact (dyadic weights), within float32 round-off of it otherwise."""
    rng = np.random.default_rng(seed)
    fire = rng.random((t, k)) < 0.05
    events = np.where(fire, 1.0 if binary else rng.standard_normal((t, k)), 0.0).astype(np.float32)
    dyadic = (rng.integers(-64, 64, (k, n)) / 64).astype(np.float32)
    noisy = rng.standard_normal((k, n)).astype(np.float32)
    f = jax.jit(lambda e, w: api.event_matmul(e, w, impl=impl))
    got = f(jnp.asarray(events), jnp.asarray(dyadic))
    assert got.dtype == jnp.float32 and got.shape == (t, n)
    if binary:
        np.testing.assert_array_equal(np.asarray(got), events.astype(np.float64) @ dyadic.astype(np.float64))
    want = events.astype(np.float64) @ noisy.astype(np.float64)
    err = np.abs(np.asarray(f(jnp.asarray(events), jnp.asarray(noisy)), np.float64) - want)
    assert err.max(initial=0) <= 1e-5 * max(1.0, np.abs(want).max(initial=0)), f"max abs err {err.max()}"


def test_xla_takes_floats_only_where_exact():
    """Sums that provably fit 24 bits go through a float32 GEMM; larger ones, where float32
    would round (odd payloads beyond 2**24), take the int32 dot: exact either way."""
    fanout = np.full((3, 2), 127, np.int8)
    for payload in (100, 2 ** 20 + 1, 2 ** 31 - 1):
        events = np.full((2, 3), payload, np.int32)
        got = api.event_matmul(jnp.asarray(events), jnp.asarray(fanout), impl="xla")
        np.testing.assert_array_equal(np.asarray(got, np.int64), oracle(events, fanout))


def csr_problem(seed, k, n, per_source, pad):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, per_source + 1, k)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    indices = rng.integers(0, max(n, 1), indptr[-1]).astype(np.int32)  # repeats allowed: they add
    values = rng.integers(-2 ** 31, 2 ** 31, indptr[-1]).astype(np.int32)
    dense = np.zeros((k, n), np.int64)
    np.add.at(dense, (np.repeat(np.arange(k), counts), indices), values)
    junk = rng.integers(0, 2 ** 31, pad).astype(np.int32)  # padding: ignored, even out-of-range indices
    return indptr, np.concatenate([indices, junk]), np.concatenate([values, junk]), dense


@pytest.mark.parametrize("impl", CSR_IMPLS)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 31), t=st.integers(0, 12), k=st.sampled_from([1, 63, 64, 65, 200]),
       n=st.sampled_from([1, 9, 100]), per_source=st.integers(0, 6), activity=st.sampled_from([0.1, 1.0]),
       pad=st.sampled_from([0, 5]))
def test_csr_equals_the_oracle(impl, seed, t, k, n, per_source, activity, pad):
    indptr, indices, values, dense = csr_problem(seed, k, n, per_source, pad)
    if impl == "reference" and pad:
        indices[indptr[-1]:] %= n  # the reference gathers every entry: keep the padding in range
    events, _ = problem(seed + 1, t, k, 1, activity, graded=True, wide=False)
    got = api.event_matmul_csr(*(jnp.asarray(a) for a in (events, indptr, indices, values)), n, impl=impl)
    assert got.dtype == jnp.int32 and got.shape == (t, n)
    np.testing.assert_array_equal(np.asarray(got, np.int64), wrap32(events.astype(np.int64) @ dense))


def test_native_csr_rejects_an_index_out_of_range():
    indptr = np.array([0, 1], np.int32)
    with pytest.raises(Exception, match="out of"):
        jax.block_until_ready(api.event_matmul_csr(jnp.ones((1, 1), jnp.int32), jnp.asarray(indptr),
                                                   jnp.array([5], jnp.int32), jnp.array([1], jnp.int32), 3,
                                                   impl="native"))


def test_bad_input_is_a_clear_error():
    e = jnp.zeros((2, 3), jnp.int32)
    with pytest.raises(NeurojaxError, match="events \\[T, K\\] and fanout \\[K, N\\]"):
        api.event_matmul(e, jnp.zeros((4, 2), jnp.int8))
    with pytest.raises(NeurojaxError, match="or both float32"):
        api.event_matmul(e, jnp.zeros((3, 2), jnp.float32))
    with pytest.raises(NeurojaxError, match="integer_only"):
        api.event_matmul(e.astype(jnp.float32), jnp.zeros((3, 2), jnp.float32), integer_only=True)
    with pytest.raises(NeurojaxError, match="indptr \\[K \\+ 1\\]"):
        api.event_matmul_csr(e, jnp.zeros(3, jnp.int32), jnp.zeros(0, jnp.int32), jnp.zeros(0, jnp.int32), 2)
    with pytest.raises(NeurojaxError, match="unknown event_matmul impl"):
        api.event_matmul(e, jnp.zeros((3, 2), jnp.int8), impl="pallas")


def test_dispatch_default_forcing_and_integer_only(monkeypatch):
    assert api.OP.choose() == "native" and api.CSR_OP.choose() == "native"
    with dispatch.force("xla", op="event_matmul"):
        assert api._choose(None, integer_only=False) == "xla"
        assert api._choose(None, integer_only=True) == "reference"  # the interpreter never takes floats
    monkeypatch.setenv(native_build.DISABLE_VAR, "0")
    monkeypatch.setattr(native_build, "_warned", set())
    e, f = problem(3, 4, 70, 9, 0.3, graded=True, wide=False)
    with pytest.warns(RuntimeWarning, match="event_matmul: the native CPU kernel is unavailable"):
        got = api.event_matmul(jnp.asarray(e), jnp.asarray(f))
    np.testing.assert_array_equal(np.asarray(got, np.int64), oracle(e, f))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per reason
        assert api.CSR_OP.choose() == "reference"
    with pytest.raises(NeurojaxError, match="impl 'native' is unavailable"):
        api.event_matmul(jnp.asarray(e), jnp.asarray(f), impl="native")


@pytest.mark.parametrize("impl", CSR_IMPLS)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2 ** 31), r=st.integers(0, 30), k=st.sampled_from([1, 63, 64, 65, 300]),
       n=st.sampled_from([1, 16, 100, 1030]), integer=st.booleans())
def test_transposed_form(impl, seed, r, k, n, integer):
    """`events^T @ rows` (the weight gradient x^T a): integers exactly (wrapping), float32
    exactly with dyadic rows and binary events."""
    rng = np.random.default_rng(seed)
    fire = rng.random((r, k)) < 0.1
    if integer:
        events = np.where(fire, rng.integers(-2 ** 20, 2 ** 20, (r, k)), 0).astype(np.int32)
        rows = rng.integers(-2 ** 31, 2 ** 31, (r, n)).astype(np.int32)
        want = oracle(events.T, rows)
    else:
        events = fire.astype(np.float32)
        rows = (rng.integers(-64, 64, (r, n)) / 64).astype(np.float32)
        want = events.T.astype(np.float64) @ rows.astype(np.float64)
    got = jax.jit(lambda e, a: api.event_matmul_t(e, a, impl=impl))(jnp.asarray(events), jnp.asarray(rows))
    assert got.shape == (k, n) and got.dtype == (jnp.int32 if integer else jnp.float32)
    np.testing.assert_array_equal(np.asarray(got, np.float64 if not integer else np.int64), want)
    acc = np.asarray(got) // 2 if integer else np.asarray(got) / 2  # accumulate onto a prior sum
    again = jax.jit(lambda e, a, c: api.event_matmul_t(e, a, c, impl=impl))(jnp.asarray(events), jnp.asarray(rows),
                                                                               jnp.asarray(acc))
    want2 = wrap32(acc.astype(np.int64) + want) if integer else acc.astype(np.float64) + want
    np.testing.assert_array_equal(np.asarray(again, np.int64 if integer else np.float64), want2)
