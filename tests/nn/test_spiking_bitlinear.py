"""Spike-coded BitLinear (SpikingBrain activations on the MatMul-free LM): exact against a
NumPy oracle, equal to its spike trains event by event, trainable, and packed for inference."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurojax.nn as nj
from neurojax import NeurojaxError
from neurojax.nn.bitlinear import SPIKE_COUNTS, BitLinear
from neurojax.quant import absmean_scale, spike_count_ste
from neurojax.spiking.coding import CODINGS, encode


def _setup(seed, shape=(2, 5, 24), d_out=7):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * 2).astype(np.float32)
    w = (rng.normal(size=(d_out, shape[-1])) * 0.05).astype(np.float32)
    params = {"weight": jnp.asarray(w), "norm": {"weight": jnp.ones((shape[-1],), jnp.float32)}}
    return x, w, params


@pytest.mark.parametrize("clip", [None, 7])
def test_spike_bitlinear_equals_count_oracle(clip):
    x, w, params = _setup(0)
    mod = BitLinear(7, spike_k=3.0, spike_clip=clip)
    out, extra = jax.jit(lambda p, x: mod.apply({"params": p}, x, mutable=[SPIKE_COUNTS, "intermediates"],
                                                capture_intermediates=True))(params, x)
    y = np.asarray(extra["intermediates"]["norm"]["__call__"][0])
    counts = np.asarray(extra[SPIKE_COUNTS]["counts"][0])
    # oracle: V_th = mean|y| / k (float32 as computed), counts = round_half_even(y / V_th)
    v_th = np.clip(np.abs(y).mean(-1, keepdims=True, dtype=np.float32) / np.float32(3.0), 1e-5, 1e4)
    want = np.round(y / v_th)
    if clip is not None:
        want = np.clip(want, -clip, clip)
    mism = counts != want
    # float32 mean vs XLA's sum * (1/D) may move a value across a .5 tie by one ulp: allow those only
    near_tie = np.abs(np.abs(y / v_th) % 1 - 0.5) < 1e-4
    assert not (mism & ~near_tie).any() and mism.sum() <= 2, counts[mism]
    assert np.abs(counts).max() <= (clip or 10**9)
    s_w = np.float32(np.asarray(absmean_scale(jnp.asarray(w))))
    codes = np.clip(np.round(w * s_w), -1, 1).astype(np.int64)
    acc = counts.astype(np.int64) @ codes.T  # integers, exact
    v_th_lib = np.asarray(jax.jit(lambda y: spike_count_ste(y, 3.0, clip)[1])(jnp.asarray(y)))
    np.testing.assert_allclose(np.asarray(out), acc * (v_th_lib / s_w), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("coding", CODINGS)
def test_spike_trains_give_the_count_layer_exactly(coding):
    """Summing W @ spike_t over the train (bitwise steps weighted 2^(T-1-t)) == W @ counts."""
    x, w, params = _setup(1)
    mod = BitLinear(7, spike_k=2.0, spike_clip=15)
    _, extra = mod.apply({"params": params}, jnp.asarray(x), mutable=[SPIKE_COUNTS])
    counts = np.asarray(extra[SPIKE_COUNTS]["counts"][0]).reshape(-1, x.shape[-1])
    codes = np.asarray(jax.random.randint(jax.random.PRNGKey(0), (7, x.shape[-1]), -1, 2), np.int64)
    st = encode(jnp.asarray(counts), coding)
    train = np.asarray(st.train, np.int64)
    weights = 2 ** np.arange(st.T - 1, -1, -1) if coding in ("bitwise", "twos_complement") else np.ones(st.T, np.int64)
    event_sum = sum(int(weights[t]) * (train[t] @ codes.T) for t in range(st.T))
    event_sum = event_sum - np.asarray(st.zero_point, np.int64) @ codes.T
    np.testing.assert_array_equal(event_sum, counts.astype(np.int64) @ codes.T)
    # event-driven: only non-zero spikes cost additions
    assert np.count_nonzero(train) < train.size


def test_spike_bitlinear_gradient_is_straight_through():
    x, w, params = _setup(2)
    mod = BitLinear(7, spike_k=3.0)
    g = jax.grad(lambda x: jnp.sum(mod.apply({"params": params}, x) ** 2))(jnp.asarray(x))
    assert np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).max() > 0
    gw = jax.grad(lambda p: jnp.sum(mod.apply({"params": p}, jnp.asarray(x)) ** 2))(params)
    assert np.abs(np.asarray(gw["weight"])).max() > 0


@pytest.mark.parametrize("clip", [7, None])
def test_spiking_lm_packed_inference_matches_and_counts_are_sown(clip):
    cfg = nj.preset("micro", spike_k=3.0, spike_clip=clip)
    model = nj.MatMulFreeLM(cfg)
    params = nj.init_params(model, jax.random.PRNGKey(0))
    tokens = jax.random.randint(jax.random.PRNGKey(1), (2, 6), 0, cfg.vocab_size)
    (logits, _), sown = jax.jit(lambda p, t: model.apply({"params": p}, t, mutable=[SPIKE_COUNTS]))(params, tokens)
    flat = flax.traverse_util.flatten_dict(sown[SPIKE_COUNTS], sep="/")
    assert len(flat) == 6 * cfg.num_layers + 1  # every BitLinear input is spike coded
    ivars = jax.jit(lambda p: nj.inference_variables(model, p))(params)
    logits_i, _ = jax.jit(model.apply)(ivars, tokens)
    np.testing.assert_allclose(np.asarray(logits_i), np.asarray(logits), rtol=0, atol=1e-5)
    plain, _ = jax.jit(nj.MatMulFreeLM(nj.preset("micro")).apply)({"params": params}, tokens)
    assert not np.allclose(np.asarray(plain), np.asarray(logits))  # the coding is really on


def test_bad_spike_config_raises():
    with pytest.raises(NeurojaxError, match="spike_k"):
        nj.preset("micro", spike_k=0.0)
    with pytest.raises(NeurojaxError, match="spike_clip"):
        nj.preset("micro", spike_clip=3)
    with pytest.raises(NeurojaxError, match="spike_clip"):
        nj.preset("micro", spike_k=3.0, spike_clip=0)
