"""RMSNorm: `x / sqrt(mean(x^2, -1) + eps) * w`, computed in float32."""
import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def rms_norm(x: Float[Array, "... d"], weight: Float[Array, "d"], eps: float) -> Float[Array, "... d"]:
    """Root-mean-square normalisation over the last axis, scaled by `weight`."""
    x = x.astype(jnp.float32)
    inv = jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)
    return x * inv * weight.astype(jnp.float32)


class RMSNorm(nn.Module):
    """RMSNorm with a learned per-channel `weight` (initialised to ones)."""

    eps: float = 1e-6

    @nn.compact
    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... d"]:
        weight = self.param("weight", nn.initializers.ones, (x.shape[-1],), jnp.float32)
        return rms_norm(x, weight, self.eps)
