"""Registries of the LM's swappable parts: errors, built-ins, config plumbing, custom entries."""
import functools

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurojax.nn as nj
from neurojax.errors import NeurojaxError
from neurojax.fixedpoint.convert import check_convertible
from neurojax.nn.bitlinear import BitLinear
from neurojax.nn.quantizers import absmax_int8_quantizer, neuron_quantizer, spike_quantizer
from neurojax.nn.registry import CHANNEL_MIXERS, LINEARS, NEURONS, QUANTIZERS, TOKEN_MIXERS, Registry

TOKENS = jnp.array([[5, 17, 200, 3, 99, 42, 7, 1, 250, 64]], jnp.int32)


def _flat_names(params) -> set:
    return {"/".join(k) for k in flax.traverse_util.flatten_dict(params)}


# ----------------------------------------------------------------------------- the Registry class


def test_duplicate_name_is_refused_naming_registry_and_known_names():
    reg = Registry("widget")
    reg.register("a")(int)
    with pytest.raises(NeurojaxError, match=r"widget 'a' is already registered .*\['a'\]"):
        reg.register("a")(float)
    assert reg.get("a") is int  # the first registration is kept
    reg.register("a", overwrite=True)(float)
    assert reg.get("a") is float


def test_unknown_name_lists_the_registered_names():
    reg = Registry("widget")
    reg.register("a")(int)
    reg.register("b")(float)
    with pytest.raises(NeurojaxError, match=r"unknown widget 'c'; registered widgets: \['a', 'b'\]"):
        reg.get("c")
    with pytest.raises(NeurojaxError, match="unknown widget"):
        reg.get(None)
    with pytest.raises(NeurojaxError, match="non-empty string"):
        reg.register("")


def test_resolve_passes_classes_through():
    reg = Registry("widget")
    reg.register("a")(int)
    assert reg.resolve("a") is int and reg.resolve(float) is float


@pytest.mark.parametrize("registry,names", [
    (TOKEN_MIXERS, ["mlgru", "linear_attention", "swa", "softmax"]),
    (CHANNEL_MIXERS, ["glu", "swiglu"]),
    (LINEARS, ["bitlinear", "full_precision", "spike"]),
    (QUANTIZERS, ["absmax_int8", "spike", "neuron"]),
    (NEURONS, ["lif", "adaptive_lif", "if", "sigma_delta"]),  # loaded from neurojax.spiking.neurons
])
def test_builtins_are_registered(registry, names):
    assert set(names) <= set(registry.names())
    with pytest.raises(NeurojaxError, match=f"{registry.kind} '{names[0]}' is already registered"):
        registry.register(names[0])(object)


def test_model_with_unknown_mixer_fails_with_the_registry_error():
    model = nj.MatMulFreeLM(nj.preset("micro", token_mixer="no_such_mixer"))
    with pytest.raises(NeurojaxError, match=r"unknown token mixer 'no_such_mixer'; registered token mixers: \["):
        nj.init_params(model, jax.random.PRNGKey(0))
    model = nj.MatMulFreeLM(nj.preset("micro", linear="no_such_linear"))
    with pytest.raises(NeurojaxError, match="unknown linear layer 'no_such_linear'"):
        nj.init_params(model, jax.random.PRNGKey(0))


# ----------------------------------------------------------------------------- ModelConfig fields


@pytest.mark.parametrize("fields,message", [
    (dict(linear="spike"), "set model.spike_k"),
    (dict(linear="full_precision", full_precision=True), "full_precision applies to model.linear='bitlinear'"),
    (dict(linear="full_precision", spike_k=2.0), "use model.linear='spike'"),
    (dict(linear="spike", spike_k=2.0, quantizer="neuron"), "applies to model.linear='bitlinear' only"),
    (dict(quantizer="spike"), "needs model.spike_k"),
    (dict(quantizer="absmax_int8", spike_k=2.0), "ignores it"),
    (dict(quantizer="neuron", spike_k=2.0, spike_clip=4), "spike_clip bounds the 'spike' quantizer"),
    (dict(neuron="lif"), "read by model.quantizer='neuron' only"),
    (dict(quantizer="neuron", neuron_steps=0), "neuron_steps must be a positive int"),
    (dict(token_mixer="swa", attention_window=True), "attention_window must be a positive int"),
])
def test_config_refuses_ignored_or_incomplete_choices(fields, message):
    with pytest.raises(NeurojaxError, match=message):
        nj.preset("micro", **fields)


def test_config_resolves_defaults_as_before():
    cfg = nj.preset("micro")
    assert (cfg.linear_name, cfg.quantizer_name, cfg.ternary, cfg.builtin_integer_path) == (
        "bitlinear", "absmax_int8", True, True)
    spiking = nj.preset("micro", spike_k=3.0)
    assert spiking.quantizer_name == "spike" and not spiking.builtin_integer_path
    assert not nj.preset("micro", linear="full_precision").ternary
    assert not nj.preset("micro", full_precision=True).ternary
    # New fields default to None, so the config.json of an older run (without them) compares equal.
    assert all(cfg.to_dict()[k] is None for k in ("linear", "quantizer", "neuron", "neuron_steps", "attention_window"))


def test_default_parameter_names_are_the_checkpoint_names():
    cfg = nj.preset("micro")
    names = _flat_names(nj.init_params(nj.MatMulFreeLM(cfg), jax.random.PRNGKey(0)))
    expected = {"embeddings/embedding", "lower_bounds", "norm/weight", "lm_head/weight", "lm_head/norm/weight"}
    for l in range(cfg.num_layers):
        p = f"layers_{l}"
        expected |= {f"{p}/attn_norm/weight", f"{p}/mlp_norm/weight", f"{p}/attn/g_norm/weight"}
        for proj in ("attn/i_proj", "attn/f_proj", "attn/g_proj", "attn/o_proj", "mlp/gate_proj", "mlp/down_proj"):
            expected |= {f"{p}/{proj}/weight", f"{p}/{proj}/norm/weight"}
    assert names == expected


# ----------------------------------------------------------------------------- linear layers


def test_full_precision_and_spike_linears_are_plain_dense_layers():
    for fields in (dict(linear="full_precision"), dict(linear="spike", spike_k=3.0)):
        cfg = nj.preset("micro", **fields)
        model = nj.MatMulFreeLM(cfg)
        params = nj.init_params(model, jax.random.PRNGKey(0))
        names = _flat_names(params)
        assert "lm_head/weight" in names and not any(n.endswith("proj/norm/weight") for n in names)
        assert nj.inference_variables(model, params) == {"params": params}  # nothing to pack
        bits = nj.weight_memory_bits(cfg)
        n_proj = sum(int(np.prod(v.shape)) for k, v in flax.traverse_util.flatten_dict(params).items()
                     if k[-1] == "weight" and v.ndim == 2)
        assert bits["projection"] == 32 * n_proj


def test_spike_linear_codes_its_input():
    """linear="spike": `x -> round(x / V_th) V_th` before a float product (NumPy oracle)."""
    cfg = nj.preset("micro", linear="spike", spike_k=2.0)
    layer = nj.make_linear(cfg, 3, "proj")
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 8))
    params = layer.init(jax.random.PRNGKey(2), x)
    w = np.asarray(params["params"]["weight"], np.float64)
    xn = np.asarray(x, np.float64)
    v_th = np.abs(xn).mean(-1, keepdims=True) / 2.0
    want = (np.round(xn / v_th) * v_th) @ w.T
    np.testing.assert_allclose(np.asarray(layer.apply(params, x)), want, rtol=1e-5, atol=1e-5)


def test_registered_linear_replaces_every_projection():
    calls = []

    @LINEARS.register("test_counting_linear", overwrite=True)
    def counting(config, features, name):
        calls.append(name)
        return nj.make_linear(config.replace(linear=None), features, name)

    cfg = nj.preset("micro", linear="test_counting_linear")
    nj.init_params(nj.MatMulFreeLM(cfg), jax.random.PRNGKey(0))
    assert sorted(set(calls)) == sorted({"i_proj", "f_proj", "g_proj", "o_proj", "gate_proj", "down_proj", "lm_head"})
    assert not cfg.ternary  # only the built-in "bitlinear" counts as ternary


# ----------------------------------------------------------------------------- quantizers


def _bitlinear_pair(cfg, fn):
    x = jax.random.normal(jax.random.PRNGKey(3), (2, 5, 16)) * 3.0
    builtin = BitLinear.of(cfg, 8, "p")
    params = builtin.init(jax.random.PRNGKey(4), x)
    custom = BitLinear(8, False, cfg.init_std, None, None, functools.partial(fn, config=cfg))
    return builtin.apply(params, x), custom.apply(params, x)


@pytest.mark.parametrize("fields,fn", [({}, absmax_int8_quantizer), (dict(spike_k=2.0, spike_clip=3), spike_quantizer)])
def test_builtin_quantizer_functions_reproduce_bitlinear(fields, fn):
    want, got = _bitlinear_pair(nj.preset("micro", **fields), fn)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_neuron_quantizer_with_if_counts_floor_of_threshold_units():
    """IF driven by |y| / (T V_th) per step spikes min(floor(|y| / V_th), T) times (NumPy oracle)."""
    steps, k = 6, 3.0
    cfg = nj.preset("micro", quantizer="neuron", neuron="if", neuron_steps=steps, spike_k=k)
    y = jax.random.normal(jax.random.PRNGKey(5), (64, 32)) * 2.0
    q, step = neuron_quantizer(y, cfg)
    yn = np.asarray(y, np.float64)
    v_th = np.abs(yn).mean(-1, keepdims=True) / k
    np.testing.assert_allclose(np.asarray(step), v_th, rtol=1e-6)
    units = np.abs(yn) / v_th
    want = np.sign(yn) * np.minimum(np.floor(units), steps)
    clear = np.abs(units - np.round(units)) > 1e-3  # float accumulation may flip exact multiples
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(np.asarray(q)[clear], want[clear])
    assert np.all(np.abs(np.asarray(q) - want) <= 1)


def test_custom_neuron_drives_the_lm_through_the_neuron_quantizer():
    class AlwaysFires(nn.Module):
        """Spikes at every step whatever the input: the counts must all be `T` (times sign)."""

        def initial_state(self, shape):
            return jnp.zeros(shape)

        def __call__(self, x_seq, state):
            return jnp.ones_like(x_seq) + 0 * x_seq, state

    NEURONS.register("test_always_fires", overwrite=True)(AlwaysFires)
    cfg = nj.preset("micro", quantizer="neuron", neuron="test_always_fires", neuron_steps=5)
    y = jnp.array([[0.5, -2.0, 1e-3, -0.1]])
    q, _ = neuron_quantizer(y, cfg)
    np.testing.assert_array_equal(np.asarray(q), [[5, -5, 5, -5]])
    model = nj.MatMulFreeLM(cfg)
    params = nj.init_params(model, jax.random.PRNGKey(0))
    logits, _ = model.apply({"params": params}, TOKENS)
    assert bool(jnp.all(jnp.isfinite(logits)))
    # inference_variables packs the ternary weights and the packed path uses the same quantizer
    packed = model.apply(nj.inference_variables(model, params), TOKENS)[0]
    np.testing.assert_allclose(np.asarray(packed), np.asarray(logits), atol=1e-5)


@pytest.mark.slow
def test_neuron_quantizer_trains_through_surrogate_gradients():
    cfg = nj.preset("micro", quantizer="neuron", neuron="lif", neuron_steps=4)
    model = nj.MatMulFreeLM(cfg)
    params = nj.init_params(model, jax.random.PRNGKey(0))
    grads = jax.grad(lambda p: nj.next_token_loss(model.apply({"params": p}, TOKENS[:, :-1])[0], TOKENS[:, 1:])[0])(params)
    g = grads["layers_0"]["attn"]["i_proj"]["weight"]
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0


# ----------------------------------------------------------------------------- integer model


@pytest.mark.parametrize("fields", [dict(token_mixer="linear_attention"), dict(channel_mixer="swiglu"),
                                    dict(linear="full_precision"), dict(quantizer="neuron"), dict(spike_k=3.0)])
def test_integer_model_refuses_other_architectures(fields):
    with pytest.raises(NeurojaxError, match="the integer model implements"):
        check_convertible(nj.preset("micro", **fields))
    check_convertible(nj.preset("micro"))  # the built-in architecture passes
