"""RMSNorm: `x / sqrt(mean(x^2, -1) + eps) * w`, computed in float32.

The pure function `rms_norm` is defined once, next to the fused RMSNorm + int8 kernel
(`neurojax.kernels.rmsnorm_quant`), and re-exported here under the same name.
"""
import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.kernels.rmsnorm_quant.reference import rms_norm

__all__ = ["RMSNorm", "rms_norm"]


class RMSNorm(nn.Module):
    """RMSNorm with a learned per-channel `weight` (initialised to ones)."""

    eps: float = 1e-6

    @nn.compact
    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... d"]:
        weight = self.param("weight", nn.initializers.ones, (x.shape[-1],), jnp.float32)
        return rms_norm(x, weight, self.eps)
