"""Benchmark: the neuromorphic interpreter vs Lava's fixed-point CPU simulator on one LIF layer.

    python -m experiments.bench_interpreter                      # neurojax only
    python -m experiments.bench_interpreter --lava_python=/tmp/lava-venv/bin/python

The network: an InputGroup of `--neurons` binary spike sources driven by a seeded random
raster (each source spikes with probability `--activity` per step), a dense SynapseGroup of
seeded random 8-bit weights, and a NeuronGroup of `--neurons` fixed-point LIF neurons
(`neurons.lif_group` with the `LAVA` options: Lava's bit-accurate rules, spec `neuromorphic.md`).
The simulator is built once; a warm-up step and a first run of `--steps` steps compile it
(reported: their time minus the warm time of the same steps); then `Simulator.run` of
`--steps` steps is timed (`--repeats` times, median; the trace is brought back to numpy
inside the timing).

Lava is never a dependency of the project. To compare with it, make a scratch venv with the
Python 3.10 that lava-nc 0.10.0 requires, and point `--lava_python` at it:

    /root/.pyenv/versions/3.10.13/bin/python -m venv /tmp/lava-venv
    /tmp/lava-venv/bin/pip install lava-nc==0.10.0
    python -m experiments.bench_interpreter --lava_python=/tmp/lava-venv/bin/python

The benchmark then writes the SAME network (weights, raster, du, dv, vth, bias) to a temporary
.npz and runs `experiments/lava_reference.py` under that interpreter (a subprocess; nothing
imports that file): RingBuffer -> Dense -> LIF -> RingBuffer sink in
`Loihi2SimCfg(select_tag="fixed_pt")`. Both simulators first run one warm-up step (Lava's first
`run` call compiles its processes and starts their workers), then the timed `--steps` steps; the
spike rasters of all 1 + steps steps and the final `u` and `v` are compared bit for bit.
`--lava_steps` < `--steps` runs Lava for fewer timed steps and scales its time linearly to
`--steps` (labelled "extrapolated"); outputs are then compared over Lava's steps.

Weights: Lava's Dense (bit-accurate) clips mixed-sign weights to [-256, 255] and truncates
them to 8 bits by dropping the LSB, `w = (w >> 1) << 1`, so mixed-sign weights are really
8-bit mantissas times 2. The benchmark draws Lava weights uniformly in [-256, 255] and gives
Lava those raw values; neurojax gets the 8-bit (int8) mantissas `w >> 1` with weight exponent
+1, i.e. exactly Lava's effective weights `(w >> 1) << 1`.

Timing: one Lava "step" goes through an input RingBuffer, Dense, LIF and a spike sink
(4 processes); neurojax also records the spike channel every step. Prints a table of times
measured in this one run and their ratio (target: Lava / neurojax >= 100), whether outputs
matched, and the synaptic-op counts of the interpreter (event-driven: ~activity x dense count).
Not a test: nothing asserts a time.
"""
import json
import os
import subprocess
import tempfile
import time

import numpy as np
from absl import flags

from experiments import _cli
from neurojax.errors import NeurojaxError

_NEURONS = flags.DEFINE_integer("neurons", 1024, "Input sources and LIF neurons (the layer is neurons x neurons).")
_ACTIVITY = flags.DEFINE_float("activity", 0.1, "Probability that an input source spikes in a step.")
_STEPS = flags.DEFINE_integer("steps", 1000, "Timed steps (after one warm-up step).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the weights and the input raster.")
_DU = flags.DEFINE_integer("du", 410, "LIF current decay, 12-bit fraction of 4096 (Lava du).")
_DV = flags.DEFINE_integer("dv", 410, "LIF voltage decay, 12-bit fraction of 4096 (Lava dv).")
_VTH = flags.DEFINE_integer("vth", 20000, "LIF threshold, 17 bits (Lava vth; compared as vth << 6).")
_BIAS_MANT = flags.DEFINE_integer("bias_mant", 0, "LIF bias mantissa, 13-bit signed (Lava bias_mant).")
_BIAS_EXP = flags.DEFINE_integer("bias_exp", 0, "LIF bias exponent, 0..7 (Lava bias_exp).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed neurojax runs (median reported).")
_LAVA_PYTHON = flags.DEFINE_string("lava_python", None, "A python with lava-nc 0.10.0: also run the network in Lava.")
_LAVA_STEPS = flags.DEFINE_integer("lava_steps", None, "Timed Lava steps (default --steps); fewer: time extrapolated.")
_LAVA_TIMEOUT = flags.DEFINE_integer("lava_timeout", 3600, "Seconds before the Lava subprocess is abandoned.")

LAVA_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lava_reference.py")
INPUT, LIF, SPIKES = "in", "lif", "s"


def make_problem(n: int, activity: float, steps: int, seed: int) -> dict:
    """Lava-range weights [n, n] in [-256, 255] and a 0/1 raster [1 + steps, n] (step 0: warm-up)."""
    rng = np.random.default_rng(seed)
    lava_w = rng.integers(-256, 256, (n, n)).astype(np.int32)
    raster = (rng.random((1 + steps, n)) < activity).astype(np.int32)
    return {"lava_w": lava_w, "mantissa": (lava_w >> 1).astype(np.int8), "raster": raster}


def chunk_for(steps: int) -> int:
    """The largest divisor of `steps` up to 256: whole chunks run without the partial-chunk mask."""
    return max(d for d in range(1, min(steps, 256) + 1) if steps % d == 0)


def build_simulator(mantissa: np.ndarray, params: dict, steps: int = 1000):
    from neurojax.neuromorphic.chip import LOIHI2
    from neurojax.neuromorphic.interpreter import Simulator
    from neurojax.neuromorphic.network import InputGroup, Network, SynapseGroup
    from neurojax.neuromorphic.neurons import LAVA, lif_group

    n_dst, n_src = mantissa.shape
    net = Network()
    net.add(InputGroup(INPUT, n_src, kind="binary", bits=1))
    net.add(lif_group(LIF, n_dst, options=LAVA, **params))  # Lava's PyLifModelBitAcc rules
    # Lava's effective weight (w >> 1) << 1 == mantissa * 2**1: exponent +1 on the 8-bit mantissas
    net.connect(SynapseGroup("w", (INPUT, "out"), (LIF, "a_in"), mantissa, exp=1, delay=1))
    return Simulator(net, LOIHI2, probes=(f"{LIF}/{SPIKES}",), chunk_steps=chunk_for(steps))


def final_uv(sim, state) -> tuple:
    """The LIF group's registers u, v from a simulator state (batched registers: [groups, n] or flat)."""
    for batch, regs in zip(sim.batches, state["regs"]):
        off = 0
        for i, g in enumerate(batch):
            if g.name == LIF:
                out = []
                for name in ("u", "v"):
                    r = np.asarray(regs[name], np.int64)
                    out.append(r[i] if r.ndim == 2 else r[off:off + g.size])
                return tuple(out)
            off += g.size
    raise NeurojaxError("no LIF group in the simulator")


def run_lava(python: str, problem: dict, params: dict, steps: int) -> dict:
    if not os.path.exists(python):
        raise NeurojaxError(f"--lava_python {python!r} does not exist")
    with tempfile.TemporaryDirectory(prefix="bench_lava_") as tmp:
        src, dst = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(src, weights=problem["lava_w"], raster=problem["raster"][:1 + steps].T, warmup=1, timed=steps,
                 **params)
        try:
            res = subprocess.run([python, LAVA_SCRIPT, src, dst], capture_output=True, text=True, check=False,
                                 timeout=_LAVA_TIMEOUT.value)
        except subprocess.TimeoutExpired:
            raise NeurojaxError(f"the Lava run did not finish within --lava_timeout={_LAVA_TIMEOUT.value} s") from None
        if res.returncode != 0 or not os.path.exists(dst):
            tail = [line for line in res.stderr.splitlines() if line.strip()]
            raise NeurojaxError(f"the Lava run failed (exit {res.returncode}): {tail[-1] if tail else 'no output'}")
        with np.load(dst) as out:
            return {k: out[k] for k in out.files}


def main(argv):
    n, steps, activity = _NEURONS.value, _STEPS.value, _ACTIVITY.value
    if n < 1 or steps < 1 or _REPEATS.value < 1:
        raise NeurojaxError("--neurons, --steps and --repeats must be positive")
    if not 0.0 <= activity <= 1.0:
        raise NeurojaxError(f"--activity must be in [0, 1], got {activity}")
    lava_steps = steps if _LAVA_STEPS.value is None else _LAVA_STEPS.value
    if not 1 <= lava_steps <= steps:
        raise NeurojaxError(f"--lava_steps must be in [1, --steps={steps}], got {lava_steps}")
    params = {"du": _DU.value, "dv": _DV.value, "vth": _VTH.value, "bias_mant": _BIAS_MANT.value,
              "bias_exp": _BIAS_EXP.value}
    for name, lo, hi in (("du", 0, 4095), ("dv", 0, 4095), ("vth", 0, 2 ** 17 - 1), ("bias_mant", -4096, 4095),
                         ("bias_exp", 0, 7)):
        if not lo <= params[name] <= hi:
            raise NeurojaxError(f"--{name} must be in [{lo}, {hi}] (Lava's LIF range), got {params[name]}")

    import jax

    problem = make_problem(n, activity, steps, _SEED.value)
    raster = problem["raster"]
    _cli.say(f"backend {jax.default_backend()} ({os.cpu_count()} CPUs); network: {n} binary inputs at "
             f"{activity:.0%} activity -> {n}x{n} 8-bit dense -> {n} LIF (du={params['du']}, dv={params['dv']}, "
             f"vth={params['vth']}, bias={params['bias_mant']}<<{params['bias_exp']}); 1 warm-up + {steps} steps, "
             f"seed {_SEED.value}")

    t0 = time.perf_counter()
    sim = build_simulator(problem["mantissa"], params, steps)
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm_trace, s1 = sim.run({INPUT: raster[:1]})  # the warm-up step
    jax.block_until_ready(s1)
    xs = {INPUT: raster[1:]}
    trace, state = sim.run(xs, state=s1)
    jax.block_until_ready(state)
    first_s = time.perf_counter() - t0  # every compilation happens in these two first calls
    times = []
    for _ in range(_REPEATS.value):
        t0 = time.perf_counter()
        trace, state = sim.run(xs, state=s1)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    steady_s = float(np.median(times))
    compile_s = max(first_s - steady_s * (steps + 1) / steps, 0.0)  # first calls minus their warm time
    spikes = np.concatenate([warm_trace.probes[f"{LIF}/{SPIKES}"], trace.probes[f"{LIF}/{SPIKES}"]])
    synops = trace.totals()["synops"]
    nnz = sim.net.synapses[0].nnz()
    dense_ops = nnz * steps
    realized = float(raster[1:].mean())
    summary = {"neurons": n, "steps": steps, "steady_s": steady_s, "compile_s": compile_s,
               "synop_ratio": synops / max(dense_ops, 1), "activity": realized}

    rows = [("neurojax setup (Simulator build)", f"{setup_s:.3f} s"),
            ("neurojax compile (first calls - warm time)", f"{compile_s:.3f} s"),
            (f"neurojax steady run ({steps} steps, median of {len(times)})",
             f"{1e3 * steady_s:.2f} ms  ({1e6 * steady_s / steps:.1f} us/step; min {1e3 * min(times):.2f} ms)"),
            ("neurojax output spikes", f"{int(spikes.sum())} (rate {spikes.mean():.4f} per neuron-step)")]
    if _LAVA_PYTHON.value:
        _cli.say(f"running Lava ({_LAVA_PYTHON.value}) for 1 + {lava_steps} steps ...")
        lava = run_lava(_LAVA_PYTHON.value, problem, params, lava_steps)
        lava_s = float(lava["timed_s"]) * steps / lava_steps
        if lava_steps == steps:
            ref_spikes, (ref_u, ref_v) = spikes, final_uv(sim, state)
        else:
            tr, st = sim.run({INPUT: raster[1:1 + lava_steps]}, state=s1)
            ref_spikes = np.concatenate([warm_trace.probes[f"{LIF}/{SPIKES}"], tr.probes[f"{LIF}/{SPIKES}"]])
            ref_u, ref_v = final_uv(sim, st)
        lava_spikes = np.asarray(lava["spikes"], np.int64)
        same_raster = lava_spikes.shape == ref_spikes.shape and np.array_equal(lava_spikes, ref_spikes)
        same_uv = np.array_equal(lava["u"], ref_u) and np.array_equal(lava["v"], ref_v)
        where = "" if same_raster else f", first differing step {_first_diff(lava_spikes, ref_spikes)}"
        verdict = (f"{'yes' if same_raster and same_uv else 'NO'} (spike raster over 1 + {lava_steps} steps: "
                   f"{'bit-exact' if same_raster else 'differs'}{where}; "
                   f"final u, v: {'equal' if same_uv else 'differ'})")
        label = f"Lava run ({steps} steps" + (f", EXTRAPOLATED from {lava_steps} timed steps)" if lava_steps < steps
                                              else ")")
        summary.update(lava_s=lava_s, lava_timed_steps=lava_steps, ratio=lava_s / steady_s,
                       match=bool(same_raster and same_uv))
        rows += [("Lava startup (first run: 1 step, compile, workers)", f"{float(lava['startup_s']):.3f} s"),
                 (label, f"{lava_s:.3f} s  ({1e6 * lava_s / steps:.1f} us/step)"),
                 ("Lava readback of spikes, u, v (untimed)", f"{float(lava['readback_s']):.1f} s"),
                 ("Lava output spikes", f"{int(lava_spikes.sum())} over 1 + {lava_steps} steps"),
                 ("ratio Lava / neurojax (steady)", f"{lava_s / steady_s:.1f}x  (target >= 100x)"),
                 ("outputs match", verdict)]
    else:
        rows += [("Lava", "not run (give --lava_python; see the module docstring)")]
    rows += [("synops measured / dense (non-zero synapses x steps)",
              f"{synops} / {dense_ops} = {synops / max(dense_ops, 1):.4f}  (input activity {realized:.4f})")]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        _cli.say(f"{k:<{width}}  {v}")
    _cli.say("json " + json.dumps(summary))


def _first_diff(a: np.ndarray, b: np.ndarray):
    if a.shape != b.shape:
        return f"(shapes {a.shape} vs {b.shape})"
    return int(np.argmax((a != b).any(axis=1)))


if __name__ == "__main__":
    _cli.run(main)
