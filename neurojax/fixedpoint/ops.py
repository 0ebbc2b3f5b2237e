"""Integer-only operators of the MatMul-free LM (int32 in, int32 out; no float inside).

Conventions
- A *static scale* is a real number fixed at conversion; rescaling from scale `s_a` to
  `s_b` multiplies by an integer multiplier and shifts: `round(x * M / 2**S)`.
- A *per-token scalar* is `(mantissa, exponent)`: `mantissa * 2**-exponent`, mantissa < 2**15.
- BitLinear (with its own RMSNorm and per-token absmax activation codes) is invariant to a
  positive per-token scaling of its input, so inputs may be renormalized per token by shifts
  (block floating point) and the RMSNorm factor only enters the output rescale.
- Every saturation is counted: operators return `(value, overflow_count)` where it can happen.
"""
from typing import Optional

import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from neurojax.kernels.ternary_matmul import PackedTernary, ternary_matmul, unpack
from neurojax.quant.fixed import (
    bit_length,
    fit,
    mul_shift,
    normalize_shift,
    shift_right,
    sum_sq_shift,
)
from neurojax.quant.intmath import IntLUT, inv_sqrt, lut_eval, reciprocal

NORM_BITS = 15  # per-token normalized operands hold |x| < 2**14, so products of two fit int32
MANTISSA_BITS = 15


def mul_shift_small(a: Int[Array, "..."], b: Int[Array, "..."], n: int, mode: str = "half_away") -> Int[Array, "..."]:
    """`mul_shift` for operands whose exact product fits int32 (the caller guarantees it).

    Bit-identical to `mul_shift` under that bound, with one int32 multiply instead of limbs.
    """
    return shift_right(a * b, n, mode)


def norm_token(x: Int[Array, "... d"]) -> Int[Array, "... d"]:
    """Per-token right shift so that |x| < 2**14 (the shift itself is dropped: scale-free use only)."""
    return normalize_shift(x, NORM_BITS, axis=-1)[0]


def _scalar_norm(m: Int[Array, "..."]) -> tuple[Int[Array, "..."], Int[Array, "..."]]:
    """`m = m' * 2**k` with |m'| < 2**15 (per element); returns (m', k)."""
    k = jnp.maximum(bit_length(jnp.abs(m)) - MANTISSA_BITS, 0)
    return shift_right(m, k, "half_away"), k


def apply_scale(x: Int[Array, "..."], mant: Int[Array, "..."], shift: Int[Array, "..."], bits: int
                ) -> tuple[Int[Array, "..."], Int[Array, ""]]:
    """`round(x * mant / 2**shift)` saturated to `bits`, for |mant| < 2**15 and any int shift.

    Shifts above 31 pre-shift `x` (a second rounding); negative shifts multiply by 2**-shift with
    saturation. Results that cannot fit 30 bits saturate before they could wrap.
    """
    shift = jnp.asarray(shift, jnp.int32)
    pre = jnp.maximum(shift - 31, 0)
    x1 = shift_right(x, pre, "half_away")
    n = jnp.clip(shift - pre, 0, 31)
    too_big = bit_length(jnp.abs(x1)) + bit_length(jnp.abs(mant)) - n >= 31
    y = mul_shift(x1, mant, n, "half_away")
    left = jnp.maximum(-shift, 0)
    limit = 2 ** (bits - 1)
    y_left = jnp.where(jnp.abs(y) >= (limit >> jnp.minimum(left, bits - 1)),
                       jnp.sign(y) * limit, y << jnp.minimum(left, 30))
    y = jnp.where(left > 0, y_left, y)
    y = jnp.where(too_big, jnp.where(jnp.sign(x1) * jnp.sign(mant) < 0, -limit, limit), y)
    return fit(y, bits, "saturate")


def int_dot(q: Int[Array, "... d_in"], codes, act_bits: int = 8) -> Int[Array, "... d_out"]:
    """`q @ codes.T` accumulated exactly in int32; `codes` int8 `[d_out, d_in]` or packed.

    Packed codes (`PackedTernary`, see `device_params`) go through the `ternary_matmul`
    kernel on its integer-only path (decode: ~10x faster than XLA:CPU's int8 dot at
    1024 x 5632). Otherwise operands are narrowed to the smallest integer type that holds
    them: on XLA:CPU an int8 x int8 -> int32 dot is ~7x faster than int32 x int8
    (measured at 2048x256x1024).
    """
    if isinstance(codes, PackedTernary):
        if act_bits <= 8:
            return ternary_matmul(q.astype(jnp.int8), codes, integer_only=True)
        codes = unpack(codes, q.shape[-1])
    narrow = jnp.int8 if act_bits <= 8 else jnp.int16
    return jax.lax.dot_general(q.astype(narrow), codes.astype(narrow), (((q.ndim - 1,), (1,)), ((), ())),
                               preferred_element_type=jnp.int32)


def bitlinear_input(x: Int[Array, "... d_in"], pre_norm: Optional[Int[Array, "d_in"]] = None) -> tuple:
    """The part of an integer BitLinear shared by projections of the same input.

    Returns `(v, mi, ei)`: the per-token normalized input (times `pre_norm`, which folds a
    preceding RMSNorm), and `1 / sqrt(sum(v2^2)) = mi * 2**-ei` with `v2 = v >> sum_sq_shift(d_in)`.
    """
    v = norm_token(x)
    if pre_norm is not None:
        v = norm_token(v * pre_norm)
    v2 = shift_right(v, sum_sq_shift(x.shape[-1]), "half_away")
    mi, ei = inv_sqrt(jnp.maximum(jnp.sum(v2 * v2, axis=-1, keepdims=True), 1))
    return v, mi, ei


def int_bitlinear(
    x: Int[Array, "... d_in"],
    pre_norm: Optional[Int[Array, "d_in"]],
    norm: Int[Array, "d_in"],
    codes: Int[Array, "d_out d_in"],
    out_mult: Int[Array, ""],
    out_shift: Int[Array, ""],
    act_bits: int,
    out_bits: int,
) -> tuple[Int[Array, "... d_out"], Int[Array, ""]]:
    """Integer BitLinear: `[pre_norm] -> RMSNorm(norm) -> absmax codes -> ternary dot -> rescale`.

    `pre_norm` folds a preceding RMSNorm (the block norm) into the input; `(out_mult, out_shift)`
    is the static part of the output scale, `s_b * sqrt(d_in) / (Q * s_w * s_out)`.
    Returns the output in its static scale, saturated to `out_bits`, and the overflow count.
    """
    return project(bitlinear_input(x, pre_norm), norm, codes, out_mult, out_shift, act_bits, out_bits)


def project(prepared: tuple, norm, codes, out_mult, out_shift, act_bits: int, out_bits: int):
    """Second half of `int_bitlinear` on a `bitlinear_input` result."""
    v, mi, ei = prepared
    # z = v * norm, renormalized per token (|z| < 2**14; true value z * 2**kz) so every product
    # below fits int32.
    z, kz = normalize_shift(v * norm, NORM_BITS, axis=-1)
    m = jnp.maximum(jnp.max(jnp.abs(z), axis=-1, keepdims=True), 1)
    qmax = 2 ** (act_bits - 1) - 1
    # Codes q = round(qmax * z / m) via the reciprocal of m: t ~= z / m * 2**14, then * qmax.
    rm, re = reciprocal(m)  # m < 2**14, so 14 <= re <= 28
    t = mul_shift_small(z, rm, re - (MANTISSA_BITS - 1))
    q = jnp.clip(mul_shift_small(t, jnp.int32(qmax), MANTISSA_BITS - 1), -qmax - 1, qmax)
    acc = int_dot(q, codes, act_bits)
    # Per-token factor max|z| / rms(v) (RMSNorm without eps: not representable in fixed point).
    k_sq = sum_sq_shift(v.shape[-1])
    p1, k1 = _scalar_norm(m * mi)
    p2, k2 = _scalar_norm(p1 * out_mult)
    shift = k_sq + ei + out_shift - kz - k1 - k2
    return apply_scale(acc, p2, shift, out_bits)


def sigmoid_q(x: Int[Array, "..."], to_lut: tuple, lut: IntLUT, lut_bits: int = 16) -> Int[Array, "..."]:
    """sigmoid(x) in Q0.15 for `x` in a static scale, via the scale's `to_lut` rescale constant."""
    x_lut, _ = apply_scale(x, *to_lut, lut_bits)
    return lut_eval(x_lut, lut)


def silu_q(x: Int[Array, "..."], to_lut: tuple, lut: IntLUT, gate_frac: int, x_bits: int = 32) -> Int[Array, "..."]:
    """silu(x) = x * sigmoid(x), in the scale of `x` (`x_bits`: a bound on x's width, for speed)."""
    return mul_gate(x, sigmoid_q(x, to_lut, lut), gate_frac, x_bits)


def mul_gate(x: Int[Array, "..."], gate: Int[Array, "..."], gate_frac: int, x_bits: int) -> Int[Array, "..."]:
    """`round(x * gate / 2**gate_frac)` for a Q0.gate_frac gate; one int32 multiply when x is narrow."""
    if x_bits + gate_frac <= 31:
        return mul_shift_small(x, gate, gate_frac)
    return mul_shift(x, gate, gate_frac, "half_away")
