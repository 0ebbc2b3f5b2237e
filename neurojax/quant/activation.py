"""Per-token absmax int8 activation quantization (MatMul-free BitLinear inputs).

`s_x = 127 / max(max|y|, 1e-5)` over the last axis; `q = clip(round_half_away(y * s_x), -128, 127)`.
The scale is treated as a constant for gradients (straight-through estimator).
"""
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.quant.rounding import round_half_away
from neurojax.quant.ste import straight_through

ACT_QMAX = 127
ACT_QMIN = -128
SCALE_FLOOR = 1e-5


def absmax_scale(y: Float[Array, "... d"]) -> Float[Array, "... 1"]:
    """Per-token scale `127 / max(max|y|, 1e-5)` (float32, no gradient)."""
    y = jax.lax.stop_gradient(y.astype(jnp.float32))
    return ACT_QMAX / jnp.maximum(jnp.max(jnp.abs(y), axis=-1, keepdims=True), SCALE_FLOOR)


def _int8_round(v):
    return jnp.clip(round_half_away(v), ACT_QMIN, ACT_QMAX)


_int8_round_ste = straight_through(_int8_round)


def absmax_int8(y: Float[Array, "... d"]) -> tuple[Float[Array, "... d"], Float[Array, "... 1"]]:
    """Return `(q, s_x)`: integer-valued float32 codes in [-128, 127] and the per-token scale.

    `y ~= q / s_x`; d q / d y = s_x (straight-through).
    """
    s_x = absmax_scale(y)
    return _int8_round_ste(y.astype(jnp.float32) * s_x), s_x
