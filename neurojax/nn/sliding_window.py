"""Sliding-window causal softmax attention with GQA and RoPE, and its ring-buffer decoding state.

Window convention (exact): the query at absolute position t sees the keys at positions s with
`t - window < s <= t`: itself and the `window - 1` tokens before it, `min(t + 1, window)` keys.
(`sliding_window_mask`.) Query head h uses kv head `h // G` (G = num_heads / num_kv_heads).

State: a ring buffer of the last `window` keys (after RoPE) and values, `[B, window, H_kv, D]`
each; the key at absolute position p lives in slot `p % window`. The slot positions are not
stored: the model's token counter `offset` (number of tokens already consumed) determines them
(`ring_positions`), and slots not yet written have negative positions and are masked out.

- Sequence form (`T` tokens at positions offset..offset+T-1): attend over the concatenation of
  the ring buffer and the `T` new keys with the banded mask built from positions, then write the
  last `min(T, window)` new keys/values into their slots. Works from an empty or a non-empty state
  (chunked prefill). Scores are `[B, H, T, window + T]`: quadratic in the chunk length.
- Decode form (`T == 1`): write the new key/value into slot `offset % window` first, then attend
  over the `window` slots (all valid once `offset + 1 >= window`).
"""
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from neurojax.nn.hybrid_config import HybridConfig
from neurojax.nn.linear import Linear
from neurojax.nn.mlgru import TAPS
from neurojax.nn.rope import apply_rope, rope_cos_sin


class SWAState(NamedTuple):
    """Ring buffer of the last `window` keys (RoPE applied) and values."""

    k: Float[Array, "B W K D"]
    v: Float[Array, "B W K D"]


def sliding_window_mask(q_pos: Int[Array, "Tq"], k_pos: Int[Array, "Tk"], window: int) -> Bool[Array, "Tq Tk"]:
    """True where the key is visible: `0 <= k_pos`, `q_pos - window < k_pos <= q_pos`."""
    q = q_pos[:, None]
    k = k_pos[None, :]
    return (k >= 0) & (k <= q) & (k > q - window)


def ring_positions(offset: Int[Array, ""], window: int) -> Int[Array, "W"]:
    """Absolute position held by each ring slot after `offset` tokens: the largest p < offset with
    p = slot (mod window); negative where the slot is still empty."""
    slots = jnp.arange(window, dtype=jnp.int32)
    last = jnp.asarray(offset, jnp.int32) - 1
    return last - jnp.mod(last - slots, window)


def grouped_attention(
    q: Float[Array, "B T K G D"],
    k: Float[Array, "B S K D"],
    v: Float[Array, "B S K D"],
    mask: Bool[Array, "T S"] | Bool[Array, "B T S"],
) -> Float[Array, "B T K G D"]:
    """Softmax attention `softmax(q k^T / sqrt(D) masked) v` with kv heads shared by G query heads;
    `mask` is shared by the batch (`[T, S]`) or per sequence (`[B, T, S]`).

    A query that sees no key (a padding position before any real token) gets a uniform average:
    finite, and never read by real positions (the sliding window always sees the query itself).
    """
    mask = mask[None] if mask.ndim == 2 else mask
    scores = jnp.einsum("btkgd,bskd->bkgts", q, k) * (q.shape[-1] ** -0.5)
    scores = jnp.where(mask[:, None, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1)
    return jnp.einsum("bkgts,bskd->btkgd", probs, v)


def swa_sequence(
    q: Float[Array, "B T K G D"],
    k: Float[Array, "B T K D"],
    v: Float[Array, "B T K D"],
    state: SWAState,
    offset: Int[Array, ""],
    window: int,
) -> tuple[Float[Array, "B T K G D"], SWAState]:
    """Sequence form (see module docstring): banded mask over ring buffer + new keys; update the ring."""
    t = q.shape[1]
    q_pos = offset + jnp.arange(t, dtype=jnp.int32)
    k_pos = jnp.concatenate([ring_positions(offset, window), q_pos])
    keys = jnp.concatenate([state.k, k], axis=1)
    vals = jnp.concatenate([state.v, v], axis=1)
    out = grouped_attention(q, keys, vals, sliding_window_mask(q_pos, k_pos, window))
    n = min(t, window)  # the last n tokens have distinct slots
    slots = jnp.mod(q_pos[t - n:], window)
    new = SWAState(state.k.at[:, slots].set(k[:, t - n:]), state.v.at[:, slots].set(v[:, t - n:]))
    return out, new


def swa_decode(
    q: Float[Array, "B 1 K G D"],
    k: Float[Array, "B 1 K D"],
    v: Float[Array, "B 1 K D"],
    state: SWAState,
    offset: Int[Array, ""],
    window: int,
) -> tuple[Float[Array, "B 1 K G D"], SWAState]:
    """Decode form: write slot `offset % window`, then attend over the ring's valid slots."""
    slot = jnp.mod(jnp.asarray(offset, jnp.int32), window)
    zero = jnp.zeros((), jnp.int32)
    new = SWAState(jax.lax.dynamic_update_slice(state.k, k, (zero, slot, zero, zero)),
                   jax.lax.dynamic_update_slice(state.v, v, (zero, slot, zero, zero)))
    valid = ring_positions(offset + 1, window) >= 0
    return grouped_attention(q, new.k, new.v, valid[None, :]), new


class SlidingWindowAttention(nn.Module):
    """SWA token mixer: q/k/v projections (bias per `qkv_bias`), RoPE on q and k, windowed softmax, o_proj."""

    config: HybridConfig

    @staticmethod
    def initial_state(config: HybridConfig, batch_size: int) -> SWAState:
        """Empty ring buffer: `window` slots of keys and values (independent of sequence length)."""
        shape = (batch_size, config.window, config.num_kv_heads, config.head_dim)
        return SWAState(jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32))

    @nn.compact
    def __call__(
        self, x: Float[Array, "B T d"], state: SWAState, offset: Int[Array, ""]
    ) -> tuple[Float[Array, "B T d"], SWAState]:
        cfg = self.config
        b, t, _ = x.shape
        kh, g_, dh = cfg.num_kv_heads, cfg.num_groups, cfg.head_dim
        dense = lambda n, name, bias: Linear(n, cfg.init_std, bias, cfg.spike_k, cfg.spike_clip, name=name)  # noqa: E731
        self.sow(TAPS, "in", x)
        q = dense(cfg.num_heads * dh, "q_proj", cfg.qkv_bias)(x).reshape(b, t, cfg.num_heads, dh)
        k = dense(kh * dh, "k_proj", cfg.qkv_bias)(x).reshape(b, t, kh, dh)
        v = dense(kh * dh, "v_proj", cfg.qkv_bias)(x).reshape(b, t, kh, dh)
        cos, sin = rope_cos_sin(offset + jnp.arange(t, dtype=jnp.int32), dh, cfg.rope_theta, cfg.rope_scaling)
        q = apply_rope(q, cos, sin).reshape(b, t, kh, g_, dh)
        k = apply_rope(k, cos, sin)
        attend = swa_decode if t == 1 else swa_sequence
        o, state = attend(q, k, v, SWAState(*state), offset, cfg.window)
        o = o.reshape(b, t, cfg.num_heads * dh)
        self.sow(TAPS, "o_in", o)
        return dense(cfg.d_model, "o_proj", False)(o), state
