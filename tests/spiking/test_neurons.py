"""Spiking neurons: fixed-point twins against golden vectors, a Python-int oracle and the chip
interpreter; float modules against hand-computed behaviour; surrogate gradients; bad inputs.

The oracles below are written from the spec's rules (`neuromorphic.md`, "Fixed-point rules")
with Python integers (exact), wrapping to int32 exactly where the reference's int32 arrays do
(the shifted input and the voltage sums), independently of `neurojax.spiking.neurons`.
"""
from functools import cache

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from neurojax.errors import NeurojaxError
from neurojax.neuromorphic.chip import CHIPS
from neurojax.neuromorphic.interpreter import Simulator
from neurojax.neuromorphic.network import InputGroup, Network, SynapseGroup
from neurojax.neuromorphic.neurons import (
    LifOptions,
    SigmaDeltaOptions,
    lif_group,
    sigma_delta_group,
)
from neurojax.spiking.neurons import (
    IF,
    IF_FIXED,
    LAVA_LIF,
    LIF,
    SIGMA_DELTA_LAVA,
    AdaptiveLIF,
    FixedLifOptions,
    FixedSigmaDeltaOptions,
    LifFixedState,
    LIFState,
    SigmaDelta,
    alif_fixed_initial_state,
    alif_fixed_params,
    alif_fixed_step,
    bias_to_mant_exp,
    decay_to_du,
    decay_to_dv,
    if_fixed_params,
    if_fixed_step,
    input_to_fixed,
    lif_fixed_initial_state,
    lif_fixed_params,
    lif_fixed_step,
    lif_step,
    run_fixed,
    sigma_decode,
    sigma_delta_fixed_initial_state,
    sigma_delta_fixed_params,
    sigma_delta_fixed_step,
)
from neurojax.spiking.surrogate import SURROGATES, spike_fn

N = 16
STEPS = 14
SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                    phases=(Phase.explicit, Phase.reuse, Phase.generate))
I32 = 2**31
V_MAX = 2**23 - 1
A_MAX = 2**23 - 1


# ----------------------------------------------------------------------------- Python-int oracles

def w32(x: int) -> int:
    return (x + I32) % 2**32 - I32


def tz12(p: int) -> int:
    """sign(p) * (|p| >> 12)."""
    return abs(p) >> 12 if p >= 0 else -(abs(p) >> 12)


def clip(x, lo, hi):
    return min(max(x, lo), hi)


def o_lif(p: dict, opt: FixedLifOptions, a_in: list, u: int, v: int, a: int = 0, adaptive: bool = False):
    """One neuron of the LIF family (LIF / IF / adaptive) over all steps: lists u, v, a, s."""
    out = {"u": [], "v": [], "a": [], "s": []}
    for x in a_in:
        u = tz12(u * (4096 - (p["du"] + 1)))
        if opt.current == "lava":
            u = w32(u + w32(x << 6))
            if u > 2**23:
                u -= 2**24
            elif u <= -(2**23):
                u += 2**24
        elif opt.current == "wrap":
            u = (u + (x << 6) + 2**23) % 2**24 - 2**23
        else:
            u = clip(u + (x << 6), -(2**23), 2**23 - 1)
        v = tz12(v * (4096 - p["dv"]))
        e = p["bias_exp"]
        bias = p["bias_mant"] << e if e >= 0 else p["bias_mant"] >> -e
        v = clip(w32(w32(v + u) + bias), -V_MAX, V_MAX)
        if adaptive:
            a = tz12(a * (4096 - p["da"]))
            th = (p["vth"] + a) << 6
        else:
            th = p["vth"] << 6
        s = int(v > th if opt.compare == ">" else v >= th)
        if s:
            v = 0 if opt.reset == "zero" else clip(v - th, -V_MAX, V_MAX)
        if adaptive:
            a = min(a + p["beta"] * s, A_MAX)
        for k, val in (("u", u), ("v", v), ("a", a), ("s", s)):
            out[k].append(val)
    return out


def o_sigma_delta(p: dict, opt: FixedSigmaDeltaOptions, a_in: list, st0: dict):
    """One sigma-delta neuron (spec rules, int32 wrap): lists sigma, act, residue, err, s."""
    scale = 2 ** (p["spike_exp"] + p["state_exp"])
    vth, bias = p["vth"] * scale, p["bias"] * scale
    sigma, act_prev, residue, err = st0["sigma"], st0["act"], st0["residue"], st0["err"]
    out = {k: [] for k in ("sigma", "act", "residue", "err", "s")}
    for x in a_in:
        sigma = w32(sigma + x) if opt.integrate else x
        act = w32(sigma + bias)
        if opt.act == "relu":
            act = max(act, 0)
        delta = w32(w32(act - act_prev) + residue)
        if opt.cum_error:
            err = w32(err + delta)
            mag = w32(abs(err))
        else:
            mag = w32(abs(delta))
        s = delta if mag >= vth else 0
        if opt.cum_error and s != 0:
            err = 0
        residue = w32(delta - s)
        act_prev = act
        pay = s >> p["state_exp"]
        b = opt.payload_bits
        if opt.payload_overflow == "wrap":
            pay = (pay + 2 ** (b - 1)) % 2**b - 2 ** (b - 1)
        else:
            pay = clip(pay, -(2 ** (b - 1)), 2 ** (b - 1) - 1)
        for k, val in (("sigma", sigma), ("act", act), ("residue", residue), ("err", err), ("s", pay)):
            out[k].append(val)
    return out


def column(params: dict, i: int) -> dict:
    return {k: int(np.broadcast_to(np.asarray(v), (N,))[i]) for k, v in params.items()}


def oracle_lif(p, opt, a_seq, u0, v0, a0=None, adaptive=False) -> dict:
    want = {c: np.zeros(a_seq.shape, np.int64) for c in ("u", "v", "a", "s")}
    for i in range(a_seq.shape[1]):
        o = o_lif(column(p, i), opt, [int(x) for x in a_seq[:, i]], int(u0[i]), int(v0[i]),
                  0 if a0 is None else int(a0[i]), adaptive)
        for c, arr in want.items():
            arr[:, i] = o[c]
    return want


# ----------------------------------------------------------------------------- random draws

def rand_lif_params(rng) -> dict:
    """Random per-neuron LIF parameters over the full accepted ranges, with targeted neurons:
    0: du = dv = 4095, vth = 100 (v == vth << 6 under input 100); 1: a pure integrator."""
    du, dv = rng.integers(0, 4096, N), rng.integers(0, 4096, N)
    du[2:6], dv[2:6] = [0, 4095, 2047, 1], [0, 4095, 2048, 0]
    vth = np.where(rng.random(N) < 0.5, rng.integers(0, 2**8, N), rng.integers(-(2**6), 2**17, N))
    vth[rng.random(N) < 0.1] = rng.choice([-(2**24), 2**24 - 1])
    mant = np.where(rng.random(N) < 0.5, 0, rng.integers(-(2**12), 2**12, N))
    exp = rng.integers(-31, 19, N) * (rng.random(N) < 0.5)
    du[:2], dv[:2], vth[:2], mant[:2] = [4095, 0], [4095, 0], [100, 2**24 - 1], 0
    return {"du": du, "dv": dv, "vth": vth, "bias_mant": mant, "bias_exp": exp}


@st.composite
def drives(draw, steps=STEPS, n=N, max_bits=31):
    """Input sums [steps, n]: random magnitude (up to 2**max_bits), density, sign mix, plus the
    values whose << 6 lands on the 24-bit correction's edges (+-2**23, 2**24 + 2**23)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = draw(st.integers(0, max_bits))
    density = draw(st.sampled_from([0.2, 0.6, 1.0]))
    x = rng.integers(-(2**k), 2**k, (steps, n), endpoint=True) * (rng.random((steps, n)) < density)
    if draw(st.booleans()):
        x = np.abs(x)
    if max_bits > 24 and draw(st.booleans()):
        edges = np.array([2**17, -(2**17), 2**17 - 1, 2**17 + 1, 3 * 2**17, -(3 * 2**17), 100, 2**25, -(2**31)])
        mask = rng.random((steps, n)) < 0.3
        x = np.where(mask, rng.choice(edges, (steps, n)), x)
    return np.clip(x, -(2**31), 2**31 - 1).astype(np.int64)


def random_state(seed: int, bits: int, n=N, lo=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-(2 ** (bits - 1)) if lo is None else lo, 2 ** (bits - 1), n)


def fixed_params_of(p: dict):
    return lif_fixed_params(p["du"], p["dv"], p["vth"], p["bias_mant"], p["bias_exp"])


def run_twin(step, params, state, a_seq, options):
    s, _, trace = run_fixed(step, params, state, jnp.asarray(a_seq, jnp.int32), options)
    return {k: np.asarray(x, np.int64) for k, x in trace._asdict().items()} | {"s": np.asarray(s, np.int64)}


LIF_OPTIONS = [FixedLifOptions(c, r, cur) for c in (">", ">=") for r in ("zero", "subtract")
               for cur in ("lava", "wrap", "saturate")]


# ----------------------------------------------------------------------------- golden vectors

def test_lif_golden_vectors():
    """The spec's three LIF golden vectors (Lava's unit tests), bit for bit through the twin."""
    far = 2**20
    p = lif_fixed_params(du=[2047, 0, 0], dv=[0, 2048, 0], vth=[far, far, 2**17], bias_mant=[0, 0, 4095],
                         bias_exp=[0, 0, 5])
    a = np.zeros((8, 3), np.int32)
    a[0, :2] = 128
    tr = run_twin(lif_fixed_step, p, lif_fixed_initial_state((3,)), a, LAVA_LIF)
    assert list(tr["u"][:, 0]) == [8192, 4096, 2048, 1024, 512, 256, 128, 64]
    assert list(tr["v"][:, 1]) == [8192, 12286, 14331, 15351, 15859, 16111, 16235, 16295]
    assert tr["v"][0, 2] == 4095 * 2**5 and tr["s"][0, 2] == 0
    assert not tr["s"].any()


def test_current_edges_and_equality_compare():
    """Hand-computed edge cases: Lava's single asymmetric correction (-2**23 -> +2**23, +2**23
    kept, 2**25 stays outside 24 bits), the int32 wrap of a_in << 6 (2**25 << 6 = 2**31 wraps to
    -2**31, then gets the one correction; -2**31 << 6 wraps to 0), and v == vth << 6."""
    p = lif_fixed_params(du=4095, dv=4095, vth=2**24 - 1)  # u, v forgotten every step: u = corrected(a << 6)
    a = np.array([[-(2**17), 2**17, 2**19, -(2**19), 2**25, -(2**31), 2**17 - 1, 0]], np.int64)
    z = lif_fixed_initial_state((8,))
    got = {o: run_twin(lif_fixed_step, p, z, a, FixedLifOptions(current=o))["u"][0] for o in ("lava", "wrap", "saturate")}
    assert list(got["lava"]) == [2**23, 2**23, 2**25 - 2**24, -(2**25) + 2**24, -(2**31) + 2**24, 0, 2**23 - 64, 0]
    assert list(got["wrap"]) == [-(2**23), -(2**23), 0, 0, 0, 0, 2**23 - 64, 0]
    assert list(got["saturate"]) == [-(2**23), 2**23 - 1, 2**23 - 1, -(2**23), 2**23 - 1, -(2**23), 2**23 - 64, 0]
    # v == vth << 6: ">" does not fire, ">=" does; reset "subtract" leaves 0 there too
    p = lif_fixed_params(du=4095, dv=4095, vth=100)
    a = np.array([[100]], np.int64)
    for opt, s, v in ((LAVA_LIF, 0, 6400), (FixedLifOptions(compare=">="), 1, 0)):
        tr = run_twin(lif_fixed_step, p, lif_fixed_initial_state((1,)), a, opt)
        assert (tr["s"][0, 0], tr["v"][0, 0]) == (s, v)
    tr = run_twin(lif_fixed_step, p, lif_fixed_initial_state((1,)), np.array([[150]]), IF_FIXED)
    assert (tr["s"][0, 0], tr["v"][0, 0]) == (1, 50 << 6)  # soft reset keeps the excess


# ----------------------------------------------------------------------------- oracles on random inputs

@SETTINGS
@given(x=drives(), seed=st.integers(0, 2**32 - 1), ubits=st.integers(1, 32), vbits=st.integers(1, 24))
def test_lif_twin_matches_oracle(x, seed, ubits, vbits):
    """Every option combination (compare x reset x current) equals the Python-int oracle at every
    step (u, v, spikes), from random parameters and initial registers (u up to 32 bits for the
    "lava" correction, which keeps u in int32; 24 bits otherwise), on int32 inputs whose
    shift by 6 wraps."""
    rng = np.random.default_rng(seed)
    p = rand_lif_params(rng)
    params = fixed_params_of(p)
    v0 = random_state(seed + 1, vbits)
    v0 = np.clip(v0, -V_MAX, V_MAX)
    for opt in LIF_OPTIONS:
        u0 = random_state(seed, ubits if opt.current == "lava" else min(ubits, 24))
        got = run_twin(lif_fixed_step, params, lif_fixed_initial_state((N,))._replace(
            u=jnp.asarray(u0, jnp.int32), v=jnp.asarray(v0, jnp.int32)), x, opt)
        want = oracle_lif(p, opt, x, u0, v0)
        for c in ("u", "v", "s"):
            np.testing.assert_array_equal(got[c], want[c], err_msg=f"{opt} register {c}")


@SETTINGS
@given(x=drives(), seed=st.integers(0, 2**32 - 1))
def test_adaptive_and_if_twins_match_oracle(x, seed):
    """The adaptive-threshold twin (trace a: decay toward zero, threshold (vth + a) << 6,
    += beta per spike, saturating at 2**23 - 1) and the IF twin (du = 4095, dv = 0, subtract)
    equal the oracle at every step."""
    rng = np.random.default_rng(seed)
    p = rand_lif_params(rng)
    p["da"] = rng.integers(0, 4096, N)
    p["beta"] = np.where(rng.random(N) < 0.5, rng.integers(0, 2**10, N), rng.integers(0, 2**23, N))
    p["da"][:2], p["beta"][:2] = [0, 4095], [A_MAX, 0]
    params = alif_fixed_params(p["du"], p["dv"], p["vth"], p["da"], p["beta"], p["bias_mant"], p["bias_exp"])
    u0 = random_state(seed, 24)
    v0 = np.clip(random_state(seed + 1, 24), -V_MAX, V_MAX)
    a0 = rng.integers(0, A_MAX + 1, N)
    state0 = alif_fixed_initial_state((N,))._replace(u=jnp.asarray(u0, jnp.int32), v=jnp.asarray(v0, jnp.int32),
                                                      a=jnp.asarray(a0, jnp.int32))
    for opt in (LAVA_LIF, FixedLifOptions(">=", "subtract", "wrap")):
        got = run_twin(alif_fixed_step, params, state0, x, opt)
        want = oracle_lif(p, opt, x, u0, v0, a0, adaptive=True)
        for c in ("u", "v", "a", "s"):
            np.testing.assert_array_equal(got[c], want[c], err_msg=f"adaptive {opt} register {c}")
    # IF: the LIF rules with du = 4095, dv = 0 and the subtractive reset
    pi = dict(p, du=np.full(N, 4095), dv=np.zeros(N, np.int64))
    got = run_twin(if_fixed_step, if_fixed_params(p["vth"], p["bias_mant"], p["bias_exp"]),
                   lif_fixed_initial_state((N,))._replace(v=jnp.asarray(v0, jnp.int32)), x, IF_FIXED)
    want = oracle_lif(pi, IF_FIXED, x, np.zeros(N), v0)
    for c in ("u", "v", "s"):
        np.testing.assert_array_equal(got[c], want[c], err_msg=f"IF register {c}")


SD_OPTIONS = [SIGMA_DELTA_LAVA, FixedSigmaDeltaOptions(act="unit"), FixedSigmaDeltaOptions(cum_error=True),
              FixedSigmaDeltaOptions(act="unit", cum_error=True, payload_bits=16, payload_overflow="wrap"),
              FixedSigmaDeltaOptions(integrate=False)]


def sd_params(rng) -> dict:
    vth = np.where(rng.random(N) < 0.5, rng.integers(0, 2**8, N), rng.integers(0, 2**20, N))
    bias = np.where(rng.random(N) < 0.5, 0, rng.integers(-(2**16), 2**16, N))
    spike_exp, state_exp = rng.integers(0, 4, N), rng.integers(0, 7, N)
    vth[:3], bias[:3], spike_exp[:3], state_exp[:3] = [0, 10, 0], 0, 0, [0, 0, 2]
    return {"vth": vth, "bias": bias, "spike_exp": spike_exp, "state_exp": state_exp}


def sd_fixed(p):
    return sigma_delta_fixed_params(p["vth"], p["bias"], p["spike_exp"], p["state_exp"])


@SETTINGS
@given(x=drives(), seed=st.integers(0, 2**32 - 1), bits=st.sampled_from([1, 8, 20, 31, 32]))
def test_sigma_delta_twin_matches_oracle(x, seed, bits):
    """Every sigma-delta option set equals the oracle (state and payload) from random initial
    registers (32-bit ones exercise the int32 wrap)."""
    rng = np.random.default_rng(seed)
    p = sd_params(rng)
    init = {r: random_state(seed + i, bits) for i, r in enumerate(("sigma", "act", "residue", "err"))}
    state0 = sigma_delta_fixed_initial_state((N,))._replace(**{k: jnp.asarray(v, jnp.int32) for k, v in init.items()})
    for opt in SD_OPTIONS:
        got = run_twin(sigma_delta_fixed_step, sd_fixed(p), state0, x, opt)
        for i in range(N):
            o = o_sigma_delta(column(p, i), opt, [int(a) for a in x[:, i]], {k: int(v[i]) for k, v in init.items()})
            for c in o:
                np.testing.assert_array_equal(got[c][:, i], o[c], err_msg=f"{opt} neuron {i} register {c}")


# ----------------------------------------------------------------------------- equivalence with the interpreter

CHIP32 = CHIPS["loihi2_32bit"]
INTERP_LIF = {"lava": (LifOptions(), LAVA_LIF), "ge": (LifOptions(compare=">="), FixedLifOptions(compare=">=")),
              "wrap": (LifOptions(current="wrap"), FixedLifOptions(current="wrap")),
              "sat": (LifOptions(current="saturate"), FixedLifOptions(current="saturate"))}
INTERP_SD = {"lava": (SigmaDeltaOptions(), SIGMA_DELTA_LAVA),
             "unit_cum": (SigmaDeltaOptions(act="unit", cum_error=True),
                          FixedSigmaDeltaOptions(act="unit", cum_error=True)),
             "cum16": (SigmaDeltaOptions(cum_error=True, payload_bits=16, payload_overflow="wrap"),
                       FixedSigmaDeltaOptions(cum_error=True, payload_bits=16, payload_overflow="wrap"))}
LIF_P = rand_lif_params(np.random.default_rng(7))
SD_P = sd_params(np.random.default_rng(8))


def simulator(groups) -> Simulator:
    """Input "x" -> weight-1 one-to-one synapses (one step of delay) -> port a_in of every group."""
    net = Network()
    net.add(InputGroup("x", N, bits=24))
    for g in groups:
        net.add(g)
        net.connect(SynapseGroup(f"to_{g.name}", ("x", "out"), (g.name, "a_in"), np.eye(N, dtype=np.int8)))
    return Simulator(net, CHIP32, probes=tuple(f"{g.name}/{c}" for g in groups for c in g.channels()))


@cache
def lif_sim() -> Simulator:
    return simulator([lif_group(f"lif_{k}", N, options=o, trace=True, **LIF_P) for k, (o, _) in INTERP_LIF.items()])


@cache
def sd_sim() -> Simulator:
    return simulator([sigma_delta_group(f"sd_{k}", N, options=o, trace=True, **SD_P) for k, (o, _) in INTERP_SD.items()])


def start_state(sim: Simulator, values: dict) -> dict:
    """The simulator's initial state with registers overwritten: {group: {register: [N]}}."""
    state = sim.initial_state()
    for bi, batch in enumerate(sim.batches):
        start = 0
        for g in batch:
            for reg, arr in values.get(g.name, {}).items():
                if reg in g.program.registers:
                    cur = state["regs"][bi][reg]
                    state["regs"][bi][reg] = cur.at[start:start + g.size].set(jnp.asarray(arr, jnp.int32))
            start += g.size
    return state


def delayed(x: np.ndarray) -> np.ndarray:
    """The neuron's a_in: the injected payloads one step later (the synapse's delay)."""
    return np.concatenate([np.zeros((1,) + x.shape[1:], np.int64), x[:-1]])


@settings(max_examples=8, deadline=None, derandomize=True, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(x=drives(max_bits=23), seed=st.integers(0, 2**32 - 1))
def test_lif_twin_equals_interpreter(x, seed):
    """The interpreter's Lava-compatible LIF microcode (four option presets) and the twin agree bit
    for bit on spikes, u and v at every step, from random initial registers. The interpreter's
    synapse delivers the payload injected at step t on step t + 1, so the twin is fed delayed(x)."""
    x = np.clip(x, -(2**23), 2**23 - 1)
    sim = lif_sim()
    u0 = {k: random_state(seed + i, 32 if k == "lava" else 24) for i, k in enumerate(INTERP_LIF)}
    v0 = np.clip(random_state(seed + 99, 24), -V_MAX, V_MAX)
    tr, _ = sim.run({"x": x}, state=start_state(sim, {f"lif_{k}": {"u": u0[k], "v": v0} for k in INTERP_LIF}))
    params = fixed_params_of(LIF_P)
    for k, (_, opt) in INTERP_LIF.items():
        state0 = LifFixedState(jnp.asarray(u0[k], jnp.int32), jnp.asarray(v0, jnp.int32))
        got = run_twin(lif_fixed_step, params, state0, delayed(x), opt)
        for c in ("u", "v", "s"):
            np.testing.assert_array_equal(got[c], tr.probes[f"lif_{k}/{c}"], err_msg=f"lif_{k} {c}")


def test_interpreter_comparison_sees_spikes():
    """The equivalence check above is not vacuous: on a strong positive drive both fire, often."""
    x = np.full((STEPS, N), 2**12, np.int64)
    sim = lif_sim()
    tr, _ = sim.run({"x": x})
    got = run_twin(lif_fixed_step, fixed_params_of(LIF_P), lif_fixed_initial_state((N,)), delayed(x), LAVA_LIF)
    np.testing.assert_array_equal(got["s"], tr.probes["lif_lava/s"])
    np.testing.assert_array_equal(got["v"], tr.probes["lif_lava/v"])
    assert got["s"].sum() >= 3 * N


@settings(max_examples=8, deadline=None, derandomize=True, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(x=drives(max_bits=23), seed=st.integers(0, 2**32 - 1))
def test_sigma_delta_twin_equals_interpreter(x, seed):
    """The interpreter's sigma-delta microcode and the twin agree on payloads and every register."""
    x = np.clip(x, -(2**23), 2**23 - 1)
    sim = sd_sim()
    init = {r: random_state(seed + i, 24) for i, r in enumerate(("sigma", "act", "residue", "err"))}
    tr, _ = sim.run({"x": x}, state=start_state(sim, {f"sd_{k}": init for k in INTERP_SD}))
    state0 = sigma_delta_fixed_initial_state((N,))._replace(**{k: jnp.asarray(v, jnp.int32) for k, v in init.items()})
    for k, (_, opt) in INTERP_SD.items():
        got = run_twin(sigma_delta_fixed_step, sd_fixed(SD_P), state0, delayed(x), opt)
        np.testing.assert_array_equal(got["s"], tr.probes[f"sd_{k}/s"], err_msg=f"sd_{k} s")
        for c in ("sigma", "act", "residue") + (("err",) if opt.cum_error else ()):
            np.testing.assert_array_equal(got[c], tr.probes[f"sd_{k}/{c}"], err_msg=f"sd_{k} {c}")


# ----------------------------------------------------------------------------- float modules

KEY = jax.random.PRNGKey(0)
MODULES = [LIF(), LIF(reset="subtract", surrogate="arctan"), AdaptiveLIF(), IF(), SigmaDelta(),
           SigmaDelta(cum_error=True, act="unit"), LIF(learnable=True, param_shape=(5,))]


def init_apply(m, x, state):
    variables = m.init(KEY, x, state)
    return variables, m.apply(variables, x, state)


@pytest.mark.parametrize("m", MODULES, ids=lambda m: type(m).__name__)
def test_shapes_and_scan_equals_step_loop(m):
    """[T, B, F] in -> spikes [T, B, F] and a state of [B, F] leaves; the scan equals a Python loop
    of the single-step method, exactly (spikes) and to float rounding (state)."""
    x = 1.5 * jax.random.normal(KEY, (12, 3, 5))
    state0 = m.initial_state((3, 5))
    variables, (s, final) = init_apply(m, x, state0)
    assert s.shape == (12, 3, 5) and all(leaf.shape == (3, 5) for leaf in final)
    st_, outs = state0, []
    for t in range(12):
        st_, o = m.apply(variables, st_, x[t], method="step")
        outs.append(o)
    np.testing.assert_array_equal(np.stack(outs), np.asarray(s))
    for a, b in zip(st_, final):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
    if not isinstance(m, SigmaDelta):
        assert set(np.unique(np.asarray(s))) <= {0.0, 1.0} and 0 < float(s.mean()) < 1


def test_first_step_gradient_is_the_surrogate():
    """From rest, v = x at step 0, so d spike / dx = surrogate'(x - threshold), per surrogate."""
    xs = jnp.linspace(-1.0, 3.0, 9)
    for name in SURROGATES:
        m = LIF(threshold=1.3, surrogate=name, slope=3.0)

        def first_spike(x, m=m):
            return m.apply({}, x[None, None], m.initial_state((1,)))[0][0, 0]

        g = jax.vmap(jax.grad(first_spike))(xs)
        np.testing.assert_allclose(np.asarray(g), np.asarray(SURROGATES[name].grad(xs - 1.3, 3.0)), rtol=1e-6)


class TwoLayer(nn.Module):
    """Dense -> LIF -> Dense -> AdaptiveLIF over time-major sequences."""

    @nn.compact
    def __call__(self, x_seq):
        h = nn.Dense(16)(x_seq)
        l1 = LIF(learnable=True, param_shape=(16,), surrogate="arctan")
        s1, _ = l1(h, l1.initial_state(h.shape[1:]))
        o = nn.Dense(4)(s1)
        l2 = AdaptiveLIF(threshold=0.5)
        s2, _ = l2(o, l2.initial_state(o.shape[1:]))
        return s2


def test_gradients_flow_through_two_layers_over_time():
    """Every parameter (both Dense layers, the learned decays and thresholds) gets a finite,
    non-zero gradient from a loss on the output spike rates after T = 20 steps."""
    x = jax.random.uniform(KEY, (20, 8, 6), minval=0.0, maxval=2.0)
    net = TwoLayer()
    params = jax.jit(net.init)(KEY, x)
    target = jnp.linspace(0.1, 0.9, 4)

    def loss(p):
        return jnp.mean((net.apply(p, x).mean(axis=(0, 1)) - target) ** 2)

    grads = jax.jit(jax.grad(loss))(params)
    leaves = jax.tree_util.tree_leaves_with_path(grads)
    assert len(leaves) == 7  # 2 x (kernel, bias) + decay_u, decay_v, threshold
    for path, g in leaves:
        g = np.asarray(g)
        assert np.all(np.isfinite(g)), path
        assert np.abs(g).max() > 0, path
    assert float(jax.jit(net.apply)(params, x).mean()) > 0  # the network fires


def test_soft_and_hard_reset():
    """Constant input 0.625 into a pure integrator (decay_u = 0, decay_v = 1), threshold 1:
    hard reset fires every 2nd step (v: 0.625, 1.25 -> 0, ...); subtract keeps the excess
    (v after a spike = v - 1) and fires on 9 of 16 steps (spike when 0.625 t - spikes > 1)."""
    x = jnp.full((16, 1), 0.625)
    traj = {}
    for reset in ("zero", "subtract"):
        m = LIF(decay_u=0.0, decay_v=1.0, threshold=1.0, reset=reset)
        st_, vs, ss = m.initial_state((1,)), [], []
        for t in range(16):
            st_, s = m.apply({}, st_, x[t], method="step")
            vs.append(float(st_.v[0]))
            ss.append(float(s[0]))
        traj[reset] = (vs, ss)
    vs, ss = traj["zero"]
    assert ss == [0.0, 1.0] * 8 and vs == [0.625, 0.0] * 8
    vs, ss = traj["subtract"]
    want_v, v, want_s = [], 0.0, []
    for t in range(16):
        v += 0.625
        s = float(v > 1.0)
        v -= s
        want_v.append(v)
        want_s.append(s)
    assert ss == want_s and vs == want_v and sum(ss) == 9


def test_adaptive_threshold_rises_after_spikes():
    """a jumps by beta at each spike and decays by decay_a between them; with adaptation the
    neuron fires less than the same LIF (beta = 0) under a constant drive."""
    x = jnp.full((30, 1), 0.4)
    m = AdaptiveLIF(decay_u=0.0, decay_v=0.9, threshold=1.0, decay_a=0.8, beta=0.5)
    st_, a_prev, n = m.initial_state((1,)), 0.0, 0
    for t in range(30):
        st_, s = m.apply({}, st_, x[t], method="step")
        a = float(st_.a[0])
        assert a == pytest.approx(0.8 * a_prev + 0.5 * float(s[0]), abs=1e-6)
        if s[0] == 1:
            assert a > a_prev
            n += 1
        a_prev = a
    plain = AdaptiveLIF(decay_u=0.0, decay_v=0.9, threshold=1.0, decay_a=0.8, beta=0.0)
    n_plain = float(plain.apply({}, x, plain.initial_state((1,)))[0].sum())
    assert 0 < n < n_plain


def test_sigma_delta_float_is_lossless_at_zero_threshold():
    """threshold 0: the decoded payload (running sum) equals the activation at every step;
    a positive threshold sends fewer, larger messages and keeps the rest in the residue."""
    x = jax.random.normal(KEY, (25, 4, 3))
    for act in ("relu", "unit"):
        m = SigmaDelta(threshold=0.0, act=act)
        s, _ = m.apply({}, x, m.initial_state((4, 3)))
        sig = jnp.cumsum(x, 0)
        want = jnp.maximum(sig, 0.0) if act == "relu" else sig
        np.testing.assert_allclose(np.asarray(sigma_decode(s)), np.asarray(want), atol=1e-5)
    m = SigmaDelta(threshold=1.0)
    s, final = m.apply({}, x, m.initial_state((4, 3)))
    assert 0 < int((s != 0).sum()) < s.size
    np.testing.assert_allclose(np.asarray(sigma_decode(s)[-1] + final.residue), np.asarray(final.act), atol=1e-5)


# ----------------------------------------------------------------------------- float -> fixed mapping

def test_decay_and_bias_codes():
    assert list(decay_to_du([1.0, 0.75, 0.5, 0.0])) == [0, 1023, 2047, 4095]
    assert list(decay_to_dv([1.0, 0.75, 0.5, 0.0])) == [0, 1024, 2048, 4095]
    assert bias_to_mant_exp(4095) == (4095, 0) and bias_to_mant_exp(-4096) == (-4096, 0)
    assert bias_to_mant_exp(4096) == (2048, 1) and bias_to_mant_exp(-12289) == (-3072, 2)
    m = LIF(decay_u=0.75, decay_v=0.5, threshold=1.5, bias=0.25)
    p = m.fixed_params(8)
    assert (int(p.du), int(p.dv), int(p.vth)) == (1023, 2048, 384)
    assert int(p.bias_mant) << int(p.bias_exp) == round(0.25 * 2**14)
    # learned, per-channel values are read from the module's variables (clipped as in the forward pass)
    m = LIF(learnable=True, param_shape=(3,))
    variables = {"params": {"decay_u": jnp.array([0.5, 1.2, 0.0]), "decay_v": jnp.array([0.75, 0.5, -0.3]),
                            "threshold": jnp.array([1.0, 2.0, -5.0])}}
    p = m.fixed_params(4, variables)
    assert list(p.du) == [2047, 0, 4095] and list(p.dv) == [1024, 2048, 4095] and list(p.vth) == [16, 32, 0]
    s, _ = m.apply(variables, jnp.full((1, 2, 3), 0.5), m.initial_state((2, 3)))
    assert list(np.asarray(s[0, 0])) == [0.0, 0.0, 1.0]  # the third threshold is clipped to 1e-6


def test_if_and_adaptive_float_equal_their_twins_on_the_grid():
    """Inputs on the 2**-8 grid, exactly representable decays (0 / 1): the float modules and the
    twins agree exactly (spikes; v_int == v * 2**14; a_int == a * 2**8)."""
    frac = 8
    xq = np.random.default_rng(1).integers(-150, 400, (40, 2, 6))
    x = jnp.asarray(xq / 2**frac, jnp.float32)
    a_in = input_to_fixed(x, frac)
    np.testing.assert_array_equal(np.asarray(a_in), xq)
    for m in (IF(threshold=1.25, bias=0.125), IF(threshold=0.75, reset="zero", compare=">="),
              LIF(decay_u=0.0, decay_v=1.0, threshold=2.0, bias=-0.0625)):
        s, final = m.apply({}, x, m.initial_state((2, 6)))
        step = lif_fixed_step
        got = run_twin(step, m.fixed_params(frac), lif_fixed_initial_state((2, 6)), a_in, m.fixed_options())
        np.testing.assert_array_equal(got["s"][-1], np.asarray(s[-1]))
        np.testing.assert_array_equal(got["s"].sum(0), np.asarray(s.sum(0)))
        np.testing.assert_array_equal(got["v"][-1], np.asarray(final.v) * 2**(frac + 6))
        assert s.sum() > 10
    m = AdaptiveLIF(decay_u=0.0, decay_v=1.0, decay_a=1.0, threshold=1.0, beta=0.25, reset="subtract")
    s, final = m.apply({}, x, m.initial_state((2, 6)))
    got = run_twin(alif_fixed_step, m.fixed_params(frac), alif_fixed_initial_state((2, 6)), a_in, m.fixed_options())
    np.testing.assert_array_equal(got["s"], np.asarray(s))
    np.testing.assert_array_equal(got["a"][-1], np.asarray(final.a) * 2**frac)
    assert s.sum() > 10


def test_sigma_delta_float_equals_twin_on_the_grid():
    """Float sigma-delta (adds, compares only) equals the twin exactly on grid inputs, incl. scaling:
    a_in = x * 2**(frac + spike_exp + state_exp), payload p = s * 2**(frac + spike_exp)."""
    frac, spike_exp, state_exp = 6, 2, 3
    xq = np.random.default_rng(2).integers(-300, 300, (30, 3, 4))
    x = jnp.asarray(xq / 2**frac, jnp.float32)
    for m in (SigmaDelta(threshold=0.5, bias=0.25), SigmaDelta(threshold=2.0, cum_error=True, act="unit")):
        s, _ = m.apply({}, x, m.initial_state((3, 4)))
        a_in = jnp.asarray(xq * 2 ** (spike_exp + state_exp), jnp.int32)
        got = run_twin(sigma_delta_fixed_step, m.fixed_params(frac, spike_exp, state_exp),
                       sigma_delta_fixed_initial_state((3, 4)), a_in, m.fixed_options())
        np.testing.assert_array_equal(got["s"], np.asarray(s) * 2 ** (frac + spike_exp))
        assert 0 < int((got["s"] != 0).sum()) < got["s"].size


def test_lif_float_tracks_twin_below_threshold():
    """General decays: the twin truncates each product toward zero, so below threshold its
    voltage stays within a few LSBs (2**-14) per step of the float LIF, never exactly equal."""
    frac = 8
    xq = np.random.default_rng(3).integers(-100, 100, (30, 1, 8))
    x = jnp.asarray(xq / 2**frac, jnp.float32)
    m = LIF(decay_u=0.8, decay_v=0.9, threshold=100.0)
    s, _ = m.apply({}, x, m.initial_state((1, 8)))
    fx = run_twin(lif_fixed_step, m.fixed_params(frac), lif_fixed_initial_state((1, 8)), input_to_fixed(x, frac),
                  m.fixed_options())
    # float reference with the twin's (quantized) decays, in float64
    ku, kv = (4095 - int(decay_to_du(0.8))) / 4096, (4096 - int(decay_to_dv(0.9))) / 4096
    u = v = np.zeros((1, 8))
    for t in range(30):
        u = ku * u + xq[t]
        v = kv * v + u
    lsb = 2.0 ** -(frac + 6)
    err = np.abs(fx["v"][-1] * lsb - v * 2**-frac)
    assert err.max() < 30 * 20 * lsb and err.max() > 0
    assert not s.any() and not fx["s"].any()


# ----------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("make, match", [
    (lambda: LIF(decay_u=-0.1), "decay_u must be a number in \\[0, 1\\]"),
    (lambda: LIF(decay_v=1.5), "decay_v must be a number in \\[0, 1\\]"),
    (lambda: AdaptiveLIF(decay_a=2.0), "decay_a"),
    (lambda: LIF(threshold=0.0), "threshold must be a finite number > 0"),
    (lambda: IF(threshold=-1.0), "threshold"),
    (lambda: AdaptiveLIF(beta=-0.1), "beta"),
    (lambda: SigmaDelta(threshold=-0.1), "threshold must be a finite number >= 0"),
    (lambda: LIF(surrogate="triangle"), "unknown surrogate 'triangle'"),
    (lambda: LIF(slope=-1.0), "slope"),
    (lambda: LIF(reset="soft"), "reset"),
    (lambda: LIF(compare="=="), "compare"),
    (lambda: SigmaDelta(act="tanh"), "act"),
    (lambda: FixedLifOptions(current="clamp"), "current"),
    (lambda: FixedSigmaDeltaOptions(payload_bits=40), "payload_bits"),
    (lambda: lif_fixed_params(du=4096, dv=0, vth=1), "du must lie in \\[0, 4095\\]"),
    (lambda: lif_fixed_params(du=0, dv=0, vth=2**24), "vth"),
    (lambda: lif_fixed_params(du=0, dv=0, vth=1.5), "vth must be integers"),
    (lambda: alif_fixed_params(0, 0, 1, da=0, beta=-1), "beta"),
    (lambda: sigma_delta_fixed_params(vth=2**20, spike_exp=12), "does not fit int32"),
    (lambda: bias_to_mant_exp(2**40), "does not fit"),
    (lambda: LIF(threshold=2.0**30).fixed_params(8), "below 2\\*\\*24"),
    (lambda: LIF(learnable=True).fixed_params(8), "pass its variables"),
    (lambda: LIF(order="lava"), "order 'lava' must be one of"),
    (lambda: LIF(order="snntorch").fixed_params(8), "only order='neurojax'"),
    (lambda: LIF(order="spyx").fixed_options(), "only order='neurojax'"),
])
def test_bad_configuration_raises(make, match):
    with pytest.raises(NeurojaxError, match=match):
        make()


def test_bad_state_and_input_raise():
    m = LIF()
    x = jnp.ones((4, 2, 3))
    with pytest.raises(NeurojaxError, match="state.u has shape \\(2,\\), expected \\(2, 3\\)"):
        m.apply({}, x, m.initial_state((2,)))
    with pytest.raises(NeurojaxError, match="state must be the NamedTuple"):
        m.apply({}, x, (jnp.zeros((2, 3)), jnp.zeros((2, 3))))
    with pytest.raises(NeurojaxError, match="float array"):
        m.apply({}, jnp.ones((4, 2, 3), jnp.int32), m.initial_state((2, 3)))
    with pytest.raises(NeurojaxError, match="state.v has shape"):
        m.apply({}, m.initial_state((2, 3))._replace(v=jnp.zeros((3,))), x[0], method="step")
    p = lif_fixed_params(0, 0, 1)
    with pytest.raises(NeurojaxError, match="expected \\(3,\\)"):
        run_fixed(lif_fixed_step, p, lif_fixed_initial_state((2,)), jnp.zeros((5, 3), jnp.int32))
    with pytest.raises(NeurojaxError, match="integer array"):
        run_fixed(lif_fixed_step, p, lif_fixed_initial_state((3,)), jnp.zeros((5, 3)))


def test_pure_step_function_in_a_scan():
    """`lif_step` is usable directly as a lax.scan body (the modules are thin wrappers of it)."""
    f = spike_fn("fast_sigmoid")
    x = jax.random.normal(KEY, (10, 4)) + 0.5

    def body(s, xt):
        return lif_step(s, xt, decay_u=0.5, decay_v=0.75, threshold=1.0, spike=f)

    z = LIFState(jnp.zeros(4), jnp.zeros(4))
    final, s = jax.lax.scan(body, z, x)
    s2, final2 = LIF().apply({}, x, z)
    np.testing.assert_array_equal(np.asarray(s), np.asarray(s2))
    np.testing.assert_array_equal(np.asarray(final.v), np.asarray(final2.v))


# ----------------------------------------------------------------------------- update orders


def _order_oracle(x, order, reset, beta=0.9, th=1.0, decay_u=0.0, bias=0.0):
    """Float64 NumPy transcription of snnTorch 1.0 `Leaky` (reset_delay=True) and Spyx 1.0 `LIF`,
    with the current u of the neurojax LIF in front (decay_u = 0: u = x)."""
    u = np.zeros(x.shape[1:])
    v = np.zeros(x.shape[1:])
    out, vs = [], []
    for t in range(x.shape[0]):
        u = decay_u * u + x[t]
        if order == "snntorch":
            r = (v - th > 0).astype(float)  # snnTorch: mem_reset(mem) of the previous membrane
            v = beta * v + u + bias - r * th if reset == "subtract" else beta * (1 - r) * v + u + bias
            out.append((v - th > 0).astype(float))
        else:  # spyx: spikes = heaviside(V - thr); V = beta V + x - spikes thr
            s = (v - th > 0).astype(float)
            v = beta * v + u + bias - s * th if reset == "subtract" else beta * (1 - s) * v + u + bias
            out.append(s)
        vs.append(v.copy())
    return np.stack(out), np.stack(vs)


@pytest.mark.parametrize("order", ["snntorch", "spyx"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_orders_follow_the_libraries_equations(order, reset):
    """Spikes equal the float64 oracle exactly and membranes to float32 rounding, step by step,
    from the scan and from the single-step method; spyx spikes lag by one step (s_0 = 0)."""
    rng = np.random.default_rng(3)
    x = rng.integers(-8, 40, (40, 3, 6)) / 32.0
    m = LIF(decay_u=0.0, decay_v=0.5, threshold=1.0, reset=reset, order=order)
    want_s, want_v = _order_oracle(x, order, reset, beta=0.5)
    s, final = m.apply({}, jnp.asarray(x, jnp.float32), m.initial_state((3, 6)))
    np.testing.assert_array_equal(np.asarray(s), want_s)
    np.testing.assert_allclose(np.asarray(final.v), want_v[-1], rtol=0, atol=1e-6)
    assert 0.05 < want_s.mean() < 0.6
    if order == "spyx":
        assert not want_s[0].any()
    st_ = m.initial_state((3, 6))
    for t in range(5):
        st_, o = m.apply({}, st_, jnp.asarray(x[t], jnp.float32), method="step")
        np.testing.assert_array_equal(np.asarray(o), want_s[t])
        np.testing.assert_allclose(np.asarray(st_.v), want_v[t], rtol=0, atol=1e-6)


def test_orders_differ_and_default_is_unchanged():
    """The default order is the neurojax one (its subtracted threshold decays with the membrane,
    so its spikes differ); snntorch and spyx share the membrane dynamics, so spyx's spikes are
    snntorch's one step later."""
    x = jnp.asarray(np.random.default_rng(4).uniform(0, 0.6, (30, 2, 8)), jnp.float32)
    outs = {}
    for order in ("neurojax", "snntorch", "spyx"):
        m = LIF(decay_u=0.0, decay_v=0.9, reset="subtract", order=order)
        outs[order] = np.asarray(m.apply({}, x, m.initial_state((2, 8)))[0])
    default = LIF(decay_u=0.0, decay_v=0.9, reset="subtract")
    np.testing.assert_array_equal(np.asarray(default.apply({}, x, default.initial_state((2, 8)))[0]), outs["neurojax"])
    assert not np.array_equal(outs["neurojax"], outs["snntorch"])
    np.testing.assert_array_equal(outs["spyx"][1:], outs["snntorch"][:-1])
    assert not outs["spyx"][0].any() and outs["snntorch"].sum() > 20


@pytest.mark.parametrize("order", ["snntorch", "spyx"])
def test_order_gradients_match_hand_derivation(order):
    """Two steps, one neuron, reset by subtraction, threshold 1, beta b, inputs (x0, x1):
    snntorch: v0 = x0, v1 = b v0 + x1 - H(v0 - 1); loss = s0 + s1 with s_t = H(v_t - 1), so
        dL/dx0 = g(v0) + g(v1) (b - [not detached] g(v0)),  dL/dx1 = g(v1);
    spyx: s0 = 0, s1 = H(v0 - 1), loss = s0 + s1 + 3 s2 where s2 = H(v1 - 1) with v1 as above:
        dL/dx0 = g(v0) + 3 g(v1) (b - [not detached] g(v0)),  dL/dx1 = 3 g(v1)."""
    b, slope = 0.75, 4.0
    x = jnp.asarray([[[1.25]], [[0.5]], [[0.0]]], jnp.float32)
    gfun = SURROGATES["fast_sigmoid"].grad
    v0 = 1.25
    v1 = b * v0 + 0.5 - 1.0
    g0, g1 = float(gfun(v0 - 1.0, slope)), float(gfun(v1 - 1.0, slope))
    for detach in (True, False):
        m = LIF(decay_u=0.0, decay_v=b, reset="subtract", slope=slope, order=order, detach_reset=detach)
        w = jnp.asarray([1.0, 1.0, 0.0]) if order == "snntorch" else jnp.asarray([1.0, 1.0, 3.0])

        def loss(x_, m=m, w=w):
            return jnp.sum(m.apply({}, x_, m.initial_state((1, 1)))[0][:, 0, 0] * w)

        grad = np.asarray(jax.grad(loss)(x))[:, 0, 0]
        k = 1.0 if order == "snntorch" else 3.0
        want0 = g0 + k * g1 * (b - (0.0 if detach else g0))
        np.testing.assert_allclose(grad[:2], [want0, k * g1], rtol=1e-6)
