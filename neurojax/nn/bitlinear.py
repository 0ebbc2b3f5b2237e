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
import functools
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.kernels.rmsnorm_quant import rmsnorm_quant
from neurojax.kernels.ternary_matmul import PackedTernary, pack, ternary_matmul, unpack
from neurojax.nn.config import BITLINEAR_NORM_EPS, ModelConfig
from neurojax.nn.norm import RMSNorm
from neurojax.nn.quantizers import resolve_quantizer
from neurojax.quant import absmax_int8, spike_count_ste, ternary_codes

QUANTIZED = "quantized"
SPIKE_COUNTS = "spike_counts"  # sown integer counts of spike-coded inputs (for sparsity)


def _torch_layout_init(std: float):
    """Normal(0, std) for a `[out, in]` weight."""
    return nn.initializers.normal(stddev=std)


class BitLinear(nn.Module):
    """Ternary-weight projection with its own RMSNorm; `full_precision` skips both quantizers.

    With `spike_k`, the input is spike-coded (SpikingBrain) instead of absmax int8: integer
    counts `q = round(y / V_th)` (clipped to `+-spike_clip` if set), `V_th = mean|y| / spike_k`,
    and the output is `(q @ codes.T) * V_th / s_w`: a sum of ternary weights over events.
    The counts are sown in the `SPIKE_COUNTS` collection when it is mutable.

    With `quantizer` (a registered activation quantizer bound to the config, `ModelConfig.quantizer`,
    see `neurojax.nn.quantizers`), its codes `(q, step)` replace both built-in codings and the output
    is `(q @ codes.T) * step / s_w`.
    """

    features: int
    full_precision: bool = False
    init_std: float = 0.02
    spike_k: Optional[float] = None
    spike_clip: Optional[int] = None

    # A registered activation quantizer `y -> (q, step)` (`neurojax.nn.quantizers`) replacing the
    # built-in absmax / spike coding; None: the built-in path (what `spike_k` selects).
    quantizer: Optional[Callable] = None

    @classmethod
    def of(cls, config: ModelConfig, features: int, name: str) -> "BitLinear":
        """The BitLinear a model with `config` uses (its precision, init and activation coding).

        The built-in quantizers ("absmax_int8", "spike") run BitLinear's own exact path; any other
        `config.quantizer` is looked up in `QUANTIZERS` and bound to `config`."""
        quantizer = None
        if config.quantizer_name not in ("absmax_int8", "spike"):
            quantizer = functools.partial(resolve_quantizer(config), config=config)
        return cls(features, config.full_precision, config.init_std, config.spike_k, config.spike_clip,
                   quantizer, name=name)

    def _quantize_input(self, y):
        """`(q, s)`: integer-valued input codes and their per-token scale (`s_x`, `V_th` or the quantizer's step)."""
        if self.quantizer is not None:
            return self.quantizer(y)
        if self.spike_k is None:
            return absmax_int8(y)
        q, v_th = spike_count_ste(y, self.spike_k, self.spike_clip)
        if self.is_mutable_collection(SPIKE_COUNTS):
            self.sow(SPIKE_COUNTS, "counts", jax.lax.stop_gradient(q).astype(jnp.int32))
        return q, v_th

    def _rescale(self, acc, s, s_w):
        # An explicit reciprocal for absmax: XLA rewrites `acc / scale` into this anyway, so
        # writing it out makes the result the same in every program (and in NumPy oracles).
        step_scale = self.spike_k is not None or self.quantizer is not None
        return acc * (s / s_w) if step_scale else acc * (1.0 / (s * s_w))

    @nn.compact
    def __call__(self, x: Float[Array, "... d_in"]) -> Float[Array, "... d_out"]:
        norm = RMSNorm(eps=BITLINEAR_NORM_EPS, name="norm")
        y = norm(x)  # unused on the packed path (dead code under jit); creates `norm/weight`
        if self.has_variable(QUANTIZED, "packed"):
            packed = PackedTernary(self.get_variable(QUANTIZED, "packed"))
            s_w = self.get_variable(QUANTIZED, "scale")
            if self.spike_k is None and self.quantizer is None:
                # Inference: fused norm + int8 codes (the same codes and scales as
                # absmax_int8 below), then int8 x packed ternary -> int32.
                q8, s_x = rmsnorm_quant(x, norm.variables["params"]["weight"], BITLINEAR_NORM_EPS)
                return self._rescale(ternary_matmul(q8, packed).astype(jnp.float32), s_x, s_w)
            q, v_th = self._quantize_input(y)
            if self.quantizer is None and self.spike_clip is not None and self.spike_clip <= 127:  # counts fit int8
                acc = ternary_matmul(q.astype(jnp.int8), packed).astype(jnp.float32)
            else:
                acc = q @ unpack(packed, x.shape[-1]).astype(jnp.float32).T
            return self._rescale(acc, v_th, s_w)
        if self.full_precision:
            w = self.param("weight", _torch_layout_init(self.init_std), (self.features, x.shape[-1]), jnp.float32)
            return y @ w.T
        q_x, s = self._quantize_input(y)
        w = self.param("weight", _torch_layout_init(self.init_std), (self.features, x.shape[-1]), jnp.float32)
        codes, s_w = ternary_codes(w)
        if self.is_mutable_collection(QUANTIZED):
            self.put_variable(QUANTIZED, "packed", pack(codes.astype(jnp.int8)).data)
            self.put_variable(QUANTIZED, "scale", s_w)
        return self._rescale(q_x @ codes.T, s, s_w)
