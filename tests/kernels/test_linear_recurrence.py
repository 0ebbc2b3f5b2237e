"""Linear recurrence h_t = a_t h_{t-1} + b_t: every implementation vs NumPy, autodiff and each other; dispatch."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from neurojax.kernels import dispatch
from neurojax.kernels.linear_recurrence import (
    IMPLEMENTATIONS,
    api,
    linear_recurrence,
    pallas,
    reference,
    xla,
)

from neurojax import NeurojaxError

TOL = 1e-5        # max abs err, float32 vs float32 reference / autodiff
MEAN_TOL = 1e-6   # mean abs err
IMPLS = ["reference", "associative", "chunked", "pallas"]


def np_recurrence(a, b, h0):
    """float64 loop oracle: all states and the last one."""
    a, b, h = (np.asarray(v, np.float64) for v in (a, b, h0))
    hs = np.zeros_like(b)
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        hs[:, t] = h
    return hs, h


def np_recurrence_grads(a, b, h0, g, g_last):
    """Adjoint of sum(h * g) + sum(h_T * g_last): lam_T = g_T + g_last, lam_t = g_t + a_{t+1} lam_{t+1};
    da_t = lam_t h_{t-1}; db_t = lam_t; dh0 = a_1 lam_1."""
    a, b, h0, g, g_last = (np.asarray(v, np.float64) for v in (a, b, h0, g, g_last))
    hs, _ = np_recurrence(a, b, h0)
    prev = np.concatenate([h0[:, None], hs[:, :-1]], 1)
    lam = np.zeros_like(b)
    acc = g_last
    for t in reversed(range(a.shape[1])):
        acc = g[:, t] + (a[:, t + 1] * acc if t + 1 < a.shape[1] else acc)
        lam[:, t] = acc
    return lam * prev, lam, a[:, 0] * lam[:, 0]


def scan_autodiff(a, b, h0):
    """The definition as a plain `lax.scan`, differentiated by JAX itself (no custom VJP)."""

    def step(h, ab):
        h = ab[0] * h + ab[1]
        return h, h

    h_last, hs = jax.lax.scan(step, h0, (jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)))
    return jnp.swapaxes(hs, 0, 1), h_last


def _inputs(seed, B=2, T=37, d=8):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 1.0, size=(B, T, d)).astype(np.float32)   # forget-gate-like
    b = rng.normal(size=(B, T, d)).astype(np.float32)
    h0 = rng.normal(size=(B, d)).astype(np.float32)
    return a, b, h0


def _err(x, y):
    d = np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))
    return float(d.max()), float(d.mean())


def _check(x, y, what, tol=TOL, mean_tol=MEAN_TOL):
    assert np.shape(x) == np.shape(y), f"{what}: shape {np.shape(x)} != {np.shape(y)}"
    mx, mean = _err(x, y)
    assert mx <= tol and mean <= mean_tol, (
        f"{what}: max abs err {mx:.3e} (tol {tol:g}), mean abs err {mean:.3e} (tol {mean_tol:g})")


def _grads(fn, a, b, h0, g, g_last):
    def loss(a, b, h):
        hs, last = fn(a, b, h)
        return jnp.sum(hs * g) + jnp.sum(last * g_last)

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(a, b, h0)


# ---------------------------------------------------------------- registry
def test_registry_of_implementations():
    assert IMPLEMENTATIONS is api.OP.impls and dispatch.OPS["linear_recurrence"] is api.OP
    assert sorted(IMPLEMENTATIONS) == sorted(IMPLS)
    assert IMPLEMENTATIONS["reference"] is reference.linear_recurrence
    assert IMPLEMENTATIONS["associative"] is xla.associative is xla.linear_recurrence
    assert IMPLEMENTATIONS["chunked"] is xla.chunked
    assert IMPLEMENTATIONS["pallas"] is pallas.linear_recurrence


# ---------------------------------------------------------------- forward
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", [(2, 37, 8), (1, 1, 3), (3, 16, 5)])
def test_matches_numpy_loop(impl, shape):
    a, b, h0 = _inputs(sum(shape), *shape)
    hs, h_last = jax.jit(lambda a, b, h: linear_recurrence(a, b, h, impl=impl))(a, b, h0)
    assert hs.shape == shape and h_last.shape == (shape[0], shape[2])
    hs_ref, last_ref = np_recurrence(a, b, h0)
    _check(hs, hs_ref, f"{impl} states")
    _check(h_last, last_ref, f"{impl} last state")
    # the final state is the last output
    np.testing.assert_array_equal(np.asarray(h_last), np.asarray(hs[:, -1]))


@pytest.mark.parametrize("impl", ["pallas"])
def test_exact_order_implementations_equal_a_plain_scan_bit_for_bit(impl):
    """reference and pallas take the steps left to right, one multiply-add each: the same
    float32 sums as `lax.scan` (what the one-token decode path computes)."""
    a, b, h0 = _inputs(3, 2, 50, 11)
    want = jax.jit(scan_autodiff)(a, b, h0)
    for name in ("reference", impl):
        got = jax.jit(lambda a, b, h: linear_recurrence(a, b, h, impl=name))(a, b, h0)
        np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]), err_msg=name)
        np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(want[1]), err_msg=name)


@pytest.mark.parametrize("impl", IMPLS)
def test_h0_is_carried(impl):
    a, b, h0 = _inputs(11, 2, 20, 4)
    fn = jax.jit(lambda a, b, h: linear_recurrence(a, b, h, impl=impl))
    full, last = fn(a, b, h0)
    first, mid = fn(a[:, :7], b[:, :7], h0)
    second, last2 = fn(a[:, 7:], b[:, 7:], mid)
    _check(jnp.concatenate([first, second], 1), full, f"{impl} split states")
    _check(last2, last, f"{impl} split last state")
    # a non-zero h0 matters: h_1 = a_1 h0 + b_1
    zero, _ = fn(a, b, np.zeros_like(h0))
    _check(full[:, 0] - zero[:, 0], a[:, 0] * h0, f"{impl} h0 contribution")


# Each impl with its block/chunk size drawn small, so that T and d are (mostly) not multiples
# of it and the padding paths run; "pallas"/"chunked" also run at their defaults via the api.
SIZED = {
    "reference": (lambda: st.just({}), 6),
    "associative": (lambda: st.just({}), 6),
    "chunked": (lambda: st.sampled_from([{}, {"chunk": 1}, {"chunk": 3}, {"chunk": 8}, {"chunk": 16}]), 8),
    "pallas": (lambda: st.sampled_from([{}, {"block_d": 1}, {"block_d": 4}, {"block_d": 8}]), 5),
}


def _sized_test(impl):
    kwargs_strategy, examples = SIZED[impl]

    @settings(max_examples=examples, deadline=None)
    @given(B=st.integers(1, 3), T=st.integers(1, 45), d=st.integers(1, 19), kw=kwargs_strategy(),
           seed=st.integers(0, 2**16))
    def run(B, T, d, kw, seed):
        a, b, h0 = _inputs(seed, B, T, d)
        g = np.random.default_rng(seed + 1).normal(size=b.shape).astype(np.float32)
        g_last = np.random.default_rng(seed + 2).normal(size=h0.shape).astype(np.float32)
        fn = (lambda a, b, h: linear_recurrence(a, b, h, impl=impl)) if not kw else (
            lambda a, b, h: IMPLEMENTATIONS[impl](a, b, h, **kw))
        what = f"{impl}{kw} B{B} T{T} d{d}"
        hs, last = jax.jit(fn)(a, b, h0)
        hs_ref, last_ref = jax.jit(reference.linear_recurrence)(a, b, h0)
        _check(hs, hs_ref, f"{what} states")
        _check(last, last_ref, f"{what} last state")
        got = _grads(fn, a, b, h0, g, g_last)
        want = _grads(scan_autodiff, a, b, h0, g, g_last)
        for name, x, y in zip(("da", "db", "dh0"), got, want):
            _check(x, y, f"{what} {name} vs autodiff through lax.scan")

    return run


@pytest.mark.parametrize("impl", IMPLS)
def test_random_shapes_forward_and_gradients(impl):
    """Hypothesis: forward vs the float32 reference, and (da, db, dh0) with a cotangent on
    the final state too vs `jax.grad` through a plain `lax.scan`; 1e-5 max, 1e-6 mean."""
    _sized_test(impl)()


# ---------------------------------------------------------------- backward
@pytest.mark.parametrize("impl", IMPLS)
def test_gradients_match_adjoint_oracle(impl):
    a, b, h0 = _inputs(13, 2, 12, 4)
    g = np.random.default_rng(14).normal(size=b.shape).astype(np.float32)
    g_last = np.random.default_rng(15).normal(size=h0.shape).astype(np.float32)
    da, db, dh = _grads(lambda a, b, h: linear_recurrence(a, b, h, impl=impl), a, b, h0, g, g_last)
    ra, rb, rh = np_recurrence_grads(a, b, h0, g, g_last)
    _check(da, ra, f"{impl} da")
    _check(db, rb, f"{impl} db")
    _check(dh, rh, f"{impl} dh0")


@pytest.mark.parametrize("impl", IMPLS)
def test_backward_is_the_custom_vjp(impl):
    """The gradient comes from the reverse-recurrence VJP, not from autodiff of the forward:
    a forward whose loops were differentiated would show scan/while transposes in the jaxpr,
    and the custom VJP shows up as a `custom_vjp_call`."""
    a, b, h0 = _inputs(1, 1, 6, 3)
    fn = IMPLEMENTATIONS[impl]
    assert "custom_vjp_call" in str(jax.make_jaxpr(fn)(a, b, h0))
    with pytest.raises(TypeError, match="reverse"):
        fn(a, b, h0, reverse=True)


def test_only_the_final_state_cotangent():
    """h_T alone: dh0 = prod(a), db_t = prod_{s>t} a_s, for every implementation."""
    a, b, h0 = _inputs(21, 1, 9, 2)
    want_db = np.cumprod(a[:, ::-1].astype(np.float64), 1)[:, ::-1]
    want_db = np.concatenate([want_db[:, 1:], np.ones_like(want_db[:, :1])], 1)
    for impl in IMPLS:
        grad = jax.grad(lambda a, b, h: jnp.sum(linear_recurrence(a, b, h, impl=impl)[1]), argnums=(1, 2))
        db, dh = jax.jit(grad)(a, b, h0)
        _check(db, want_db, f"{impl} db")
        _check(dh, np.prod(a.astype(np.float64), 1), f"{impl} dh0")


# ---------------------------------------------------------------- dispatch
def test_default_on_cpu_is_reference_bit_for_bit(monkeypatch):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    assert jax.default_backend() == "cpu" and api.OP.choose() == "reference"
    a, b, h0 = _inputs(7)
    got = linear_recurrence(jnp.asarray(a), jnp.asarray(b), jnp.asarray(h0))
    want = reference.linear_recurrence(jnp.asarray(a), jnp.asarray(b), jnp.asarray(h0))
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))


@pytest.fixture
def sentinels(monkeypatch):
    """Replace every implementation by one that records its name; returns the record."""
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    calls = []
    for name in IMPLS:
        def fake(a, b, h0, name=name):
            calls.append(name)
            return jnp.zeros_like(b), h0
        monkeypatch.setitem(IMPLEMENTATIONS, name, fake)
    return calls


def _call_and_record(calls, **kw):
    a, b, h0 = _inputs(0, 1, 3, 2)
    calls.clear()
    linear_recurrence(a, b, h0, **kw)
    assert len(calls) == 1
    return calls[0]


def test_dispatch_force_any_op(sentinels):
    assert _call_and_record(sentinels) == "reference"
    with dispatch.force("chunked"):
        assert api.OP.choose() == "chunked"
        assert _call_and_record(sentinels) == "chunked"
        assert _call_and_record(sentinels, impl="associative") == "associative"  # explicit beats forced
        with dispatch.force("pallas", op="linear_recurrence"):  # innermost wins
            assert _call_and_record(sentinels) == "pallas"
        assert _call_and_record(sentinels) == "chunked"
    assert _call_and_record(sentinels) == "reference"


def test_dispatch_force_this_op(sentinels):
    with dispatch.force("pallas", op="linear_recurrence"):
        assert api.OP.choose() == "pallas"
        assert _call_and_record(sentinels) == "pallas"


def test_dispatch_env_var(sentinels, monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "linear_recurrence=associative")
    assert api.OP.choose() == "associative"
    assert _call_and_record(sentinels) == "associative"
    with dispatch.force("chunked"):  # forced beats the environment
        assert _call_and_record(sentinels) == "chunked"
    monkeypatch.setenv(dispatch.ENV_VAR, "chunked")  # a bare name applies to every op that has it
    assert _call_and_record(sentinels) == "chunked"
    monkeypatch.setenv(dispatch.ENV_VAR, "linear_recurrence=nope")
    with pytest.raises(NeurojaxError, match="nope"):
        linear_recurrence(*_inputs(0, 1, 3, 2))


def test_dispatch_force_unknown_raises():
    with pytest.raises(NeurojaxError, match="no_such_impl"):
        with dispatch.force("no_such_impl"):
            pass
    with pytest.raises(NeurojaxError, match="no_such_impl"):
        with dispatch.force("no_such_impl", op="linear_recurrence"):
            pass
    with pytest.raises(NeurojaxError, match="no_such_op"):
        with dispatch.force("chunked", op="no_such_op"):
            pass


def test_forced_pallas_runs_the_kernel(monkeypatch):
    """Not just the name: under force("pallas") a jitted call contains the pallas_call."""
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    a, b, h0 = _inputs(2, 1, 5, 3)
    # a fresh function each time: a traced function keeps the choice it was traced with
    assert "pallas_call" not in str(jax.make_jaxpr(lambda *x: linear_recurrence(*x))(a, b, h0))
    with dispatch.force("pallas", op="linear_recurrence"):
        assert "pallas_call" in str(jax.make_jaxpr(lambda *x: linear_recurrence(*x))(a, b, h0))


def test_unknown_impl_raises():
    a, b, h0 = _inputs(0, 1, 2, 2)
    with pytest.raises(NeurojaxError, match="pallas_typo"):
        linear_recurrence(a, b, h0, impl="pallas_typo")


# ---------------------------------------------------------------- input checks
def _bad_inputs():
    a, b, h0 = _inputs(0, 2, 5, 3)
    return {
        "b shorter": ((a, b[:, :4], h0), "shapes disagree"),
        "h0 wrong d": ((a, b, h0[:, :2]), "shapes disagree"),
        "h0 wrong B": ((a, b, h0[:1]), "shapes disagree"),
        "a 2-D": ((a[0], b[0], h0), r"\[B, T, d\]"),
        "h0 3-D": ((a, b, h0[:, None]), r"\[B, T, d\]"),
        "int a": ((a.astype(np.int32), b, h0), "float"),
        "bool h0": ((a, b, h0 > 0), "float"),
        "list b": ((a, b.tolist(), h0), "array"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_inputs_raise(case):
    args, match = _bad_inputs()[case]
    with pytest.raises(NeurojaxError, match=match):
        linear_recurrence(*args)


def test_mixed_float_dtypes_promote_and_empty_time():
    a, b, h0 = _inputs(4, 2, 6, 3)
    hs, last = linear_recurrence(a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), h0)
    assert hs.dtype == last.dtype == jnp.float32
    hs, last = linear_recurrence(a[:, :0], b[:, :0], h0)
    assert hs.shape == (2, 0, 3)
    np.testing.assert_array_equal(np.asarray(last), h0)


def test_pallas_lowers_to_triton_for_cuda(monkeypatch):
    """No GPU here: lower (not compile) for CUDA and check the kernel became one Triton call
    on a (B, d_pad / block) grid, forward and backward."""
    monkeypatch.setattr(pallas, "interpret_pallas", lambda: False)
    monkeypatch.setattr(pallas, "_compiler_params", lambda: pallas.TRITON_PARAMS)
    a = jax.ShapeDtypeStruct((3, 10, 300), jnp.float32)
    h0 = jax.ShapeDtypeStruct((3, 300), jnp.float32)
    fwd = jax.jit(pallas.linear_recurrence).trace(a, a, h0).lower(lowering_platforms=("cuda",)).as_text()
    assert fwd.count("__gpu$xla.gpu.triton") == 1 and "grid_x = 3" in fwd and "grid_y = 3" in fwd

    def loss(a, b, h):
        hs, last = pallas.linear_recurrence(a, b, h)
        return jnp.sum(hs) + jnp.sum(last)

    bwd = jax.jit(jax.grad(loss, (0, 1, 2))).trace(a, a, h0).lower(lowering_platforms=("cuda",)).as_text()
    assert bwd.count("__gpu$xla.gpu.triton") == 2
