"""generate: prefill + carried state equals full recomputation, padding, EOS, seeds, validation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurojax.nn as nnx
from neurojax.errors import NeurojaxError
from neurojax.inference import SamplingConfig, generate
from neurojax.inference import decode as decode_mod

GREEDY = SamplingConfig(temperature=0.0)
SAMPLED = SamplingConfig(temperature=1.0, top_p=0.95)
# Tests share one prompt shape and length so the jitted decoder compiles few programs.
SHAPE, N = (2, 6), 8


@pytest.fixture(scope="module")
def lm():
    model = nnx.MatMulFreeLM(nnx.preset("micro"))
    params = nnx.init_params(model, jax.random.PRNGKey(0))
    return model, params


def _prompt(seed, shape=SHAPE, vocab=259):
    return np.asarray(jax.random.randint(jax.random.PRNGKey(seed), shape, 0, vocab), np.int32)


def _naive_greedy(model, params, prompt, n):
    """Re-run the full sequence `model.apply` each step and take the argmax at the last real position.

    The sequence lives in one fixed `[B, P + n]` buffer (one compile): the model is
    causal, so the unfilled tail cannot change the logits at earlier positions.
    """
    apply = jax.jit(lambda p, t: model.apply({"params": p}, t)[0])
    b, plen = prompt.shape
    seq = np.zeros((b, plen + n), np.int32)
    seq[:, :plen] = prompt
    for i in range(n):
        logits = np.asarray(apply(params, seq))
        seq[:, plen + i] = np.argmax(logits[:, plen + i - 1], axis=-1)
    return seq[:, plen:]


def test_greedy_matches_full_recomputation(lm):
    model, params = lm
    prompt = _prompt(1)
    got = generate(model, {"params": params}, prompt, N, jax.random.PRNGKey(0), GREEDY)
    assert got.shape == (SHAPE[0], N) and got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), _naive_greedy(model, params, prompt, N))


def test_inference_variables_give_same_tokens(lm):
    model, params = lm
    prompt = _prompt(2)
    ivars = nnx.inference_variables(model, params)
    assert nnx.QUANTIZED in ivars
    a = generate(model, {"params": params}, prompt, N, jax.random.PRNGKey(0), GREEDY)
    b = generate(model, ivars, prompt, N, jax.random.PRNGKey(0), GREEDY)
    np.testing.assert_array_equal(a, b)


def test_left_padded_row_matches_unpadded_prompt(lm):
    model, params = lm
    prompt = _prompt(4)
    pad = 3
    batch = np.concatenate([_prompt(101, (SHAPE[0], pad)), prompt], axis=1)
    mask = np.ones_like(batch, np.float32)
    mask[0, :pad] = 0  # row 0: left padding; row 1: a longer prompt, all real
    alone = np.asarray(generate(model, {"params": params}, prompt, N, jax.random.PRNGKey(0), GREEDY))
    got = np.asarray(generate(model, {"params": params}, batch, N, jax.random.PRNGKey(0), GREEDY,
                              prompt_mask=mask))
    np.testing.assert_array_equal(got[0], alone[0])
    # Unmasked, row 0's pad tokens are real input and change its continuation (so the
    # mask is what made it match); row 1 is unaffected by row 0's mask.
    unmasked = np.asarray(generate(model, {"params": params}, batch, N, jax.random.PRNGKey(0), GREEDY,
                                   prompt_mask=np.ones_like(mask)))
    assert not np.array_equal(unmasked[0], alone[0]), "pick pad tokens that change the continuation"
    np.testing.assert_array_equal(unmasked[1], got[1])


def test_eos_is_sticky(lm):
    model, params = lm
    prompt = _prompt(4)
    rng = jax.random.PRNGKey(0)
    free = np.asarray(generate(model, {"params": params}, prompt, N, rng, GREEDY))
    eos = int(free[0, 2])
    assert (free[0, 3:] != eos).any(), "pick a seed where the free run continues past the EOS token"
    got = np.asarray(generate(model, {"params": params}, prompt, N, rng, GREEDY, eos_id=eos))
    assert (got[0, 2:] == eos).all()
    for row_free, row in zip(free, got):
        hits = np.nonzero(row_free == eos)[0]
        stop = hits[0] if hits.size else len(row)
        np.testing.assert_array_equal(row[:stop + 1], row_free[:stop + 1])
        assert (row[stop:] == eos).all()


def test_seeded_sampling_is_reproducible(lm):
    model, params = lm
    prompt = _prompt(6)
    a = generate(model, {"params": params}, prompt, N, jax.random.PRNGKey(1), SAMPLED)
    b = generate(model, {"params": params}, prompt, N, jax.random.PRNGKey(1), SAMPLED)
    c = generate(model, {"params": params}, prompt, N, jax.random.PRNGKey(2), SAMPLED)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_single_token_and_no_retrace(lm):
    model, params = lm
    prompt = _prompt(7)
    full = generate(model, {"params": params}, prompt, N, jax.random.PRNGKey(0), GREEDY)
    one = generate(model, {"params": params}, prompt, 1, jax.random.PRNGKey(0), GREEDY)
    assert one.shape == (SHAPE[0], 1)
    np.testing.assert_array_equal(one[:, 0], full[:, 0])
    before = decode_mod._TRACES
    same_model = nnx.MatMulFreeLM(nnx.preset("micro"))  # an equal module reuses the compiled program
    generate(same_model, {"params": params}, _prompt(8), N, jax.random.PRNGKey(1), SamplingConfig(temperature=0.0))
    generate(model, {"params": params}, _prompt(9), 1, jax.random.PRNGKey(2), GREEDY)
    assert decode_mod._TRACES == before


@pytest.mark.parametrize("prompt, n, match", [
    (np.zeros((1, 0), np.int32), 4, "empty prompt"),
    (np.array([[1, 2, 3, 259]], np.int32), 4, r"259.*row 0, column 3"),
    (np.array([[1, -1, 3]], np.int32), 4, r"-1.*row 0, column 1"),
    (np.array([[1, 2, 3]], np.int32), 0, "max_new_tokens"),
    (np.array([1, 2, 3], np.int32), 4, "shape"),
])
def test_bad_inputs_raise(lm, prompt, n, match):
    model, params = lm
    with pytest.raises(NeurojaxError, match=match):
        generate(model, {"params": params}, prompt, n, jax.random.PRNGKey(0), GREEDY)


def test_bad_mask_sampling_and_eos_raise(lm):
    model, params = lm
    prompt = np.array([[1, 2, 3]], np.int32)
    v = {"params": params}
    with pytest.raises(NeurojaxError, match="left-padded"):
        generate(model, v, prompt, 2, jax.random.PRNGKey(0), GREEDY, prompt_mask=np.array([[1, 1, 0]]))
    with pytest.raises(NeurojaxError, match="does not match"):
        generate(model, v, prompt, 2, jax.random.PRNGKey(0), GREEDY, prompt_mask=np.ones((1, 2)))
    with pytest.raises(NeurojaxError, match="top_p"):
        generate(model, v, prompt, 2, jax.random.PRNGKey(0), SamplingConfig(top_p=0.0))
    with pytest.raises(NeurojaxError, match="eos_id"):
        generate(model, v, prompt, 2, jax.random.PRNGKey(0), GREEDY, eos_id=model.config.vocab_size)
