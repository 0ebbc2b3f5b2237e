"""Reference neuron microcode against the spec's golden vectors and plain-Python-int oracles.

Every neuron runs inside a real `Simulator`: an `InputGroup` "x" injects payloads, and a
one-to-one `SynapseGroup` of weight 1 delivers them to the port `a_in`. That synapse adds one
step of delay, so a payload injected at simulator step t is the neuron's `a_in` at step t + 1
(the oracle is fed `a_in[t] = x[t - 1]`, `a_in[0] = 0`).

Each neuron family is one cached Simulator holding a group per option preset (all groups of a
family share the same per-neuron parameters, so any difference between groups comes from the
options alone); hypothesis draws the injected inputs and the initial registers, which are
runtime values, so nothing recompiles between examples. The oracles below are written from
the spec's rules with Python integers, independently of the microcode.
"""
from functools import cache

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from neurojax.errors import NeurojaxError
from neurojax.neuromorphic.chip import CHIPS, LOIHI2
from neurojax.neuromorphic.interpreter import Simulator
from neurojax.neuromorphic.network import InputGroup, Network, SynapseGroup
from neurojax.neuromorphic.neurons import (
    LAVA,
    SIGMA_DELTA_LAVA,
    LifOptions,
    SigmaDeltaOptions,
    lif_group,
    lif_program,
    lif_reset_group,
    sigma_delta_group,
    ternary_lif_group,
)

CHIP32 = CHIPS["loihi2_32bit"]  # trace channels carry 32-bit state
N = 16  # neurons per group
STEPS = 14
# no shrinking: examples are drawn from seeds, so shrinking cannot simplify them, only take minutes
SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                    phases=(Phase.explicit, Phase.reuse, Phase.generate))
I32 = 2**31
V_MAX = 2**23 - 1


# ----------------------------------------------------------------------------- oracles (Python ints)

def w32(x: int) -> int:
    return (x + I32) % 2**32 - I32


def fits(x: int, bits: int) -> bool:
    return -(2 ** (bits - 1)) <= x < 2 ** (bits - 1)


def tz12(p: int) -> int:
    """sign(p) * (|p| >> 12)."""
    return abs(p) >> 12 if p >= 0 else -(abs(p) >> 12)


class Ovf:
    """Collects whether any value left its width during an oracle run."""

    def __init__(self):
        self.any = False

    def i32(self, x: int) -> int:
        self.any |= not fits(x, 32)
        return w32(x)


def o_lif_sub(u, v, a, p, opt, ovf):
    """Spec LIF steps 1-5 on Python ints."""
    u = tz12(u * (4096 - (p["du"] + 1)))
    total = u + (a << 6)
    if opt.current == "lava":
        u = ovf.i32(u + ovf.i32(a << 6))
        if u > 2**23:
            u -= 2**24
        elif u <= -(2**23):
            u += 2**24
    elif opt.current == "wrap":
        ovf.any |= not fits(total, 24)
        u = (total + 2**23) % 2**24 - 2**23
    else:
        ovf.any |= not fits(total, 24)
        u = min(max(total, -(2**23)), 2**23 - 1)
    v = tz12(v * (4096 - p["dv"]))
    e = p["bias_exp"]
    bias = p["bias_mant"] << e if e >= 0 else p["bias_mant"] >> -e
    v = ovf.i32(ovf.i32(v + u) + bias)
    return u, min(max(v, -V_MAX), V_MAX)


def o_above(v, th, opt):
    return v > th if opt.compare == ">" else v >= th


def o_below(v, th, opt):
    return v < th if opt.compare == ">" else v <= th


def o_lif(kind, opt, p, a_in, u, v):
    """One neuron of the LIF family over all steps: ({"u","v","s"} lists, overflowed)."""
    ovf = Ovf()
    out = {"u": [], "v": [], "s": []}
    for k, a in enumerate(a_in, start=1):  # Lava's step counter starts at 1
        if kind == "reset" and k % p["reset_interval"] == p["reset_offset"] % p["reset_interval"]:
            u = v = 0
        u, v = o_lif_sub(u, v, a, p, opt, ovf)
        if kind == "ternary":
            s = 1 if o_above(v, p["vth_hi"] << 6, opt) else -1 if o_below(v, p["vth_lo"] << 6, opt) else 0
        else:
            s = int(o_above(v, p["vth"] << 6, opt))
        if s:
            v = opt.reset
        for name, x in (("u", u), ("v", v), ("s", s)):
            out[name].append(x)
    return out, ovf.any


def o_sigma_delta(opt, p, a_in, st0):
    """One sigma-delta neuron over all steps: ({"sigma","act","residue","err","s"}, overflowed)."""
    ovf = Ovf()
    scale = 2 ** (p["spike_exp"] + p["state_exp"])
    vth, bias = p["vth"] * scale, p["bias"] * scale
    sigma, act_prev, residue, err = st0["sigma"], st0["act"], st0["residue"], st0.get("err", 0)
    out = {k: [] for k in ("sigma", "act", "residue", "err", "s")}
    for a in a_in:
        sigma = ovf.i32(sigma + a)
        act = ovf.i32(sigma + bias)
        if opt.act == "relu":
            act = max(act, 0)
        delta = ovf.i32(ovf.i32(act - act_prev) + residue)
        if opt.cum_error:
            err = ovf.i32(err + delta)
            mag = ovf.i32(abs(err))
        else:
            mag = ovf.i32(abs(delta))
        s = delta if mag >= vth else 0
        if opt.cum_error and s != 0:
            err = 0
        residue = ovf.i32(delta - s)
        act_prev = act
        pay = s >> p["state_exp"]  # floor
        if not fits(pay, opt.payload_bits):
            ovf.any = True
            b = opt.payload_bits
            pay = ((pay + 2 ** (b - 1)) % 2**b - 2 ** (b - 1)) if opt.payload_overflow == "wrap" \
                else min(max(pay, -(2 ** (b - 1))), 2 ** (b - 1) - 1)
        for name, x in (("sigma", sigma), ("act", act), ("residue", residue), ("err", err), ("s", pay)):
            out[name].append(x)
    return out, ovf.any


# ----------------------------------------------------------------------------- harness

def simulator(groups, chip=CHIP32, n=N) -> Simulator:
    """Input "x" -> weight-1 one-to-one synapses (delay 1) -> port a_in of every group; all channels probed."""
    net = Network()
    net.add(InputGroup("x", n, bits=24))
    for g in groups:
        net.add(g)
        net.connect(SynapseGroup(f"to_{g.name}", ("x", "out"), (g.name, "a_in"), np.eye(n, dtype=np.int8)))
    probes = tuple(f"{g.name}/{c}" for g in groups for c in g.channels())
    return Simulator(net, chip, probes=probes)


def start_state(sim: Simulator, values: dict) -> dict:
    """The simulator's initial state with some registers overwritten: {group: {register: [size]}}.

    A batch (groups sharing a program) holds each register as one array, its groups' neurons
    concatenated in batch order."""
    state = sim.initial_state()
    for bi, batch in enumerate(sim.batches):
        start = 0
        for g in batch:
            for reg, arr in values.get(g.name, {}).items():
                if reg in g.program.registers:  # e.g. no err without cum_error
                    cur = state["regs"][bi][reg]
                    state["regs"][bi][reg] = cur.at[start:start + g.size].set(jnp.asarray(arr, jnp.int32))
            start += g.size
    return state


def delayed(x: np.ndarray) -> np.ndarray:
    """What the neurons receive on a_in: the injected payloads one step later."""
    return np.concatenate([np.zeros((1,) + x.shape[1:], np.int64), x[:-1]]).astype(np.int64)


def column(params: dict, i: int) -> dict:
    return {k: int(np.broadcast_to(v, (N,))[i]) for k, v in params.items()}


@st.composite
def drives(draw, steps=STEPS, n=N):
    """Injected payloads [steps, n]: a random magnitude (1..2**23), density and sign mix."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = draw(st.integers(0, 23))
    density = draw(st.sampled_from([0.2, 0.6, 1.0]))
    x = rng.integers(-(2**k), 2**k, (steps, n), endpoint=True) * (rng.random((steps, n)) < density)
    if draw(st.booleans()):
        x = np.abs(x)  # a one-signed drive reaches thresholds and the 24-bit bounds
    return np.clip(x, -(2**23), 2**23 - 1)


def random_state(seed: int, bits: int, n=N) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), n)


# ----------------------------------------------------------------------------- LIF family setup

LIF_VARIANTS = {
    "lava": LAVA,
    "ge": LifOptions(compare=">="),
    "wrap": LifOptions(current="wrap"),
    "sat": LifOptions(current="saturate"),
    "reset": LifOptions(reset=-1000),
    "mix": LifOptions(compare=">=", reset=5000, current="wrap"),
}
TERNARY_VARIANTS = {"lava": LAVA, "mix": LifOptions(compare=">=", reset=300, current="wrap"),
                    "sat": LifOptions(current="saturate")}
RESET_VARIANTS = {"lava": LAVA, "mix": LifOptions(compare=">=", current="wrap")}


def lif_params(kind: str) -> dict:
    """Shared per-neuron parameters: neurons 0-2 are set up for the targeted tests, the rest random.

    0: du = dv = 4095 (u and v are forgotten every step), vth 100: v == vth << 6 under input 100.
    1: du = dv = 0, vth beyond reach: a pure integrator for the current-wrap tests.
    2: du = dv = 0 (reset family: interval 3, offset 0), vth beyond reach.
    """
    rng = np.random.default_rng({"lif": 1, "ternary": 2, "reset": 3}[kind])
    du = rng.integers(0, 4096, N)
    dv = rng.integers(0, 4096, N)
    du[3:7], dv[3:7] = [0, 4095, 2047, 1], [0, 4095, 2048, 0]
    vth = np.where(rng.random(N) < 0.5, rng.integers(0, 2**8, N), rng.integers(-(2**6), 2**17, N))
    mant = np.where(rng.random(N) < 0.5, 0, rng.integers(-(2**12), 2**12, N))
    exp = rng.integers(-31, 19, N) * (rng.random(N) < 0.5)
    du[:3], dv[:3], vth[:3], mant[:3] = [4095, 0, 0], [4095, 0, 0], [100, 2**24 - 1, 2**24 - 1], 0
    p = {"du": du, "dv": dv, "bias_mant": mant, "bias_exp": exp}
    if kind == "ternary":
        p["vth_lo"] = vth - rng.integers(1, 2**10, N)
        p["vth_hi"] = vth
        p["vth_lo"][0] = -100
        p["vth_lo"][4:8] = -vth[4:8]  # symmetric thresholds where vth > 0
        p["vth_lo"][4:8] = np.minimum(p["vth_lo"][4:8], vth[4:8] - 1)
    else:
        p["vth"] = vth
    if kind == "reset":
        p["reset_interval"] = rng.integers(1, 7, N)
        p["reset_offset"] = rng.integers(-20, 20, N)
        p["reset_interval"][2], p["reset_offset"][2] = 3, 0
    return p


BUILD = {"lif": (lif_group, LIF_VARIANTS), "ternary": (ternary_lif_group, TERNARY_VARIANTS),
         "reset": (lif_reset_group, RESET_VARIANTS)}


@cache
def lif_family(kind: str) -> Simulator:
    build, variants = BUILD[kind]
    p = lif_params(kind)
    return simulator([build(f"{kind}_{name}", N, options=opt, trace=True, **p) for name, opt in variants.items()])


def run_lif_family(kind: str, x: np.ndarray, u0=None, v0=None) -> dict:
    """Simulator trace and oracle traces of every variant of a family: {variant: (sim, oracle, ovf, orc_ovf)}."""
    sim = lif_family(kind)
    _, variants = BUILD[kind]
    p = lif_params(kind)
    init = {}
    for name, opt in variants.items():
        uw = 32 if opt.current == "lava" else 24
        init[f"{kind}_{name}"] = {"u": np.zeros(N, np.int64) if u0 is None else u0(uw),
                                  "v": np.zeros(N, np.int64) if v0 is None else v0}
    tr, _ = sim.run({"x": x}, state=start_state(sim, init))
    a_in = delayed(x)
    out = {}
    for name, opt in variants.items():
        g = f"{kind}_{name}"
        got = {c: tr.probes[f"{g}/{c}"] for c in ("u", "v", "s")}
        want, any_ovf = {c: np.zeros((len(x), N), np.int64) for c in ("u", "v", "s")}, False
        for i in range(N):
            o, f = o_lif(kind, opt, column(p, i), [int(a) for a in a_in[:, i]],
                         int(init[g]["u"][i]), int(init[g]["v"][i]))
            any_ovf |= f
            for c, arr in want.items():
                arr[:, i] = o[c]
        out[name] = (got, want, tr.overflow[g], any_ovf)
    return out


# ----------------------------------------------------------------------------- golden vectors

def test_lif_golden_vectors():
    """The spec's three LIF golden vectors, bit for bit (Lava's own unit-test figures).

    "Input 128 at t=0" means the neuron integrates 128 on its first update. Here the payload
    is injected at simulator step 0 and the weight-1 synapse delivers it one step later, so
    step 1 is that first update; step 0 ran with no input on zero state and must stay 0.
    The bias case needs no input: its first update is step 0.
    """
    far = 2**20  # vth << 6 above 2**23 - 1: no spike
    g = lif_group("g", 3, du=[2047, 0, 0], dv=[0, 2048, 0], vth=[far, far, 2**17],
                  bias_mant=[0, 0, 4095], bias_exp=[0, 0, 5], trace=True)
    sim = simulator([g], n=3)
    x = np.zeros((9, 3), np.int64)
    x[0, :2] = 128
    tr, _ = sim.run({"x": x})
    u, v, s = tr.probes["g/u"], tr.probes["g/v"], tr.probes["g/s"]
    assert u[0, 0] == 0 and v[0, 1] == 0
    assert list(u[1:, 0]) == [8192, 4096, 2048, 1024, 512, 256, 128, 64]
    assert list(v[1:, 1]) == [8192, 12286, 14331, 15351, 15859, 16111, 16235, 16295]
    assert v[0, 2] == 4095 * 2**5 and s[0, 2] == 0
    assert not s.any() and tr.overflow["g"] == 0


# ----------------------------------------------------------------------------- oracles on random drives

@pytest.mark.parametrize("kind", ["lif", "ternary", "reset"])
@SETTINGS
@given(x=drives(), seed=st.integers(0, 2**32 - 1), ubits=st.integers(1, 32), vbits=st.integers(1, 24))
def test_lif_family_matches_oracle(kind, x, seed, ubits, vbits):
    """Every LIF-family variant equals the spec oracle at every step (u, v, spikes), from random
    initial registers; an overflow is counted exactly when the oracle saw a value leave its width."""
    v0 = random_state(seed + 1, vbits)
    res = run_lif_family(kind, x, u0=lambda bits: random_state(seed, min(ubits, bits)), v0=v0)
    for name, (got, want, ovf, any_ovf) in res.items():
        for c in ("u", "v", "s"):
            np.testing.assert_array_equal(got[c], want[c], err_msg=f"{kind}_{name} register {c}")
        assert (ovf > 0) == any_ovf, f"{kind}_{name}: overflow count {ovf}, oracle overflowed: {any_ovf}"


# ----------------------------------------------------------------------------- named options

def test_compare_option_decides_equality():
    """v == vth << 6 exactly: the strict ">" (Lava CPU) does not spike, ">=" (training side) does.

    Neuron 0 forgets u and v every step (du = dv = 4095) and receives 100 with vth = 100, so
    v = 100 << 6 on the step after the injection."""
    x = np.zeros((3, N), np.int64)
    x[0, 0] = 100
    res = run_lif_family("lif", x)
    got_gt, want_gt, _, _ = res["lava"]
    got_ge, want_ge, _, _ = res["ge"]
    assert got_gt["v"][1, 0] == 100 << 6  # v stays: no spike, so no reset
    assert got_gt["s"][1, 0] == 0 and got_ge["s"][1, 0] == 1 and got_ge["v"][1, 0] == 0
    for got, want in ((got_gt, want_gt), (got_ge, want_ge)):
        np.testing.assert_array_equal(got["s"], want["s"])


@pytest.mark.parametrize("a", [2**19, -(2**17), 2**17 - 1])
def test_current_wrap_options(a):
    """u = a << 6 on a pure integrator (du = 0, u0 = 0), for the three current conventions.

    2**19 << 6 = 2**25 lies beyond 2**24 + 2**23: Lava's single correction leaves it outside
    24 bits, the two's-complement wrap brings it in range, saturation clips it; -2**23 is
    turned into +2**23 by Lava only; a value inside 24 bits is left alone by all three.
    """
    x = np.zeros((2, N), np.int64)
    x[0, 1] = a
    res = run_lif_family("lif", x)
    u = {m: res[m][0]["u"][1, 1] for m in ("lava", "wrap", "sat")}
    for m in u:
        np.testing.assert_array_equal(res[m][0]["u"], res[m][1]["u"])
    exact = a << 6
    assert u["wrap"] % 2**24 == exact % 2**24 and fits(u["wrap"], 24)
    assert u["sat"] == min(max(exact, -(2**23)), 2**23 - 1)
    if fits(exact, 24) and exact != -(2**23):
        assert u["lava"] == u["wrap"] == u["sat"] == exact
        assert all(res[m][2] == 0 for m in ("wrap", "sat"))
    elif exact == -(2**23):
        assert u["lava"] == 2**23 and u["wrap"] == u["sat"] == -(2**23)  # spec: -2**23 becomes +2**23
    else:
        assert u["lava"] == exact - 2**24 and not fits(u["lava"], 24)  # one correction only
        assert len({int(w) for w in u.values()}) == 3  # the three conventions disagree
        assert res["wrap"][2] > 0 and res["sat"][2] > 0  # counted where 24 bits were left


def test_lava_current_wraps_int32_and_counts_it():
    """Lava's u lives in int32 outside 24 bits; when u + (a_in << 6) leaves int32 it wraps like the
    reference's int32 arrays (then gets the single correction), and the overflow is counted."""
    x = np.zeros((3, N), np.int64)
    x[0, 1] = 2**23 - 1  # neuron 1: du = 0, no spike; u starts near INT32_MAX
    u0 = np.zeros(N, np.int64)
    u0[1] = 2**31 - 2**20
    res = run_lif_family("lif", x, u0=lambda bits: u0 if bits == 32 else np.zeros(N, np.int64))
    got, want, ovf, any_ovf = res["lava"]
    np.testing.assert_array_equal(got["u"], want["u"])
    assert any_ovf and ovf > 0
    decayed = int(got["u"][0, 1]) * 4095 // 4096  # >= 0, so floor is the truncation
    assert got["u"][1, 1] == w32(decayed + ((2**23 - 1) << 6)) + 2**24  # wrapped negative, then corrected once


def test_reset_value_option():
    """After a spike v holds the configured reset value (0 for Lava, -1000 for the variant)."""
    x = np.zeros((3, N), np.int64)
    x[0, 0] = 200  # neuron 0: v = 200 << 6 > 100 << 6, a spike at step 1
    res = run_lif_family("lif", x)
    assert res["lava"][0]["s"][1, 0] == 1 and res["reset"][0]["s"][1, 0] == 1
    assert res["lava"][0]["v"][1, 0] == 0 and res["reset"][0]["v"][1, 0] == -1000


def test_lif_reset_steps_count_from_one():
    """reset_interval 3, offset 0: u = v = 0 before the updates of Lava steps 3, 6, 9 (counted from
    1), i.e. simulator steps 2, 5, 8; under a constant input the current then restarts at a << 6."""
    a = 1000
    x = np.zeros((10, N), np.int64)
    x[:, 2] = a
    res = run_lif_family("reset", x)
    got, want, _, _ = res["lava"]
    u = got["u"][:, 2]
    np.testing.assert_array_equal(got["u"], want["u"])
    restarts = [t for t in range(1, 10) if u[t] == a << 6]  # steps where u holds one input only
    assert restarts == [1] + [k - 1 for k in range(1, 11) if k % 3 == 0]  # the first input, then resets
    plain = run_lif_family("lif", x)["lava"][0]["u"][:, 2]  # same integrator without resets
    assert plain[2] != u[2] and plain[8] > u[8]


def test_ternary_sends_both_signs():
    """The ternary LIF sends +1 above vth_hi << 6 and -1 below vth_lo << 6 on a graded channel and
    resets v where it sent; at exact equality only the ">=" variant sends (on both sides)."""
    x = np.zeros((8, N), np.int64)
    x[[0, 2, 4, 6], 0] = [200, -200, 100, -100]  # neuron 0: vth_lo = -100, vth_hi = 100, du = dv = 4095
    res = run_lif_family("ternary", x)
    for name in ("lava", "mix"):
        np.testing.assert_array_equal(res[name][0]["s"], res[name][1]["s"], err_msg=name)
    got, mix = res["lava"][0], res["mix"][0]["s"][:, 0]
    assert list(got["s"][:4, 0]) == [0, 1, 0, -1] and list(mix[:4]) == [0, 1, 0, -1]
    assert got["v"][1, 0] == 0 and got["v"][3, 0] == 0
    assert got["v"][5, 0] == 100 << 6 and got["v"][7, 0] == -100 << 6  # equality, no spike for ">"
    assert got["s"][5, 0] == 0 and got["s"][7, 0] == 0 and mix[5] == 1 and mix[7] == -1


def test_group_builders_reject_bad_parameters():
    """Parameters outside the documented ranges are refused with a message naming them."""
    with pytest.raises(NeurojaxError, match="du"):
        lif_group("g", 2, du=4096, dv=0, vth=1)
    with pytest.raises(NeurojaxError, match="bias_exp"):
        lif_group("g", 2, du=0, dv=0, vth=1, bias_exp=19)
    with pytest.raises(NeurojaxError, match="vth_lo must be below vth_hi"):
        ternary_lif_group("g", 2, du=0, dv=0, vth_lo=5, vth_hi=5)
    with pytest.raises(NeurojaxError, match="reset_interval"):
        lif_reset_group("g", 2, du=0, dv=0, vth=1, reset_interval=0)
    with pytest.raises(NeurojaxError, match="does not fit int32"):
        sigma_delta_group("g", 2, vth=2**20, spike_exp=12)
    with pytest.raises(NeurojaxError, match="compare"):
        LifOptions(compare=">>")
    with pytest.raises(NeurojaxError, match="current"):
        LifOptions(current="clamp")


def test_programs_are_shared_and_fit_the_chip():
    """Equal options give one cached Program (groups batch together); the LIF program fits the
    default chip and sends 1-bit spikes, so a network of them validates on a 24-bit payload."""
    assert lif_program(LifOptions()) is lif_program(LAVA)
    assert lif_program(LAVA) is not lif_program(LifOptions(compare=">="))
    prog = lif_program(LAVA)
    prog.check_fits(LOIHI2)
    assert prog.channels == {"s": ("binary", 1)}
    net = Network()
    net.add(InputGroup("x", 2))
    net.add(lif_group("g", 2, du=0, dv=0, vth=1))
    net.connect(SynapseGroup("i", ("x", "out"), ("g", "a_in"), np.eye(2, dtype=np.int8)))
    net.validate(LOIHI2)


# ----------------------------------------------------------------------------- sigma-delta

SD_VARIANTS = {"lava": SIGMA_DELTA_LAVA, "unit": SigmaDeltaOptions(act="unit"),
               "cum": SigmaDeltaOptions(cum_error=True),
               "unit_cum16": SigmaDeltaOptions(act="unit", cum_error=True, payload_bits=16, payload_overflow="wrap")}


def sd_params() -> dict:
    """0: vth 0, no scaling (lossless); 1: vth 10; 2: vth 0, state_exp 2; the rest random."""
    rng = np.random.default_rng(4)
    vth = np.where(rng.random(N) < 0.5, rng.integers(0, 2**8, N), rng.integers(0, 2**20, N))
    bias = np.where(rng.random(N) < 0.5, 0, rng.integers(-(2**16), 2**16, N))
    spike_exp, state_exp = rng.integers(0, 4, N), rng.integers(0, 7, N)
    vth[:3], bias[:3], spike_exp[:3], state_exp[:3] = [0, 10, 0], 0, 0, [0, 0, 2]
    return {"vth": vth, "bias": bias, "spike_exp": spike_exp, "state_exp": state_exp}


@cache
def sd_family() -> Simulator:
    p = sd_params()
    return simulator([sigma_delta_group(f"sd_{k}", N, options=o, trace=True, **p) for k, o in SD_VARIANTS.items()])


def run_sd(x: np.ndarray, init=None) -> dict:
    sim, p = sd_family(), sd_params()
    init = init or {}
    regs = ("sigma", "act", "residue", "err")
    tr, _ = sim.run({"x": x}, state=start_state(sim, {f"sd_{k}": init for k in SD_VARIANTS}))
    a_in = delayed(x)
    out = {}
    for name, opt in SD_VARIANTS.items():
        g = f"sd_{name}"
        chans = [c for c in regs + ("s",) if f"{g}/{c}" in tr.probes]
        got = {c: tr.probes[f"{g}/{c}"] for c in chans}
        want, any_ovf = {c: np.zeros((len(x), N), np.int64) for c in chans}, False
        for i in range(N):
            st0 = {r: int(init[r][i]) if r in init else 0 for r in regs}
            o, f = o_sigma_delta(opt, column(p, i), [int(a) for a in a_in[:, i]], st0)
            any_ovf |= f
            for c in chans:
                want[c][:, i] = o[c]
        out[name] = (got, want, tr.overflow[g], any_ovf)
    return out


@SETTINGS
@given(x=drives(), seed=st.integers(0, 2**32 - 1), bits=st.sampled_from([1, 8, 20, 31, 32]))
def test_sigma_delta_matches_oracle(x, seed, bits):
    """All four sigma-delta variants equal the spec oracle at every step (state and payload), from
    random initial registers (32-bit ones exercise the int32 wrap); overflow counted iff the
    oracle saw a value leave int32 or the payload width."""
    init = {r: random_state(seed + i, bits) for i, r in enumerate(("sigma", "act", "residue", "err"))}
    for name, (got, want, ovf, any_ovf) in run_sd(x, init).items():
        for c in got:
            np.testing.assert_array_equal(got[c], want[c], err_msg=f"sd_{name} channel {c}")
        assert (ovf > 0) == any_ovf, f"sd_{name}: overflow count {ovf}, oracle overflowed: {any_ovf}"


@SETTINGS
@given(x=drives())
def test_sigma_delta_is_lossless_at_zero_threshold(x):
    """With vth = 0 and no scaling the receiver's running sum of payloads equals the activation
    (ReLU or not) at every step: delta coding loses nothing (neuron 0 of each variant)."""
    x = x // 2**8  # keep every delta inside the 16-bit payload of one variant
    res = run_sd(x)
    for name, (got, _, _, _) in res.items():
        np.testing.assert_array_equal(np.cumsum(got["s"][:, 0]), got["act"][:, 0], err_msg=name)


def test_sigma_delta_options_change_behaviour():
    """ReLU drops a negative activation that "unit" passes; the cumulative error sends a ramp
    earlier and in different pieces than the residue alone; the payload shift floors."""
    x = np.zeros((6, N), np.int64)
    x[0, 0] = -7  # neuron 0: vth 0
    x[0:3, 1] = 4  # neuron 1: vth 10, a ramp 4, 8, 12
    x[0, 2] = -5  # neuron 2: vth 0, state_exp 2
    res = run_sd(x)
    for name, (got, want, _, _) in res.items():
        np.testing.assert_array_equal(got["s"], want["s"], err_msg=name)
    s = {k: v[0]["s"] for k, v in res.items()}
    assert not s["lava"][:, 0].any() and s["unit"][1, 0] == x[0, 0]  # vth 0: delta = act, sent at once
    first = {k: int(np.flatnonzero(s[k][:, 1])[0]) for k in ("lava", "cum")}
    assert first["cum"] < first["lava"]  # err counts the carried residue again: it fires earlier
    assert s["lava"][first["lava"], 1] == x[:, 1].sum()  # the residue carried all that was not sent
    assert s["unit"][1, 2] == x[0, 2] >> 2 != int(x[0, 2] / 4)  # floor, not toward zero
    assert res["unit"][0]["residue"][1, 2] == 0  # the dropped low bits are not kept


def test_gated_lif_holds_for_wait_steps_then_runs_from_rest():
    """`wait=d`: the neuron sends nothing and keeps u = v = 0 for d steps (a bias included), then
    runs from rest on the input that arrives from step d on: equal to the fixed-point LIF twin
    (`neurojax.spiking.neurons`) started at zero on that input; the ungated program is not."""
    from neurojax.spiking.neurons import LifFixedState, lif_fixed_params, lif_fixed_step
    rng = np.random.default_rng(0)
    n, T, d = 6, 30, 3
    w = rng.integers(-60, 60, (n, 4))
    x = (rng.random((T, 4)) < 0.5).astype(np.int64)
    kw = dict(du=rng.integers(0, 4096, n), dv=rng.integers(0, 400, n), vth=rng.integers(40, 100, n),
              bias_mant=rng.integers(300, 900, n), bias_exp=np.zeros(n, np.int64))

    def run(wait):
        net = Network()
        net.add(InputGroup("in", 4, "binary", 1))
        net.add(lif_group("lif", n, wait=wait, **kw))
        net.connect(SynapseGroup("w", ("in", "out"), ("lif", "a_in"), w, 0, d))
        xs = np.zeros((T + d, 4), np.int64)
        xs[:T] = x
        trace, _ = Simulator(net, LOIHI2, probes=("lif/s",)).run({"in": xs}, T + d)
        return np.asarray(trace.probes["lif/s"])

    params = lif_fixed_params(**kw)
    state, ref = LifFixedState(jnp.zeros(n, jnp.int32), jnp.zeros(n, jnp.int32)), []
    for t in range(T):
        state, s = lif_fixed_step(params, state, jnp.asarray(w @ x[t], jnp.int32))
        ref.append(np.asarray(s))
    gated = run(d)
    assert not gated[:d].any()
    np.testing.assert_array_equal(gated[d:], np.stack(ref))
    assert not np.array_equal(run(None)[d:], np.stack(ref))  # the bias acted during the fill steps
