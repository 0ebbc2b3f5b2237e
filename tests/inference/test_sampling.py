"""Sampling: greedy limits, top-k / nucleus support, determinism and validation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurojax.errors import NeurojaxError
from neurojax.inference import SamplingConfig, filter_logits, greedy, sample

B, V = 4, 37


def _logits(seed: int = 0, scale: float = 3.0) -> jax.Array:
    return scale * jax.random.normal(jax.random.PRNGKey(seed), (B, V), jnp.float32)


def _draws(logits, n, **kw):
    """`n` independent draws per row: `[n, B]` int32."""
    keys = jax.random.split(jax.random.PRNGKey(123), n)
    return np.asarray(jax.jit(jax.vmap(lambda k: sample(logits, k, **kw)))(keys))


def test_greedy_is_argmax_int32():
    x = _logits()
    out = greedy(x)
    assert out.dtype == jnp.int32 and out.shape == (B,)
    np.testing.assert_array_equal(out, np.argmax(np.asarray(x), axis=-1))


@pytest.mark.parametrize("temperature", [0.1, 1.0, 10.0])
def test_top_k_one_is_greedy(temperature):
    x = _logits(1)
    for i in range(5):
        got = sample(x, jax.random.PRNGKey(i), temperature=temperature, top_k=1)
        np.testing.assert_array_equal(got, greedy(x))


def test_temperature_zero_is_greedy():
    x = _logits(2)
    for i in range(5):
        got = sample(x, jax.random.PRNGKey(i), temperature=0.0, top_k=5, top_p=0.9)
        np.testing.assert_array_equal(got, greedy(x))


def test_top_k_never_leaves_the_k_largest():
    k = 5
    x = _logits(3, scale=0.5)  # flat enough that all k get drawn
    draws = _draws(x, 2000, temperature=2.0, top_k=k)
    top = np.argsort(-np.asarray(x), axis=-1)[:, :k]
    for b in range(B):
        assert set(draws[:, b].tolist()) == set(top[b].tolist())


def test_top_k_filter_keeps_exactly_k():
    x = _logits(4)
    kept = np.isfinite(np.asarray(filter_logits(x, 1.0, top_k=7)))
    assert (kept.sum(axis=-1) == 7).all()


def test_tiny_top_p_is_greedy():
    x = _logits(5, scale=0.1)  # near-flat: any leak past the top token would show
    draws = _draws(x, 500, temperature=1.0, top_p=1e-6)
    np.testing.assert_array_equal(draws, np.broadcast_to(np.asarray(greedy(x)), draws.shape))


@pytest.mark.parametrize("p, nucleus", [(0.4, {0}), (0.7, {0, 1}), (0.8, {0, 1}), (0.85, {0, 1, 2}),
                                        (1.0, {0, 1, 2, 3})])
def test_top_p_keeps_exactly_the_nucleus(p, nucleus):
    x = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]], jnp.float32))
    kept = set(np.nonzero(np.isfinite(np.asarray(filter_logits(x, 1.0, top_p=p))[0]))[0].tolist())
    assert kept == nucleus
    draws = _draws(x, 3000, temperature=1.0, top_p=p)
    assert set(draws[:, 0].tolist()) == nucleus


def test_top_p_renormalises_after_top_k():
    x = jnp.log(jnp.array([[0.4, 0.3, 0.2, 0.1]], jnp.float32))
    # top_k=2 leaves {0.4, 0.3} -> renormalised {0.571, 0.429}; top_p=0.5 then keeps the first only.
    kept = np.isfinite(np.asarray(filter_logits(x, 1.0, top_k=2, top_p=0.5))[0])
    np.testing.assert_array_equal(kept, [True, False, False, False])


def test_same_rng_same_samples_different_rng_differs():
    flat = jnp.zeros((64, 100), jnp.float32)
    a = sample(flat, jax.random.PRNGKey(7))
    b = sample(flat, jax.random.PRNGKey(7))
    c = sample(flat, jax.random.PRNGKey(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_sampling_config_defaults_and_validation():
    cfg = SamplingConfig()
    assert (cfg.temperature, cfg.top_k, cfg.top_p) == (1.0, 0, 1.0)
    assert cfg.validate() is cfg
    SamplingConfig(temperature=0.0, top_k=3, top_p=0.5).validate()
    for bad in (dict(temperature=-0.1), dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5), dict(top_p=-0.2)):
        with pytest.raises(NeurojaxError):
            SamplingConfig(**bad).validate()
    with pytest.raises(NeurojaxError):
        sample(_logits(), jax.random.PRNGKey(0), temperature=-1.0)
