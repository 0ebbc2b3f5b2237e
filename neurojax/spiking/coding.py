"""SpikingBrain-style spike coding of activations: adaptive threshold, spike counts, spike trains.

Two decoupled steps (spec `spikingbrain.md`, "Adaptive-threshold spike coding" and "Expanding
counts into spike trains"):

1. **float -> integer spike count** (defined in `neurojax.quant.spike`, re-exported here). Per token over the last (channel) axis,
   `V_th = clip(mean(|x|) / k, 1e-5, 1e4)` (`k = 3` by default; the mean is taken in the input
   dtype, then cast to float32) and, in the default `mode="round"`, `s = round_half_even(x / V_th)`
   with **no clipping** unless `clip` is given (a token with one non-zero channel gets `+-k * D`).
   The de-quantised activation is `s * V_th` (`spike_coded`, with a straight-through gradient).
   The report's multi-step integrate-and-fire form is offered as two further, named modes:

   - `"integrate_fire"`: the literal form. The input is injected once (`v[0] = x`, `x[t] = 0`
     for `t > 0`), then `s[t] = [v[t] >= V_th]`, `v[t+1] = v[t] - V_th * s[t]`; the count is the
     number of spikes. It is **non-negative and floor-like**: `floor(x / V_th)` for `x >= 0` up to
     float32 subtraction rounding, and **0 for every negative input** (a negative membrane never
     reaches the threshold).
   - `"integrate_fire_signed"`: an ON/OFF neuron pair per channel, the ON neuron integrating `x`
     and the OFF neuron integrating `-x` with the same dynamics; the count is `on - off`, i.e.
     `sign(x) * floor(|x| / V_th)` (truncation toward zero) up to the same rounding.

   Both integrate-fire modes loop until no neuron is at threshold; with `clip` they run at most
   `clip` steps (the time window), so `|count| <= clip`. Without `clip` the loop is capped at
   `IF_MAX_STEPS` (2^24) steps, where float32 `v - V_th` can stop decreasing; that cap is only
   reached when `V_th` was clipped at 1e4 for enormous activations.

2. **integer count -> spike train over T steps.** `encode(counts, coding)` expands counts into an
   int8 train `[T, ...]` with one of `CODINGS`:

   - `"binary"` (unsigned, spikes in {0, 1}): emit 1 while the remaining count is positive.
   - `"ternary"` (signed, {-1, 0, +1}): emit sign(remaining) and subtract it.
   - `"bitwise"` (sign-magnitude, {-1, 0, +1}): step t carries bit `T-1-t` of `|count|` (MSB
     first), negated for negative counts.
   - `"twos_complement"` ({0, 1}): step t carries bit `T-1-t` of `count mod 2^T` (MSB first).

   T rules (`min_steps`, on the counts after any zero-point shift): binary `max count` (0 for an
   all-zero tensor); ternary `max |count|`; bitwise `max(1, ceil(log2(max|count| + 1)))`;
   two's complement `max(2, ceil(log2(max|count| + 1)) + 1)` (so [-8, 7] takes 5 steps).

   **Zero points** (spec convention `decode_raw(train) == count + zero_point`, int32, one per
   element, carried in the `SpikeTrain`):

   - binary (the only unsigned coding) given any negative count shifts the whole tensor by its
     minimum: `zero_point = -min(counts)` everywhere. `allow_zero_point=False` refuses instead.
   - two's complement adds `2^T` where the top bit is set (the unsigned reading of a negative
     count is `count + 2^T`). This term is part of the coding and is always recorded.
   - upstream also shifts a bidirectional coder (ternary / bitwise / two's complement) given an
     all-non-negative tensor by `ceil(count / 2)` per element; here that is opt-in
     (`half_shift=True`), because a per-element zero point costs the consumer a dense
     correction. Without it an all-non-negative tensor is encoded as is (upstream raises there).

   `decode(train)` returns `decode_raw(train) - zero_point`, i.e. the counts exactly, for every
   coding. `decode_raw` is binary/ternary: sum of the train; bitwise codings: step t weighted by
   `2^(T-1-t)`.

T is data-dependent, so `encode` is an eager helper (validates the counts, computes or checks T)
and `encode_static` is the jitted core taking a static `T` (no data checks inside jit).
Statistics (`sparsity`, `spikes_per_element`, `synaptic_ops`, `dense_macs`) and 45 nm energy
constants (`ENERGY_45NM`, `ENERGY_SOURCES`) feed the spiking tables.
"""
import math
from dataclasses import dataclass
from functools import partial
from typing import Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from neurojax.errors import NeurojaxError
from neurojax.quant.spike import (
    DEFAULT_K,
    IF_MAX_STEPS,
    MODES,
    V_TH_MAX,
    V_TH_MIN,
    adaptive_threshold,
    spike_coded,
    spike_count_ste,
    spike_counts,
)

# ----------------------------------------------------------------------------- constants


CODINGS = ("binary", "ternary", "bitwise", "twos_complement")
UNSIGNED_CODINGS = ("binary",)
BITWISE_CODINGS = ("bitwise", "twos_complement")

# int32 limits of the bitwise codings: sign-magnitude weights reach 2^(T-1) <= 2^30 and the
# largest magnitude 2^31 - 1; two's complement records `2^T` in an int32 zero point.
MAX_STEPS_BITWISE = 31
MAX_STEPS_TWOS = 30
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


# ----------------------------------------------------------------------------- counts -> spike trains

@dataclass(frozen=True)
class SpikeTrain:
    """A spike train and what is needed to decode it.

    `train`: int8 `[T, *shape]` (bitwise codings MSB first); `zero_point`: int32 `[*shape]` with
    `decode_raw(train) == counts + zero_point`; `coding`: one of `CODINGS`; `T`: steps (static).
    A pytree: `train` and `zero_point` are leaves, `coding` and `T` static metadata.
    """

    train: Int[Array, "T ..."]
    zero_point: Int[Array, "..."]
    coding: str
    T: int

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the encoded count tensor (the train without its step axis)."""
        return tuple(self.zero_point.shape)


jax.tree_util.register_dataclass(SpikeTrain, data_fields=["train", "zero_point"], meta_fields=["coding", "T"])


def _check_coding(coding) -> None:
    if coding not in CODINGS:
        raise NeurojaxError(f"unknown spike coding {coding!r}; known: {list(CODINGS)}")


def _host_counts(counts) -> np.ndarray:
    """Counts as an int64 NumPy array after checking they are integers that fit int32."""
    if isinstance(counts, jax.core.Tracer):
        raise NeurojaxError("encode/min_steps need concrete counts (T depends on the data); "
                            "inside jit use encode_static with a static T")
    c = np.asarray(counts)
    if c.dtype.kind in "fc":
        if c.size and not np.all(np.isfinite(c) & (c == np.round(c.real))):
            bad = c[~(np.isfinite(c) & (c == np.round(c.real)))].ravel()[0]
            raise NeurojaxError(f"spike counts must be integers, got non-integral value {bad} in a {c.dtype} "
                                "array; compute counts with spike_counts(x) first")
        raise NeurojaxError(f"spike counts must have an integer dtype, got {c.dtype}; "
                            "cast integral values with .astype(jnp.int32)")
    if c.dtype.kind not in "iu":
        raise NeurojaxError(f"spike counts must have an integer dtype, got {c.dtype}")
    c = c.astype(np.int64)
    if c.size and (c.min() < _I32_MIN or c.max() > _I32_MAX):
        raise NeurojaxError("spike counts must fit in int32, got values in "
                            f"[{int(c.min())}, {int(c.max())}]")
    return c


def _shifted_range(c: np.ndarray, coding: str, half_shift: bool, allow_zero_point: bool) -> tuple[int, int]:
    """(min, max) of the counts as the coding will see them, after any zero-point shift."""
    if c.size == 0:
        return 0, 0
    lo, hi = int(c.min()), int(c.max())
    if coding in UNSIGNED_CODINGS:
        if lo < 0:
            if not allow_zero_point:
                raise NeurojaxError(f"coding {coding!r} is unsigned but the counts contain negative values "
                                    f"(min {lo}); allow a zero point (allow_zero_point=True) or use a signed "
                                    "coding ('ternary', 'bitwise', 'twos_complement')")
            if hi - lo > _I32_MAX:
                raise NeurojaxError(f"counts span [{lo}, {hi}]: shifted by the minimum they exceed int32; "
                                    "use a signed coding")
            lo, hi = 0, hi - lo
    else:
        if half_shift and lo >= 0:
            lo, hi = lo // 2, hi // 2  # count - ceil(count / 2) == floor(count / 2)
        if coding == "bitwise" and lo == _I32_MIN:
            raise NeurojaxError("count -2^31 has no int32 magnitude for sign-magnitude 'bitwise' coding; "
                                "clip the counts to [-(2^31 - 1), 2^31 - 1]")
    return lo, hi


def _needed_steps(coding: str, lo: int, hi: int) -> int:
    """The smallest T whose train represents every count in [lo, hi] (after shifts)."""
    a = max(abs(lo), abs(hi))
    if coding == "binary":
        return hi
    if coding == "ternary":
        return a
    if coding == "bitwise":
        return a.bit_length()
    # two's complement with T bits holds [-2^(T-1), 2^(T-1) - 1]
    return max(1, hi.bit_length() + 1, (-lo - 1).bit_length() + 1 if lo < 0 else 1)


def _spec_steps(coding: str, lo: int, hi: int) -> int:
    a = max(abs(lo), abs(hi))
    if coding == "binary":
        return hi
    if coding == "ternary":
        return a
    if coding == "bitwise":
        return max(1, a.bit_length())  # ceil(log2(a + 1)) == a.bit_length() for a >= 0
    return max(2, a.bit_length() + 1)


def _check_step_cap(coding: str, T: int) -> None:
    cap = {"bitwise": MAX_STEPS_BITWISE, "twos_complement": MAX_STEPS_TWOS}.get(coding)
    if cap is not None and T > cap:
        why = ("its zero point 2^T must fit in int32" if coding == "twos_complement"
               else "its step weights 2^(T-1) and magnitudes must fit in int32")
        raise NeurojaxError(f"coding {coding!r} needs T = {T} steps but is limited to {cap} "
                            f"({why}); clip the counts to a smaller range")


def min_steps(counts, coding: str, *, allow_zero_point: bool = True, half_shift: bool = False) -> int:
    """The spec's number of steps T for `counts` under `coding` (eager; counts after any shift).

    binary `max count` (0 if all zero; negatives first shifted by the minimum), ternary
    `max|count|`, bitwise `max(1, ceil(log2(max|count| + 1)))`, two's complement
    `max(2, ceil(log2(max|count| + 1)) + 1)`.
    """
    _check_coding(coding)
    lo, hi = _shifted_range(_host_counts(counts), coding, half_shift, allow_zero_point)
    T = _spec_steps(coding, lo, hi)
    _check_step_cap(coding, T)
    return T


@partial(jax.jit, static_argnames=("coding", "T", "half_shift"))
def encode_static(counts: Int[Array, "..."], coding: str, T: int, half_shift: bool = False) -> SpikeTrain:
    """Jitted core of `encode` with a static `T`: no data checks (a too-small T wraps silently).

    Zero points are always allowed (binary shifts by the minimum when any count is negative).
    Use `encode` (eager) or `min_steps` to validate counts and choose T.
    """
    _check_coding(coding)
    _check_step_cap(coding, T)
    c = jnp.asarray(counts).astype(jnp.int32)
    zp = jnp.zeros(c.shape, jnp.int32)
    if coding in UNSIGNED_CODINGS:
        shift = -jnp.minimum(jnp.min(c, initial=0), 0)
        c, zp = c + shift, zp + shift
    elif half_shift:
        h = jnp.where(jnp.all(c >= 0), c - c // 2, 0)  # ceil(c / 2) without overflow
        c, zp = c - h, zp - h
    t = jnp.arange(T, dtype=jnp.int32).reshape((T,) + (1,) * c.ndim)
    if coding == "binary":
        train = t < c
    elif coding == "ternary":
        train = jnp.sign(c) * (t < jnp.abs(c))
    elif coding == "bitwise":
        train = jnp.sign(c) * ((jnp.abs(c) >> (T - 1 - t)) & 1)
    else:  # twos_complement
        u = c & ((1 << T) - 1)
        train = (u >> (T - 1 - t)) & 1
        zp = zp + jnp.where(c < 0, jnp.int32(1 << T), 0)
    return SpikeTrain(train.astype(jnp.int8), zp, coding, T)


def encode(counts, coding: str, T: int | None = None, *, allow_zero_point: bool = True,
           half_shift: bool = False) -> SpikeTrain:
    """Expand integer spike counts into a `SpikeTrain` (eager: checks the data, picks T).

    `T=None` takes `min_steps`; a given `T` must be at least the smallest T that represents the
    counts. `allow_zero_point=False` refuses negative counts for the unsigned binary coding;
    `half_shift=True` applies upstream's per-element `ceil(count / 2)` shift to an
    all-non-negative tensor under a signed coding. `decode(encode(c, ...)) == c` exactly.
    Binary and ternary trains take `max|count|` steps (`T x size` int8 in memory): use a
    bitwise coding, or `clip` in `spike_counts`, for large counts.
    """
    _check_coding(coding)
    if half_shift and not allow_zero_point:
        raise NeurojaxError("half_shift=True shifts counts into a zero point; it needs allow_zero_point=True")
    c = _host_counts(counts)
    lo, hi = _shifted_range(c, coding, half_shift, allow_zero_point)
    if T is None:
        T = _spec_steps(coding, lo, hi)
    else:
        if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 0:
            raise NeurojaxError(f"T must be a non-negative integer number of steps, got {T!r}")
        T = int(T)
        need = _needed_steps(coding, lo, hi)
        if T < need:
            raise NeurojaxError(f"T = {T} steps is too small for these counts under {coding!r} coding "
                                f"(values in [{lo}, {hi}] after zero-point shifts): it needs T >= {need} "
                                "(min_steps gives the spec's T)")
    _check_step_cap(coding, T)
    return encode_static(jnp.asarray(c.astype(np.int32)), coding, T, half_shift)


def decode_raw(train: SpikeTrain) -> Int[Array, "..."]:
    """The spec's "decoded" value: train summed (binary/ternary) or weighted by `2^(T-1-t)`.

    Equals `counts + zero_point`. Jittable.
    """
    _check_coding(train.coding)
    s = jnp.asarray(train.train).astype(jnp.int32)
    T = s.shape[0]
    if train.coding in BITWISE_CODINGS:
        w = jnp.left_shift(jnp.int32(1), jnp.arange(T - 1, -1, -1, dtype=jnp.int32))
        s = s * w.reshape((T,) + (1,) * (s.ndim - 1))
    return jnp.sum(s, axis=0, dtype=jnp.int32)


def decode(train: SpikeTrain) -> Int[Array, "..."]:
    """The encoded counts, exactly: `decode_raw(train) - train.zero_point` (int32). Jittable."""
    return decode_raw(train) - jnp.asarray(train.zero_point, jnp.int32)


# ----------------------------------------------------------------------------- statistics

def _train_array(train) -> jax.Array:
    return jnp.asarray(train.train if isinstance(train, SpikeTrain) else train)


def sparsity(train) -> Float[Array, ""]:
    """Fraction of zero entries over steps x elements (float32 scalar; an empty train counts as 1)."""
    s = _train_array(train)
    if s.size == 0:
        return jnp.float32(1.0)
    return (s.size - jnp.count_nonzero(s)).astype(jnp.float32) / jnp.float32(s.size)


def spikes_per_element(train) -> Float[Array, ""]:
    """Non-zero spikes per encoded element (summed over steps; float32 scalar, 0 for no elements)."""
    s = _train_array(train)
    elements = math.prod(s.shape[1:])
    if elements == 0:
        return jnp.float32(0.0)
    return jnp.count_nonzero(s).astype(jnp.float32) / jnp.float32(elements)


def _check_fan_out(fan_out) -> int:
    if isinstance(fan_out, bool) or not isinstance(fan_out, (int, np.integer)) or fan_out < 1:
        raise NeurojaxError(f"fan_out must be a positive integer (synapses per input), got {fan_out!r}")
    return int(fan_out)


def synaptic_ops(train, fan_out: int) -> int:
    """Additions a spike-driven consumer performs: non-zero spikes x fan-out (exact Python int, eager).

    Zero-point corrections and the per-step shift-adds of bitwise codings are not counted.
    """
    fan_out = _check_fan_out(fan_out)
    return int(np.count_nonzero(np.asarray(_train_array(train)))) * fan_out


def dense_macs(shape: Sequence[int], fan_out: int) -> int:
    """Multiply-adds of the dense baseline: inputs (elements of `shape`) x fan-out (Python int)."""
    fan_out = _check_fan_out(fan_out)
    return math.prod(int(d) for d in shape) * fan_out


# ----------------------------------------------------------------------------- energy (45 nm, pJ)

ENERGY_45NM: dict[str, float] = {
    # SpikingBrain report (45 nm, citing prior spiking-transformer work)
    "fp16_mac": 1.5,
    "int8_mac": 0.23,
    "int8_add": 0.03,
    # Horowitz, ISSCC 2014, 45 nm
    "fp32_mul": 3.7,
    "fp32_add": 0.9,
    "int32_mul": 3.1,
    "int32_add": 0.1,
    "int8_mul": 0.2,
}
ENERGY_SOURCES: dict[str, str] = {
    "fp16_mac": "SpikingBrain report (arXiv 2509.05276): FP16 MAC, 45 nm",
    "int8_mac": "SpikingBrain report: INT8 MAC, 45 nm (= Horowitz 2014 8-bit mul + add)",
    "int8_add": "SpikingBrain report: INT8 add / spike-driven accumulate, 45 nm (= Horowitz 2014 8-bit add)",
    "fp32_mul": "Horowitz ISSCC 2014, 45 nm: 32-bit float multiply",
    "fp32_add": "Horowitz ISSCC 2014, 45 nm: 32-bit float add",
    "int32_mul": "Horowitz ISSCC 2014, 45 nm: 32-bit int multiply",
    "int32_add": "Horowitz ISSCC 2014, 45 nm: 32-bit int add",
    "int8_mul": "Horowitz ISSCC 2014, 45 nm: 8-bit int multiply",
}
assert set(ENERGY_SOURCES) == set(ENERGY_45NM)

Ops = Union[str, Sequence[str]]


def op_energy_pj(op: Ops) -> float:
    """Energy (pJ) of one operation named in `ENERGY_45NM`, or the sum for a tuple of names
    (e.g. `("fp32_mul", "fp32_add")` for a Horowitz fp32 MAC)."""
    names = (op,) if isinstance(op, str) else tuple(op)
    unknown = [n for n in names if n not in ENERGY_45NM]
    if unknown or not names:
        raise NeurojaxError(f"unknown energy constant(s) {unknown or names!r}; known: {sorted(ENERGY_45NM)}")
    return float(sum(ENERGY_45NM[n] for n in names))


def spike_energy_pj(train, fan_out: int, op: Ops = "int8_add") -> float:
    """Spike-driven layer energy: `synaptic_ops(train, fan_out) x ENERGY_45NM[op]` (default INT8 add)."""
    return synaptic_ops(train, fan_out) * op_energy_pj(op)


def dense_energy_pj(shape: Sequence[int], fan_out: int, op: Ops = "fp16_mac") -> float:
    """Dense baseline energy: `dense_macs(shape, fan_out) x ENERGY_45NM[op]` (default FP16 MAC)."""
    return dense_macs(shape, fan_out) * op_energy_pj(op)


def energy_per_pair_pj(train, op: Ops = "int8_add") -> float:
    """Energy per activation-weight pair: `spikes_per_element(train) x ENERGY_45NM[op]`.

    The report's 0.034 pJ is 1.13 spikes x 0.03 pJ (INT8 add).
    """
    return float(spikes_per_element(train)) * op_energy_pj(op)


def energy_report(train, fan_out: int, spike_op: Ops = "int8_add",
                  dense_ops: Sequence[Ops] = ("fp16_mac", "int8_mac")) -> dict:
    """Spike-driven vs dense energies of one layer, with the constants used named.

    Returns `{"synaptic_ops", "dense_macs", "spike_pj", "dense_pj": {name: pJ}, "saving":
    {name: 1 - spike/dense}, "constants": {name: pJ per op}}`; names of tuples are joined by '+'.
    """
    s = _train_array(train)
    shape = s.shape[1:]
    key = lambda op: op if isinstance(op, str) else "+".join(op)  # noqa: E731
    spike = spike_energy_pj(s, fan_out, spike_op)
    dense = {key(op): dense_energy_pj(shape, fan_out, op) for op in dense_ops}
    used = [spike_op, *dense_ops]
    constants = {n: ENERGY_45NM[n] for op in used for n in ((op,) if isinstance(op, str) else op)}
    return {
        "synaptic_ops": synaptic_ops(s, fan_out),
        "dense_macs": dense_macs(shape, fan_out),
        "spike_pj": spike,
        "dense_pj": dense,
        "saving": {name: (1.0 - spike / d) if d else float("nan") for name, d in dense.items()},
        "constants": constants,
    }


__all__ = [
    "BITWISE_CODINGS", "CODINGS", "DEFAULT_K", "ENERGY_45NM", "ENERGY_SOURCES", "IF_MAX_STEPS",
    "MAX_STEPS_BITWISE", "MAX_STEPS_TWOS", "MODES", "SpikeTrain", "UNSIGNED_CODINGS", "V_TH_MAX",
    "V_TH_MIN", "adaptive_threshold", "decode", "decode_raw", "dense_energy_pj", "dense_macs",
    "encode", "encode_static", "energy_per_pair_pj", "energy_report", "min_steps", "op_energy_pj",
    "sparsity", "spike_count_ste", "spike_coded", "spike_counts", "spike_energy_pj", "spikes_per_element", "synaptic_ops",
]
