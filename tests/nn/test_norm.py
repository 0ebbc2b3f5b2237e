"""RMSNorm against a NumPy float64 oracle."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurojax.nn import RMSNorm, rms_norm


def _rms64(x, w, eps):
    x = np.asarray(x, np.float64)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * np.asarray(w, np.float64)


@pytest.mark.parametrize("eps", [1e-6, 1e-5, 0.0])
@pytest.mark.parametrize("shape", [(7,), (3, 16), (2, 5, 33)])
def test_rms_norm_matches_float64(shape, eps):
    rng = np.random.default_rng(len(shape) * 10 + int(eps * 1e6))
    x = (rng.normal(size=shape) * 3).astype(np.float32)
    w = rng.normal(size=shape[-1]).astype(np.float32)
    out = rms_norm(jnp.asarray(x), jnp.asarray(w), eps)
    assert out.dtype == jnp.float32 and out.shape == shape
    np.testing.assert_allclose(np.asarray(out), _rms64(x, w, eps), rtol=2e-6, atol=1e-7)


def test_eps_matters_for_small_inputs():
    x = np.full((1, 4), 1e-3, np.float32)
    w = np.ones(4, np.float32)
    # mean(x^2) = 1e-6, so eps = 1e-6 halves the variance term: 1e-3 / sqrt(2e-6) = 0.7071
    np.testing.assert_allclose(np.asarray(rms_norm(jnp.asarray(x), jnp.asarray(w), 1e-6)),
                               np.full((1, 4), 1 / np.sqrt(2.0)), rtol=1e-5)


def test_bf16_input_computed_in_float32():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 8)).astype(np.float32)).astype(jnp.bfloat16)
    out = rms_norm(x, jnp.ones(8, jnp.bfloat16), 1e-6)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out), _rms64(np.asarray(x.astype(jnp.float32)), np.ones(8), 1e-6),
                               rtol=2e-6, atol=1e-7)


def test_module_param_and_forward():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 10)).astype(np.float32)
    mod = RMSNorm(eps=1e-5)
    params = mod.init(jax.random.PRNGKey(0), jnp.asarray(x))["params"]
    assert set(params) == {"weight"} and params["weight"].shape == (10,)
    np.testing.assert_array_equal(np.asarray(params["weight"]), np.ones(10))
    w = rng.normal(size=10).astype(np.float32)
    out = mod.apply({"params": {"weight": jnp.asarray(w)}}, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(out), _rms64(x, w, 1e-5), rtol=2e-6, atol=1e-7)


def test_gradient_matches_float64_oracle():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 12)).astype(np.float32)
    w = rng.normal(size=12).astype(np.float32)
    g = rng.normal(size=(3, 12)).astype(np.float32)
    eps = 1e-6
    dx = jax.grad(lambda x: jnp.sum(rms_norm(x, jnp.asarray(w), eps) * g))(jnp.asarray(x))
    x64, w64, g64 = (a.astype(np.float64) for a in (x, w, g))
    r = 1 / np.sqrt(np.mean(x64 * x64, -1, keepdims=True) + eps)
    gw = g64 * w64
    want = r * gw - x64 * r ** 3 * np.mean(gw * x64, -1, keepdims=True)
    np.testing.assert_allclose(np.asarray(dx), want, rtol=1e-5, atol=1e-6)
