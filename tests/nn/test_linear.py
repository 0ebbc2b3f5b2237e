"""The shared full-precision Linear (weight [out, in], optional bias, optional spike-coded input) and RoPE scaling."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurojax import NeurojaxError
from neurojax.nn.bitlinear import SPIKE_COUNTS
from neurojax.nn.linear import Linear
from neurojax.nn.rope import normalize_rope_scaling, rope_inv_freq
from neurojax.nn.transformer import TransformerLM
from neurojax.nn.transformer_config import transformer_preset


def test_linear_is_x_times_weight_transposed_plus_bias():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5))
    layer = Linear(4, use_bias=True)
    params = layer.init(jax.random.PRNGKey(1), x)["params"]
    assert params["weight"].shape == (4, 5) and params["bias"].shape == (4,)
    params = {"weight": params["weight"], "bias": jnp.arange(4.0)}
    want = np.asarray(x) @ np.asarray(params["weight"]).T + np.arange(4.0)
    np.testing.assert_allclose(layer.apply({"params": params}, x), want, rtol=1e-5, atol=1e-6)
    assert "bias" not in Linear(4).init(jax.random.PRNGKey(1), x)["params"]


def test_spike_coded_input_counts_and_product():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 8)) * 3
    layer = Linear(3, spike_k=3.0)
    params = layer.init(jax.random.PRNGKey(1), x)["params"]
    y, sown = layer.apply({"params": params}, x, mutable=[SPIKE_COUNTS])
    counts = np.asarray(sown[SPIKE_COUNTS]["counts"][0])
    xn = np.asarray(x, np.float64)
    v_th = np.clip(np.mean(np.abs(xn), -1, keepdims=True) / 3.0, 1e-5, 1e4)
    np.testing.assert_array_equal(counts, np.round(xn / v_th))  # numpy rounds half to even, like the spec
    np.testing.assert_allclose(y, (counts * v_th) @ np.asarray(params["weight"], np.float64).T, rtol=1e-4, atol=1e-5)
    assert counts.dtype == np.int32 and 0 < np.mean(counts == 0) < 1


def test_spike_coded_transformer_differs_and_sows_every_projection_but_down():
    cfg = transformer_preset("transformer_micro", spike_k=3.0)
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, 8)), jnp.int32)
    params = TransformerLM(cfg.replace(spike_k=None)).init(jax.random.PRNGKey(0), tokens)["params"]
    plain = TransformerLM(cfg.replace(spike_k=None)).apply({"params": params}, tokens)[0]
    (coded, _), sown = TransformerLM(cfg).apply({"params": params}, tokens, mutable=[SPIKE_COUNTS])
    assert float(jnp.max(jnp.abs(coded - plain))) > 1e-4
    names = {path for path in sown[SPIKE_COUNTS]["layers_0"]["self_attn"]} | set(sown[SPIKE_COUNTS]["layers_0"]["mlp"])
    assert names == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"}
    with pytest.raises(NeurojaxError, match="transformer.spike_k"):
        transformer_preset("transformer_micro", spike_k=-1.0)


def test_rope_scaling_validation():
    assert normalize_rope_scaling(None) is None
    assert normalize_rope_scaling({"rope_type": "default"}) is None
    assert normalize_rope_scaling({"type": "linear", "factor": 2}) == (("factor", 2), ("rope_type", "linear"))
    for bad, needle in (({"rope_type": "yarn", "factor": 2.0}, "yarn"), ({"rope_type": "linear"}, "factor"),
                        ({"rope_type": "llama3", "factor": 8.0}, "low_freq_factor"), ("linear", "mapping")):
        with pytest.raises(NeurojaxError, match=needle):
            normalize_rope_scaling(bad)
    base = np.asarray(rope_inv_freq(8, 1e4))
    np.testing.assert_allclose(rope_inv_freq(8, 1e4, normalize_rope_scaling({"rope_type": "linear", "factor": 4.0})),
                               base / 4, rtol=1e-6)
    # the config keeps scaling hashable (a static jit argument) and round-trips through a dict
    cfg = transformer_preset("transformer_micro", rope_scaling={"rope_type": "linear", "factor": 2.0})
    hash(cfg)
    assert type(cfg).from_dict(cfg.to_dict()) == cfg
