"""The Transformer++ baseline: a LLaMA-style decoder with grouped-query attention and a KV cache.

    x = embed_tokens(tokens)
    per layer l:
        r = x + o_proj(attention(rope(q_proj(h)), rope(k_proj(h)), v_proj(h)))   h = rms(x; input_layernorm)
        x = r + down_proj(silu(gate_proj(h')) * up_proj(h'))                     h' = rms(r; post_attention_layernorm)
    logits = lm_head(rms(x; norm))          (embed_tokens^T when tie_embeddings)

No biases, except on q/k/v when `qkv_bias` (Qwen2). Parameter names and layouts mirror a HF LLaMA checkpoint, as the MatMul-free
LM's mirror MMfreeLM's: `layers_{l}/self_attn/{q,k,v,o}_proj/weight` and
`layers_{l}/mlp/{gate,up,down}_proj/weight` are `[out, in]` (PyTorch layout, `y = x @ W.T`),
`layers_{l}/{input,post_attention}_layernorm/weight`, `norm/weight`, `lm_head/weight [V, d]`
(absent when tied) and `embed_tokens/embedding [V, d]` (HF `model.embed_tokens.weight`).

Positions and padding: `mask [B, T]` (1 = token, 0 = padding; default all ones) marks real
tokens. A token's RoPE position is the number of real tokens before it in its row (HF's
`cumsum(attention_mask) - 1`), and padding is never attended to, so a left-padded row gives the
same logits at its real positions as the unpadded row.

KV cache (`TransformerState`): `length`, the number of cache slots written (int32 scalar shared
by the batch), `valid [B, S]` (slot s holds a real token) and per layer the keys (RoPE applied)
and values `[B, S, num_kv_heads, head_dim]`. `S`, the capacity, is fixed when the state is made
(`transformer_initial_state(config, batch, max_len)`); a chunk of T tokens is written to slots
`length .. length + T - 1`, and each query attends to the valid slots up to its own.
`TransformerLM.__call__(tokens, state=None, mask=None)`: with no state, the chunk attends to
itself only (training, scoring) and the returned state is a full cache of capacity T; with a
state, the chunk is appended (prefill from a fresh state, chunked prefill, or one token at a
time: `transformer_decode_step`). Everything is float32.
"""
from typing import Any, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from neurojax.errors import NeurojaxError
from neurojax.nn.mlgru import TAPS
from neurojax.nn.norm import RMSNorm
from neurojax.nn.params import leaf_count, model_abstract_params, model_init_params, one_token_step
from neurojax.nn.linear import Linear
from neurojax.nn.rope import apply_rope, rope_cos_sin
from neurojax.nn.sliding_window import grouped_attention
from neurojax.nn.swiglu import SwiGLU
from neurojax.nn.transformer_config import TransformerConfig


class KVCache(NamedTuple):
    """One layer's cached keys (RoPE applied) and values."""

    k: Float[Array, "B S K D"]
    v: Float[Array, "B S K D"]


class TransformerState(NamedTuple):
    """Decoding state: slots written so far, which slots hold real tokens, and one KV cache per layer."""

    length: Int[Array, ""]
    valid: Bool[Array, "B S"]
    layers: tuple[KVCache, ...]


def transformer_initial_state(config: TransformerConfig, batch_size: int,
                              max_len: Optional[int] = None) -> TransformerState:
    """An empty cache of `max_len` slots (default `config.max_seq_len`) for `batch_size` sequences."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise NeurojaxError(f"batch_size must be a positive integer, got {batch_size!r}")
    size = config.max_seq_len if max_len is None else max_len
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise NeurojaxError(f"max_len must be a positive integer, got {max_len!r}")
    if size > config.max_seq_len:
        raise NeurojaxError(f"a KV cache of {size} slots exceeds the sequence budget transformer.max_seq_len="
                            f"{config.max_seq_len}")
    shape = (int(batch_size), int(size), config.num_kv_heads, config.attention_head_dim)
    layers = tuple(KVCache(jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32))
                   for _ in range(config.num_layers))
    return TransformerState(jnp.zeros((), jnp.int32), jnp.zeros(shape[:2], bool), layers)


def transformer_state_bytes(config: TransformerConfig, batch_size: int, max_len: int) -> int:
    """Bytes of a KV cache of `max_len` slots (keys, values and the validity mask): no allocation."""
    shapes = jax.eval_shape(lambda: transformer_initial_state(config, batch_size, max_len))
    return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(shapes)))


def _check_state(config: TransformerConfig, state: Any, batch_size: int, chunk: int) -> TransformerState:
    """Normalise `state` to TransformerState / KVCache and check its shapes against the config."""
    if not isinstance(state, tuple) or len(state) != 3 or not isinstance(state[2], (tuple, list)) \
            or len(state[2]) != config.num_layers:
        raise NeurojaxError(f"state must be a TransformerState(length, valid, layers) with {config.num_layers} "
                            "layers, as built by transformer_initial_state")
    layers = tuple(KVCache(*s) if isinstance(s, (tuple, list)) and len(s) == 2 else s for s in state[2])
    state = TransformerState(state[0], state[1], layers)
    valid_shape = tuple(jnp.shape(state.valid))
    if len(valid_shape) != 2 or valid_shape[0] != batch_size:
        raise NeurojaxError(f"state.valid has shape {valid_shape}, expected (batch {batch_size}, cache slots)")
    expected = (batch_size, valid_shape[1], config.num_kv_heads, config.attention_head_dim)
    for l, cache in enumerate(layers):
        if not isinstance(cache, KVCache) or any(tuple(jnp.shape(x)) != expected for x in cache):
            got = [tuple(jnp.shape(x)) for x in cache] if isinstance(cache, tuple) else type(cache).__name__
            raise NeurojaxError(f"state layer {l} holds {got}, expected keys and values of shape {expected}")
    if chunk > valid_shape[1]:
        raise NeurojaxError(f"{chunk} tokens do not fit a KV cache of {valid_shape[1]} slots")
    if not isinstance(state.length, jax.core.Tracer) and int(state.length) + chunk > valid_shape[1]:
        raise NeurojaxError(f"the KV cache is full: {int(state.length)} of {valid_shape[1]} slots used, "
                            f"{chunk} more tokens do not fit; make the state with a larger max_len")
    return state


class Attention(nn.Module):
    """Grouped-query causal self-attention with RoPE, reading and extending a KV cache."""

    config: TransformerConfig

    @nn.compact
    def __call__(
        self,
        x: Float[Array, "B T d"],
        positions: Int[Array, "B T"],
        visible: Bool[Array, "B T S"],
        cache: Optional[KVCache],
        start: Int[Array, ""],
    ) -> tuple[Float[Array, "B T d"], KVCache]:
        cfg = self.config
        b, t, _ = x.shape
        kh, g, dh = cfg.num_kv_heads, cfg.num_groups, cfg.attention_head_dim
        dense = lambda n, name, bias: Linear(n, cfg.init_std, bias, cfg.spike_k, cfg.spike_clip, name=name)  # noqa: E731
        self.sow(TAPS, "in", x)
        q = dense(cfg.num_heads * dh, "q_proj", cfg.qkv_bias)(x).reshape(b, t, cfg.num_heads, dh)
        k = dense(kh * dh, "k_proj", cfg.qkv_bias)(x).reshape(b, t, kh, dh)
        v = dense(kh * dh, "v_proj", cfg.qkv_bias)(x).reshape(b, t, kh, dh)
        # Per-row positions: rope tables [B*T, D] applied row by row.
        cos, sin = rope_cos_sin(positions.reshape(-1), dh, cfg.rope_theta, cfg.rope_scaling)
        cos, sin = cos.reshape(b, t, dh), sin.reshape(b, t, dh)
        rope = jax.vmap(apply_rope, in_axes=(0, 0, 0))
        q = rope(q[:, None], cos, sin)[:, 0].reshape(b, t, kh, g, dh)
        k = rope(k[:, None], cos, sin)[:, 0]
        if cache is None:
            keys, values = k, v
        else:
            zero = jnp.zeros((), jnp.int32)
            keys = jax.lax.dynamic_update_slice(cache.k, k, (zero, start, zero, zero))
            values = jax.lax.dynamic_update_slice(cache.v, v, (zero, start, zero, zero))
        o = grouped_attention(q, keys, values, visible).reshape(b, t, cfg.num_heads * dh)
        self.sow(TAPS, "o_in", o)
        return dense(cfg.d_model, "o_proj", False)(o), KVCache(keys, values)


class TransformerBlock(nn.Module):
    """Pre-norm residual block: `r = x + attn(rms(x))`, `out = r + mlp(rms(r))`."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, x, positions, visible, cache, start):
        cfg = self.config
        h, cache = Attention(cfg, name="self_attn")(RMSNorm(cfg.rms_norm_eps, name="input_layernorm")(x), positions,
                                                    visible, cache, start)
        r = x + h
        out = r + SwiGLU(cfg, name="mlp")(RMSNorm(cfg.rms_norm_eps, name="post_attention_layernorm")(r))
        self.sow(TAPS, "resid_mid", r)
        self.sow(TAPS, "resid_out", out)
        return out, cache


class TransformerLM(nn.Module):
    """The Transformer++ LM; `__call__(tokens [B, T], state=None, mask=None) -> (logits [B, T, V], state)`."""

    config: TransformerConfig
    # The state is a KV cache with a slot per token: `neurojax.inference.generate` sizes it.
    sized_cache = True

    def initial_state(self, batch_size: int, max_len: Optional[int] = None) -> TransformerState:
        """An empty KV cache (`transformer_initial_state`); generation sizes it to prompt + new tokens."""
        return transformer_initial_state(self.config, batch_size, max_len)

    @nn.compact
    def __call__(
        self,
        tokens: Int[Array, "B T"],
        state: Optional[TransformerState] = None,
        mask: Optional[Float[Array, "B T"]] = None,
    ) -> tuple[Float[Array, "B T V"], TransformerState]:
        cfg = self.config
        if jnp.ndim(tokens) != 2 or tokens.shape[1] < 1:
            raise NeurojaxError(f"tokens must be [batch, time] with time >= 1, got shape {jnp.shape(tokens)}")
        if not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise NeurojaxError(f"tokens must be integers, got dtype {tokens.dtype}")
        b, t = tokens.shape
        if t > cfg.max_seq_len:
            raise NeurojaxError(f"{t} tokens exceed the sequence budget transformer.max_seq_len={cfg.max_seq_len}")
        real = jnp.ones((b, t), bool) if mask is None else jnp.asarray(mask) > 0
        if real.shape != (b, t):
            raise NeurojaxError(f"mask shape {real.shape} does not match tokens shape {(b, t)}")
        if state is None:
            start = jnp.zeros((), jnp.int32)
            before = jnp.zeros((b,), jnp.int32)
            key_valid = real
            key_slot = jnp.arange(t, dtype=jnp.int32)
        else:
            state = _check_state(cfg, state, b, t)
            start = jnp.asarray(state.length, jnp.int32)
            before = jnp.sum(state.valid, axis=1, dtype=jnp.int32)
            zero = jnp.zeros((), jnp.int32)
            key_valid = jax.lax.dynamic_update_slice(state.valid, real, (zero, start))
            key_slot = jnp.arange(state.valid.shape[1], dtype=jnp.int32)
        positions = before[:, None] + jnp.cumsum(real, axis=1, dtype=jnp.int32) - 1
        positions = jnp.maximum(positions, 0)  # padding before a row's first token: any position, never read
        query_slot = start + jnp.arange(t, dtype=jnp.int32)
        visible = key_valid[:, None, :] & (key_slot[None, None, :] <= query_slot[None, :, None])
        embed = nn.Embed(cfg.vocab_size, cfg.d_model, embedding_init=nn.initializers.normal(cfg.init_std),
                         name="embed_tokens")
        x = embed(tokens).astype(jnp.float32)
        self.sow(TAPS, "embed", x)
        caches = []
        for l in range(cfg.num_layers):
            cache = None if state is None else state.layers[l]
            x, cache = TransformerBlock(cfg, name=f"layers_{l}")(x, positions, visible, cache, start)
            caches.append(cache)
        x = RMSNorm(cfg.rms_norm_eps, name="norm")(x)
        if cfg.tie_embeddings:
            logits = embed.attend(x)
        else:
            logits = Linear(cfg.vocab_size, cfg.init_std, name="lm_head")(x)
        self.sow(TAPS, "logits", logits)
        return logits, TransformerState(start + t, key_valid, tuple(caches))


def transformer_decode_step(
    model: TransformerLM, variables: Any, tokens: Int[Array, "B"], state: TransformerState
) -> tuple[Float[Array, "B V"], TransformerState]:
    """Advance every sequence by one token; returns next-token logits `[B, V]` and the new state."""
    return one_token_step(model, variables, tokens, state, "transformer_decode_step")


def transformer_init_params(model: TransformerLM, rng: jax.Array, seq_len: int = 1) -> dict:
    """Initialise the model's parameters (the `params` collection)."""
    return model_init_params(model, rng, seq_len)


def transformer_abstract_params(config: TransformerConfig) -> Any:
    """Shapes and dtypes of the parameters, from `jax.eval_shape` (nothing is allocated)."""
    return model_abstract_params(TransformerLM(config))


def transformer_count_params(config_or_params: Any) -> int:
    """Number of scalar parameters of a config (no allocation) or of a params pytree."""
    return leaf_count(transformer_abstract_params(config_or_params) if isinstance(config_or_params, TransformerConfig)
                      else config_or_params)