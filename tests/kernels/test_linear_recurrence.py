"""Linear recurrence h_t = a_t h_{t-1} + b_t: reference vs associative vs NumPy, and the api dispatch."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurojax import NeurojaxError
from neurojax.kernels.linear_recurrence import IMPLEMENTATIONS, linear_recurrence
from neurojax.kernels.linear_recurrence import reference, xla

TOL = 1e-5
IMPLS = ["reference", "associative"]


def np_recurrence(a, b, h0):
    """float64 loop oracle: all states and the last one."""
    a, b, h = (np.asarray(v, np.float64) for v in (a, b, h0))
    hs = np.zeros_like(b)
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        hs[:, t] = h
    return hs, h


def np_recurrence_grads(a, b, h0, g):
    """Adjoint of sum(h * g): lam_t = g_t + a_{t+1} lam_{t+1}; da_t = lam_t h_{t-1}; db_t = lam_t."""
    a, b, h0, g = (np.asarray(v, np.float64) for v in (a, b, h0, g))
    hs, _ = np_recurrence(a, b, h0)
    prev = np.concatenate([h0[:, None], hs[:, :-1]], 1)
    lam = np.zeros_like(b)
    acc = np.zeros_like(h0)
    for t in reversed(range(a.shape[1])):
        acc = g[:, t] + (a[:, t + 1] * acc if t + 1 < a.shape[1] else 0.0)
        lam[:, t] = acc
    return lam * prev, lam, a[:, 0] * lam[:, 0]


def _inputs(seed, B=2, T=37, d=8):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 1.0, size=(B, T, d)).astype(np.float32)   # forget-gate-like
    b = rng.normal(size=(B, T, d)).astype(np.float32)
    h0 = rng.normal(size=(B, d)).astype(np.float32)
    return a, b, h0


def _err(x, y):
    d = np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))
    return float(d.max()), float(d.mean())


def _check(x, y, what, tol=TOL):
    mx, mean = _err(x, y)
    assert mx <= tol, f"{what}: max abs err {mx:.3e}, mean abs err {mean:.3e} (tol {tol:g})"


def test_registry_of_implementations():
    assert IMPLEMENTATIONS["reference"] is reference.linear_recurrence
    assert IMPLEMENTATIONS["associative"] is xla.linear_recurrence


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


def test_reference_and_associative_agree():
    for seed in range(3):
        a, b, h0 = _inputs(seed, 2, 64, 6)
        r = jax.jit(reference.linear_recurrence)(a, b, h0)
        x = jax.jit(xla.linear_recurrence)(a, b, h0)
        _check(x[0], r[0], f"seed {seed} states")
        _check(x[1], r[1], f"seed {seed} last state")


def test_default_dispatch_is_reference_bit_for_bit():
    a, b, h0 = _inputs(7)
    got = linear_recurrence(jnp.asarray(a), jnp.asarray(b), jnp.asarray(h0))
    want = reference.linear_recurrence(jnp.asarray(a), jnp.asarray(b), jnp.asarray(h0))
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))


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


@pytest.mark.parametrize("impl", IMPLS)
def test_gradients_match_adjoint_oracle(impl):
    a, b, h0 = _inputs(13, 2, 12, 4)
    g = np.random.default_rng(14).normal(size=b.shape).astype(np.float32)

    def loss(a, b, h):
        hs, _ = linear_recurrence(a, b, h, impl=impl)
        return jnp.sum(hs * g)

    da, db, dh = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(a, b, h0)
    ra, rb, rh = np_recurrence_grads(a, b, h0, g)
    _check(da, ra, f"{impl} da", tol=1e-4)
    _check(db, rb, f"{impl} db", tol=1e-4)
    _check(dh, rh, f"{impl} dh0", tol=1e-4)


def test_gradients_of_both_implementations_agree():
    a, b, h0 = _inputs(15, 2, 24, 5)
    g = np.random.default_rng(16).normal(size=b.shape).astype(np.float32)
    gl = np.random.default_rng(17).normal(size=h0.shape).astype(np.float32)

    def grads(impl):
        def loss(a, b, h):
            hs, last = linear_recurrence(a, b, h, impl=impl)
            return jnp.sum(hs * g) + jnp.sum(last * gl)
        return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(a, b, h0)

    for name, x, y in zip(("da", "db", "dh0"), grads("reference"), grads("associative")):
        _check(x, y, name, tol=1e-4)


def test_unknown_impl_raises():
    a, b, h0 = _inputs(0, 1, 2, 2)
    with pytest.raises(NeurojaxError, match="pallas_typo"):
        linear_recurrence(a, b, h0, impl="pallas_typo")
