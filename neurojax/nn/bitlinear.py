"""BitLinear: RMSNorm -> per-token int8 activations x ternary weights (spec: mmfree.md).

Parameters follow the PyTorch checkpoint layout: `weight [out, in]` (latent, full
precision) and `norm/weight [in]`. The forward computes
`(q_x @ codes.T) * (1 / (s_x * s_w))` where `q_x` (int8 range) and `codes` (ternary) are
integer-valued floats: every partial sum is an integer below 2^24, so the float32
matmul is exact and equals an int32 accumulation bit for bit.

For inference the codes can be precomputed once into the `quantized` collection
(`codes` int8, `scale` float32; see `neurojax.nn.inference_params`); the latent
weight is then not needed at all.
"""
import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.nn.config import BITLINEAR_NORM_EPS
from neurojax.nn.norm import RMSNorm
from neurojax.quant import absmax_int8, ternary_codes

QUANTIZED = "quantized"


def _torch_layout_init(std: float):
    """Normal(0, std) for a `[out, in]` weight."""
    return nn.initializers.normal(stddev=std)


class BitLinear(nn.Module):
    """Ternary-weight projection with its own RMSNorm; `full_precision` skips both quantizers."""

    features: int
    full_precision: bool = False
    init_std: float = 0.02

    @nn.compact
    def __call__(self, x: Float[Array, "... d_in"]) -> Float[Array, "... d_out"]:
        y = RMSNorm(eps=BITLINEAR_NORM_EPS, name="norm")(x)
        if self.full_precision:
            w = self.param("weight", _torch_layout_init(self.init_std), (self.features, x.shape[-1]), jnp.float32)
            return y @ w.T
        q_x, s_x = absmax_int8(y)
        if self.has_variable(QUANTIZED, "codes"):
            codes = self.get_variable(QUANTIZED, "codes")
            s_w = self.get_variable(QUANTIZED, "scale")
            # Widening int8 codes to float32 in the dot is exact and, on XLA:CPU, ~20x
            # faster than an int8 x int8 -> int32 dot_general (measured for the LM head).
            acc = q_x @ codes.astype(jnp.float32).T
        else:
            w = self.param("weight", _torch_layout_init(self.init_std), (self.features, x.shape[-1]), jnp.float32)
            codes, s_w = ternary_codes(w)
            if self.is_mutable_collection(QUANTIZED):
                self.put_variable(QUANTIZED, "codes", codes.astype(jnp.int8))
                self.put_variable(QUANTIZED, "scale", s_w)
            acc = q_x @ codes.T
        # Rescale by an explicit reciprocal: XLA rewrites `acc / scale` into this anyway, so
        # writing it out makes the result the same in every program (and in NumPy oracles).
        return acc * (1.0 / (s_x * s_w))
