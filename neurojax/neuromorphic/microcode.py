"""Microcode routines: integer operators written as instruction sequences for `ProgramBuilder`.

The compiler assembles neuron programs from these routines. Each emits instructions into a
builder and returns the register holding its result; the rules they implement are the ones
documented in `neurojax.quant.fixed` and `neurojax.quant.intmath` (normalize shift, 1/sqrt and
1/x by seed table plus one Newton step, per-token rescaling, interpolated lookup tables), but
they are re-expressed instruction by instruction: the interpreter never calls those functions,
only the primitive shifts, products and saturations each instruction is defined by. The seed
tables and sigmoid tables are constants copied into program memory.
"""
import numpy as np

from neurojax.neuromorphic.isa import ProgramBuilder
from neurojax.quant.intmath import INV_SQRT_TABLE, RECIPROCAL_TABLE, IntLUT

HALF_AWAY = "half_away"
FLOOR = "floor"
MANTISSA_BITS = 15


def norm_shift(b: ProgramBuilder, pmax: str, nmax: str, target_bits: int) -> str:
    """Block-floating-point shift `k` of a vector from its reduced extremes.

    `pmax` = max(0, max x) and `nmax` = max(0, max ~x) (max-accumulated ports). `k` is the
    smallest shift with every |round_half_away(x / 2**k)| < 2**(target_bits-1): the first
    candidate from the bit length of max(pmax, ~min x), one more if rounding carries over.
    """
    lim = (1 << (target_bits - 1)) - 1
    u, k_lo, nmin, t, f1, f2 = (b.tmp() for _ in range(6))
    b.max(u, pmax, nmax)
    b.bitlen(k_lo, u)
    b.sub(k_lo, k_lo, target_bits - 1)
    b.max(k_lo, k_lo, 0)
    b.not_(nmin, nmax)
    b.shr(t, pmax, k_lo, mode=HALF_AWAY)
    b.gt(f1, t, lim)
    b.shr(t, nmin, k_lo, mode=HALF_AWAY)
    b.lt(f2, t, -lim)
    b.max(f1, f1, f2)
    k = b.tmp(8)
    b.add(k, k_lo, f1)
    return k


def to_mantissa(b: ProgramBuilder, y: str, e_y: str) -> tuple:
    """Value `y * 2**-e_y` (y > 0) as `(m, e)` with m in [2**14, 2**15), rounded half away."""
    s, m, carry, e = b.tmp(8), b.tmp(), b.tmp(8), b.tmp(8)
    b.bitlen(s, y)
    b.sub(s, s, MANTISSA_BITS)
    b.max(s, s, 0)
    b.shr(m, y, s, mode=HALF_AWAY)
    b.shr(carry, m, MANTISSA_BITS, mode=FLOOR)
    b.shr(m, m, carry, mode=FLOOR)
    b.sub(e, e_y, s)
    b.sub(e, e, carry)
    m16 = b.tmp(17)
    b.mov(m16, m)
    return m16, e


def _normalize(b: ProgramBuilder, x: str) -> tuple:
    """x >= 1 -> (bit length, x shifted so its top bit is bit 30)."""
    bl, sh, xn = b.tmp(8), b.tmp(8), b.tmp()
    b.bitlen(bl, x)
    b.sub(sh, 31, bl)
    b.shl(xn, x, sh)
    return bl, xn


def inv_sqrt(b: ProgramBuilder, x_in: str) -> tuple:
    """1/sqrt(max(x, 1)) as `(m, e)`: seed from a 128-entry table, one Newton step (Q29/Q30)."""
    table = b.table(f"inv_sqrt_{len(b._instrs)}", INV_SQRT_TABLE)
    x = b.tmp()
    b.max(x, x_in, 1)
    bl, xn = _normalize(b, x)
    p, k, idx, t = b.tmp(2), b.tmp(8), b.tmp(), b.tmp()
    b.sub(k, bl, 1)
    b.and_(p, k, 1)
    b.sub(k, k, p)
    b.shr(k, k, 1, mode=FLOOR)
    b.shl(idx, p, 6)
    b.shr(t, xn, 24, mode=FLOOR)
    b.add(idx, idx, t)
    b.sub(idx, idx, 64)
    y0 = b.tmp(17)
    b.lut(y0, table, idx)
    gy, r, y = b.tmp(), b.tmp(), b.tmp()
    b.mulsh(gy, xn, y0, 15, mode=HALF_AWAY)
    b.sub(t, 1, p)
    b.shr(gy, gy, t, mode=HALF_AWAY)
    b.mulsh(r, gy, y0, 15, mode=HALF_AWAY)
    b.sub(t, (3 << 29) + 8192, r)
    b.mulsh(y, t, y0, 15, mode=HALF_AWAY)
    b.add(k, k, 30)
    return to_mantissa(b, y, k)


def reciprocal(b: ProgramBuilder, x_in: str) -> tuple:
    """1/max(x, 1) as `(m, e)`: seed from a 128-entry table, one Newton step."""
    table = b.table(f"reciprocal_{len(b._instrs)}", RECIPROCAL_TABLE)
    x = b.tmp()
    b.max(x, x_in, 1)
    bl, xn = _normalize(b, x)
    idx, t, y = b.tmp(), b.tmp(), b.tmp()
    b.shr(idx, xn, 23, mode=FLOOR)
    b.sub(idx, idx, 128)
    y0 = b.tmp(17)
    b.lut(y0, table, idx)
    b.mulsh(t, xn, y0, 16, mode=HALF_AWAY)
    b.sub(t, (1 << 30) + 1024, t)
    b.mulsh(y, t, y0, 14, mode=HALF_AWAY)
    e = b.tmp(8)
    b.add(e, bl, 29)
    return to_mantissa(b, y, e)


def scalar_norm(b: ProgramBuilder, x: str) -> tuple:
    """`x = m * 2**k` with |m| < 2**15: returns (m, k)."""
    k, a, m = b.tmp(8), b.tmp(), b.tmp(17)  # |m| <= 2**15: rounding may carry into bit 15
    b.abs(a, x)
    b.bitlen(k, a)
    b.sub(k, k, MANTISSA_BITS)
    b.max(k, k, 0)
    b.shr(m, x, k, mode=HALF_AWAY)
    return m, k


def apply_scale(b: ProgramBuilder, dst: str, x: str, mant: str, shift: str, bits: int) -> str:
    """`dst = round(x * mant / 2**shift)` saturated to `bits` (|mant| < 2**15, any int shift).

    Shifts above 31 pre-shift x (a second rounding); a negative shift multiplies by 2**-shift
    with saturation; results that cannot fit 30 bits saturate instead of wrapping.
    """
    limit = 1 << (bits - 1)
    pre, x1, n, a, tb, t = b.tmp(8), b.tmp(), b.tmp(8), b.tmp(), b.tmp(8), b.tmp(8)
    b.sub(pre, shift, 31)
    b.max(pre, pre, 0)
    b.shr(x1, x, pre, mode=HALF_AWAY)
    b.sub(n, shift, pre)
    b.clip(n, n, 0, 31)
    b.abs(a, x1)
    b.bitlen(tb, a)
    b.abs(a, mant)
    b.bitlen(t, a)
    b.add(tb, tb, t)
    b.sub(tb, tb, n)
    b.ge(tb, tb, 31)
    y = b.tmp(32, "wrap")
    b.mulsh(y, x1, mant, n, mode=HALF_AWAY)
    left, lm, thr, big, sl = b.tmp(8), b.tmp(8), b.tmp(), b.tmp(2), b.tmp(8)
    b.neg(left, shift)
    b.max(left, left, 0)
    b.min(lm, left, bits - 1)
    b.shr(thr, limit, lm, mode=FLOOR)
    b.abs(a, y)
    b.ge(big, a, thr)
    b.min(sl, left, 30)
    b.sel(sl, big, 0, sl)
    yl, neg = b.tmp(32, "wrap"), b.tmp(2)
    b.shl(yl, y, sl)
    b.lt(neg, y, 0)
    b.sel(a, neg, -limit, limit)
    b.sel(yl, big, a, yl)
    b.gt(t, left, 0)
    b.sel(y, t, yl, y)
    # too big: the sign of x1 * mant decides the saturated value
    s1, s2 = b.tmp(2), b.tmp(2)
    b.lt(s1, x1, 0)
    b.gt(s2, mant, 0)
    b.and_(s1, s1, s2)
    b.gt(neg, x1, 0)
    b.lt(s2, mant, 0)
    b.and_(neg, neg, s2)
    b.max(neg, neg, s1)
    b.sel(a, neg, -limit, limit)
    b.sel(y, tb, a, y)
    b.mov(dst, y)
    return dst


def lut_eval(b: ProgramBuilder, x: str, lut: IntLUT) -> str:
    """Piecewise-linear table at `x`: `t[i] + round((t[i+1] - t[i]) * f / 2**s)`, x clamped to the table."""
    table = b.table(f"lut_{len(b._instrs)}", np.asarray(lut.table))
    n, s = lut.n_intervals, lut.step_shift
    d, i, f, t0, t1 = b.tmp(), b.tmp(), b.tmp(17), b.tmp(), b.tmp()
    b.clip(d, x, lut.x_lo, lut.x_hi)
    b.sub(d, d, lut.x_lo)
    b.shr(i, d, s, mode=FLOOR)
    b.min(i, i, n - 1)
    b.shl(t0, i, s)
    b.sub(f, d, t0)
    b.lut(t0, table, i)
    b.add(i, i, 1)
    b.lut(t1, table, i)
    b.sub(t1, t1, t0)
    b.mulsh(t1, t1, f, s, mode=HALF_AWAY)
    y = b.tmp(17)
    b.add(y, t0, t1)
    return y


def sigmoid(b: ProgramBuilder, x: str, mant: str, shift: str, lut: IntLUT, lut_bits: int = 16) -> str:
    """sigmoid in Q0.15 of `x` in a static scale: rescale into the table's input grid, then the table."""
    x_lut = b.tmp(lut_bits)
    apply_scale(b, x_lut, x, mant, shift, lut_bits)
    return lut_eval(b, x_lut, lut)


def silu(b: ProgramBuilder, x: str, mant: str, shift: str, lut: IntLUT, gate_frac: int, bits: int) -> str:
    """`x * sigmoid(x)` in the scale of `x`, into a `bits`-wide register."""
    g = sigmoid(b, x, mant, shift, lut)
    y = b.tmp(bits)
    b.mulsh(y, x, g, gate_frac, mode=HALF_AWAY)
    return y
