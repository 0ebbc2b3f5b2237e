"""Spiking neurons as Flax modules (float, surrogate gradients), each with a fixed-point twin.

Float modules (`LIF`, `AdaptiveLIF`, `IF`, `SigmaDelta`) are pure-functional `linen` modules:
  - inputs are **time-major** `x_seq: [T, B, ...]` (the scan axis first; the repository's
    batch-major `[B, T, ...]` sequences need `jnp.swapaxes(x, 0, 1)`),
  - the state is explicit: `module.initial_state(shape)` (zeros, `shape = x_seq.shape[1:]`),
    `module.apply(variables, x_seq, state) -> (spikes_seq, new_state)`, and
    `module.apply(variables, state, x, method="step") -> (new_state, spikes)` for one step,
  - each has a pure single-step function (`lif_step`, `alif_step`, `if_step`,
    `sigma_delta_step`) with the `lax.scan` carry signature `(state, x) -> (state, out)`.
Decays, thresholds (and for `AdaptiveLIF` the adaptation constants) are config fields; with
`learnable=True` they become parameters of shape `param_shape` (default scalar; e.g.
`(features,)` for one per channel), initialised from the fields. In the forward pass learned
decays are clipped to [0, 1], learned thresholds to >= 1e-6 (SigmaDelta: >= 0), `beta` to >= 0. The spike is
the Heaviside step with a surrogate gradient (`neurojax.spiking.surrogate`, by name).

Discrete time, dt = 1 step, multiplicative decays (forward Euler of `tau dv/dt = -v` with
`decay = 1 - dt / tau`, Loihi's convention). Float LIF, per step:
    u = decay_u * u + x
    v = decay_v * v + u + bias
    s = spike(v - threshold)                       (">" by default; ">=" named)
    v = v * (1 - s)  (reset="zero")  or  v - threshold * s  (reset="subtract")
(the spike in the reset is `stop_gradient`-ed when `detach_reset`, the default).
`LIF.order` names when the spike and the reset happen relative to the integration; with
`p = decay_v * v_prev + u + bias` (u as above) and `H` the spike function:
    "neurojax" (default): the four lines above; the state v is the membrane after the reset.
    "snntorch" (snnTorch 1.0 `Leaky`, reset_delay=True): r = H(v_prev - threshold), then
        v = p - threshold * r                 (reset="subtract")
        v = decay_v * (1 - r) * v_prev + u + bias   (reset="zero")
        s = H(v - threshold); the state v is this membrane, before its own spike's reset,
        which the next step applies through r (= the previous step's spike, detached when
        `detach_reset`: snnTorch always detaches it). The subtracted threshold is not decayed.
    "spyx" (Spyx 1.0 `LIF`): s = H(v_prev - threshold) first (so s_0 = 0 from a zero state and
        the output lags the membrane by one step), then
        v = p - threshold * s                 (reset="subtract"; Spyx does not detach s)
        v = decay_v * (1 - s) * v_prev + u + bias   (reset="zero", by analogy).
With decay_u = 0 (u = x: a current-free LIF, snnTorch's and Spyx's `beta` = decay_v), bias 0
and reset="subtract" the last two are exactly those libraries' neurons. Only "neurojax"
has a fixed-point twin (it is Lava's order).

Fixed-point twins (int32 only, jittable; products via `neurojax.quant.fixed.mul_shift`):
  - `lif_fixed_step(params, state, a_in, options)`: the spec's reference rules of Lava 0.10.0's
    `PyLifModelBitAcc` exactly (spec `neuromorphic.md`, "Fixed-point rules"): u decays by
    `(4096 - (du + 1)) / 4096` rounded toward zero, `u += a_in << 6` (int32), the single
    asymmetric 24-bit correction (or "wrap" / "saturate", named), v decays by
    `(4096 - dv) / 4096` toward zero, `v = clip(v + u + bias, +-(2**23 - 1))` with
    `bias = bias_mant << bias_exp` (or `>> -bias_exp`, floor), spike where `v > vth << 6`
    (strict; ">=" named), v = 0 where spiked (u is not reset). Intermediate sums wrap in int32
    as the reference's int32 arrays do (and as `neurojax.neuromorphic.neurons` does).
  - IF twin: the LIF rules with du = 4095 (u holds only this step's input), dv = 0 (no leak)
    and `reset="subtract"`: `v -= vth << 6` where spiked (then clipped to +-(2**23 - 1)).
  - AdaptiveLIF twin: the LIF rules plus a threshold trace `a` (in vth units, 0..2**23 - 1):
    before the compare `a` decays by `(4096 - da) / 4096` toward zero (da = 0: no decay), the
    spike compare is `v > (vth + a) << 6` (a subtract reset removes `(vth + a) << 6`), and
    after it `a = min(a + beta * s, 2**23 - 1)`.
  - `sigma_delta_fixed_step`: the spec's sigma-delta rules (Lava `proc/sdn`), int32 wrap,
    `>=` compare, payload `s >> state_exp` (floor) brought into `payload_bits` (saturate, as
    the interpreter's default preset).

Float -> fixed mapping (`module.fixed_params(input_frac)`, host side): the input is read in
`FxFormat(24, input_frac)`, i.e. `a_in = round_half_away(x * 2**input_frac)`; u and v are
then integers in units of `2**-(input_frac + 6)` (Lava's `<< 6`), and
    du = clip(4095 - round(4096 * decay_u), 0, 4095)   (Lava's "+1": u always loses >= 1/4096)
    dv = clip(4096 - round(4096 * decay_v), 0, 4095)   (decay_v < 1/4096 is not representable)
    da = clip(4096 - round(4096 * decay_a), 0, 4095)
    vth = round(threshold * 2**input_frac),  beta = round(beta * 2**input_frac)
    bias_mant << bias_exp = round(bias * 2**(input_frac + 6))  (13-bit mantissa, exp 0..18)
Rounding is half away from zero. Sigma-delta: see `SigmaDelta.fixed_params`.
"""
import dataclasses
import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from neurojax.errors import NeurojaxError
from neurojax.nn.registry import NEURONS
from neurojax.quant.fixed import (
    FxFormat,
    mul_shift,
    quantize,
    saturate,
    shift_right,
    wrap,
)
from neurojax.quant.lava_fixed import (  # noqa: F401  # noqa: F401
    ACT_SHIFT,
    ACTIVATIONS,
    BIAS_MANT_BITS,
    DECAY_BITS,
    DECAY_MAX,
    DECAY_UNITY,
    PAYLOAD_OVERFLOWS,
    U_HALF,
    U_SPAN,
    UV_BITS,
    V_MAX,
)
from neurojax.quant.lava_fixed import CURRENT_WRAPS as CURRENTS
from neurojax.spiking.surrogate import (
    check_compare,
    get_surrogate,
    resolve_slope,
    spike_fn,
)

RESETS = ("zero", "subtract")
ORDERS = ("neurojax", "snntorch", "spyx")  # LIF update orders (module doc)
MIN_THRESHOLD = 1e-6  # floor applied to learned thresholds

# ----------------------------------------------------------------------------- validation helpers


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _check_unit(owner: str, name: str, value) -> None:
    if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
        raise NeurojaxError(f"{owner}.{name} must be a number in [0, 1] (a per-step decay factor), got {value!r}")


def _check_positive(owner: str, name: str, value, allow_zero: bool = False) -> None:
    ok = _is_number(value) and math.isfinite(float(value)) and (float(value) >= 0 if allow_zero else float(value) > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise NeurojaxError(f"{owner}.{name} must be a finite number {bound}, got {value!r}")


def _check_finite(owner: str, name: str, value) -> None:
    if not _is_number(value) or not math.isfinite(float(value)):
        raise NeurojaxError(f"{owner}.{name} must be a finite number, got {value!r}")


def _check_choice(owner: str, name: str, value, choices) -> None:
    if value not in choices:
        raise NeurojaxError(f"{owner}.{name} {value!r} must be one of {choices}")


def _check_common(m) -> None:
    """Surrogate, slope, compare and the learnable-parameter shape of a float module."""
    owner = type(m).__name__
    get_surrogate(m.surrogate)
    resolve_slope(m.surrogate, m.slope)
    check_compare(m.compare)
    if not isinstance(m.param_shape, tuple) or not all(isinstance(d, int) and d > 0 for d in m.param_shape):
        raise NeurojaxError(f"{owner}.param_shape must be a tuple of positive ints, got {m.param_shape!r}")


def _check_inputs(owner: str, x_seq, state) -> jax.Array:
    """`x_seq` as a float array `[T, ...]` whose per-step shape matches every state leaf."""
    x_seq = jnp.asarray(x_seq)
    if not jnp.issubdtype(x_seq.dtype, jnp.floating):
        raise NeurojaxError(f"{owner}: x_seq must be a float array [T, B, ...], got dtype {x_seq.dtype}")
    if x_seq.ndim < 1:
        raise NeurojaxError(f"{owner}: x_seq must be time-major [T, B, ...], got a scalar")
    _check_state(owner, state, x_seq.shape[1:])
    return x_seq


def _check_state(owner: str, state, shape: tuple) -> None:
    if not isinstance(state, tuple) or not hasattr(state, "_fields"):
        raise NeurojaxError(f"{owner}: state must be the NamedTuple from initial_state(shape), "
                            f"got {type(state).__name__}")
    for name, leaf in zip(state._fields, state):
        if tuple(jnp.shape(leaf)) != tuple(shape):
            raise NeurojaxError(f"{owner}: state.{name} has shape {tuple(jnp.shape(leaf))}, expected {tuple(shape)} "
                                f"(one step of the time-major input [T, B, ...]); build it with initial_state(shape)")


def _reset(v, s, theta, reset: str, detach: bool):
    r = jax.lax.stop_gradient(s) if detach else s
    if reset == "zero":
        return v * (1.0 - r)
    return v - r * theta


# ----------------------------------------------------------------------------- float states and steps


class LIFState(NamedTuple):
    u: Float[Array, "..."]  # synaptic current
    v: Float[Array, "..."]  # membrane voltage


class ALIFState(NamedTuple):
    u: Float[Array, "..."]
    v: Float[Array, "..."]
    a: Float[Array, "..."]  # threshold adaptation trace (added to the threshold)


class IFState(NamedTuple):
    v: Float[Array, "..."]


class SigmaDeltaState(NamedTuple):
    sigma: Float[Array, "..."]  # integrated input
    act: Float[Array, "..."]  # previous step's activation
    residue: Float[Array, "..."]  # delta not sent yet
    err: Float[Array, "..."]  # accumulated error (used with cum_error only)


def lif_step(state: LIFState, x: Float[Array, "..."], *, decay_u, decay_v, threshold, spike: Callable,
             bias=0.0, reset: str = "zero", detach_reset: bool = True,
             order: str = "neurojax") -> tuple[LIFState, Float[Array, "..."]]:
    """One float LIF step in the update `order` (see module doc); returns `(new_state, spikes)`
    (a `lax.scan` body)."""
    u = decay_u * state.u + x
    if order == "neurojax":
        v = decay_v * state.v + u + bias
        s = spike(v - threshold)
        return LIFState(u, _reset(v, s, threshold, reset, detach_reset)), s
    if order not in ORDERS:
        raise NeurojaxError(f"lif_step: order {order!r} must be one of {ORDERS}")
    r = spike(state.v - threshold)  # "snntorch": the reset; "spyx": also this step's output
    if reset == "zero":
        v = decay_v * _reset(state.v, r, threshold, "zero", detach_reset) + u + bias
    else:
        v = _reset(decay_v * state.v + u + bias, r, threshold, "subtract", detach_reset)
    return LIFState(u, v), (spike(v - threshold) if order == "snntorch" else r)


def alif_step(state: ALIFState, x: Float[Array, "..."], *, decay_u, decay_v, threshold, decay_a, beta,
              spike: Callable, bias=0.0, reset: str = "zero",
              detach_reset: bool = True) -> tuple[ALIFState, Float[Array, "..."]]:
    """One adaptive-threshold LIF step: the LIF step with threshold `theta = threshold + a`,
    where the trace `a` first decays (`a *= decay_a`) and after the spike grows by `beta * s`."""
    u = decay_u * state.u + x
    v = decay_v * state.v + u + bias
    a = decay_a * state.a
    theta = threshold + a
    s = spike(v - theta)
    return ALIFState(u, _reset(v, s, theta, reset, detach_reset), a + beta * s), s


def if_step(state: IFState, x: Float[Array, "..."], *, threshold, spike: Callable, bias=0.0,
            reset: str = "subtract", detach_reset: bool = True) -> tuple[IFState, Float[Array, "..."]]:
    """One integrate-and-fire step: `v += x + bias`, spike, reset (soft: `v -= threshold`)."""
    v = state.v + x + bias
    s = spike(v - threshold)
    return IFState(_reset(v, s, threshold, reset, detach_reset)), s


def sigma_delta_step(state: SigmaDeltaState, x: Float[Array, "..."], *, threshold, spike: Callable, bias=0.0,
                     act: str = "relu", cum_error: bool = False,
                     integrate: bool = True) -> tuple[SigmaDeltaState, Float[Array, "..."]]:
    """One float sigma-delta step (spec rules; payload not shifted):

        sigma = sigma + x          (integrate=False: sigma = x, a plain delta encoder)
        act_t = sigma + bias       (max(., 0) for act="relu")
        delta = act_t - act + residue
        s = delta * spike(|delta| - threshold)       (cum_error: err += delta; gate on |err|;
                                                      err = 0 where s != 0)
        residue = delta - s;  act = act_t
    The spike function should compare ">=" (the spec's rule). Returns `(new_state, s)`.
    """
    sigma = state.sigma + x if integrate else x
    a = sigma + bias
    if act == "relu":
        a = jnp.maximum(a, 0.0)
    delta = a - state.act + state.residue
    err = state.err
    if cum_error:
        err = err + delta
        s = delta * spike(jnp.abs(err) - threshold)
        err = jnp.where(s != 0, jnp.zeros_like(err), err)
    else:
        s = delta * spike(jnp.abs(delta) - threshold)
    return SigmaDeltaState(sigma, a, delta - s, err), s


def sigma_decode(s_seq: Float[Array, "T ..."], initial=0.0) -> Float[Array, "T ..."]:
    """The receiver's decoder: the running sum of sigma-delta payloads over time (axis 0).

    With threshold 0 (and no payload shift) it reproduces the sender's activation exactly."""
    return initial + jnp.cumsum(s_seq, axis=0)


# ----------------------------------------------------------------------------- fixed point: constants

VTH_LIMIT = 1 << UV_BITS  # |vth| < 2**24, so vth << 6 fits int32
A_MAX = (1 << (UV_BITS - 1)) - 1  # the adaptation trace saturates at 2**23 - 1
BIAS_MANT_MIN, BIAS_MANT_MAX = -(1 << (BIAS_MANT_BITS - 1)), (1 << (BIAS_MANT_BITS - 1)) - 1
BIAS_EXP_MIN, BIAS_EXP_MAX = -31, 18
INPUT_BITS = 24  # graded payload width used by the float -> fixed input mapping


@dataclasses.dataclass(frozen=True)
class FixedLifOptions:
    """Conventions of the fixed-point LIF family (named, as in `neurojax.neuromorphic.neurons`).

    compare: spike where `v > th` (">", Lava's CPU model) or `v >= th` (">=").
    reset: "zero" (Lava: v = 0 where spiked) or "subtract" (v -= th where spiked, then clipped
        to +-(2**23 - 1)); `th = vth << 6` (`(vth + a) << 6` for the adaptive twin).
    current: u back to 24 bits after the input: "lava" (the single asymmetric correction:
        if u > 2**23: u -= 2**24 elif u <= -2**23: u += 2**24), "wrap" (two's complement
        24-bit) or "saturate" (clip to [-2**23, 2**23 - 1]).
    """

    compare: str = ">"
    reset: str = "zero"
    current: str = "lava"

    def __post_init__(self):
        check_compare(self.compare)
        _check_choice("FixedLifOptions", "reset", self.reset, RESETS)
        _check_choice("FixedLifOptions", "current", self.current, CURRENTS)


LAVA_LIF = FixedLifOptions()
"""Lava 0.10.0 `PyLifModelBitAcc`: strict ">", reset v to 0, asymmetric current correction."""
IF_FIXED = FixedLifOptions(reset="subtract")
"""The IF twin's options: Lava's LIF rules with the soft (subtractive) reset."""


@dataclasses.dataclass(frozen=True)
class FixedSigmaDeltaOptions:
    """Conventions of the fixed-point sigma-delta neuron.

    act: "relu" (Lava's default) or "unit"; cum_error: gate on the accumulated error;
    payload_bits / payload_overflow: how `s >> state_exp` is brought into the payload width
    (the interpreter's preset: 24 bits, saturate; Lava sends the int32 unchanged, which is the
    same whenever the payload fits); integrate: False replaces `sigma += a_in` by `sigma = a_in`
    (a delta encoder; not a Lava rule).
    """

    act: str = "relu"
    cum_error: bool = False
    payload_bits: int = 24
    payload_overflow: str = "saturate"
    integrate: bool = True

    def __post_init__(self):
        _check_choice("FixedSigmaDeltaOptions", "act", self.act, ACTIVATIONS)
        _check_choice("FixedSigmaDeltaOptions", "payload_overflow", self.payload_overflow, PAYLOAD_OVERFLOWS)
        for name in ("cum_error", "integrate"):
            if not isinstance(getattr(self, name), bool):
                raise NeurojaxError(f"FixedSigmaDeltaOptions.{name} must be a bool, got {getattr(self, name)!r}")
        b = self.payload_bits
        if isinstance(b, bool) or not isinstance(b, int) or not 2 <= b <= 32:
            raise NeurojaxError(f"FixedSigmaDeltaOptions.payload_bits must be an int in [2, 32], got {b!r}")


SIGMA_DELTA_LAVA = FixedSigmaDeltaOptions()
"""Lava's sigma-delta rules (ReLU, no cumulative error) with the interpreter's 24-bit payload."""


class LifFixedParams(NamedTuple):
    """int32 parameters, each broadcastable to the neuron shape (build with `lif_fixed_params`)."""
    du: Int[Array, "..."]
    dv: Int[Array, "..."]
    vth: Int[Array, "..."]
    bias_mant: Int[Array, "..."]
    bias_exp: Int[Array, "..."]


class AlifFixedParams(NamedTuple):
    """`LifFixedParams` plus the adaptation decay `da` (0..4095) and increment `beta` (vth units)."""
    du: Int[Array, "..."]
    dv: Int[Array, "..."]
    vth: Int[Array, "..."]
    bias_mant: Int[Array, "..."]
    bias_exp: Int[Array, "..."]
    da: Int[Array, "..."]
    beta: Int[Array, "..."]


class SigmaDeltaFixedParams(NamedTuple):
    """vth, bias already scaled by 2**(spike_exp + state_exp) (as Lava's process stores them)."""
    vth: Int[Array, "..."]
    bias: Int[Array, "..."]
    state_exp: Int[Array, "..."]


class LifFixedState(NamedTuple):
    u: Int[Array, "..."]
    v: Int[Array, "..."]


class AlifFixedState(NamedTuple):
    u: Int[Array, "..."]
    v: Int[Array, "..."]
    a: Int[Array, "..."]


class SigmaDeltaFixedState(NamedTuple):
    sigma: Int[Array, "..."]
    act: Int[Array, "..."]
    residue: Int[Array, "..."]
    err: Int[Array, "..."]


# ----------------------------------------------------------------------------- fixed point: parameters (host)

def _ints(name: str, value, lo: int, hi: int) -> jax.Array:
    """`value` (any shape) as int32 after checking that it is integral and in [lo, hi]."""
    v = np.asarray(value)
    if v.dtype == bool or not np.issubdtype(v.dtype, np.integer):
        raise NeurojaxError(f"{name} must be integers, got dtype {v.dtype}")
    if v.size and (v.min() < lo or v.max() > hi):
        raise NeurojaxError(f"{name} must lie in [{lo}, {hi}], got values in [{v.min()}, {v.max()}]")
    return jnp.asarray(v.astype(np.int64).astype(np.int32))


def lif_fixed_params(du, dv, vth, bias_mant=0, bias_exp=0) -> LifFixedParams:
    """Range-checked LIF parameters: du, dv in [0, 4095] (fractions of 4096), |vth| < 2**24,
    bias_mant 13-bit signed, bias_exp in [-31, 18] (the interpreter's `lif_group` ranges)."""
    return LifFixedParams(_ints("du", du, 0, DECAY_MAX), _ints("dv", dv, 0, DECAY_MAX),
                          _ints("vth", vth, -VTH_LIMIT, VTH_LIMIT - 1),
                          _ints("bias_mant", bias_mant, BIAS_MANT_MIN, BIAS_MANT_MAX),
                          _ints("bias_exp", bias_exp, BIAS_EXP_MIN, BIAS_EXP_MAX))


def if_fixed_params(vth, bias_mant=0, bias_exp=0) -> LifFixedParams:
    """IF twin parameters: LIF with du = 4095 (no current memory) and dv = 0 (no leak)."""
    return lif_fixed_params(DECAY_MAX, 0, vth, bias_mant, bias_exp)


def alif_fixed_params(du, dv, vth, da, beta, bias_mant=0, bias_exp=0) -> AlifFixedParams:
    """Adaptive LIF twin parameters: the LIF ones, da in [0, 4095], beta in [0, 2**23 - 1]."""
    p = lif_fixed_params(du, dv, vth, bias_mant, bias_exp)
    return AlifFixedParams(*p, _ints("da", da, 0, DECAY_MAX), _ints("beta", beta, 0, A_MAX))


def sigma_delta_fixed_params(vth, bias=0, spike_exp=0, state_exp=0) -> SigmaDeltaFixedParams:
    """Sigma-delta parameters stored as Lava's process does: `vth << (spike_exp + state_exp)`,
    `bias << (spike_exp + state_exp)` (both must fit int32; vth >= 0; spike_exp, state_exp >= 0
    with spike_exp + state_exp <= 31)."""
    spike_exp = np.asarray(_ints("spike_exp", spike_exp, 0, 31), np.int64)
    state_exp_i = np.asarray(_ints("state_exp", state_exp, 0, 31), np.int64)
    if np.any(spike_exp + state_exp_i > 31):
        raise NeurojaxError("sigma-delta: spike_exp + state_exp must be <= 31")
    scale = np.left_shift(np.int64(1), spike_exp + state_exp_i)
    out = {}
    for name, x, lo in (("vth", vth, 0), ("bias", bias, -(2**31))):
        val = np.asarray(_ints(name, x, lo, 2**31 - 1), np.int64) * scale
        if np.any(val < -(2**31)) or np.any(val > 2**31 - 1):
            raise NeurojaxError(f"sigma-delta: {name} * 2**(spike_exp + state_exp) does not fit int32")
        out[name] = jnp.asarray(val.astype(np.int32))
    return SigmaDeltaFixedParams(out["vth"], out["bias"], jnp.asarray(state_exp_i.astype(np.int32)))


def _zeros_state(cls, shape) -> NamedTuple:
    return cls(*(jnp.zeros(tuple(shape), jnp.int32) for _ in cls._fields))


def lif_fixed_initial_state(shape) -> LifFixedState:
    """Zero int32 state (also the IF twin's)."""
    return _zeros_state(LifFixedState, shape)


def alif_fixed_initial_state(shape) -> AlifFixedState:
    return _zeros_state(AlifFixedState, shape)


def sigma_delta_fixed_initial_state(shape) -> SigmaDeltaFixedState:
    return _zeros_state(SigmaDeltaFixedState, shape)


# ----------------------------------------------------------------------------- fixed point: float -> int mapping (host)

def _round_code(x, frac: int, bits: int = 32) -> np.ndarray:
    """`round_half_away(x * 2**frac)` as int64 (via `quant.fixed.quantize`, saturating at `bits`)."""
    return np.asarray(quantize(np.asarray(x, np.float64), FxFormat(bits, frac), "half_away", "saturate"), np.int64)


def decay_to_du(decay_u) -> np.ndarray:
    """Lava's current decay code: `u *= (4096 - (du + 1)) / 4096`, du = clip(4095 - round(4096 decay_u), 0, 4095)."""
    return np.clip(DECAY_MAX - _round_code(decay_u, DECAY_BITS), 0, DECAY_MAX)


def decay_to_dv(decay_v) -> np.ndarray:
    """Lava's voltage decay code (also da): `v *= (4096 - dv) / 4096`,
    dv = clip(4096 - round(4096 decay_v), 0, 4095)."""
    return np.clip(DECAY_UNITY - _round_code(decay_v, DECAY_BITS), 0, DECAY_MAX)


def bias_to_mant_exp(bias_v: int) -> tuple[int, int]:
    """An integer bias (v units) as `(mant, exp)` with `mant << exp ~= bias_v`: the smallest
    exp >= 0 whose half-away-rounded mantissa fits 13 bits (exact when bias_v does)."""
    bias_v = int(bias_v)
    for exp in range(BIAS_EXP_MAX + 1):
        q, r = divmod(abs(bias_v), 1 << exp)
        mant = q + (exp > 0 and 2 * r >= (1 << exp))
        mant = -mant if bias_v < 0 else mant
        if BIAS_MANT_MIN <= mant <= BIAS_MANT_MAX:
            return mant, exp
    raise NeurojaxError(f"bias {bias_v} (voltage units) does not fit a 13-bit mantissa with exponent <= {BIAS_EXP_MAX}")


def _check_frac(input_frac) -> int:
    if isinstance(input_frac, bool) or not isinstance(input_frac, (int, np.integer)) or not 0 <= input_frac <= 24:
        raise NeurojaxError(f"input_frac must be an int in [0, 24] (fraction bits of the input), got {input_frac!r}")
    return int(input_frac)


def _threshold_code(name: str, threshold, frac: int) -> np.ndarray:
    code = _round_code(threshold, frac)
    if np.any(np.abs(code) >= VTH_LIMIT):
        raise NeurojaxError(f"{name} * 2**input_frac must stay below 2**24 in magnitude; lower input_frac")
    return code


def _bias_code(bias, frac: int) -> tuple[int, int]:
    return bias_to_mant_exp(int(_round_code(bias, frac + ACT_SHIFT)))


def input_to_fixed(x, input_frac: int, bits: int = INPUT_BITS) -> jax.Array:
    """Host side: float inputs to int32 payloads `round_half_away(x * 2**input_frac)`, saturated to `bits`."""
    return quantize(x, FxFormat(bits, _check_frac(input_frac)), "half_away", "saturate")


# ----------------------------------------------------------------------------- fixed point: steps (int32, jittable)

def _as_int32(name: str, x) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer) or jnp.dtype(x.dtype).itemsize > 4:
        raise NeurojaxError(f"{name} must be an integer array with int32 values, got dtype {x.dtype}")
    return x.astype(jnp.int32)


def _decay_tz(x, keep):
    """`sign(x * keep) * (|x * keep| >> 12)`: the exact product rounded toward zero."""
    return mul_shift(x, keep, DECAY_BITS, mode="toward_zero")


def _lif_subthreshold(p, u, v, a_in, current: str):
    """Steps 1-5 of the spec's LIF rule (int32)."""
    u = _decay_tz(u, jnp.int32(DECAY_MAX) - p.du)  # 1. (4096 - (du + 1))
    if current == "saturate":
        # |a_in| >= 2**24 saturates u whatever its (24-bit) value: clip first, so the shift stays in int32
        x = jnp.left_shift(jnp.clip(a_in, -U_SPAN, U_SPAN), ACT_SHIFT)
        u = saturate(u + x, UV_BITS)
    else:
        u = u + jnp.left_shift(a_in, ACT_SHIFT)  # 2. int32 (wraps as the reference's int32 arrays)
        if current == "wrap":
            u = wrap(u, UV_BITS)
        else:  # 3. Lava: one asymmetric correction
            u = jnp.where(u > U_HALF, u - U_SPAN, jnp.where(u <= -U_HALF, u + U_SPAN, u))
    v = _decay_tz(v, jnp.int32(DECAY_UNITY) - p.dv)  # 4.
    e = p.bias_exp
    bias = shift_right(jnp.left_shift(p.bias_mant, jnp.maximum(e, 0)), jnp.maximum(-e, 0), mode="floor")
    v = jnp.clip(v + u + bias, -V_MAX, V_MAX)  # 5. int32 sums, then saturation
    return u, v


def _fire(v, th, options: FixedLifOptions):
    s = (v > th) if options.compare == ">" else (v >= th)
    if options.reset == "zero":
        v = jnp.where(s, 0, v)
    else:
        v = jnp.where(s, jnp.clip(v - th, -V_MAX, V_MAX), v)
    return s.astype(jnp.int32), v


def lif_fixed_step(params: LifFixedParams, state: LifFixedState, a_in: Int[Array, "..."],
                   options: FixedLifOptions = LAVA_LIF) -> tuple[LifFixedState, Int[Array, "..."]]:
    """One step of the fixed-point LIF (Lava `PyLifModelBitAcc` with `LAVA_LIF`); int32 in and out.

    `a_in` is this step's int32 input sum; returns `(new_state, spikes)` with spikes 0/1 int32.
    u may leave 24 bits under the "lava" correction (as in Lava); v stays within +-(2**23 - 1).
    """
    u, v = _lif_subthreshold(params, _as_int32("state.u", state.u), _as_int32("state.v", state.v),
                             _as_int32("a_in", a_in), options.current)
    s, v = _fire(v, jnp.left_shift(params.vth, ACT_SHIFT), options)  # 6.
    return LifFixedState(u, v), s


def if_fixed_step(params: LifFixedParams, state: LifFixedState, a_in: Int[Array, "..."],
                  options: FixedLifOptions = IF_FIXED) -> tuple[LifFixedState, Int[Array, "..."]]:
    """The IF twin: `lif_fixed_step` with `if_fixed_params` (du = 4095, dv = 0) and the subtractive reset."""
    return lif_fixed_step(params, state, a_in, options)


def alif_fixed_step(params: AlifFixedParams, state: AlifFixedState, a_in: Int[Array, "..."],
                    options: FixedLifOptions = LAVA_LIF) -> tuple[AlifFixedState, Int[Array, "..."]]:
    """The adaptive-threshold twin: LIF steps 1-5, then `a` decays by `(4096 - da) / 4096`
    toward zero, spike where `v > (vth + a) << 6`, reset, `a = min(a + beta * s, 2**23 - 1)`."""
    u, v = _lif_subthreshold(params, _as_int32("state.u", state.u), _as_int32("state.v", state.v),
                             _as_int32("a_in", a_in), options.current)
    a = _decay_tz(_as_int32("state.a", state.a), jnp.int32(DECAY_UNITY) - params.da)
    s, v = _fire(v, jnp.left_shift(params.vth + a, ACT_SHIFT), options)
    a = jnp.minimum(a + params.beta * s, A_MAX)
    return AlifFixedState(u, v, a), s


def sigma_delta_fixed_step(params: SigmaDeltaFixedParams, state: SigmaDeltaFixedState, a_in: Int[Array, "..."],
                           options: FixedSigmaDeltaOptions = SIGMA_DELTA_LAVA
                           ) -> tuple[SigmaDeltaFixedState, Int[Array, "..."]]:
    """One step of the fixed-point sigma-delta neuron (spec rules, int32 wrap, no saturation):

        sigma += a_in;  act = sigma + bias (max(., 0) for "relu")
        delta = act - act_prev + residue
        s = delta where |delta| >= vth else 0   (cum_error: err += delta, gate |err|, err = 0 where s != 0)
        residue = delta - s;  act_prev = act
        payload = s >> state_exp (floor), then `payload_bits` by `payload_overflow`
    Returns `(new_state, payload)`.
    """
    a_in = _as_int32("a_in", a_in)
    sigma = _as_int32("state.sigma", state.sigma) + a_in if options.integrate else a_in
    act = sigma + params.bias
    if options.act == "relu":
        act = jnp.maximum(act, 0)
    delta = act - _as_int32("state.act", state.act) + _as_int32("state.residue", state.residue)
    err = _as_int32("state.err", state.err)
    if options.cum_error:
        err = err + delta
        s = jnp.where(jnp.abs(err) >= params.vth, delta, 0)
        err = jnp.where(s != 0, 0, err)
    else:
        s = jnp.where(jnp.abs(delta) >= params.vth, delta, 0)
    payload = shift_right(s, params.state_exp, mode="floor")
    fit = wrap if options.payload_overflow == "wrap" else saturate
    payload = fit(payload, options.payload_bits)
    return SigmaDeltaFixedState(sigma, act, delta - s, err), payload


@functools.partial(jax.jit, static_argnames=("step", "options"))
def _run_fixed(step, params, state, a_seq, options):
    def body(carry, a):
        new, s = step(params, carry, a, options)
        return new, (s, new)

    final, (s_seq, trace) = jax.lax.scan(body, state, a_seq)
    return s_seq, final, trace


def run_fixed(step: Callable, params, state, a_seq: Int[Array, "T ..."], options=None):
    """Run a fixed-point step over a time-major int32 input `[T, ...]` (jitted `lax.scan`).

    Returns `(spikes_seq [T, ...], final_state, state_seq)` where `state_seq` holds every
    register after every step (the probes of the interpreter's `trace=True`).
    """
    a_seq = _as_int32("a_seq", a_seq)
    if a_seq.ndim < 1:
        raise NeurojaxError("run_fixed: a_seq must be time-major [T, ...]")
    _check_state(getattr(step, "__name__", "run_fixed"), state, a_seq.shape[1:])
    if options is None:
        options = {sigma_delta_fixed_step: SIGMA_DELTA_LAVA, if_fixed_step: IF_FIXED}.get(step, LAVA_LIF)
    params = type(params)(*(jnp.asarray(p, jnp.int32) for p in params))
    state = type(state)(*(_as_int32(f"state.{n}", x) for n, x in zip(state._fields, state)))
    return _run_fixed(step, params, state, a_seq, options)


# ----------------------------------------------------------------------------- float modules

def _learned(m, name: str, value):
    return m.param(name, nn.initializers.constant(value), m.param_shape, jnp.float32)


def _read_params(m, variables, names) -> dict:
    """The (clipped) values a module uses: its fields, or with `learnable` its parameters."""
    vals = {n: getattr(m, n) for n in names}
    if m.learnable:
        if variables is None or "params" not in variables:
            raise NeurojaxError(f"{type(m).__name__} is learnable: pass its variables to fixed_params")
        for n in names:
            vals[n] = np.asarray(variables["params"][n], np.float64)
    return {n: _clip_value(n, v, m._MIN_THRESHOLD) for n, v in vals.items()}


def _clip_value(name: str, v, min_threshold: float):
    if name.startswith("decay"):
        return jnp.clip(v, 0.0, 1.0)
    if name == "threshold":
        return jnp.maximum(v, min_threshold)
    if name == "beta":
        return jnp.maximum(v, 0.0)
    return v


def _lif_fixed_from(owner: str, vals: dict, bias, input_frac) -> dict:
    frac = _check_frac(input_frac)
    mant, exp = _bias_code(bias, frac)
    return {"vth": _threshold_code(f"{owner}.threshold", np.asarray(vals["threshold"]), frac),
            "bias_mant": mant, "bias_exp": exp}


class _SpikingBase(nn.Module):
    """Shared plumbing: spike function, parameter reading, scan over time."""

    _MIN_THRESHOLD = MIN_THRESHOLD  # floor of a learned threshold (SigmaDelta: 0)

    def _spike(self):
        return spike_fn(self.surrogate, self.slope, self.compare)

    def _values(self) -> dict:
        if self.learnable:
            return {n: _clip_value(n, getattr(self, f"p_{n}"), self._MIN_THRESHOLD) for n in self._LEARNABLE}
        return {n: getattr(self, n) for n in self._LEARNABLE}

    def setup(self):
        if self.learnable:
            for n in self._LEARNABLE:
                setattr(self, f"p_{n}", _learned(self, n, getattr(self, n)))

    def __call__(self, x_seq: Float[Array, "T B ..."], state) -> tuple[Float[Array, "T B ..."], NamedTuple]:
        """Run over the time-major input; returns `(spikes_seq [T, B, ...], final_state)`."""
        x_seq = _check_inputs(type(self).__name__, x_seq, state)
        body = self._step_fn()
        final, s_seq = jax.lax.scan(body, state, x_seq)
        return s_seq, final

    def step(self, state, x: Float[Array, "B ..."]):
        """One time step: `(new_state, spikes)`."""
        x = jnp.asarray(x)
        _check_state(type(self).__name__, state, x.shape)
        return self._step_fn()(state, x)

    def initial_state(self, shape, dtype=jnp.float32):
        """Zero state for one step's input shape (`x_seq.shape[1:]`)."""
        return self._STATE(*(jnp.zeros(tuple(shape), dtype) for _ in self._STATE._fields))


class LIF(_SpikingBase):
    """Current-based leaky integrate-and-fire (see the module doc for the update and the twin).

    Fields: decay_u, decay_v in [0, 1]; threshold > 0; bias; reset "zero" | "subtract";
    surrogate (a `SURROGATES` name) with slope (None: its default); compare ">" | ">=";
    detach_reset; learnable (decay_u, decay_v, threshold as parameters of `param_shape`);
    order "neurojax" | "snntorch" | "spyx" (when the spike and the reset happen, module doc).
    Fixed-point twin (order "neurojax" only): `lif_fixed_step` with
    `self.fixed_params(input_frac)` and `self.fixed_options()`.
    """

    decay_u: float = 0.5
    decay_v: float = 0.75
    threshold: float = 1.0
    bias: float = 0.0
    reset: str = "zero"
    surrogate: str = "fast_sigmoid"
    slope: float | None = None
    compare: str = ">"
    detach_reset: bool = True
    learnable: bool = False
    param_shape: tuple = ()
    order: str = "neurojax"

    _LEARNABLE = ("decay_u", "decay_v", "threshold")
    _STATE = LIFState

    def __post_init__(self):
        name = type(self).__name__
        _check_unit(name, "decay_u", self.decay_u)
        _check_unit(name, "decay_v", self.decay_v)
        _check_positive(name, "threshold", self.threshold)
        _check_finite(name, "bias", self.bias)
        _check_choice(name, "reset", self.reset, RESETS)
        _check_choice(name, "order", self.order, ORDERS)
        _check_common(self)
        super().__post_init__()

    def _step_fn(self):
        return functools.partial(lif_step, **self._values(), bias=self.bias, reset=self.reset,
                                 spike=self._spike(), detach_reset=self.detach_reset, order=self.order)

    def _check_twin(self):
        if self.order != "neurojax":
            raise NeurojaxError(f"LIF: only order='neurojax' (Lava's) has a fixed-point twin, got order={self.order!r}")

    def fixed_params(self, input_frac: int, variables=None) -> LifFixedParams:
        """The twin's integer parameters for inputs read in `FxFormat(24, input_frac)` (module doc)."""
        self._check_twin()
        vals = _read_params(self, variables, self._LEARNABLE)
        return lif_fixed_params(decay_to_du(vals["decay_u"]), decay_to_dv(vals["decay_v"]),
                                **_lif_fixed_from("LIF", vals, self.bias, input_frac))

    def fixed_options(self) -> FixedLifOptions:
        self._check_twin()
        return FixedLifOptions(compare=self.compare, reset=self.reset, current="lava")


class AdaptiveLIF(_SpikingBase):
    """LIF with an adaptive threshold `threshold + a`: the trace `a` decays by `decay_a` per step
    and grows by `beta` per spike (`alif_step`). Learnable: decay_u, decay_v, threshold, decay_a, beta.
    Fixed-point twin: `alif_fixed_step`."""

    decay_u: float = 0.5
    decay_v: float = 0.75
    threshold: float = 1.0
    decay_a: float = 0.9
    beta: float = 0.5
    bias: float = 0.0
    reset: str = "zero"
    surrogate: str = "fast_sigmoid"
    slope: float | None = None
    compare: str = ">"
    detach_reset: bool = True
    learnable: bool = False
    param_shape: tuple = ()

    _LEARNABLE = ("decay_u", "decay_v", "threshold", "decay_a", "beta")
    _STATE = ALIFState

    def __post_init__(self):
        name = type(self).__name__
        for n in ("decay_u", "decay_v", "decay_a"):
            _check_unit(name, n, getattr(self, n))
        _check_positive(name, "threshold", self.threshold)
        _check_positive(name, "beta", self.beta, allow_zero=True)
        _check_finite(name, "bias", self.bias)
        _check_choice(name, "reset", self.reset, RESETS)
        _check_common(self)
        super().__post_init__()

    def _step_fn(self):
        return functools.partial(alif_step, **self._values(), bias=self.bias, reset=self.reset,
                                 spike=self._spike(), detach_reset=self.detach_reset)

    def fixed_params(self, input_frac: int, variables=None) -> AlifFixedParams:
        vals = _read_params(self, variables, self._LEARNABLE)
        frac = _check_frac(input_frac)
        beta = _round_code(np.asarray(vals["beta"]), frac)
        return alif_fixed_params(decay_to_du(vals["decay_u"]), decay_to_dv(vals["decay_v"]),
                                 da=decay_to_dv(vals["decay_a"]), beta=beta, **_lif_fixed_from("AdaptiveLIF", vals, self.bias, frac))

    def fixed_options(self) -> FixedLifOptions:
        return FixedLifOptions(compare=self.compare, reset=self.reset, current="lava")


class IF(_SpikingBase):
    """Integrate-and-fire: `v += x + bias`, spike over `threshold`, soft reset by default
    (`reset="subtract"`: v -= threshold). Learnable: threshold. Fixed-point twin: `if_fixed_step`
    (exact for inputs on the `2**-input_frac` grid, as long as v stays in float32's exact range)."""

    threshold: float = 1.0
    bias: float = 0.0
    reset: str = "subtract"
    surrogate: str = "fast_sigmoid"
    slope: float | None = None
    compare: str = ">"
    detach_reset: bool = True
    learnable: bool = False
    param_shape: tuple = ()

    _LEARNABLE = ("threshold",)
    _STATE = IFState

    def __post_init__(self):
        name = type(self).__name__
        _check_positive(name, "threshold", self.threshold)
        _check_finite(name, "bias", self.bias)
        _check_choice(name, "reset", self.reset, RESETS)
        _check_common(self)
        super().__post_init__()

    def _step_fn(self):
        return functools.partial(if_step, **self._values(), bias=self.bias, reset=self.reset,
                                 spike=self._spike(), detach_reset=self.detach_reset)

    def fixed_params(self, input_frac: int, variables=None) -> LifFixedParams:
        vals = _read_params(self, variables, self._LEARNABLE)
        return if_fixed_params(**_lif_fixed_from("IF", vals, self.bias, input_frac))

    def fixed_options(self) -> FixedLifOptions:
        return FixedLifOptions(compare=self.compare, reset=self.reset, current="lava")


class SigmaDelta(_SpikingBase):
    """Sigma-delta neuron (`sigma_delta_step`): integrates its (delta) input, applies `act`, and
    sends the change of its activation once it reaches `threshold` (>= 0; 0 is lossless). The
    output is graded (the delta itself), gated by the spike function (compare ">=" as in the
    spec). `sigma_decode` is the receiver. Learnable: threshold (clipped at >= 0).
    Fixed-point twin: `sigma_delta_fixed_step` with `self.fixed_params(...)`, `self.fixed_options()`.
    """

    threshold: float = 0.1
    bias: float = 0.0
    act: str = "relu"
    cum_error: bool = False
    integrate: bool = True
    surrogate: str = "fast_sigmoid"
    slope: float | None = None
    compare: str = ">="
    learnable: bool = False
    param_shape: tuple = ()

    _LEARNABLE = ("threshold",)
    _STATE = SigmaDeltaState
    _MIN_THRESHOLD = 0.0

    def __post_init__(self):
        name = type(self).__name__
        _check_positive(name, "threshold", self.threshold, allow_zero=True)
        _check_finite(name, "bias", self.bias)
        _check_choice(name, "act", self.act, ACTIVATIONS)
        for n in ("cum_error", "integrate"):
            if not isinstance(getattr(self, n), bool):
                raise NeurojaxError(f"{name}.{n} must be a bool, got {getattr(self, n)!r}")
        _check_common(self)
        super().__post_init__()

    def _step_fn(self):
        return functools.partial(sigma_delta_step, **self._values(), bias=self.bias, act=self.act,
                                 cum_error=self.cum_error, integrate=self.integrate, spike=self._spike())

    def fixed_params(self, input_frac: int, spike_exp: int = 0, state_exp: int = 0,
                     variables=None) -> SigmaDeltaFixedParams:
        """Integer parameters with the float unit `2**-input_frac` (Lava's integer "real" unit):
        vth = round(threshold * 2**input_frac), bias likewise, then stored scaled by
        2**(spike_exp + state_exp). The twin's input is `a_in = round(x * 2**(input_frac +
        spike_exp + state_exp))` (what Lava's Delta process sends) and its payload p stands for
        `p * 2**-(input_frac + spike_exp)`."""
        vals = _read_params(self, variables, self._LEARNABLE)
        frac = _check_frac(input_frac)
        return sigma_delta_fixed_params(_round_code(np.asarray(vals["threshold"]), frac),
                                        _round_code(self.bias, frac), spike_exp, state_exp)

    def fixed_options(self) -> FixedSigmaDeltaOptions:
        return FixedSigmaDeltaOptions(act=self.act, cum_error=self.cum_error, integrate=self.integrate)


# The built-in neurons, by name, for `ModelConfig.neuron` (registry `neurojax.nn.registry.NEURONS`,
# which imports this module on its first lookup).
for _name, _cls in (("lif", LIF), ("adaptive_lif", AdaptiveLIF), ("if", IF), ("sigma_delta", SigmaDelta)):
    NEURONS.register(_name)(_cls)

__all__ = [
    "A_MAX",
    "IF",
    "IF_FIXED",
    "LAVA_LIF",
    "LIF",
    "ORDERS",
    "SIGMA_DELTA_LAVA",
    "V_MAX",
    "ALIFState",
    "AdaptiveLIF",
    "AlifFixedParams",
    "AlifFixedState",
    "FixedLifOptions",
    "FixedSigmaDeltaOptions",
    "IFState",
    "LIFState",
    "LifFixedParams",
    "LifFixedState",
    "SigmaDelta",
    "SigmaDeltaFixedParams",
    "SigmaDeltaFixedState",
    "SigmaDeltaState",
    "alif_fixed_initial_state",
    "alif_fixed_params",
    "alif_fixed_step",
    "alif_step",
    "bias_to_mant_exp",
    "decay_to_du",
    "decay_to_dv",
    "if_fixed_params",
    "if_fixed_step",
    "if_step",
    "input_to_fixed",
    "lif_fixed_initial_state",
    "lif_fixed_params",
    "lif_fixed_step",
    "lif_step",
    "run_fixed",
    "sigma_decode",
    "sigma_delta_fixed_initial_state",
    "sigma_delta_fixed_params",
    "sigma_delta_fixed_step",
    "sigma_delta_step",
]
