"""Autoregressive generation: one sequence-mode prefill, then a `lax.scan` of single-token steps.

The prefill returns the per-layer recurrent state after the prompt; each generated
token then costs one `decode_step` with that state carried, so memory per token is
O(1) in the sequence length. Any model with `config.vocab_size`, a
`apply(variables, tokens, state, mask) -> (logits, state)` method and, optionally, an
`initial_state(batch)` method can be generated from (the integer model's adapter too). A model
whose state is a KV cache (`sized_cache = True`, the Transformer++) gets
`initial_state(batch, prompt length + max_new_tokens - 1)`: a cache with a slot for every token it
will consume; `config.max_seq_len`, where the config has one, bounds prompt + generation. The whole loop is one jitted program, compiled once per
(model, prompt shape, `max_new_tokens`, sampling, `eos_id`) and reused afterwards.
"""
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from neurojax.errors import NeurojaxError
from neurojax.inference.sampling import SamplingConfig, sample_with
from neurojax.nn.lm import MatMulFreeLM, decode_step, initial_state

# Number of times `_generate` has been traced (a retrace check for tests).
_TRACES = 0


def _generate(
    model: MatMulFreeLM,
    variables: Any,
    prompt: Int[Array, "B P"],
    prompt_mask: Optional[Float[Array, "B P"]],
    rng: jax.Array,
    max_new_tokens: int,
    sampling: SamplingConfig,
    eos_id: Optional[int],
) -> Int[Array, "B N"]:
    """The traced body of `generate` (inputs already validated)."""
    global _TRACES
    _TRACES += 1
    batch = prompt.shape[0]
    keys = jax.random.split(rng, max_new_tokens)
    if getattr(model, "sized_cache", False):
        start = model.initial_state(batch, prompt.shape[1] + max_new_tokens - 1)
    elif hasattr(model, "initial_state"):
        start = model.initial_state(batch)
    else:
        start = initial_state(model.config, batch)
    logits, state = model.apply(variables, prompt, start, prompt_mask)
    first = sample_with(sampling, logits[:, -1], keys[0])
    done = jnp.zeros((batch,), bool) if eos_id is None else first == eos_id

    def step(carry, key):
        token, done, state = carry
        step_logits, state = decode_step(model, variables, token, state)
        nxt = sample_with(sampling, step_logits, key)
        if eos_id is not None:
            nxt = jnp.where(done, jnp.int32(eos_id), nxt)
            done = done | (nxt == eos_id)
        return (nxt, done, state), nxt

    _, rest = jax.lax.scan(step, (first, done, state), keys[1:])
    return jnp.concatenate([first[:, None], rest.T.astype(jnp.int32)], axis=1)


_generate_jit = jax.jit(_generate, static_argnames=("model", "max_new_tokens", "sampling", "eos_id"))


def generate_program_memory(model: Any, variables: Any, batch: int, prompt_len: int, new_tokens: int) -> dict:
    """Bytes XLA's buffer assignment gives the compiled greedy `generate` program at these shapes: `arguments`
    (the weights), `outputs` (the tokens), `temporaries` (the decoding state and activations) and `total`; NaN
    on a backend without buffer statistics. A compiler figure, not a process measurement."""
    prompt = jnp.zeros((batch, prompt_len), jnp.int32)
    compiled = _generate_jit.lower(model, variables, prompt, None, jax.random.PRNGKey(0), max_new_tokens=new_tokens,
                                   sampling=SamplingConfig(temperature=0.0), eos_id=None).compile()
    ma = compiled.memory_analysis()
    if ma is None:
        return dict.fromkeys(("arguments", "outputs", "temporaries", "total"), float("nan"))
    parts = {"arguments": ma.argument_size_in_bytes, "outputs": ma.output_size_in_bytes,
             "temporaries": ma.temp_size_in_bytes}
    return {**parts, "total": sum(parts.values())}


def _validate_prompt(prompt: Any, prompt_mask: Any, vocab_size: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Host-side checks of the prompt ids and mask; returns them as int32 / float32 NumPy arrays."""
    ids = np.asarray(prompt)
    if ids.ndim != 2:
        raise NeurojaxError(f"prompt must be a [batch, length] array of token ids, got shape {ids.shape}")
    if ids.shape[1] == 0:
        raise NeurojaxError(f"empty prompt: shape {ids.shape} has no tokens; give at least one token per row")
    if ids.shape[0] == 0:
        raise NeurojaxError(f"prompt batch is empty: shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise NeurojaxError(f"prompt must hold integer token ids, got dtype {ids.dtype}")
    bad = np.argwhere((ids < 0) | (ids >= vocab_size))
    if bad.size:
        row, col = (int(v) for v in bad[0])
        raise NeurojaxError(
            f"prompt token id {int(ids[row, col])} at position (row {row}, column {col}) is outside "
            f"the vocabulary [0, {vocab_size}) ({len(bad)} bad id(s) in total)")
    if prompt_mask is None:
        return ids.astype(np.int32), None
    mask = np.asarray(prompt_mask)
    if mask.shape != ids.shape:
        raise NeurojaxError(f"prompt_mask shape {mask.shape} does not match prompt shape {ids.shape}")
    if not np.all((mask == 0) | (mask == 1)):
        raise NeurojaxError("prompt_mask must contain only 0 (padding) and 1 (token)")
    mask = mask.astype(np.float32)
    bad_rows = np.any(np.diff(mask, axis=1) < 0, axis=1) | (mask[:, -1] == 0)
    if bad_rows.any():
        rows = np.nonzero(bad_rows)[0].tolist()
        raise NeurojaxError(
            f"prompt_mask rows {rows} are not left-padded: each row must be zeros then ones, "
            "ending with at least one real token")
    return ids.astype(np.int32), mask


def generate(
    model: MatMulFreeLM,
    variables: Any,
    prompt: Int[Array, "B P"],
    max_new_tokens: int,
    rng: jax.Array,
    sampling: SamplingConfig = SamplingConfig(),
    prompt_mask: Optional[Float[Array, "B P"]] = None,
    eos_id: Optional[int] = None,
) -> Int[Array, "B N"]:
    """Generate `max_new_tokens` int32 tokens `[B, N]` after each (left-padded) prompt row.

    `variables` is `{"params": ...}` or `neurojax.nn.inference_variables(...)`; `prompt_mask`
    marks real tokens with 1 and left padding with 0. With `eos_id`, a row that has
    emitted EOS keeps emitting it. Deterministic for a given `rng`.
    """
    vocab = model.config.vocab_size
    if isinstance(max_new_tokens, bool) or int(max_new_tokens) != max_new_tokens or max_new_tokens < 1:
        raise NeurojaxError(f"max_new_tokens must be a positive integer, got {max_new_tokens}")
    if not isinstance(sampling, SamplingConfig):
        raise NeurojaxError(f"sampling must be a SamplingConfig, got {type(sampling).__name__}")
    sampling.validate()
    if eos_id is not None and not 0 <= int(eos_id) < vocab:
        raise NeurojaxError(f"eos_id {eos_id} is outside the vocabulary [0, {vocab})")
    ids, mask = _validate_prompt(prompt, prompt_mask, vocab)
    budget = getattr(model.config, "max_seq_len", None)
    if budget is not None and ids.shape[1] + int(max_new_tokens) - 1 > budget:
        raise NeurojaxError(f"a {ids.shape[1]}-token prompt plus {max_new_tokens} new tokens exceeds the model's "
                            f"sequence budget max_seq_len={budget}; shorten the prompt or generate fewer tokens")
    return _generate_jit(
        model, variables, jnp.asarray(ids), None if mask is None else jnp.asarray(mask), rng,
        max_new_tokens=int(max_new_tokens), sampling=sampling, eos_id=None if eos_id is None else int(eos_id))
