"""Reference: RMSNorm, then per-token absmax int8, exactly as the two definitions compose.

`rms_norm` lives here (not in `neurojax.nn`) so the kernel and the `RMSNorm` module share
one definition; `neurojax.nn.norm` re-exports it.
"""
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int8

from neurojax.quant import absmax_int8


def rms_norm(x: Float[Array, "... d"], weight: Float[Array, "d"], eps: float) -> Float[Array, "... d"]:
    """Root-mean-square normalisation over the last axis, scaled by `weight`, in float32.

    `x * rsqrt(mean(x^2, -1) + eps) * weight` (differentiable; used by `neurojax.nn.RMSNorm`).
    """
    x = x.astype(jnp.float32)
    inv = jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)
    return x * inv * weight.astype(jnp.float32)


def rmsnorm_quant(
    x: Float[Array, "... d"], weight: Float[Array, "d"], eps: float
) -> tuple[Int8[Array, "... d"], Float[Array, "... 1"]]:
    """`(q, s)` with `q = clip(round_half_away(y * s), -128, 127)` as int8 and `s = 127 / max(max|y|, 1e-5)`.

    `y = rms_norm(x, weight, eps)`; the pair is `absmax_int8(y)` with `q` stored as int8 and
    `y ~= q / s`. The inference path: `q` is integer, `s` carries no gradient.
    """
    q, s = absmax_int8(rms_norm(x, weight, eps))
    return q.astype(jnp.int8), s
