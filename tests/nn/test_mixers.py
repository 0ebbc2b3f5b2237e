"""The extra token mixers and the SwiGLU channel mixer inside the MatMul-free LM."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurojax.nn as nj
from neurojax.errors import NeurojaxError
from neurojax.inference.decode import generate

TOKENS = jnp.array([[5, 17, 200, 3, 99, 42, 7, 1, 250, 64, 12, 33]], jnp.int32)


def _model(**fields):
    cfg = nj.preset("micro", **fields)
    model = nj.MatMulFreeLM(cfg)
    return cfg, model, nj.init_params(model, jax.random.PRNGKey(0))


def _token_by_token(cfg, model, params, tokens):
    state, out = nj.initial_state(cfg, tokens.shape[0]), []
    for t in range(tokens.shape[1]):
        logits, state = nj.decode_step(model, {"params": params}, tokens[:, t], state)
        out.append(logits)
    return jnp.stack(out, 1), state


@pytest.mark.parametrize("fields", [dict(token_mixer="linear_attention", num_heads=2),
                                    dict(token_mixer="swa", attention_window=4, num_heads=2)])
def test_sequence_equals_token_by_token_with_a_fixed_size_state(fields):
    cfg, model, params = _model(**fields)
    seq_logits, seq_state = model.apply({"params": params}, TOKENS)
    step_logits, step_state = _token_by_token(cfg, model, params, TOKENS)
    np.testing.assert_allclose(np.asarray(step_logits), np.asarray(seq_logits), atol=2e-5)
    for a, b in zip(jax.tree_util.tree_leaves(seq_state), jax.tree_util.tree_leaves(step_state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5)
    # the state does not grow with the sequence
    shapes = [x.shape for x in jax.tree_util.tree_leaves(nj.initial_state(cfg, 1))]
    assert shapes == [x.shape for x in jax.tree_util.tree_leaves(seq_state)]


def test_chunked_prefill_equals_one_pass():
    cfg, model, params = _model(token_mixer="swa", attention_window=4)
    whole, _ = model.apply({"params": params}, TOKENS)
    first, state = model.apply({"params": params}, TOKENS[:, :7])
    rest, _ = model.apply({"params": params}, TOKENS[:, 7:], state)
    np.testing.assert_allclose(np.asarray(jnp.concatenate([first, rest], 1)), np.asarray(whole), atol=2e-5)


def test_sliding_window_sees_only_the_last_window_tokens():
    """One layer, window 3: the logits at position t >= 3 ignore token 0; position 2 does not."""
    cfg, model, params = _model(token_mixer="swa", attention_window=3, num_layers=1)
    changed = TOKENS.at[0, 0].set(111)
    a, _ = model.apply({"params": params}, TOKENS)
    b, _ = model.apply({"params": params}, changed)
    np.testing.assert_allclose(np.asarray(a[:, 3:]), np.asarray(b[:, 3:]), atol=1e-6)
    assert float(jnp.max(jnp.abs(a[:, 2] - b[:, 2]))) > 1e-4


def test_softmax_attention_is_causal_and_sequence_only():
    cfg, model, params = _model(token_mixer="softmax")
    a, state = model.apply({"params": params}, TOKENS)
    b, _ = model.apply({"params": params}, TOKENS.at[0, 8].set(111))
    np.testing.assert_allclose(np.asarray(a[:, :8]), np.asarray(b[:, :8]), atol=1e-6)
    assert float(jnp.max(jnp.abs(a[:, 8:] - b[:, 8:]))) > 1e-4
    assert jax.tree_util.tree_leaves(state) == []  # no KV cache is kept
    with pytest.raises(NeurojaxError, match="sequence-only"):
        nj.decode_step(model, {"params": params}, TOKENS[:, 0], state)
    with pytest.raises(NeurojaxError, match="sequence-only"):
        generate(model, {"params": params}, np.asarray(TOKENS[:, :4]), 2, jax.random.PRNGKey(0))


@pytest.mark.parametrize("mixer", ["linear_attention", "softmax"])
def test_left_padding_does_not_change_the_real_positions(mixer):
    cfg, model, params = _model(token_mixer=mixer)
    plain, _ = model.apply({"params": params}, TOKENS)
    padded = jnp.concatenate([jnp.zeros((1, 3), jnp.int32), TOKENS], 1)
    mask = jnp.concatenate([jnp.zeros((1, 3)), jnp.ones(TOKENS.shape)], 1)
    out, _ = model.apply({"params": params}, padded, None, mask)
    np.testing.assert_allclose(np.asarray(out[:, 3:]), np.asarray(plain), atol=5e-5)


def test_swa_refuses_a_padding_mask():
    cfg, model, params = _model(token_mixer="swa")
    with pytest.raises(NeurojaxError, match="takes no padding mask"):
        model.apply({"params": params}, TOKENS, None, jnp.ones(TOKENS.shape))


@pytest.mark.slow
def test_mixers_use_the_configured_linear_layer_and_train():
    for mixer, projections in (("linear_attention", ("q", "k", "v", "gk", "o")), ("swa", ("q", "k", "v", "o")),
                               ("softmax", ("q", "k", "v", "o"))):
        cfg, model, params = _model(token_mixer=mixer, channel_mixer="swiglu")
        names = {"/".join(k) for k in flax.traverse_util.flatten_dict(params)}
        for p in projections:  # ternary BitLinears: latent weight + own norm
            assert {f"layers_0/attn/{p}_proj/weight", f"layers_0/attn/{p}_proj/norm/weight"} <= names
        assert {f"layers_1/mlp/{p}_proj/weight" for p in ("gate", "up", "down")} <= names
        assert params["layers_0"]["mlp"]["up_proj"]["weight"].shape == (cfg.ffn_size, cfg.d_model)

        def loss(p):
            return nj.next_token_loss(model.apply({"params": p}, TOKENS[:, :-1])[0], TOKENS[:, 1:])[0]

        grads = jax.grad(loss)(params)
        g = grads["layers_0"]["attn"]["q_proj"]["weight"]
        assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0, mixer
