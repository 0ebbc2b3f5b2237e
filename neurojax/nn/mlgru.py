"""MLGRU token mixer (`attn` in MMfreeLM checkpoints) and the per-layer forget-gate lower bounds.

Single head; state `[B, d]`. Per token:
    f = sigmoid(f_proj(x)), raised to `lb + (1 - lb) f` for layers > 0
    c = silu(i_proj(x)) * (1 - f)          (times the padding mask)
    h_t = f_t * h_{t-1} + c_t              (linear-space gate)
    out = o_proj(rms(g_proj(x); g_norm) * silu(h))
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.kernels.linear_recurrence import linear_recurrence
from neurojax.nn.linear_layers import make_linear
from neurojax.nn.config import ModelConfig
from neurojax.nn.norm import RMSNorm
from neurojax.nn.registry import TOKEN_MIXERS

TAPS = "intermediates"


def lower_bounds(raw: Float[Array, "L d"]) -> Float[Array, "L d"]:
    """Forget-gate floors `cumsum(softmax(raw, 0), 0) - softmax(raw, 0)[0]` (layer 0 gets 0)."""
    p = jax.nn.softmax(raw.astype(jnp.float32), axis=0)
    return jnp.cumsum(p, axis=0) - p[0]


@TOKEN_MIXERS.register("mlgru")
class MLGRU(nn.Module):
    """MatMul-free linear gated recurrent unit; see the module docstring for the equations."""

    config: ModelConfig
    layer_index: int = 0

    @staticmethod
    def initial_state(config: ModelConfig, batch_size: int) -> Float[Array, "B d"]:
        return jnp.zeros((batch_size, config.d_model), jnp.float32)

    @nn.compact
    def __call__(
        self,
        x: Float[Array, "B T d"],
        state: Float[Array, "B d"],
        mask: Optional[Float[Array, "B T"]] = None,
        lower_bound: Optional[Float[Array, "d"]] = None,
    ) -> tuple[Float[Array, "B T d"], Float[Array, "B d"]]:
        cfg = self.config
        proj = lambda name: make_linear(cfg, cfg.d_model, name)  # noqa: E731
        i = proj("i_proj")(x)
        f_pre = proj("f_proj")(x)
        f = jax.nn.sigmoid(f_pre)
        if lower_bound is not None and self.layer_index > 0:
            f = lower_bound + (1.0 - lower_bound) * f
        c = jax.nn.silu(i) * (1.0 - f)
        if mask is not None:
            c = c * mask[..., None].astype(c.dtype)
        h, h_last = linear_recurrence(f, c, state)
        g_pre = proj("g_proj")(x)
        g = RMSNorm(eps=cfg.rms_norm_eps, name="g_norm")(g_pre)
        out = proj("o_proj")(g * jax.nn.silu(h))
        # Taps for calibration / error analysis (no-ops unless "intermediates" is mutable).
        for name, value in (("i", i), ("f", f_pre), ("g", g_pre), ("h", h), ("out", out)):
            self.sow(TAPS, name, value)
        return out, h_last
