"""The MatMul-free language model: embedding -> blocks -> norm -> BitLinear head.

One definition, two ways to run it:
- over a whole sequence (`model.apply(variables, tokens, state, mask)`), the
  recurrence scanned inside each layer;
- one token at a time (`decode_step`), carrying the per-layer recurrent state
  explicitly: O(1) memory per generated token.
Both return `(logits [B, T, V] float32, state)`; `state` is a tuple with one
entry per layer, as built by `initial_state`.
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from neurojax.nn import glu as _glu  # noqa: F401  (registers "glu")
from neurojax.nn import mixers as _mixers  # noqa: F401  (registers "linear_attention", "swa", "softmax", "swiglu")
from neurojax.nn import mlgru as _mlgru  # noqa: F401  (registers "mlgru")
from neurojax.nn.linear_layers import make_linear
from neurojax.nn.config import ModelConfig
from neurojax.nn.mlgru import TAPS, lower_bounds
from neurojax.nn.norm import RMSNorm
from neurojax.nn.registry import CHANNEL_MIXERS, TOKEN_MIXERS

State = tuple[Any, ...]


class Block(nn.Module):
    """Pre-norm residual block: `r = x + attn(rms(x))`, `out = r + mlp(rms(r))`."""

    config: ModelConfig
    layer_index: int

    @nn.compact
    def __call__(self, x, state, mask=None, lower_bound=None):
        cfg = self.config
        mixer = TOKEN_MIXERS.resolve(cfg.token_mixer)(config=cfg, layer_index=self.layer_index, name="attn")
        h, state = mixer(RMSNorm(cfg.rms_norm_eps, name="attn_norm")(x), state, mask, lower_bound)
        r = x + h
        mlp = CHANNEL_MIXERS.resolve(cfg.channel_mixer)(config=cfg, name="mlp")
        out = r + mlp(RMSNorm(cfg.rms_norm_eps, name="mlp_norm")(r))
        self.sow(TAPS, "resid_mid", r)
        self.sow(TAPS, "resid_out", out)
        return out, state


def initial_state(config: ModelConfig, batch_size: int) -> State:
    """Zero recurrent state for every layer (what a fresh sequence starts from)."""
    mixer = TOKEN_MIXERS.resolve(config.token_mixer)
    return tuple(mixer.initial_state(config, batch_size) for _ in range(config.num_layers))


class MatMulFreeLM(nn.Module):
    """Full model. Parameter names mirror the MMfreeLM checkpoint (`layers_{l}/attn/i_proj/...`)."""

    config: ModelConfig

    @nn.compact
    def __call__(
        self,
        tokens: Int[Array, "B T"],
        state: Optional[State] = None,
        mask: Optional[Float[Array, "B T"]] = None,
    ) -> tuple[Float[Array, "B T V"], State]:
        cfg = self.config
        if state is None:
            state = initial_state(cfg, tokens.shape[0])
        x = nn.Embed(cfg.vocab_size, cfg.d_model, embedding_init=nn.initializers.normal(cfg.init_std),
                     name="embeddings")(tokens).astype(jnp.float32)
        self.sow(TAPS, "embed", x)
        lbs = None
        if cfg.use_lower_bound:
            lbs = lower_bounds(self.param("lower_bounds", nn.initializers.zeros, (cfg.num_layers, cfg.d_model)))
        new_state = []
        for l in range(cfg.num_layers):
            x, s = Block(cfg, l, name=f"layers_{l}")(x, state[l], mask, None if lbs is None else lbs[l])
            new_state.append(s)
        x = RMSNorm(cfg.rms_norm_eps, name="norm")(x)
        logits = make_linear(cfg, cfg.vocab_size, "lm_head")(x)
        self.sow(TAPS, "logits", logits)
        return logits, tuple(new_state)


def decode_step(
    model: MatMulFreeLM,
    variables: Any,
    tokens: Int[Array, "B"],
    state: State,
    mask: Optional[Float[Array, "B"]] = None,
) -> tuple[Float[Array, "B V"], State]:
    """Advance every sequence by one token; returns next-token logits and the new state."""
    logits, state = model.apply(variables, tokens[:, None], state, None if mask is None else mask[:, None])
    return logits[:, 0], state


def init_params(model: MatMulFreeLM, rng: jax.Array, seq_len: int = 8) -> dict:
    """Initialise the model's parameters (the `params` collection)."""
    return model.init(rng, jnp.zeros((1, seq_len), jnp.int32))["params"]
