"""BitLinear: RMSNorm -> per-token int8 activations x ternary weights (spec: mmfree.md).

Parameters follow the PyTorch checkpoint layout: `weight [out, in]` (latent, full
precision) and `norm/weight [in]`. The forward computes
`(q_x @ codes.T) * (1 / (s_x * s_w))` where `q_x` (int8 range) and `codes` (ternary) are
integer-valued floats: every partial sum is an integer below 2^24, so the float32
matmul is exact and equals an int32 accumulation bit for bit.

For inference the codes are precomputed once into the `quantized` collection as packed
ternary weights (`packed` uint8 `[K4, out]`, 2 bits per weight, layout in
`neurojax.kernels.ternary_matmul.pack`; `scale` float32; see
`neurojax.nn.inference_variables`); the latent weight is then not needed at all and the
product runs through the `ternary_matmul` kernel (int8 x packed -> int32), which gives
the same integers, so the same outputs bit for bit.
"""
import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.kernels.rmsnorm_quant import rmsnorm_quant
from neurojax.kernels.ternary_matmul import PackedTernary, pack, ternary_matmul
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
        norm = RMSNorm(eps=BITLINEAR_NORM_EPS, name="norm")
        y = norm(x)  # unused on the packed path (dead code under jit); creates `norm/weight`
        if self.has_variable(QUANTIZED, "packed"):
            # Inference: fused norm + int8 codes (the same codes and scales as absmax_int8
            # below), then int8 x packed ternary -> int32.
            q8, s_x = rmsnorm_quant(x, norm.variables["params"]["weight"], BITLINEAR_NORM_EPS)
            packed = PackedTernary(self.get_variable(QUANTIZED, "packed"))
            acc = ternary_matmul(q8, packed).astype(jnp.float32)
            return acc * (1.0 / (s_x * self.get_variable(QUANTIZED, "scale")))
        if self.full_precision:
            w = self.param("weight", _torch_layout_init(self.init_std), (self.features, x.shape[-1]), jnp.float32)
            return y @ w.T
        q_x, s_x = absmax_int8(y)
        w = self.param("weight", _torch_layout_init(self.init_std), (self.features, x.shape[-1]), jnp.float32)
        codes, s_w = ternary_codes(w)
        if self.is_mutable_collection(QUANTIZED):
            self.put_variable(QUANTIZED, "packed", pack(codes.astype(jnp.int8)).data)
            self.put_variable(QUANTIZED, "scale", s_w)
        acc = q_x @ codes.T
        # Rescale by an explicit reciprocal: XLA rewrites `acc / scale` into this anyway, so
        # writing it out makes the result the same in every program (and in NumPy oracles).
        return acc * (1.0 / (s_x * s_w))
