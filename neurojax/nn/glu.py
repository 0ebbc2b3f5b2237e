"""GLU channel mixer (`mlp`): `down(silu(gate) * up)` with `[gate, up] = gate_proj(x)`.

The reference always uses SiLU (the config's `hidden_act` is ignored).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.nn.linear_layers import make_linear
from neurojax.nn.config import ModelConfig
from neurojax.nn.mlgru import TAPS
from neurojax.nn.registry import CHANNEL_MIXERS


@CHANNEL_MIXERS.register("glu")
class GLU(nn.Module):
    """Gated linear unit with one fused `gate_proj` (d -> 2I; first half is the gate)."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... d"]:
        cfg = self.config
        y = make_linear(cfg, 2 * cfg.ffn_size, "gate_proj")(x)
        gate, up = jnp.split(y, 2, axis=-1)
        out = make_linear(cfg, cfg.d_model, "down_proj")(jax.nn.silu(gate) * up)
        self.sow(TAPS, "gate_up", y)
        self.sow(TAPS, "out", out)
        return out
