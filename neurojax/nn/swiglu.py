"""The full-precision SwiGLU MLP of the Transformer++ and the hybrid LM (HF LLaMA / Qwen2 `mlp`)."""
from typing import Any

import flax.linen as nn
import jax
from jaxtyping import Array, Float

from neurojax.nn.linear import Linear
from neurojax.nn.mlgru import TAPS


class SwiGLU(nn.Module):
    """`down_proj(silu(gate_proj(x)) * up_proj(x))`, no biases.

    `config` needs `d_model`, `intermediate_size`, `init_std`, `spike_k`, `spike_clip`. With
    `spike_k`, gate/up inputs are spike-coded; the down projection's input is not (SpikingBrain's
    placement: it is a product of two activations, not a layer input).
    """

    config: Any

    @nn.compact
    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... d"]:
        cfg = self.config
        gate = Linear(cfg.intermediate_size, cfg.init_std, False, cfg.spike_k, cfg.spike_clip, name="gate_proj")(x)
        up = Linear(cfg.intermediate_size, cfg.init_std, False, cfg.spike_k, cfg.spike_clip, name="up_proj")(x)
        h = jax.nn.silu(gate) * up
        self.sow(TAPS, "down_in", h)
        return Linear(cfg.d_model, cfg.init_std, name="down_proj")(h)
