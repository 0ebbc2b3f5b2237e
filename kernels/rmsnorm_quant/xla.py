"""XLA path: the reference's float op order, with a cheaper float -> int8 cast.

Measured on the 2-core CPU box (jax 0.10.2, `[2048, 1024]` float32, jitted; see api.py):
XLA:CPU already fuses the reference into four loops (sum of squares, `y = x * inv * w`
written out, `max|y|`, the output), and the dearest part of the output loop is the
saturating `convert f32 -> s8` (compare/select chains around `fptosi`). The codes here are
already integers in [-128, 127] after `clip(round_half_away(.))`, so this path adds
`1.5 * 2^23` (which puts the integer in the low mantissa bits, exactly), bitcasts to int32,
subtracts the bias and narrows (a plain truncation): 13-20% faster than the reference in
every run, and bit-for-bit the same codes and scales, since every float op is the reference's.

Tried and not taken: both row statistics straight from `x` (`max|y| = inv * max|x * w|`)
and `v = (x * w) * (inv * s)` (one multiply fewer per element): another 3-10% on this box
(clearer single-threaded), but a different float order, so codes then differ from the
reference by one at near-ties (`y * s` within ~1e-5 of a .5), and BitLinear's bit-exact
checks would no longer hold. A variadic `lax.reduce` computing both statistics in one pass
is ~2x slower (not vectorised on CPU).
"""
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int8

from neurojax.kernels.rmsnorm_quant.reference import rms_norm
from neurojax.quant import ACT_QMAX, ACT_QMIN, absmax_scale, round_half_away

# float32 with exponent 2^23 and mantissa 2^22: adding an integer |r| < 2^22 stores r + 2^22
# in the mantissa exactly, so bits(r + MAGIC) - bits(MAGIC) == r.
_MAGIC = np.float32(1.5 * 2**23)
_MAGIC_BITS = np.int32(0x4B400000)


def int8_of_integral(r: Float[Array, "..."]) -> Int8[Array, "..."]:
    """int8 of integer-valued float32 `r` within [-128, 127] (exact; no saturation logic)."""
    bits = jax.lax.bitcast_convert_type(r + _MAGIC, jnp.int32) - _MAGIC_BITS
    return bits.astype(jnp.int8)


def rmsnorm_quant(
    x: Float[Array, "... d"], weight: Float[Array, "d"], eps: float
) -> tuple[Int8[Array, "... d"], Float[Array, "... 1"]]:
    """Same contract (and bits) as `reference.rmsnorm_quant`."""
    y = rms_norm(x, weight, eps)
    s = absmax_scale(y)
    return int8_of_integral(jnp.clip(round_half_away(y * s), ACT_QMIN, ACT_QMAX)), s
