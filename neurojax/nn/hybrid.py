"""SpikingBrain-style hybrid LM: GLA and sliding-window attention layers on a Qwen2-style stack.

    x = embed_tokens(tokens)
    per layer l (kind = config.layer_kinds[l]: "gla" or "swa"):
        r = x + mixer(rms(x; input_layernorm))
        x = r + swiglu(rms(r; post_attention_layernorm))
    logits = lm_head(rms(x; norm))          (or embed_tokens^T when tie_embeddings)

State (`HybridState`): `offset`, the number of tokens consumed so far (the absolute position of
the next token; int32 scalar shared by the batch), and one entry per layer: the GLA state
`[B, H_kv, dk, dv]` or the SWA ring buffer (`SWAState`, `window` keys and values). Its size does
not depend on how many tokens were consumed. `HybridLM.__call__(tokens, state)` runs a whole
chunk from any state (fresh, after a prefill, or after decoding: chunked prefill works) and
`hybrid_decode_step` advances one token. Everything is float32. Parameter names follow the HF
Qwen2 / SpikingBrain layout (`layers_{l}/self_attn/q_proj`, `mlp/gate_proj`, ...).
"""
from typing import Any, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from neurojax.errors import NeurojaxError
from neurojax.nn.hybrid_config import HybridConfig
from neurojax.nn.linear import Linear
from neurojax.nn.linear_attention import GatedLinearAttention
from neurojax.nn.mlgru import TAPS
from neurojax.nn.norm import RMSNorm
from neurojax.nn.params import leaf_count, model_abstract_params, model_init_params, one_token_step
from neurojax.nn.sliding_window import SlidingWindowAttention, SWAState
from neurojax.nn.swiglu import SwiGLU

MIXERS = {"gla": GatedLinearAttention, "swa": SlidingWindowAttention}


class HybridState(NamedTuple):
    """Decoding state: token counter and one fixed-size entry per layer."""

    offset: Int[Array, ""]
    layers: tuple[Any, ...]


def hybrid_initial_state(config: HybridConfig, batch_size: int) -> HybridState:
    """Fresh state: offset 0, zero GLA states and empty SWA ring buffers."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise NeurojaxError(f"batch_size must be a positive integer, got {batch_size!r}")
    layers = tuple(MIXERS[kind].initial_state(config, int(batch_size)) for kind in config.layer_kinds)
    return HybridState(jnp.zeros((), jnp.int32), layers)


def hybrid_state_bytes(config: HybridConfig, batch_size: int) -> int:
    """Bytes of the decoding state (constant in sequence length): no allocation."""
    shapes = jax.eval_shape(lambda: hybrid_initial_state(config, batch_size))
    return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(shapes)))


def _check_state(config: HybridConfig, state: Any, batch_size: int) -> HybridState:
    """Normalise `state` to HybridState / SWAState and check every leaf's shape against the config."""
    kinds = config.layer_kinds
    if not isinstance(state, tuple) or len(state) != 2 or not isinstance(state[1], (tuple, list)) \
            or len(state[1]) != len(kinds):
        raise NeurojaxError(f"state must be a HybridState(offset, layers) with {len(kinds)} layers, "
                            "as built by hybrid_initial_state")
    layers = tuple(SWAState(*s) if kind == "swa" and isinstance(s, (tuple, list)) and len(s) == 2 else s
                   for kind, s in zip(kinds, state[1]))
    state = HybridState(state[0], layers)
    expected = jax.eval_shape(lambda: hybrid_initial_state(config, batch_size))
    got_leaves, got_def = jax.tree_util.tree_flatten(state)
    exp_leaves, exp_def = jax.tree_util.tree_flatten(expected)
    if got_def != exp_def:
        raise NeurojaxError(f"state does not match the layer layout {kinds}: got {got_def}")
    for i, (g, e) in enumerate(zip(got_leaves, exp_leaves)):
        if tuple(jnp.shape(g)) != tuple(e.shape):
            raise NeurojaxError(f"state leaf {i} has shape {tuple(jnp.shape(g))}, expected {tuple(e.shape)} "
                                f"(batch {batch_size}, layers {kinds})")
    return state


class HybridBlock(nn.Module):
    """Pre-norm residual block whose token mixer is GLA or SWA (`config.layer_kinds[layer_index]`)."""

    config: HybridConfig
    layer_index: int

    @nn.compact
    def __call__(self, x: Float[Array, "B T d"], state: Any, offset: Int[Array, ""]) -> tuple[Float[Array, "B T d"], Any]:
        cfg = self.config
        kind = cfg.layer_kinds[self.layer_index]
        h = RMSNorm(cfg.rms_norm_eps, name="input_layernorm")(x)
        if kind == "swa":
            h, state = SlidingWindowAttention(cfg, name="self_attn")(h, state, offset)
        else:
            h, state = GatedLinearAttention(cfg, name="self_attn")(h, state)
        r = x + h
        out = r + SwiGLU(cfg, name="mlp")(RMSNorm(cfg.rms_norm_eps, name="post_attention_layernorm")(r))
        self.sow(TAPS, "resid_mid", r)
        self.sow(TAPS, "resid_out", out)
        return out, state


class HybridLM(nn.Module):
    """The hybrid language model; `__call__(tokens [B, T], state=None) -> (logits [B, T, V], state)`."""

    config: HybridConfig

    @nn.compact
    def __call__(
        self, tokens: Int[Array, "B T"], state: Optional[HybridState] = None
    ) -> tuple[Float[Array, "B T V"], HybridState]:
        cfg = self.config
        if jnp.ndim(tokens) != 2 or tokens.shape[1] < 1:
            raise NeurojaxError(f"tokens must be [batch, time] with time >= 1, got shape {jnp.shape(tokens)}")
        if not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise NeurojaxError(f"tokens must be integers, got dtype {tokens.dtype}")
        budget = self.config.max_seq_len
        if budget is not None and tokens.shape[1] > budget:
            raise NeurojaxError(f"{tokens.shape[1]} tokens exceed the sequence budget max_seq_len={budget}")
        b, t = tokens.shape
        state = hybrid_initial_state(cfg, b) if state is None else _check_state(cfg, state, b)
        offset = jnp.asarray(state.offset, jnp.int32)
        embed = nn.Embed(cfg.vocab_size, cfg.d_model, embedding_init=nn.initializers.normal(cfg.init_std),
                         name="embed_tokens")
        x = embed(tokens).astype(jnp.float32)
        new_layers = []
        for l in range(cfg.num_layers):
            x, s = HybridBlock(cfg, l, name=f"layers_{l}")(x, state.layers[l], offset)
            new_layers.append(s)
        x = RMSNorm(cfg.rms_norm_eps, name="norm")(x)
        if cfg.tie_embeddings:
            logits = embed.attend(x)
        else:
            logits = Linear(cfg.vocab_size, cfg.init_std, name="lm_head")(x)
        self.sow(TAPS, "logits", logits)
        return logits, HybridState(offset + t, tuple(new_layers))


def hybrid_decode_step(
    model: HybridLM, variables: Any, tokens: Int[Array, "B"], state: HybridState
) -> tuple[Float[Array, "B V"], HybridState]:
    """Advance every sequence by one token; returns next-token logits `[B, V]` and the new state."""
    return one_token_step(model, variables, tokens, state, "hybrid_decode_step")


def hybrid_init_params(model: HybridLM, rng: jax.Array, seq_len: int = 1) -> dict:
    """Initialise the model's parameters (the `params` collection)."""
    return model_init_params(model, rng, seq_len)


def hybrid_abstract_params(config: HybridConfig) -> Any:
    """Shapes and dtypes of the parameters, from `jax.eval_shape` (nothing is allocated)."""
    return model_abstract_params(HybridLM(config))


def hybrid_count_params(config_or_params: Any) -> int:
    """Number of scalar parameters of a config (no allocation) or of a params pytree."""
    return leaf_count(hybrid_abstract_params(config_or_params) if isinstance(config_or_params, HybridConfig)
                      else config_or_params)