"""More token mixers and a channel mixer for the MatMul-free LM, selectable by name.

They adapt the hybrid LM's attention functions (`linear_attention.gla_recurrence`,
`sliding_window.swa_sequence` / `swa_decode` / `grouped_attention`, `rope`) to the LM's mixer
interface (`neurojax.nn.registry.TOKEN_MIXERS`) and build every projection with `make_linear`, so
with the default `linear="bitlinear"` the model stays MatMul-free in its weights (ternary
projections; the attention products themselves are activation x activation, as in any attention).
`config.num_heads` heads of `d_model / num_heads` channels, no grouped kv heads, no biases.
The forget-gate `lower_bound` the LM passes is MLGRU's and is ignored here.

- "linear_attention": gated linear attention (GLA): `q = relu(q_proj x)`, `k = relu(k_proj x)`,
  `v = v_proj x`, log decay `g = logsigmoid(gk_proj x) / 16`, state `S [B, H, dh, dh]`
  (`S = exp(g) S + k^T v`, `o = dh^-1/2 q S`), per-head RMSNorm (`g_norm`), `o_proj`. Fixed-size
  state; padding positions (mask 0) neither write nor decay it.
- "swa": sliding-window softmax attention with RoPE (theta `ROPE_THETA`) over the last
  `config.attention_window` (default 64) tokens; state: a ring buffer of keys and values plus the
  token counter (`SWAMixerState`), fixed size. Takes no padding mask (refused with an error).
- "softmax": full causal softmax attention with RoPE, **sequence-only**: it keeps no KV cache,
  so it trains, evaluates and scores whole sequences, and refuses a second call on the state it
  returned (token-by-token decoding) with an error that points to "swa". Its state is a marker with
  no arrays (`SoftmaxAttentionState`), registered as static pytree data so the check happens when
  the decode step is traced.
- channel mixer "swiglu": `down_proj(silu(gate_proj x) * up_proj x)` with separate gate and up
  projections of width `config.ffn_size` (GLU fuses them into one `gate_proj`).
"""
import dataclasses
from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from neurojax.errors import NeurojaxError
from neurojax.nn.config import ModelConfig
from neurojax.nn.linear_attention import gla_recurrence
from neurojax.nn.linear_layers import make_linear
from neurojax.nn.mlgru import TAPS
from neurojax.nn.norm import RMSNorm
from neurojax.nn.registry import CHANNEL_MIXERS, TOKEN_MIXERS
from neurojax.nn.rope import apply_rope, rope_cos_sin
from neurojax.nn.sliding_window import SWAState, grouped_attention, swa_decode, swa_sequence

GLA_DECAY_NORMALIZER = 16.0  # g = logsigmoid(.) / 16, as the hybrid LM's GLA (HybridConfig.decay_normalizer)
ROPE_THETA = 10000.0
DEFAULT_WINDOW = 64


def _head_dims(cfg: ModelConfig) -> tuple[int, int]:
    return cfg.num_heads, cfg.d_model // cfg.num_heads


def _qkv(cfg: ModelConfig, x: Float[Array, "B T d"]):
    """`q, k, v` projections reshaped to `[B, T, H, dh]`."""
    b, t, d = x.shape
    h, dh = _head_dims(cfg)
    return tuple(make_linear(cfg, d, f"{n}_proj")(x).reshape(b, t, h, dh) for n in ("q", "k", "v"))


def _rope(x: Float[Array, "B T H D"], positions: Int[Array, "T"]) -> Float[Array, "B T H D"]:
    cos, sin = rope_cos_sin(positions, x.shape[-1], ROPE_THETA)
    return apply_rope(x, cos, sin)


@TOKEN_MIXERS.register("linear_attention")
class LinearAttentionMixer(nn.Module):
    """Gated linear attention with a `[B, H, dh, dh]` state (module doc)."""

    config: ModelConfig
    layer_index: int = 0

    @staticmethod
    def initial_state(config: ModelConfig, batch_size: int) -> Float[Array, "B H dh dh"]:
        h, dh = _head_dims(config)
        return jnp.zeros((batch_size, h, dh, dh), jnp.float32)

    @nn.compact
    def __call__(self, x, state, mask=None, lower_bound=None):
        cfg = self.config
        b, t, d = x.shape
        h, dh = _head_dims(cfg)
        q, k, v = _qkv(cfg, x)
        q, k = jax.nn.relu(q), jax.nn.relu(k)
        g = jax.nn.log_sigmoid(make_linear(cfg, d, "gk_proj")(x)).reshape(b, t, h, dh) / GLA_DECAY_NORMALIZER
        if mask is not None:  # padding neither writes nor decays the state
            m = mask.astype(jnp.float32)[:, :, None, None]
            k, g = k * m, g * m
        o, state = gla_recurrence(q[:, :, :, None], k, v, g, state, dh ** -0.5)
        o = RMSNorm(cfg.rms_norm_eps, name="g_norm")(o[:, :, :, 0]).reshape(b, t, d)
        self.sow(TAPS, "o_in", o)
        return make_linear(cfg, d, "o_proj")(o), state


class SWAMixerState(NamedTuple):
    """Ring buffer of the last `window` keys (RoPE applied) and values, and the tokens consumed so far."""

    k: Float[Array, "B W H D"]
    v: Float[Array, "B W H D"]
    offset: Int[Array, ""]


@TOKEN_MIXERS.register("swa")
class SlidingWindowMixer(nn.Module):
    """Sliding-window softmax attention with a ring-buffer state (module doc)."""

    config: ModelConfig
    layer_index: int = 0

    @staticmethod
    def window(config: ModelConfig) -> int:
        return DEFAULT_WINDOW if config.attention_window is None else int(config.attention_window)

    @staticmethod
    def initial_state(config: ModelConfig, batch_size: int) -> SWAMixerState:
        h, dh = _head_dims(config)
        shape = (batch_size, SlidingWindowMixer.window(config), h, dh)
        return SWAMixerState(jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32), jnp.zeros((), jnp.int32))

    @nn.compact
    def __call__(self, x, state: SWAMixerState, mask=None, lower_bound=None):
        if mask is not None:
            raise NeurojaxError("the 'swa' token mixer takes no padding mask: run unpadded prompts "
                                "(one at a time, or of equal length)")
        cfg = self.config
        b, t, d = x.shape
        h, dh = _head_dims(cfg)
        state = SWAMixerState(*state)
        q, k, v = _qkv(cfg, x)
        positions = state.offset + jnp.arange(t, dtype=jnp.int32)
        q, k = _rope(q, positions), _rope(k, positions)
        attend = swa_decode if t == 1 else swa_sequence
        o, ring = attend(q[:, :, :, None], k, v, SWAState(state.k, state.v), state.offset, self.window(cfg))
        o = o.reshape(b, t, d)
        self.sow(TAPS, "o_in", o)
        return make_linear(cfg, d, "o_proj")(o), SWAMixerState(ring.k, ring.v, state.offset + t)


@dataclasses.dataclass(frozen=True)
class SoftmaxAttentionState:
    """Marker state of the sequence-only "softmax" mixer: `consumed` once a sequence went through."""

    consumed: bool = False


jax.tree_util.register_static(SoftmaxAttentionState)


@TOKEN_MIXERS.register("softmax")
class SoftmaxAttentionMixer(nn.Module):
    """Full causal softmax attention over the sequence; sequence-only, no KV cache (module doc)."""

    config: ModelConfig
    layer_index: int = 0

    @staticmethod
    def initial_state(config: ModelConfig, batch_size: int) -> SoftmaxAttentionState:
        return SoftmaxAttentionState()

    @nn.compact
    def __call__(self, x, state: SoftmaxAttentionState, mask: Optional[Float[Array, "B T"]] = None,
                 lower_bound=None):
        if not isinstance(state, SoftmaxAttentionState) or state.consumed:
            raise NeurojaxError("the 'softmax' token mixer is sequence-only (it keeps no KV cache), so it cannot "
                                "continue from a previous call's state (token-by-token decoding); score whole "
                                "sequences, or use model.token_mixer='swa' (a fixed-size KV ring buffer)")
        cfg = self.config
        b, t, d = x.shape
        q, k, v = _qkv(cfg, x)
        positions = jnp.arange(t, dtype=jnp.int32)
        q, k = _rope(q, positions), _rope(k, positions)
        visible = positions[:, None] >= positions[None, :]
        if mask is not None:  # padding keys are invisible to every query
            visible = visible[None] & (mask[:, None, :] > 0)
        o = grouped_attention(q[:, :, :, None], k, v, visible).reshape(b, t, d)
        self.sow(TAPS, "o_in", o)
        return make_linear(cfg, d, "o_proj")(o), SoftmaxAttentionState(consumed=True)


@CHANNEL_MIXERS.register("swiglu")
class SwiGLUMixer(nn.Module):
    """`down_proj(silu(gate_proj x) * up_proj x)`, projections from `make_linear` (module doc)."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... d"]:
        cfg = self.config
        gate = make_linear(cfg, cfg.ffn_size, "gate_proj")(x)
        up = make_linear(cfg, cfg.ffn_size, "up_proj")(x)
        hidden = jax.nn.silu(gate) * up
        self.sow(TAPS, "down_in", hidden)
        return make_linear(cfg, cfg.d_model, "down_proj")(hidden)
