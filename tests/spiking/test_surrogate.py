"""Spike functions: exact Heaviside forward, surrogate derivative backward.

The analytic derivatives and smooth functions are written here in NumPy float64, independently
of the module; the finite differences are taken on those smooth functions (never the step).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurojax.errors import NeurojaxError
from neurojax.spiking.surrogate import (
    SURROGATES,
    arctan,
    fast_sigmoid,
    heaviside,
    sigmoid,
    spike_fn,
)

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


def np_smooth(name, x, k):
    x = np.asarray(x, np.float64)
    if name == "fast_sigmoid":
        return x / (1 + k * np.abs(x))
    if name == "arctan":
        return 0.5 + np.arctan(np.pi / 2 * k * x) / np.pi
    e = np.exp(-np.abs(k * x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def np_grad(name, x, k):
    x = np.asarray(x, np.float64)
    if name == "fast_sigmoid":
        return 1 / (1 + k * np.abs(x)) ** 2
    if name == "arctan":
        return (k / 2) / (1 + (np.pi / 2 * k * x) ** 2)
    e = np.exp(-np.abs(k * x))  # sig(z) (1 - sig(z)) without overflow
    return k * e / (1 + e) ** 2


def central_diff(name, x, k, h=1e-6):
    return (np_smooth(name, x + h, k) - np_smooth(name, x - h, k)) / (2 * h)


NAMES = sorted(SURROGATES)
XS = np.array([-3.0, -0.7, -0.1, -1e-3, 0.0, 1e-3, 0.05, 0.3, 2.5], np.float32)


@pytest.mark.parametrize("compare", [">", ">="])
@pytest.mark.parametrize("name", NAMES)
def test_forward_is_the_exact_step(name, compare):
    """The value is exactly 0/1 (no smooth leakage), with the named convention at x == 0."""
    f = spike_fn(name, None, compare)
    y = np.asarray(f(jnp.asarray(XS)))
    want = (XS > 0) if compare == ">" else (XS >= 0)
    np.testing.assert_array_equal(y, want.astype(np.float32))
    assert y.dtype == np.float32
    assert float(f(jnp.float32(0.0))) == (0.0 if compare == ">" else 1.0)
    np.testing.assert_array_equal(np.asarray(heaviside(jnp.asarray(XS), compare)), y)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(x=st.floats(-4, 4, width=32), slope=st.floats(0.5, 40))
def test_grad_equals_analytic_and_smooth_finite_difference(name, x, slope):
    """jax.grad of the spike function = the stated surrogate = central differences of the smooth
    function (float64, h = 1e-6) within 1e-3; the module's own smooth/grad agree with it too."""
    f = spike_fn(name, slope)
    g = float(jax.grad(f)(jnp.float32(x)))
    analytic = float(np_grad(name, x, slope))
    assert g == pytest.approx(analytic, rel=1e-5, abs=1e-6)
    assert abs(g - float(central_diff(name, x, slope))) < 1e-3
    sur = SURROGATES[name]
    assert float(sur.grad(jnp.float32(x), slope)) == pytest.approx(analytic, rel=1e-5, abs=1e-6)
    assert float(sur.smooth(jnp.float32(x), slope)) == pytest.approx(float(np_smooth(name, x, slope)), abs=1e-5)


def test_named_constructors_and_values_at_zero():
    """Peak heights: fast_sigmoid 1 for every slope, arctan slope/2, sigmoid slope/4."""
    for k in (1.0, 3.0, 25.0):
        assert float(jax.grad(fast_sigmoid(k))(0.0)) == pytest.approx(1.0)
        assert float(jax.grad(arctan(k))(0.0)) == pytest.approx(k / 2)
        assert float(jax.grad(sigmoid(k))(0.0)) == pytest.approx(k / 4)
    # a steeper slope narrows the surrogate: further from 0 it shrinks
    assert float(jax.grad(arctan(10.0))(0.5)) < float(jax.grad(arctan(1.0))(0.5))


def test_normalisation_of_each_surrogate():
    """arctan and sigmoid integrate to 1 (proper sigmoids); fast_sigmoid to 2 / slope."""
    x = np.linspace(-2000, 2000, 4_000_001)
    dx = x[1] - x[0]
    for k in (2.0, 5.0):
        assert np.sum(np_grad("arctan", x, k)) * dx == pytest.approx(1.0, abs=1e-3)
        assert np.sum(np_grad("sigmoid", x, k)) * dx == pytest.approx(1.0, abs=1e-6)
        assert np.sum(np_grad("fast_sigmoid", x, k)) * dx == pytest.approx(2 / k, rel=1e-3)
        # the implementation's grad matches on a grid, so the statements hold for it too
        grid = np.linspace(-3, 3, 61).astype(np.float32)
        for name in NAMES:
            got = np.asarray(jax.vmap(jax.grad(spike_fn(name, k)))(jnp.asarray(grid)))
            np.testing.assert_allclose(got, np_grad(name, grid, k), rtol=1e-4, atol=1e-7)


def test_grad_under_jit_vmap_and_chain_rule():
    """The surrogate composes: d/dw sum(spike(w * x - 1)) = sum(x * g(w x - 1)), jitted."""
    x = jnp.asarray(XS)
    f = fast_sigmoid(4.0)
    got = jax.jit(jax.grad(lambda w: jnp.sum(f(w * x - 1.0))))(2.0)
    want = np.sum(XS.astype(np.float64) * np_grad("fast_sigmoid", 2.0 * XS - 1.0, 4.0))
    assert float(got) == pytest.approx(want, rel=1e-5)
    # forward-mode agrees with reverse-mode
    _, t = jax.jvp(f, (x,), (jnp.ones_like(x),))
    np.testing.assert_allclose(np.asarray(t), np_grad("fast_sigmoid", XS, 4.0), rtol=1e-5)


def test_cached_functions():
    """Equal arguments return the same function object (jitted callers do not retrace)."""
    assert spike_fn("arctan", 2.0) is spike_fn("arctan", None) is arctan()
    assert spike_fn("arctan", 2.0, ">=") is not spike_fn("arctan", 2.0)


def test_bad_arguments_raise():
    with pytest.raises(NeurojaxError, match="unknown surrogate 'nope'"):
        spike_fn("nope")
    with pytest.raises(NeurojaxError, match="slope"):
        spike_fn("arctan", 0.0)
    with pytest.raises(NeurojaxError, match="slope"):
        spike_fn("arctan", math.inf)
    with pytest.raises(NeurojaxError, match="compare"):
        spike_fn("arctan", 1.0, "=>")
