"""Integer-only fixed-point arithmetic (int32 JAX, bit exact, no floats, no int64).

Used by the integer-only MatMul-free LM and by the neuromorphic-core interpreter that must
match it bit for bit, so every forward function here is pure int32 (jittable, vmappable).
JAX runs with x64 disabled, so products wider than 32 bits are formed exactly from 16-bit
limbs and kept as a two-word value `P = T * 2**17 + low` (`0 <= low < 2**17`); rounding then
looks only at the quotient, the guard bit (bit n-1) and a sticky bit (any lower bit set),
which is exact for every input and never overflows internally.

Only the host-side helpers that turn float constants into integers at model-conversion time
(`quantize`, `multiplier_shift`) use floats; `dequantize` is the one float output.

Rounding modes (dividing by a power of two, value `v = x / 2**n` taken exactly):
  "floor"        largest integer <= v (an arithmetic right shift),
  "toward_zero"  drop the fraction (C integer division; Lava's `sign(p) * (|p| >> k)`),
  "half_away"    nearest, ties away from zero (MatMul-free activations),
  "half_even"    nearest, ties to the even integer (IEEE / `jnp.round`).
Overflow policies: "wrap" (two's complement modulo 2**bits) and "saturate" (clip).
"""
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from neurojax.errors import NeurojaxError

ROUNDING = ("floor", "toward_zero", "half_away", "half_even")
OVERFLOW = ("wrap", "saturate")

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

# Width of the low word of an exact two-word product `P = T * 2**LOW_BITS + low`.
# 17 keeps |T| <= 2**30 for |P| <= 2**47 (int32 a times |b| <= 2**16).
LOW_BITS = 17
_LOW_MASK = (1 << LOW_BITS) - 1
MAX_PRODUCT_SHIFT = 62  # mul_shift / apply_multiplier accept 0 <= n <= 62


# ----------------------------------------------------------------------------- validation

def _check_mode(mode: str) -> str:
    if mode not in ROUNDING:
        raise NeurojaxError(f"unknown rounding mode {mode!r}; known: {list(ROUNDING)}")
    return mode


def _check_overflow(overflow: str) -> str:
    if overflow not in OVERFLOW:
        raise NeurojaxError(f"unknown overflow policy {overflow!r}; known: {list(OVERFLOW)}")
    return overflow


def _is_pyint(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_bits(bits, lo: int = 1, hi: int = 32, name: str = "bits") -> int:
    if not _is_pyint(bits) or not lo <= int(bits) <= hi:
        raise NeurojaxError(f"{name} must be an integer in [{lo}, {hi}], got {bits!r}")
    return int(bits)


def _as_int32(x, name: str = "x") -> Int[Array, "..."]:
    """`x` as an int32 array; integer dtypes that fit int32 are widened, anything else is an error."""
    arr = jnp.asarray(x)
    dt = np.dtype(arr.dtype)
    ok = (np.issubdtype(dt, np.signedinteger) and dt.itemsize <= 4) or (
        np.issubdtype(dt, np.unsignedinteger) and dt.itemsize <= 2)
    if not ok:
        raise NeurojaxError(f"{name} must be an integer array with int32 values, got dtype {dt}")
    return arr.astype(jnp.int32)


def _as_shift(n, hi: int, name: str = "n") -> Int[Array, "..."]:
    """A shift amount as int32: a Python int is range-checked now, a traced array cannot be."""
    if _is_pyint(n):
        if not 0 <= int(n) <= hi:
            raise NeurojaxError(f"shift {name} must be in [0, {hi}], got {int(n)}")
        return jnp.int32(int(n))
    if isinstance(n, np.ndarray) and np.issubdtype(n.dtype, np.integer) and n.size:
        if n.min() < 0 or n.max() > hi:
            raise NeurojaxError(f"shift {name} must be in [0, {hi}], got values in [{n.min()}, {n.max()}]")
    return _as_int32(n, name)


def _low_mask(k: Int[Array, "..."]) -> Int[Array, "..."]:
    """`2**k - 1` in int32 for 0 <= k <= 31 (k = 31 wraps through INT32_MIN to INT32_MAX)."""
    return jnp.left_shift(jnp.int32(1), k) - jnp.int32(1)


def _round_bits(q, guard, sticky, neg, mode: str) -> Int[Array, "..."]:
    """Round from the floor quotient `q`, the guard bit (the 2**-1 digit of the exact quotient),
    the sticky bit (any lower digit set) and the sign of the dividend.

    All additions are modulo 2**32, so a result that does not fit int32 wraps consistently.
    """
    if mode == "floor":
        return q
    if mode == "toward_zero":
        up = neg & (guard | sticky)
    elif mode == "half_away":
        up = guard & (sticky | ~neg)
    else:  # half_even
        up = guard & (sticky | ((q & 1) == 1))
    return q + up.astype(jnp.int32)


# ----------------------------------------------------------------------------- shifts, width

def shift_right(x: Int[Array, "..."], n, mode: str = "half_away") -> Int[Array, "..."]:
    """Exact `round(x / 2**n)` with the named rounding, for every int32 `x` (INT32_MIN included).

    `n` is a Python int or an int32 array broadcastable to `x` (per-element / per-token shifts),
    0 <= n <= 31 (an array outside that range gives unspecified values); n = 0 returns `x`.
    Quotient, guard and sticky bits are taken separately, so nothing overflows internally
    (unlike `(x + 2**(n-1)) >> n`).
    """
    _check_mode(mode)
    x = _as_int32(x)
    n = _as_shift(n, 31)
    p = jnp.maximum(n - 1, 0)
    q = jnp.right_shift(x, n)
    guard = (n >= 1) & ((jnp.right_shift(x, p) & 1) == 1)
    sticky = (x & _low_mask(p)) != 0  # bits below n-1; p = 0 gives an empty mask
    return _round_bits(q, guard, sticky, x < 0, mode)


def wrap(x: Int[Array, "..."], bits: int) -> Int[Array, "..."]:
    """Two's-complement wrap to a signed `bits`-wide value (1..32), returned in int32.

    The result is congruent to `x` modulo 2**bits and lies in [-2**(bits-1), 2**(bits-1) - 1].
    """
    bits = _check_bits(bits)
    x = _as_int32(x)
    s = 32 - bits
    return jnp.right_shift(jnp.left_shift(x, s), s)


def _range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def saturate(x: Int[Array, "..."], bits: int) -> Int[Array, "..."]:
    """Clip to the signed `bits`-wide range [-2**(bits-1), 2**(bits-1) - 1] (bits 1..32)."""
    lo, hi = _range(_check_bits(bits))
    return jnp.clip(_as_int32(x), jnp.int32(lo), jnp.int32(hi))


def overflows(x: Int[Array, "..."], bits: int) -> Bool[Array, "..."]:
    """True where `x` lies outside the signed `bits`-wide range (bits 1..32)."""
    lo, hi = _range(_check_bits(bits))
    x = _as_int32(x)
    return (x < jnp.int32(lo)) | (x > jnp.int32(hi))


def _count(mask: Bool[Array, "..."]) -> Int[Array, ""]:
    return jnp.sum(mask, dtype=jnp.int32)


def fit(x: Int[Array, "..."], bits: int, overflow: str = "saturate") -> tuple[Int[Array, "..."], Int[Array, ""]]:
    """Bring `x` into `bits` by the named overflow policy; return `(value, count)`.

    `count` (int32 scalar) is the number of elements that were out of range: the overflow
    counter that callers accumulate and report instead of failing silently.
    """
    _check_overflow(overflow)
    x = _as_int32(x)
    value = wrap(x, bits) if overflow == "wrap" else saturate(x, bits)
    return value, _count(overflows(x, bits))


def _shift_left_parts(x, n, bits: int):
    """`(x << n mod 2**32, out_of_range)` where out_of_range is exact for the true x * 2**n."""
    y = jnp.left_shift(x, n)
    lost = jnp.right_shift(y, n) != x  # x * 2**n did not fit int32
    return y, lost | overflows(y, bits)


def _saturate_where(y, ovf, sign_src, bits: int):
    lo, hi = _range(bits)
    return jnp.where(ovf, jnp.where(sign_src < 0, jnp.int32(lo), jnp.int32(hi)), y)


def shift_left(x: Int[Array, "..."], n, overflow: str = "wrap", bits: int = 32) -> Int[Array, "..."]:
    """`x * 2**n` (0 <= n <= 31, int or int32 array), then wrapped or saturated to `bits`.

    Saturation is decided on the exact product, also when it does not fit int32.
    """
    _check_overflow(overflow)
    bits = _check_bits(bits)
    x = _as_int32(x)
    n = _as_shift(n, 31)
    y, ovf = _shift_left_parts(x, n, bits)
    if overflow == "wrap":
        return wrap(y, bits)
    return _saturate_where(y, ovf, x, bits)


def bit_length(x: Int[Array, "..."]) -> Int[Array, "..."]:
    """Number of bits needed for `x >= 0` (0 for 0, 31 for INT32_MAX), via `lax.clz`; negatives give 32."""
    x = _as_int32(x)
    return jnp.int32(32) - jax.lax.clz(x)


# ----------------------------------------------------------------------------- exact products

def _product_narrow(a, b):
    """Exact `a * b` as `(T, low)`, `a * b = T * 2**17 + low`, for int32 `a` and |b| <= 2**15.

    Two 16x16-bit partial products: `a = ah * 2**16 + al` with `0 <= al < 2**16`.
    """
    ah = jnp.right_shift(a, 16)
    al = a & 0xFFFF
    hi = ah * b  # |hi| <= 2**30
    lo = al * b  # |lo| < 2**31
    # a*b = hi * 2**16 + lo = (hi >> 1) * 2**17 + (hi & 1) * 2**16 + (lo >> 17) * 2**17 + (lo & mask)
    c = jnp.left_shift(hi & 1, 16) + (lo & _LOW_MASK)  # < 2**18
    t = jnp.right_shift(hi, 1) + jnp.right_shift(lo, LOW_BITS) + jnp.right_shift(c, LOW_BITS)
    return t, c & _LOW_MASK


def _product_wide(a, b):
    """Exact `a * b` as `(T, low)` for int32 `a` and |b| <= 2**16 (four partial products).

    `a = ah * 2**16 + al`, `b = bh * 2**8 + bl` (`al`, `bl` unsigned), every partial product
    is below 2**25 in magnitude, and the sum is carried into the 17-bit low word.
    """
    ah = jnp.right_shift(a, 16)
    al = a & 0xFFFF
    bh = jnp.right_shift(b, 8)
    bl = b & 0xFF
    x0 = al * bl  # weight 2**0,  [0, 2**24)
    x1 = al * bh  # weight 2**8,  |.| <= 2**24
    x2 = ah * bl  # weight 2**16, |.| < 2**23
    x3 = ah * bh  # weight 2**24, |.| <= 2**23
    c = x0 + jnp.left_shift(x1 & 0x1FF, 8) + jnp.left_shift(x2 & 1, 16)  # < 2**25
    t = (jnp.right_shift(x1, 9) + jnp.right_shift(x2, 1) + jnp.left_shift(x3, 7)
         + jnp.right_shift(c, LOW_BITS))
    return t, c & _LOW_MASK


def _round_product(t, low, n, mode: str):
    """`round((t * 2**17 + low) / 2**n)` for 0 <= n <= 62 (any larger n is also exact).

    Requires |t| < 2**30 so that shifting `t` by 31 leaves only its sign (the value's
    infinite two's-complement extension); results beyond int32 wrap modulo 2**32.
    """
    k = LOW_BITS
    # floor quotient
    q_small = jnp.left_shift(t, jnp.clip(k - n, 0, k)) + jnp.right_shift(low, jnp.clip(n, 0, k))
    q_big = jnp.right_shift(t, jnp.clip(n - k, 0, 31))
    q = jnp.where(n <= k, q_small, q_big)
    # guard bit: bit n-1 of the product
    p = n - 1
    g_low = jnp.right_shift(low, jnp.clip(p, 0, k - 1)) & 1
    g_high = jnp.right_shift(t, jnp.clip(p - k, 0, 31)) & 1
    guard = (n >= 1) & (jnp.where(p < k, g_low, g_high) == 1)
    # sticky bit: any of bits 0 .. n-2 of the product
    s_low = (low & _low_mask(jnp.clip(p, 0, k))) != 0
    s_high = (low != 0) | ((t & _low_mask(jnp.clip(p - k, 0, 31))) != 0)
    sticky = jnp.where(p <= k, s_low, s_high)
    return _round_bits(q, guard, sticky, t < 0, mode)


def _limb_mul_shift(a, b, n, mode: str, b_bits: int, product, name: str):
    _check_mode(mode)
    if _is_pyint(b) and not abs(int(b)) <= 2**b_bits:
        hint = "; use mul_shift_wide for |b| <= 2**16" if b_bits == 15 else ""
        raise NeurojaxError(f"{name} needs |b| <= 2**{b_bits}, got {int(b)}{hint}")
    a, b = _as_int32(a, "a"), _as_int32(b, "b")
    t, low = product(a, b)
    return _round_product(t, low, _as_shift(n, MAX_PRODUCT_SHIFT), mode)


def mul_shift(a: Int[Array, "..."], b, n, mode: str = "half_away") -> Int[Array, "..."]:
    """Exact `round(a * b / 2**n)` as if in infinite precision, without int64 (16-bit limbs).

    Contract: `a` any int32; `b` an int or int32 array broadcast against `a` (a per-channel or
    per-token multiplier) with |b| <= 2**15 (larger |b|: use `mul_shift_wide`; unchecked for
    arrays); 0 <= n <= 62 (int or int32 array). If the exact rounded result does not fit int32
    it wraps modulo 2**32. The workhorse of "multiply by an integer multiplier, then shift".
    """
    return _limb_mul_shift(a, b, n, mode, 15, _product_narrow, "mul_shift")


def mul_shift_split(a: Int[Array, "..."], b: Int[Array, "..."], n: int, mode: str = "half_away") -> Int[Array, "..."]:
    """`mul_shift` for a static shift 1 <= n <= 31 and |b| < 2**(31 - n): two int32 products.

    Splits `a = a_hi * 2**n + a_lo` (floor, 0 <= a_lo < 2**n), so `a * b / 2**n = a_hi * b +
    a_lo * b / 2**n` where `a_lo * b` is exact in int32: its floor shift, guard and sticky bits
    round the sum. Same result as `mul_shift` (exact, wrapping modulo 2**32 beyond int32), in a
    few operations instead of four limbs; the interpreter uses it for `mulsh` by an immediate.
    """
    _check_mode(mode)
    if not isinstance(n, int) or not 1 <= n <= 31:
        raise NeurojaxError(f"mul_shift_split needs a static shift 1 <= n <= 31, got {n!r}")
    a, b = _as_int32(a, "a"), _as_int32(b, "b")
    low = a & _low_mask(n)
    p = low * b  # |p| < 2**n * 2**(31 - n): exact
    q = jnp.right_shift(a, n) * b + jnp.right_shift(p, n)
    guard = (jnp.right_shift(p, n - 1) & 1) == 1
    sticky = (p & _low_mask(n - 1)) != 0
    neg = ((a < 0) != (b < 0)) & (a != 0) & (b != 0)
    return _round_bits(q, guard, sticky, neg, mode)


def mul_shift_wide(a: Int[Array, "..."], b, n, mode: str = "half_away") -> Int[Array, "..."]:
    """`mul_shift` for |b| <= 2**16 (e.g. a Q0.16 gate where 65536 == 1.0): four partial products.

    Same exactness, range of `n` (0..62) and wrap-on-overflow contract as `mul_shift`.
    """
    return _limb_mul_shift(a, b, n, mode, 16, _product_wide, "mul_shift_wide")


# ----------------------------------------------------------------------------- block floating point

def normalize_shift(x: Int[Array, "..."], target_bits: int, axis=-1) -> tuple[Int[Array, "..."], Int[Array, "..."]]:
    """Per-slice right shift bringing `x` under `target_bits` (2..32): block floating point.

    Returns `(y, k)`: `k >= 0` (int32, the shape of `x` with `axis` kept as 1) is the smallest
    shift with `max|y| < 2**(target_bits-1)` over the slice, `y = shift_right(x, k, "half_away")`;
    k = 0 where the slice is already small. Used to feed wide integers to a multiplier.
    """
    t = _check_bits(target_bits, 2, 32, "target_bits")
    x = _as_int32(x)
    lim = jnp.int32((1 << (t - 1)) - 1)
    pmax = jnp.max(x, axis=axis, keepdims=True)
    nmin = jnp.min(x, axis=axis, keepdims=True)
    # u = max over the slice of |x| - [x < 0] (no overflow at INT32_MIN). With M = max|x|, the
    # answer is k0 or k0 + 1, k0 = max(bit_length(M) - (t-1), 0) (half-away rounding may carry
    # into one more bit). k_lo below equals k0, except when M = -nmin = 2**j exactly, where it is
    # k0 - 1 and fails while k0 itself passes (M / 2**k0 is then exact): one test decides.
    u = jnp.maximum(pmax, ~nmin)
    k_lo = jnp.maximum(bit_length(u) - (t - 1), 0)  # <= 30 because t >= 2
    fails = (shift_right(pmax, k_lo) > lim) | (shift_right(nmin, k_lo) < -lim)
    k = k_lo + fails.astype(jnp.int32)
    return shift_right(x, k, "half_away"), k


def sum_sq_shift(n: int, bits: int = 15) -> int:
    """Static right shift of `n` values with |v| < 2**(bits-1) so that the sum of their squares fits int32."""
    return max(0, math.ceil((math.log2(n) + 2 * (bits - 1) - 31) / 2))


# ----------------------------------------------------------------------------- formats, host side

@dataclass(frozen=True)
class FxFormat:
    """Signed two's-complement fixed point: value = integer * 2**-frac, `bits` wide (2..32).

    `frac` may be negative or exceed `bits` (|frac| <= 64), e.g. Q0.16 is FxFormat(17, 16).
    """
    bits: int
    frac: int

    def __post_init__(self):
        _check_bits(self.bits, 2, 32, "FxFormat.bits")
        if not _is_pyint(self.frac) or not -64 <= int(self.frac) <= 64:
            raise NeurojaxError(f"FxFormat.frac must be an integer in [-64, 64], got {self.frac!r}")

    @property
    def min_int(self) -> int:
        """Smallest integer code, -2**(bits-1)."""
        return -(1 << (self.bits - 1))

    @property
    def max_int(self) -> int:
        """Largest integer code, 2**(bits-1) - 1."""
        return (1 << (self.bits - 1)) - 1

    @property
    def resolution(self) -> float:
        """Value of one LSB, 2**-frac."""
        return math.ldexp(1.0, -self.frac)

    @property
    def min_value(self) -> float:
        return math.ldexp(float(self.min_int), -self.frac)

    @property
    def max_value(self) -> float:
        return math.ldexp(float(self.max_int), -self.frac)


def _check_fmt(fmt, name: str = "fmt") -> "FxFormat":
    if not isinstance(fmt, FxFormat):
        raise NeurojaxError(f"{name} must be an FxFormat(bits, frac), got {fmt!r}")
    return fmt


def _round_float64(v: np.ndarray, mode: str) -> np.ndarray:
    if mode == "floor":
        return np.floor(v)
    if mode == "toward_zero":
        return np.trunc(v)
    if mode == "half_even":
        return np.rint(v)
    a = np.abs(v)  # half_away; exact in float64: floor(a) and a - floor(a) have no rounding error
    f = np.floor(a)
    return np.copysign(f + (a - f >= 0.5), v)


def quantize(x, fmt: FxFormat, mode: str = "half_even", overflow: str = "saturate") -> Int[Array, "..."]:
    """Host side: float values to `fmt` integer codes, `round(x * 2**frac)` then wrap/saturate.

    Computed in NumPy float64 (exact for float32 inputs), so it is for model conversion, not
    for jitted code; NaN is an error, and so is +-inf unless saturating.
    """
    _check_fmt(fmt)
    _check_mode(mode)
    _check_overflow(overflow)
    v = np.asarray(x, dtype=np.float64)
    if np.isnan(v).any():
        raise NeurojaxError("quantize: input contains NaN")
    v = _round_float64(np.ldexp(v, fmt.frac), mode)
    if overflow == "saturate":
        v = np.clip(v, fmt.min_int, fmt.max_int)
    else:
        if np.isinf(v).any():
            raise NeurojaxError("quantize: cannot wrap an infinite value; use overflow='saturate'")
        m = float(1 << fmt.bits)
        v = np.fmod(v, m)  # exact, |v| < 2**bits
        v = np.where(v > fmt.max_int, v - m, v)
        v = np.where(v < fmt.min_int, v + m, v)
    return jnp.asarray(v.astype(np.int32))


def dequantize(x_int: Int[Array, "..."], fmt: FxFormat) -> Float[Array, "..."]:
    """Integer codes to float32 values `x * 2**-frac` (one rounding, only when |x| > 2**24)."""
    _check_fmt(fmt)
    x = _as_int32(x_int, "x_int")
    return x.astype(jnp.float32) * jnp.float32(math.ldexp(1.0, -fmt.frac))


def multiplier_shift(real: float, mult_bits: int = 15) -> tuple[int, int]:
    """Host side: integer multiplier and shift with `real ~= M * 2**-S`, for `apply_multiplier`.

    For real > 0: 2**(mult_bits-1) <= M < 2**mult_bits, 0 <= S <= 62, relative error
    <= 2**-mult_bits (M is real * 2**S rounded half to even); real == 0 gives (0, 0).
    mult_bits is 1..16. Negative or non-finite reals, and reals needing S outside [0, 62]
    (too large for mult_bits, or too small), raise NeurojaxError.
    """
    mb = _check_bits(mult_bits, 1, 16, "mult_bits")
    real = float(real)
    if not math.isfinite(real) or real < 0:
        raise NeurojaxError(f"multiplier_shift needs a finite real >= 0, got {real!r}")
    if real == 0.0:
        return 0, 0
    f, e = math.frexp(real)  # real = f * 2**e, 0.5 <= f < 1
    m = round(f * (1 << mb))  # exact product, half-even rounding
    s = mb - e
    if m == 1 << mb:
        m, s = m >> 1, s - 1
    if s < 0:
        raise NeurojaxError(
            f"multiplier {real!r} needs a negative shift ({s}) with mult_bits={mb}: it must be "
            f"below {2.0**mb - 0.5}; fold the excess into a left shift or a larger scale")
    if s > MAX_PRODUCT_SHIFT:
        raise NeurojaxError(
            f"multiplier {real!r} is too small: it needs shift {s} > {MAX_PRODUCT_SHIFT}; treat it as 0")
    return int(m), int(s)


def apply_multiplier(x: Int[Array, "..."], M, S, mode: str = "half_away") -> Int[Array, "..."]:
    """Exact `round(x * M / 2**S)` in int32: a `multiplier_shift` pair applied to integers.

    0 <= M <= 2**16 (an int, or an int32 array such as per-channel multipliers), 0 <= S <= 62:
    shifts past 31 need no second rounding step because the exact 48-bit product is rounded
    once. Uses `mul_shift` when M is an int <= 2**15, `mul_shift_wide` otherwise; results
    that do not fit int32 wrap.
    """
    if _is_pyint(M):
        if not 0 <= int(M) <= 2**16:
            raise NeurojaxError(f"apply_multiplier needs 0 <= M <= 2**16, got {int(M)}")
        if int(M) <= 2**15:
            return mul_shift(x, int(M), S, mode)
    return mul_shift_wide(x, M, S, mode)


def rescale(x: Int[Array, "..."], from_fmt: FxFormat, to_fmt: FxFormat, mode: str = "half_away",
            overflow: str = "saturate") -> tuple[Int[Array, "..."], Int[Array, ""]]:
    """Move codes from `from_fmt` to `to_fmt`: exact shift of the binary point, then fit the width.

    More fraction bits shift left (exact), fewer round with `mode`; returns `(value, count)`
    with the number of elements that overflowed `to_fmt.bits` (judged on the exact value).
    The two binary points must be at most 31 bits apart.
    """
    _check_fmt(from_fmt, "from_fmt")
    _check_fmt(to_fmt, "to_fmt")
    _check_mode(mode)
    _check_overflow(overflow)
    d = to_fmt.frac - from_fmt.frac
    if abs(d) > 31:
        raise NeurojaxError(f"rescale: binary points {from_fmt.frac} and {to_fmt.frac} are more than 31 bits apart")
    x = _as_int32(x)
    bits = to_fmt.bits
    if d >= 0:
        y, ovf = _shift_left_parts(x, d, bits)
        value = wrap(y, bits) if overflow == "wrap" else _saturate_where(y, ovf, x, bits)
        return value, _count(ovf)
    return fit(shift_right(x, -d, mode), bits, overflow)


__all__ = [
    "FxFormat", "INT32_MAX", "INT32_MIN", "OVERFLOW", "ROUNDING", "apply_multiplier", "bit_length",
    "dequantize", "fit", "mul_shift", "mul_shift_wide", "multiplier_shift", "normalize_shift",
    "overflows", "quantize", "rescale", "saturate", "shift_left", "shift_right", "sum_sq_shift", "wrap",
]
