"""Reference neuron models written as microcode: LIF, ternary LIF, LIF with reset, sigma-delta.

Each `*_program` function assembles a `Program` with `ProgramBuilder` that follows one of the
fixed-point rules of the Lava 0.10.0 bit-accurate CPU models (spec `neuromorphic.md`, section
"Fixed-point rules of the reference models"); each `*_group` function builds a `NeuronGroup`
running it, with range-checked per-neuron parameters. Every convention on which public
simulators disagree is a named option (`LifOptions`, `SigmaDeltaOptions`) whose default
preset (`LAVA`, `SIGMA_DELTA_LAVA`) reproduces Lava's CPU model.

Common to all programs:
- the dendritic input arrives on the summing port `a_in` (an int32 sum of this step);
- intermediate arithmetic is int32 and wraps the way the reference's NumPy int32 arrays do
  (32-bit "wrap" registers); every value that leaves int32, and every value that does not
  fit a narrower register, is counted by the interpreter as a runtime overflow;
- programs are cached per options, so groups built with equal options share one `Program`
  (and run as one batch when their sizes agree);
- `trace=True` adds graded channels carrying the state registers every step (named after
  them: "u", "v" for the LIF family; "sigma", "act", "residue" and "err" for sigma-delta).
  They are for probing and are up to 32 bits wide, so they need a chip with
  `payload_bits=32` (`chip.CHIPS["loihi2_32bit"]`).
"""
import dataclasses
import functools

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.neuromorphic.isa import Program, ProgramBuilder
from neurojax.neuromorphic.network import NeuronGroup
from neurojax.quant.lava_fixed import (  # noqa: F401
    ACT_SHIFT,
    ACTIVATIONS,
    BIAS_MANT_BITS,
    COMPARES,
    CURRENT_WRAPS,
    DECAY_BITS,
    DECAY_MAX,
    DECAY_UNITY,
    PAYLOAD_OVERFLOWS,
    U_HALF,
    U_SPAN,
    UV_BITS,
    V_MAX,
)

# parameter widths (signed) and accepted ranges of the group builders
DECAY_PARAM_BITS = 13  # 0..4095
VTH_BITS = 25  # |vth| < 2**24, so vth << 6 fits int32
BIAS_EXP_BITS = 6
BIAS_EXP_MIN, BIAS_EXP_MAX = -31, 18  # mantissa << 18 stays below 2**30
RESET_PARAM_BITS = 32
GATE_BITS = 16  # the `wait` register of gated programs

TOWARD_ZERO = "toward_zero"
FLOOR = "floor"


@dataclasses.dataclass(frozen=True)
class LifOptions:
    """Conventions of the LIF family on which simulators disagree.

    compare: spike where `v > vth << 6` (">", Lava's CPU model) or `v >= vth << 6` (">=", the
        training-side emulation).
    reset: the voltage written where a spike was sent (Lava: 0).
    current: how the current `u` is brought back to 24 bits after the input is added:
        "lava" (Lava's single asymmetric correction: if u > 2**23: u -= 2**24 elif
        u <= -2**23: u += 2**24, so the result may stay outside 24 bits),
        "wrap" (two's complement 24-bit) or "saturate" (clip to [-2**23, 2**23 - 1]).
    """

    compare: str = ">"
    reset: int = 0
    current: str = "lava"

    def __post_init__(self):
        if self.compare not in COMPARES:
            raise NeurojaxError(f"LifOptions.compare {self.compare!r} must be one of {COMPARES}")
        if self.current not in CURRENT_WRAPS:
            raise NeurojaxError(f"LifOptions.current {self.current!r} must be one of {CURRENT_WRAPS}")
        if isinstance(self.reset, bool) or not isinstance(self.reset, int) or not -V_MAX <= self.reset <= V_MAX:
            raise NeurojaxError(f"LifOptions.reset must be an int in [-{V_MAX}, {V_MAX}], got {self.reset!r}")


LAVA = LifOptions()
"""Lava 0.10.0's CPU model (`PyLifModelBitAcc`): strict ">", reset to 0, asymmetric current correction."""


@dataclasses.dataclass(frozen=True)
class SigmaDeltaOptions:
    """Conventions of the sigma-delta neuron.

    act: "relu" (`act = max(sigma + bias, 0)`, Lava's default) or "unit" (`act = sigma + bias`).
    cum_error: send on the accumulated error `|err| >= vth` instead of `|delta| >= vth`.
    payload_bits / payload_overflow: the payload `s >> state_exp` is brought into this many
        bits ("saturate" or "wrap", counted as an overflow). Lava sends the int32 unchanged;
        the result is identical whenever the payload fits.
    """

    act: str = "relu"
    cum_error: bool = False
    payload_bits: int = 24
    payload_overflow: str = "saturate"

    def __post_init__(self):
        if self.act not in ACTIVATIONS:
            raise NeurojaxError(f"SigmaDeltaOptions.act {self.act!r} must be one of {ACTIVATIONS}")
        if not isinstance(self.cum_error, bool):
            raise NeurojaxError(f"SigmaDeltaOptions.cum_error must be a bool, got {self.cum_error!r}")
        if isinstance(self.payload_bits, bool) or not isinstance(self.payload_bits, int) \
                or not 2 <= self.payload_bits <= 32:
            raise NeurojaxError(f"SigmaDeltaOptions.payload_bits must be an int in [2, 32], got {self.payload_bits!r}")
        if self.payload_overflow not in PAYLOAD_OVERFLOWS:
            raise NeurojaxError(f"SigmaDeltaOptions.payload_overflow {self.payload_overflow!r} must be one of "
                                f"{PAYLOAD_OVERFLOWS}")


SIGMA_DELTA_LAVA = SigmaDeltaOptions()
"""Lava 0.10.0's sigma-delta model: ReLU activation, no cumulative error (24-bit payload)."""


# ----------------------------------------------------------------------------- LIF family microcode

def _lif_declare(b: ProgramBuilder, opt: LifOptions) -> tuple:
    """Registers u, v, the input port and the LIF parameters."""
    wide = opt.current == "lava"  # Lava's correction can leave u anywhere in int32
    u = b.reg("u", 32 if wide else UV_BITS, "saturate" if opt.current == "saturate" else "wrap")
    v = b.reg("v", UV_BITS, "saturate")
    b.port("a_in")
    b.param("du", DECAY_PARAM_BITS)
    b.param("dv", DECAY_PARAM_BITS)
    b.param("bias_mant", BIAS_MANT_BITS)
    b.param("bias_exp", BIAS_EXP_BITS)
    return u, v


def _lif_subthreshold(b: ProgramBuilder, opt: LifOptions, u: str, v: str) -> None:
    """Steps 1-5 of the spec's LIF rule: decay u, add the input, bring u back, decay v, integrate."""
    with b.scratch():
        # 1. u = sign(p) * (|p| >> 12), p = u * (4096 - (du + 1)): a product rounded toward zero
        ku = b.tmp(14)
        b.sub(ku, DECAY_MAX, "du")
        b.mulsh(u, u, ku, DECAY_BITS, mode=TOWARD_ZERO)
        # 2. u += a_in << 6
        x = b.tmp(32, "wrap")
        if opt.current == "saturate":
            # |a_in| >= 2**24 saturates u whatever its value (|u| < 2**23 after the decay), so
            # clipping it first changes no result and keeps the shift inside int32
            b.clip(x, "a_in", -U_SPAN, U_SPAN)
            b.shl(x, x, ACT_SHIFT)
        else:
            b.shl(x, "a_in", ACT_SHIFT)  # int32 wrap, as the reference's int32 arrays
        # 3. back to 24 bits: a 24-bit register does "wrap" / "saturate" on the write itself
        b.add(u, u, x)
        if opt.current == "lava":
            over, under, corr = b.tmp(2), b.tmp(2), b.tmp(32, "wrap")
            b.gt(over, u, U_HALF)
            b.le(under, u, -U_HALF)
            b.sub(corr, under, over)  # -1, 0 or +1 (never both)
            b.shl(corr, corr, UV_BITS)  # -2**24, 0 or +2**24: added only where it cannot leave int32
            b.add(u, u, corr)
        # 4. v = sign(q) * (|q| >> 12), q = v * (4096 - dv)
        kv = b.tmp(14)
        b.sub(kv, DECAY_UNITY, "dv")
        b.mulsh(v, v, kv, DECAY_BITS, mode=TOWARD_ZERO)
        # bias = bias_mant << bias_exp, or bias_mant >> -bias_exp (floor), every step
        e, bias = b.tmp(8), b.tmp(32, "wrap")
        b.max(e, "bias_exp", 0)
        b.shl(bias, "bias_mant", e)
        b.neg(e, "bias_exp")
        b.max(e, e, 0)
        b.shr(bias, bias, e, mode=FLOOR)
        # 5. v = clip(v + u + bias, -(2**23 - 1), 2**23 - 1)   (int32 sums, saturation not counted)
        acc = b.tmp(32, "wrap")
        b.add(acc, v, u)
        b.add(acc, acc, bias)
        b.clip(v, acc, -V_MAX, V_MAX)


def _threshold(b: ProgramBuilder, name: str) -> str:
    """`param << 6` in a fresh temporary."""
    t = b.tmp(32)
    b.shl(t, name, ACT_SHIFT)
    return t


def _lif_spike(b: ProgramBuilder, opt: LifOptions, v: str) -> str:
    """Step 6: spike where v exceeds (or reaches) vth << 6; v = reset there; u is kept."""
    s = b.reg("spike", 2)
    with b.scratch():
        th = _threshold(b, "vth")
        (b.gt if opt.compare == ">" else b.ge)(s, v, th)
        b.sel(v, s, opt.reset, v)
    return s


def _trace(b: ProgramBuilder, regs: tuple) -> None:
    for r in regs:
        b.channel(r, "graded")
        b.send(r, r)


def _name(kind: str, opt) -> str:
    fields = ",".join(f"{f.name}={getattr(opt, f.name)}" for f in dataclasses.fields(opt))
    return f"{kind}({fields})"


@functools.cache
def lif_program(options: LifOptions = LAVA, trace: bool = False, gated: bool = False) -> Program:
    """Fixed-point LIF (spec: LIF, Lava `PyLifModelBitAcc`), one time step per run.

    Registers u (current; 32-bit for `current="lava"`, else 24-bit) and v (24-bit voltage);
    per-neuron parameters du, dv (0..4095), vth, bias_mant, bias_exp; port a_in. In order:
      1. u = round_toward_zero(u * (4096 - (du + 1)) / 4096)   (du = 0 still decays by 1/4096)
      2. u = u + (a_in << 6)                                    (int32)
      3. u back to 24 bits by `options.current` (Lava: the single asymmetric correction)
      4. v = round_toward_zero(v * (4096 - dv) / 4096)          (dv = 0: no leak)
      5. v = clip(v + u + bias, -(2**23 - 1), 2**23 - 1), bias = bias_mant << bias_exp
         (or >> -bias_exp, floor), recomputed every step
      6. spike where v > vth << 6 (">=" with `options.compare`); v = options.reset there; u is
         not reset. The spike leaves on the binary channel "s" on the same step.
    `gated=True` (not a Lava rule) adds a register `wait` (initial value per neuron, 16 bits):
    while it is non-zero the neuron keeps u = v = 0, sends nothing and counts it down, so a
    neuron deep in a pipeline starts when its first input arrives instead of integrating its
    bias during the fill steps.
    """
    b = ProgramBuilder(_name("lif", options) + (",gated" if gated else ""))
    u, v = _lif_declare(b, options)
    b.param("vth", VTH_BITS)
    return _lif_finish(b, options, u, v, trace, gated)


def _lif_finish(b: ProgramBuilder, options: LifOptions, u: str, v: str, trace: bool,
                gated: bool = False) -> Program:
    """Steps 1-6 of `lif_program` after the declarations; the spike on the binary channel "s"."""
    _lif_subthreshold(b, options, u, v)
    s = _lif_spike(b, options, v)
    if gated:
        wait = b.reg("wait", GATE_BITS, "saturate")
        with b.scratch():
            live = b.tmp(2)
            b.eq(live, wait, 0)
            for r in (u, v, s):
                b.sel(r, live, r, 0)
            b.sub(wait, wait, 1)
            b.max(wait, wait, 0)
    return _send_spikes(b, s, "binary", u, v, trace)


def _send_spikes(b: ProgramBuilder, s: str, kind: str, u: str, v: str, trace: bool) -> Program:
    """Send `s` on channel "s" of `kind` (and the state when tracing); the finished program."""
    b.channel("s", kind)
    b.send("s", s)
    if trace:
        _trace(b, (u, v))
    return b.build()


@functools.cache
def ternary_lif_program(options: LifOptions = LAVA, trace: bool = False) -> Program:
    """Ternary LIF (spec: Ternary LIF, Lava `PyTernLifModelFixed`).

    Steps 1-5 of `lif_program`, then s = -1 where v < vth_lo << 6, +1 where v > vth_hi << 6,
    else 0 ("<=" / ">=" with `options.compare=">="`); v = options.reset where s != 0. The
    group builder requires vth_lo < vth_hi, so at most one side fires. s leaves on the graded
    channel "s" (-1, 0 or +1; a message exists only where s != 0).
    """
    b = ProgramBuilder(_name("ternary_lif", options))
    u, v = _lif_declare(b, options)
    b.param("vth_lo", VTH_BITS)
    b.param("vth_hi", VTH_BITS)
    _lif_subthreshold(b, options, u, v)
    s = b.reg("spike", 2)
    with b.scratch():
        lo, hi = _threshold(b, "vth_lo"), _threshold(b, "vth_hi")
        neg, pos, fired = b.tmp(2), b.tmp(2), b.tmp(2)
        if options.compare == ">":
            b.lt(neg, v, lo)
            b.gt(pos, v, hi)
        else:
            b.le(neg, v, lo)
            b.ge(pos, v, hi)
        b.sub(s, pos, neg)
        b.ne(fired, s, 0)
        b.sel(v, fired, options.reset, v)
    return _send_spikes(b, s, "graded", u, v, trace)


@functools.cache
def lif_reset_program(options: LifOptions = LAVA, trace: bool = False) -> Program:
    """LIF with periodic reset (spec: LIF with reset, Lava `PyLifResetModelBitAcc`).

    Lava's step counter starts at 1; the register `phase` holds `step % reset_interval`
    (it starts at 0, i.e. before step 1, and is advanced first thing every run, so no
    unbounded counter is kept). Where `phase == reset_phase` (parameter, the group builder
    sets it to `reset_offset % reset_interval`) u = v = 0 before the update; then exactly
    the six steps of `lif_program`, spike on the binary channel "s".
    """
    b = ProgramBuilder(_name("lif_reset", options))
    u, v = _lif_declare(b, options)
    b.param("vth", VTH_BITS)
    b.param("reset_interval", RESET_PARAM_BITS)
    b.param("reset_phase", RESET_PARAM_BITS)
    phase = b.reg("phase", 32)
    with b.scratch():
        wrapped, now = b.tmp(2), b.tmp(2)
        b.add(phase, phase, 1)
        b.ge(wrapped, phase, "reset_interval")
        b.sel(phase, wrapped, 0, phase)
        b.eq(now, phase, "reset_phase")
        b.sel(u, now, 0, u)
        b.sel(v, now, 0, v)
    return _lif_finish(b, options, u, v, trace)


# ----------------------------------------------------------------------------- sigma-delta microcode

@functools.cache
def sigma_delta_program(options: SigmaDeltaOptions = SIGMA_DELTA_LAVA, trace: bool = False) -> Program:
    """Sigma-delta neuron (spec: Sigma-delta, Lava `proc/sdn/models.py`), int32, no saturation.

    Parameters vth and bias are already scaled by 2**(spike_exp + state_exp) (the group
    builder does it, as Lava's process does); state_exp is a per-neuron parameter. Per step:
      sigma += a_in
      act = sigma + bias            (max(., 0) with options.act == "relu")
      delta = act - act_prev + residue
      s = delta where |delta| >= vth, else 0
        (cum_error: err += delta; s = delta where |err| >= vth; err = 0 where s != 0)
      residue = delta - s;  act_prev = act
      payload = s >> state_exp (floor; the dropped low bits are not kept in the residue),
        brought into options.payload_bits, sent on the graded channel "s".
    Registers: sigma, act (the previous step's activation), residue, err (cum_error only).
    """
    b = ProgramBuilder(_name("sigma_delta", options))
    sigma, act_prev, residue = b.reg("sigma", 32, "wrap"), b.reg("act", 32, "wrap"), b.reg("residue", 32, "wrap")
    err = b.reg("err", 32, "wrap") if options.cum_error else None
    b.port("a_in")
    b.param("vth", 32)
    b.param("bias", 32)
    b.param("state_exp", 6)
    payload = b.reg("payload", options.payload_bits, options.payload_overflow)
    with b.scratch():
        act, delta, s, mag = b.tmp(32, "wrap"), b.tmp(32, "wrap"), b.tmp(32, "wrap"), b.tmp(32, "wrap")
        send = b.tmp(2)
        b.add(sigma, sigma, "a_in")
        b.add(act, sigma, "bias")
        if options.act == "relu":
            b.max(act, act, 0)
        b.sub(delta, act, act_prev)
        b.add(delta, delta, residue)
        if options.cum_error:
            b.add(err, err, delta)
            b.abs(mag, err)
        else:
            b.abs(mag, delta)
        b.ge(send, mag, "vth")
        b.sel(s, send, delta, 0)
        if options.cum_error:
            b.ne(send, s, 0)
            b.sel(err, send, 0, err)
        b.sub(residue, delta, s)
        b.mov(act_prev, act)
        b.shr(payload, s, "state_exp", mode=FLOOR)
    b.channel("s", "graded")
    b.send("s", payload)
    if trace:
        _trace(b, (sigma, act_prev, residue) + ((err,) if err else ()))
    return b.build()


# ----------------------------------------------------------------------------- group builders

def _ints(name: str, value, size: int, lo: int, hi: int) -> np.ndarray:
    """`value` (scalar or [size]) as int64 after checking that it is integral and in [lo, hi]."""
    v = np.asarray(value)
    if v.dtype == bool or not np.issubdtype(v.dtype, np.integer):
        raise NeurojaxError(f"{name} must be integers, got dtype {v.dtype}")
    if v.ndim not in (0, 1) or (v.ndim == 1 and v.shape[0] != size):
        raise NeurojaxError(f"{name} must be a scalar or have shape ({size},), got {v.shape}")
    v = v.astype(np.int64)
    if v.size and (v.min() < lo or v.max() > hi):
        raise NeurojaxError(f"{name} must lie in [{lo}, {hi}], got values in [{v.min()}, {v.max()}]")
    return v


def _lif_params(size, du, dv, bias_mant, bias_exp) -> dict:
    m = 1 << (BIAS_MANT_BITS - 1)
    return {"du": _ints("du", du, size, 0, DECAY_MAX), "dv": _ints("dv", dv, size, 0, DECAY_MAX),
            "bias_mant": _ints("bias_mant", bias_mant, size, -m, m - 1),
            "bias_exp": _ints("bias_exp", bias_exp, size, BIAS_EXP_MIN, BIAS_EXP_MAX)}


def _vth(name, value, size) -> np.ndarray:
    lim = 1 << (VTH_BITS - 1)
    return _ints(name, value, size, -lim, lim - 1)


def _init(prog: Program, init: dict) -> dict:
    return {k: v for k, v in init.items() if v is not None and k in prog.registers}


def lif_group(name: str, size: int, *, du, dv, vth, bias_mant=0, bias_exp=0, options: LifOptions = LAVA,
              trace: bool = False, u=None, v=None, wait=None) -> NeuronGroup:
    """`size` neurons running `lif_program(options, trace)`; parameters are scalars or [size].

    du, dv in [0, 4095]; |vth| < 2**24; bias_mant 13-bit signed; bias_exp in [-31, 18];
    `u`, `v`: optional initial state (default 0); `wait` (scalar or [size], 0..2**15 - 1): run
    the gated program, holding each neuron at rest for its first `wait` steps.
    """
    prog = lif_program(options, trace, wait is not None)
    params = _lif_params(size, du, dv, bias_mant, bias_exp)
    params["vth"] = _vth("vth", vth, size)
    init = {"u": u, "v": v}
    if wait is not None:
        init["wait"] = _ints("wait", wait, size, 0, (1 << (GATE_BITS - 1)) - 1)
    return NeuronGroup(name, size, prog, params, _init(prog, init))


def ternary_lif_group(name: str, size: int, *, du, dv, vth_lo, vth_hi, bias_mant=0, bias_exp=0,
                      options: LifOptions = LAVA, trace: bool = False, u=None, v=None) -> NeuronGroup:
    """`size` neurons running `ternary_lif_program`; vth_lo < vth_hi everywhere (|.| < 2**24)."""
    prog = ternary_lif_program(options, trace)
    params = _lif_params(size, du, dv, bias_mant, bias_exp)
    lo, hi = _vth("vth_lo", vth_lo, size), _vth("vth_hi", vth_hi, size)
    if np.any(np.broadcast_to(lo, (size,)) >= np.broadcast_to(hi, (size,))):
        raise NeurojaxError(f"ternary LIF group {name!r}: vth_lo must be below vth_hi")
    params.update(vth_lo=lo, vth_hi=hi)
    return NeuronGroup(name, size, prog, params, _init(prog, {"u": u, "v": v}))


def lif_reset_group(name: str, size: int, *, du, dv, vth, reset_interval, reset_offset=0, bias_mant=0,
                    bias_exp=0, options: LifOptions = LAVA, trace: bool = False, u=None, v=None) -> NeuronGroup:
    """`size` neurons running `lif_reset_program`: u = v = 0 on steps (counted from 1) where
    `step % reset_interval == reset_offset % reset_interval`.

    reset_interval >= 1; reset_offset any int32 (the parameter stored is `reset_offset % reset_interval`,
    computed here with Python's non-negative modulo).
    """
    prog = lif_reset_program(options, trace)
    params = _lif_params(size, du, dv, bias_mant, bias_exp)
    params["vth"] = _vth("vth", vth, size)
    interval = _ints("reset_interval", reset_interval, size, 1, 2 ** 31 - 1)
    offset = _ints("reset_offset", reset_offset, size, -(2 ** 31), 2 ** 31 - 1)
    params.update(reset_interval=interval, reset_phase=np.mod(offset, interval))
    return NeuronGroup(name, size, prog, params, _init(prog, {"u": u, "v": v}))


def sigma_delta_group(name: str, size: int, *, vth, bias=0, spike_exp=0, state_exp=0,
                      options: SigmaDeltaOptions = SIGMA_DELTA_LAVA, trace: bool = False) -> NeuronGroup:
    """`size` neurons running `sigma_delta_program`.

    As Lava's process does, vth and bias are stored pre-scaled: `vth << (spike_exp + state_exp)`
    and `bias << (spike_exp + state_exp)` (both must then fit int32; vth >= 0); spike_exp and
    state_exp are >= 0 with spike_exp + state_exp <= 31.
    """
    prog = sigma_delta_program(options, trace)
    spike_exp = _ints("spike_exp", spike_exp, size, 0, 31)
    state_exp = _ints("state_exp", state_exp, size, 0, 31)
    if np.any(spike_exp + state_exp > 31):
        raise NeurojaxError(f"sigma-delta group {name!r}: spike_exp + state_exp must be <= 31")
    scale = np.left_shift(np.int64(1), spike_exp + state_exp)
    vth = _ints("vth", vth, size, 0, 2 ** 31 - 1) * scale
    bias = _ints("bias", bias, size, -(2 ** 31), 2 ** 31 - 1) * scale
    for what, x in (("vth", vth), ("bias", bias)):
        if np.any(x < -(2 ** 31)) or np.any(x > 2 ** 31 - 1):
            raise NeurojaxError(f"sigma-delta group {name!r}: {what} * 2**(spike_exp + state_exp) does not fit int32")
    return NeuronGroup(name, size, prog, {"vth": vth, "bias": bias, "state_exp": state_exp})
