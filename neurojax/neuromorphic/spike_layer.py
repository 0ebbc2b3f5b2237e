"""Event-driven execution of a spike-coded BitLinear-like layer on the interpreter.

The layer is `acc[n] = sum_k codes[n, k] * count[k]` with integer weight codes (ternary
{-1, 0, +1} for BitLinear; any value of the chip's signed synapse mantissa is accepted) and
integer activation counts that arrive as a spike train `[T, K]` (the `SpikeTrain.train` of
`neurojax.spiking.coding.encode`; this module does not import it: the layering rule keeps
`neuromorphic` free of `spiking`). One train step is one interpreter time step, and every
non-zero spike is one real event: zeros send nothing and cost no synaptic operation.

Network (`spike_layer_network`):

- input group "spikes" (K channels, host-injected). Unsigned codings ("binary",
  "twos_complement": spikes in {0, 1}) use a *binary* input group. Signed codings ("ternary",
  "bitwise" sign-magnitude: spikes in {-1, 0, +1}) use a *graded* input group with 2-bit
  payloads -1 / 0 / +1: a -1 spike is one message whose payload negates the synaptic weight,
  so a signed spike costs exactly what an unsigned one does (one message, fan-out synaptic ops)
  and needs no second input group or negated weight copy.
- synapse group "codes": dense `[N, K]`, the codes as 8-bit mantissas, exponent 0, delay 1.
- neuron group "acc" (N neurons) running the program "spike_acc_sum" or "spike_acc_horner":
  each step `acc = acc + a_in` (binary, ternary: the train's sum) or `acc = 2 * acc + a_in`
  (bitwise codings: Horner's rule, MSB first, so train step t ends up weighted by 2^(T-1-t);
  the steps before the first delivery double a zero). A step counter compares itself with the
  per-neuron parameter `last` (= T) and the accumulator is sent as one graded spike on channel
  "out" at that step only (an accumulator of 0 sends nothing: graded spikes are non-zero).

Timing: a spike injected at step t is integrated at step t + 1 (delay 1), so a run takes
T + 1 steps with nothing injected at step T, and the result is read at step T.

Widths: the accumulator register is `min(chip.register_bits, chip.payload_bits)` bits wide
(it is also the graded payload). Its worst case over every train of the coding's alphabet is
`L1 * S` with `L1 = max_n sum_k |codes[n, k]|` (at most K * 127) and `S = T` for binary /
ternary, `2^T - 1` for the bitwise codings (every Horner partial sum is within it too). A
network whose bound does not fit is refused before it is built (`NeurojaxError`).

Zero points (`run_spike_layer`): the network computes the raw value
`codes @ (count + zero_point)` (what the train encodes, `decode_raw`). The consumer's dense
correction `codes @ zero_point` is then subtracted on the host with plain int64 NumPy
arithmetic (it is not event-driven and not counted in the synaptic ops; `correction_ops`
reports its size), so the result equals `codes @ counts` exactly.
"""
import functools

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.neuromorphic.chip import LOIHI2, ChipConfig
from neurojax.neuromorphic.interpreter import COUNTERS, Simulator
from neurojax.neuromorphic.isa import Program, ProgramBuilder, imm_bits
from neurojax.neuromorphic.network import InputGroup, Network, NeuronGroup, SynapseGroup

CODINGS = ("binary", "ternary", "bitwise", "twos_complement")  # as neurojax.spiking.coding.CODINGS
ALPHABETS = {"binary": (0, 1), "ternary": (-1, 0, 1), "bitwise": (-1, 0, 1), "twos_complement": (0, 1)}
HORNER = ("bitwise", "twos_complement")  # step t weighted by 2^(T-1-t)
SIGNED = ("ternary", "bitwise")  # spikes in {-1, 0, +1}: graded input payloads
DELAY = 1
INPUT, ACC, SYNAPSES = "spikes", "acc", "codes"
OUT = "out"
PROBE = f"{ACC}/{OUT}"
STEP_BITS = 32  # the step counter and the `last` parameter


@functools.cache
def accumulator_program(horner: bool, bits: int) -> Program:
    """`acc = acc (* 2 if horner) + a_in`; send acc on graded "out" at the step `step == last`.

    Cached per (horner, bits), so every layer of one kind shares one program (and one compile).
    """
    b = ProgramBuilder(f"spike_acc_{'horner' if horner else 'sum'}{bits}")
    b.port("a_in")
    b.param("last", STEP_BITS)
    acc = b.reg("acc", bits)
    step = b.reg("step", STEP_BITS)
    flag = b.reg("at_last", 2)
    out = b.reg("out_value", bits)
    if horner:
        b.add(acc, acc, acc)  # acc * 2
    b.add(acc, acc, "a_in")
    b.eq(flag, step, "last")
    b.sel(out, flag, acc, 0)
    b.channel(OUT, "graded")
    b.send(OUT, out)
    b.add(step, step, 1)
    return b.build()


def _check_coding(coding) -> None:
    if coding not in CODINGS:
        raise NeurojaxError(f"unknown spike coding {coding!r}; known: {list(CODINGS)}")


def _check_T(T) -> int:
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise NeurojaxError(f"T must be an integer number of train steps >= 1, got {T!r}")
    return int(T)


def _integer_array(x, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise NeurojaxError(f"{what} must have an integer dtype, got {a.dtype}")
    return a.astype(np.int64)


def _check_codes(codes, chip: ChipConfig) -> np.ndarray:
    c = _integer_array(codes, "codes")
    if c.ndim != 2 or 0 in c.shape:
        raise NeurojaxError(f"codes must be a non-empty [N, K] matrix, got shape {c.shape}")
    lo, hi = -(2 ** (chip.weight_bits - 1)), 2 ** (chip.weight_bits - 1) - 1
    if c.min() < lo or c.max() > hi:
        raise NeurojaxError(f"codes in [{c.min()}, {c.max()}] do not fit the chip's {chip.weight_bits}-bit "
                            f"synapses [{lo}, {hi}] (BitLinear codes are ternary)")
    return c


def accumulator_bound(codes, coding: str, T: int) -> int:
    """The largest |accumulator| any train of the coding's alphabet can produce (Python int)."""
    _check_coding(coding)
    T = _check_T(T)
    c = _integer_array(codes, "codes")
    l1 = int(np.abs(c).sum(axis=-1).max(initial=0))
    return l1 * ((2 ** T - 1) if coding in HORNER else T)


def accumulator_bits(chip: ChipConfig) -> int:
    """Width of the accumulator register, which is also sent as the graded output payload."""
    return min(chip.register_bits, chip.payload_bits)


def spike_layer_network(codes, coding: str, T: int, chip: ChipConfig = LOIHI2) -> tuple:
    """(Network, meta) computing `codes @ decode_raw(train)` from a `[T, K]` train of `coding`.

    meta: input / accumulator group names, the probe ("acc/out"), delay, steps (T + delay),
    acc_bits, bound (`accumulator_bound`), signed (graded -1/0/+1 input), fanout (non-zero codes
    per input channel: the synaptic ops one spike costs).
    """
    _check_coding(coding)
    T = _check_T(T)
    c = _check_codes(codes, chip)
    N, K = c.shape
    bits = accumulator_bits(chip)
    bound = accumulator_bound(c, coding, T)
    if imm_bits(bound) > bits:
        growth = "2^T - 1" if coding in HORNER else "T"
        raise NeurojaxError(
            f"coding {coding!r} with T = {T} steps and K = {K} inputs can reach |acc| = {bound} "
            f"(max row sum of |codes| x {growth}), {imm_bits(bound)} signed bits; the accumulator holds "
            f"{bits} (min of ChipConfig.register_bits and payload_bits): use fewer steps, a narrower "
            "count range or split K")
    if T + DELAY > 2 ** (STEP_BITS - 1) - 1:
        raise NeurojaxError(f"T = {T} steps do not fit the {STEP_BITS}-bit step counter")
    signed = coding in SIGNED
    net = Network()
    net.add(InputGroup(INPUT, K, kind="graded", bits=2) if signed else InputGroup(INPUT, K, kind="binary"))
    net.add(NeuronGroup(ACC, N, accumulator_program(coding in HORNER, bits), params={"last": T + DELAY - 1}))
    net.connect(SynapseGroup(SYNAPSES, (INPUT, "out"), (ACC, "a_in"), c.astype(np.int8), exp=0, delay=DELAY))
    meta = {"input": INPUT, "acc": ACC, "probe": PROBE, "coding": coding, "T": T, "delay": DELAY,
            "steps": T + DELAY, "acc_bits": bits, "bound": bound, "signed": signed,
            "fanout": np.count_nonzero(c, axis=0).astype(np.int64)}
    return net, meta


def _check_train(train, coding: str, K: int) -> np.ndarray:
    s = _integer_array(train, "the spike train")
    if s.ndim not in (2, 3):
        raise NeurojaxError(f"the spike train must be [T, K] or [T, B, K], got shape {s.shape}")
    if s.shape[0] < 1:
        raise NeurojaxError(f"the spike train needs T >= 1 steps, got shape {s.shape}")
    if s.shape[-1] != K:
        raise NeurojaxError(f"the spike train has {s.shape[-1]} channels (last axis) but codes have K = {K} "
                            f"columns; train shape {s.shape}")
    if s.ndim == 3 and s.shape[1] < 1:
        raise NeurojaxError(f"the spike train's batch axis is empty: shape {s.shape}")
    alphabet = ALPHABETS[coding]
    bad = ~np.isin(s, alphabet)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise NeurojaxError(f"{coding!r} spikes must be in {set(alphabet)}; the train holds {int(s[where])} "
                            f"at index {where}")
    return s


def run_spike_layer(codes, train, coding: str, zero_point=None, chip: ChipConfig = LOIHI2) -> tuple:
    """Run the layer event by event: returns (acc int32 [..., N], counters).

    `train`: int [T, K] or [T, B, K] spikes of `coding` (each batch row is one run of the same
    compiled network, from a fresh state). `zero_point`: int [K] or [B, K] (broadcast), as in
    `SpikeTrain.zero_point`; `acc = raw - codes @ zero_point` (host int64) equals `codes @ counts`.

    counters (Python ints, summed over the batch): spikes (non-zero train entries), messages,
    synops, hops, active_updates, idle_updates (the interpreter's `Trace` totals), steps
    (T + delay per run), dense_synops (T x non-zero codes per run: what a clocked dense engine
    would do), correction_ops (non-zero zero points x fan-out: the host correction), and
    per_step: name -> int64 [steps] (or [B, steps]) of each interpreter counter summed over cores.
    """
    _check_coding(coding)
    c = _check_codes(codes, chip)
    N, K = c.shape
    s = _check_train(train, coding, K)
    T = s.shape[0]
    batched = s.ndim == 3
    sb = s if batched else s[:, None, :]
    B = sb.shape[1]
    if zero_point is None:
        zp = np.zeros((B, K), np.int64)
    else:
        z = _integer_array(zero_point, "zero_point")
        want = (B, K) if batched else (K,)
        try:
            zp = np.broadcast_to(z, want).reshape(B, K)
        except ValueError:
            raise NeurojaxError(f"zero_point of shape {z.shape} does not match the train's elements {want}") from None
    net, meta = spike_layer_network(c, coding, T, chip)
    sim = Simulator(net, chip, probes=(PROBE,))
    steps = meta["steps"]
    raw = np.zeros((B, N), np.int64)
    per_step = {k: np.zeros((B, steps), np.int64) for k in COUNTERS}
    for b in range(B):
        x = np.zeros((steps, K), np.int64)
        x[:T] = sb[:, b, :]
        trace, state = sim.run({INPUT: x}, num_steps=steps)
        out = np.asarray(trace.probes[PROBE], np.int64)
        if out[:-1].any() or trace.overflow.get(ACC, 0):
            raise NeurojaxError("internal: the accumulator sent early or overflowed despite the width bound")
        raw[b] = out[-1]
        for k in COUNTERS:
            per_step[k][b] = np.asarray(trace.counters[k], np.int64).sum(axis=1)
    acc = raw - zp @ c.T
    if acc.size and (acc.min() < -(2 ** 31) or acc.max() > 2 ** 31 - 1):
        raise NeurojaxError(f"the corrected accumulator [{acc.min()}, {acc.max()}] does not fit int32")
    fanout = meta["fanout"]
    counters = {k: int(v.sum()) for k, v in per_step.items()}
    counters.update(
        spikes=int(np.count_nonzero(s)), steps=steps,
        dense_synops=B * T * int(np.count_nonzero(c)),
        correction_ops=int(((zp != 0) * fanout).sum()),
        per_step=per_step if batched else {k: v[0] for k, v in per_step.items()})
    acc = acc.astype(np.int32)
    return (acc if batched else acc[0]), counters


def expected_synops(codes, train) -> int:
    """Non-zero spikes x fan-out of their channel (non-zero codes in its column), from the train."""
    c = _integer_array(codes, "codes")
    s = _integer_array(train, "the spike train")
    return int(((s != 0) * np.count_nonzero(c, axis=0)).sum())


__all__ = ["ALPHABETS", "CODINGS", "accumulator_bits", "accumulator_bound", "accumulator_program",
           "expected_synops", "run_spike_layer", "spike_layer_network"]
