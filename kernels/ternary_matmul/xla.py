"""Fast pure-XLA formulations of the packed ternary matmul for CPU (measured there).

- `integer` (integer ops only, the integer model's path):
  * few rows (decode, `M <= DECODE_ROWS`): the packed bytes are read once, each plane is
    sign-extended to int16, multiplied by the int16 inputs and summed over groups of 64
    byte rows (256 weights) in int16, then across groups in int32. XLA fuses the decode
    into the reduction, so only the 2-bit data crosses memory. A group sum lies in
    [-32768, 32768]: only inputs of -128 can reach the one value int16 lacks, so when
    any input is -128 (absmax-quantized activations never are) a `lax.cond` takes the
    exact variant that sums two planes per int16 group (|sum| <= 16384), ~1.5x slower.
    (Groups of 32 rows would always fit, but XLA:CPU emits a ~5x slower reduction for
    them: measured at 1024 x 5632.)
  * many rows (prefill): unpack once and an int8 x int8 -> int32 dot (XLA:CPU's integer
    dot is not its fast path, so `float` below is the faster prefill path).
- `float` (the float model's path): the same decode-time reduction for few rows; for many
  rows the codes are unpacked to float32 and multiplied with XLA's float32 GEMM. Exact:
  every partial sum is an integer of magnitude <= 128 * K < 2^24 while `K <= 2^17`, so
  float32 adds no rounding (checked; larger K falls back to the integer dot).
"""
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from neurojax.kernels.ternary_matmul import reference
from neurojax.kernels.ternary_matmul.pack import PLANES, ROW_GROUP, PackedTernary, decode_plane, planes_of, unpack

DECODE_ROWS = 4             # at most this many rows take the fused reduction
FLOAT_EXACT_MAX_K = 2 ** 17  # 128 * K < 2^24: float32 sums of int8 x ternary are exact


def _grouped_sum(xs: Int[Array, "M 4 K4"], data, planes) -> Int[Array, "M N"]:
    k4, n = data.shape
    terms = sum(xs[:, j, :, None] * decode_plane(data, j, jnp.int16)[None] for j in planes)
    groups = terms.reshape(xs.shape[0], k4 // ROW_GROUP, ROW_GROUP, n).sum(axis=2, dtype=jnp.int16)
    return groups.sum(axis=1, dtype=jnp.int32)


def fused_reduction(x: Int[Array, "M K"], packed: PackedTernary) -> Int[Array, "M N"]:
    """Decode-in-the-reduction matmul: reads the packed bytes once, integer ops only."""
    data = packed.data
    xs = planes_of(x.astype(jnp.int16), data.shape[0])                  # [M, 4, K4]
    return jax.lax.cond(
        jnp.any(x == -128),
        lambda: _grouped_sum(xs, data, (0, 1)) + _grouped_sum(xs, data, (2, 3)),
        lambda: _grouped_sum(xs, data, range(PLANES)))


def integer(x: Int[Array, "M K"], packed: PackedTernary) -> Int[Array, "M N"]:
    """Integer-only: fused reduction for decode, unpack + int8 dot for prefill."""
    if x.shape[0] <= DECODE_ROWS:
        return fused_reduction(x, packed)
    return reference.ternary_matmul(x, packed)


def float32_gemm(x: Int[Array, "M K"], packed: PackedTernary) -> Int[Array, "M N"]:
    """Unpack to float32 and use the float GEMM; exact for `K <= FLOAT_EXACT_MAX_K`."""
    k = x.shape[-1]
    if k > FLOAT_EXACT_MAX_K:
        return reference.ternary_matmul(x, packed)
    w = unpack(packed, k).astype(jnp.float32)
    acc = jax.lax.dot_general(x.astype(jnp.float32), w, (((1,), (1,)), ((), ())),
                              precision=jax.lax.Precision.HIGHEST)
    return acc.astype(jnp.int32)


def float_gemm(x: Int[Array, "M K"], packed: PackedTernary) -> Int[Array, "M N"]:
    """Fused reduction for decode, exact float32 GEMM for prefill (the float model's path)."""
    if x.shape[0] <= DECODE_ROWS:
        return fused_reduction(x, packed)
    return float32_gemm(x, packed)
