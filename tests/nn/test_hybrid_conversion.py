"""Transformer++ -> SpikingBrain-style hybrid conversion (neurojax.nn.hybrid_conversion) and the distillation loss."""
import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurojax import NeurojaxError
from neurojax.nn.hybrid import HybridLM, hybrid_decode_step, hybrid_initial_state
from neurojax.nn.hybrid_conversion import (
    ConversionConfig,
    convert_params,
    decay_bias,
    new_param_paths,
    parse_layout,
    reused_paths,
    student_config,
)
from neurojax.nn.loss import distillation_loss
from neurojax.nn.transformer import TransformerLM
from neurojax.nn.transformer_config import transformer_preset

TEACHER = transformer_preset("transformer_micro", num_kv_heads=2, qkv_bias=True, num_layers=3)


@pytest.fixture(scope="module")
def teacher():
    params = jax.jit(TransformerLM(TEACHER).init)(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))["params"]
    # norms away from 1 and biases away from 0, so a wrong copy shows
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: p + 0.2 * jax.random.normal(jax.random.PRNGKey(len(str(path))), p.shape)
        if "norm" in str(path) or "bias" in str(path) else p * 4.0, params)
    return params


def _tokens(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 256, shape), jnp.int32)


def test_layouts():
    assert parse_layout("alternate", 5) == ("gla", "swa", "gla", "swa", "gla")
    assert parse_layout(" SWA, gla ,swa", 3) == ("swa", "gla", "swa")
    with pytest.raises(NeurojaxError, match=r"unknown layer kinds \['mamba'\]"):
        parse_layout("gla,mamba,swa", 3)
    with pytest.raises(NeurojaxError, match="names 2 layers, the teacher has 3"):
        parse_layout("gla,swa", 3)
    with pytest.raises(NeurojaxError, match="convert.layout"):
        parse_layout("", 3)
    with pytest.raises(NeurojaxError, match="convert.window"):
        ConversionConfig(window=0)
    with pytest.raises(NeurojaxError, match="convert.half_lives"):
        ConversionConfig(half_lives=())
    with pytest.raises(NeurojaxError, match="decay_rank=64 exceeds"):
        student_config(TEACHER, ConversionConfig(decay_rank=64))
    with pytest.raises(NeurojaxError, match="Transformer"):
        student_config(HybridLM, ConversionConfig())


def test_student_config_mirrors_the_teacher():
    s = student_config(TEACHER, ConversionConfig(layout="alternate", window=8, spike_k=3.0))
    assert s.layer_kinds == ("gla", "swa", "gla")
    for a, b in (("d_model", "d_model"), ("num_heads", "num_heads"), ("num_kv_heads", "num_kv_heads"),
                 ("intermediate_size", "intermediate_size"), ("qkv_bias", "qkv_bias"), ("rope_theta", "rope_theta"),
                 ("tie_embeddings", "tie_embeddings"), ("vocab_size", "vocab_size")):
        assert getattr(s, a) == getattr(TEACHER, b), a
    assert s.head_dim == TEACHER.attention_head_dim and s.window == 8 and s.spike_k == 3.0


def test_every_reused_tensor_is_bit_identical(teacher):
    s = student_config(TEACHER, ConversionConfig())
    params, report = convert_params(TEACHER, teacher, s, jax.random.PRNGKey(1), calibration=[_tokens((2, 16))])
    flat_s, flat_t = flax.traverse_util.flatten_dict(params), flax.traverse_util.flatten_dict(teacher)
    reused = reused_paths(s)
    assert len(reused) + len(new_param_paths(s)) == len(flat_s)
    assert len(reused) == len(flat_t)  # the teacher's every tensor lives on in the student
    for path in reused:
        assert flat_s[path].dtype == flat_t[path].dtype
        assert np.asarray(flat_s[path]).tobytes() == np.asarray(flat_t[path]).tobytes(), path
    assert [r.layer for r in report] == [0, 2]
    assert {p[2] for p in new_param_paths(s)} == {"gk_proj_0", "gk_proj_1", "g_norm"}
    # the decay starts data-independent at the chosen half-life
    for r in report:
        w = flat_s[(f"layers_{r.layer}", "self_attn", "gk_proj_1", "weight")]
        b = flat_s[(f"layers_{r.layer}", "self_attn", "gk_proj_1", "bias")]
        assert not np.any(np.asarray(w))
        np.testing.assert_allclose(np.asarray(b), decay_bias(r.half_life, s.decay_normalizer), rtol=1e-6)


def test_swa_layers_are_the_teacher_within_the_window(teacher):
    """All-SWA with a window >= the context: the converted model is the teacher (up to float rounding)."""
    s = student_config(TEACHER, ConversionConfig(layout="swa,swa,swa", window=24))
    params, report = convert_params(TEACHER, teacher, s, jax.random.PRNGKey(1))
    assert report == []
    tokens = _tokens((2, 24), seed=3)
    want = TransformerLM(TEACHER).apply({"params": teacher}, tokens)[0]
    got = HybridLM(s).apply({"params": params}, tokens)[0]
    assert float(jnp.max(jnp.abs(got - want))) <= 2e-4 * float(jnp.max(jnp.abs(want)))
    # beyond the window they differ (so the check above could fail)
    short = s.replace(window=4)
    got_short = HybridLM(short).apply({"params": params}, tokens)[0]
    assert float(jnp.max(jnp.abs(got_short - want))) > 1e-2


def test_calibration_brings_gla_layers_closer_to_the_teacher(teacher):
    s = student_config(TEACHER, ConversionConfig())
    calib = [_tokens((4, 32), seed=i) for i in range(2)]
    _, report = convert_params(TEACHER, teacher, s, jax.random.PRNGKey(1), calibration=calib)
    for r in report:
        assert 0 <= r.rel_error < r.rel_error_default, r
        assert r.half_life in ConversionConfig().half_lives


@pytest.mark.parametrize("spike_k", [None, 3.0])
def test_converted_sequence_equals_token_by_token_decoding(teacher, spike_k):
    s = student_config(TEACHER, ConversionConfig(window=5, spike_k=spike_k))
    params, _ = convert_params(TEACHER, teacher, s, jax.random.PRNGKey(1), calibration=[_tokens((2, 16))])
    model, tokens = HybridLM(s), _tokens((2, 12), seed=5)
    seq = model.apply({"params": params}, tokens)[0]
    step = jax.jit(lambda v, t, st_: hybrid_decode_step(model, v, t, st_))
    state, outs = hybrid_initial_state(s, 2), []
    for i in range(tokens.shape[1]):
        logits, state = step({"params": params}, tokens[:, i], state)
        outs.append(logits)
    np.testing.assert_allclose(np.stack(outs, 1), seq, atol=2e-4 * float(jnp.max(jnp.abs(seq))))


@given(st.floats(1.0, 4096.0), st.sampled_from([1.0, 4.0, 16.0]))
@settings(max_examples=30, deadline=None)
def test_decay_bias_gives_the_half_life(half_life, normalizer):
    b = decay_bias(half_life, normalizer)
    log_sigmoid = -math.log1p(math.exp(-b))
    assert math.isclose(math.exp(log_sigmoid / normalizer) ** half_life, 0.5, rel_tol=1e-9)


def test_distillation_loss_is_the_hand_computed_kl():
    rng = np.random.default_rng(0)
    s, t = rng.standard_normal((2, 3, 7)), rng.standard_normal((2, 3, 7))
    mask = np.array([[1, 1, 0], [1, 0, 1]], np.float32)
    for temp in (1.0, 2.5):
        kl, n = 0.0, 0
        for b in range(2):
            for i in range(3):
                if mask[b, i]:
                    p = np.exp(t[b, i] / temp) / np.exp(t[b, i] / temp).sum()
                    q = np.exp(s[b, i] / temp) / np.exp(s[b, i] / temp).sum()
                    kl += float(np.sum(p * np.log(p / q)))
                    n += 1
        want = temp**2 * kl / n
        got = float(distillation_loss(jnp.asarray(s, jnp.float32), jnp.asarray(t, jnp.float32), temp, mask))
        assert math.isclose(got, want, rel_tol=1e-5), (got, want)
    assert float(distillation_loss(jnp.asarray(t), jnp.asarray(t))) == pytest.approx(0.0, abs=1e-6)
    # no gradient flows into the teacher
    g = jax.grad(lambda tt: distillation_loss(jnp.asarray(s, jnp.float32), tt))(jnp.asarray(t, jnp.float32))
    assert not np.any(np.asarray(g))
