"""The event-driven interpreter on small hand-built networks: timing, messages, dendrites, counters.

The neurons here are relays (`x = port; send x`), so what a group sends at step t is exactly
what its port accumulated at step t; expected values come from NumPy re-computations of the
documented rules (W @ payload, shifts of the sum, max with 0, per-core event counts).
"""
from functools import cache

import numpy as np
import pytest

from neurojax.errors import NeurojaxError
from neurojax.neuromorphic.chip import ChipConfig
from neurojax.neuromorphic.interpreter import CHUNK_STEPS, Simulator
from neurojax.neuromorphic.isa import ProgramBuilder
from neurojax.neuromorphic.network import InputGroup, Network, NeuronGroup, SynapseGroup
from neurojax.neuromorphic.placement import DoesNotFit

CHIP = ChipConfig()


@cache
def relay(bits: int = 24, accumulate: str = "sum", binary: bool = False):
    """x = port "i" (a `bits`-wide saturating register); send x on graded "o" (and binary "b")."""
    b = ProgramBuilder(f"relay{bits}_{accumulate}_{int(binary)}")
    b.port("i", accumulate)
    b.reg("x", bits)
    b.mov("x", "i")
    b.channel("o", "graded")
    b.send("o", "x")
    if binary:
        b.channel("b", "binary")
        b.send("b", "x")
    return b.build()


def eye(n):
    return np.eye(n, dtype=np.int8)


def floor_shift(v, exp):
    return v << exp if exp >= 0 else v >> -exp  # NumPy >> on signed ints is a floor shift


def sent_at(x: np.ndarray, delay: int) -> np.ndarray:
    """x delayed by `delay` steps (zeros before)."""
    out = np.zeros_like(x)
    out[delay:] = x[:len(x) - delay]
    return out


# ----------------------------------------------------------------------------- timing

def test_delays_one_step_per_hop_and_per_delay_unit():
    """A payload injected at step t reaches a relay through a delay-1 synapse at t + 1 (and is
    re-sent then), through a delay-3 synapse at t + 3, and through two delay-1 hops at t + 2,
    for dense and sparse synapse groups alike; a run split in two with the state carried (and
    longer than one compiled chunk) is identical."""
    n, steps = 3, CHUNK_STEPS + 5
    idx = np.arange(n)
    net = Network()
    net.add(InputGroup("x", n))
    for name in ("d1", "d3", "hop2", "d1s", "d3s"):
        net.add(NeuronGroup(name, n, relay()))
    net.connect(SynapseGroup("s1", ("x", "out"), ("d1", "i"), eye(n)))
    net.connect(SynapseGroup("s3", ("x", "out"), ("d3", "i"), eye(n), delay=3))
    net.connect(SynapseGroup("s11", ("d1", "o"), ("hop2", "i"), eye(n)))
    for name, delay in (("d1s", 1), ("d3s", 3)):
        net.connect(SynapseGroup(f"to_{name}", ("x", "out"), (name, "i"), np.ones(n, np.int8), delay=delay,
                                 dst_index=idx, src_index=idx))
    probes = ("d1/o", "d3/o", "hop2/o", "d1s/o", "d3s/o")
    sim = Simulator(net, CHIP, probes=probes)
    x = np.random.default_rng(0).integers(-1000, 1000, (steps, n)) * (np.arange(steps) % 4 == 1)[:, None]
    tr, _ = sim.run({"x": x})
    for p, delay in zip(probes, (1, 3, 2, 1, 3)):
        np.testing.assert_array_equal(tr.probes[p], sent_at(x, delay), err_msg=p)
    a, state = sim.run({"x": x[:7]})
    b, _ = sim.run({"x": x[7:]}, state=state)
    for p in tr.probes:
        np.testing.assert_array_equal(np.concatenate([a.probes[p], b.probes[p]]), tr.probes[p])


def test_binary_and_graded_messages():
    """A graded channel delivers w * payload; a binary channel delivers w per spike whatever the
    value that triggered it; a binary input group delivers w * (0 or 1)."""
    n = 4
    w = np.diag([3, -2, 5, 7]).astype(np.int8)
    net = Network()
    net.add(InputGroup("x", n))
    net.add(InputGroup("xb", n, kind="binary"))
    net.add(NeuronGroup("src", n, relay(binary=True)))
    for name in ("tg", "tb", "ti"):
        net.add(NeuronGroup(name, n, relay()))
    net.connect(SynapseGroup("in", ("x", "out"), ("src", "i"), eye(n)))
    net.connect(SynapseGroup("g", ("src", "o"), ("tg", "i"), w))
    net.connect(SynapseGroup("b", ("src", "b"), ("tb", "i"), w))
    net.connect(SynapseGroup("ib", ("xb", "out"), ("ti", "i"), w))
    sim = Simulator(net, CHIP, probes=("src/b", "tg/o", "tb/o", "ti/o"))
    rng = np.random.default_rng(1)
    x = rng.integers(-50, 50, (6, n)) * (rng.random((6, n)) < 0.6)
    xb = (rng.random((6, n)) < 0.5).astype(np.int64)
    tr, _ = sim.run({"x": x, "xb": xb})
    d = np.diag(w).astype(np.int64)
    np.testing.assert_array_equal(tr.probes["src/b"], sent_at(x, 1) != 0)
    np.testing.assert_array_equal(tr.probes["tg/o"], sent_at(x, 2) * d)
    np.testing.assert_array_equal(tr.probes["tb/o"], (sent_at(x, 2) != 0) * d)
    np.testing.assert_array_equal(tr.probes["ti/o"], sent_at(xb, 1) * d)
    assert (np.abs(x) > 1).any() and (tr.probes["tg/o"] != tr.probes["tb/o"]).any()


def test_binary_input_rejects_values_other_than_0_and_1():
    """A binary input carries spikes: a payload of -2 must be refused rather than delivered as -2 * w."""
    net = Network()
    net.add(InputGroup("xb", 1, kind="binary"))
    net.add(NeuronGroup("t", 1, relay()))
    net.connect(SynapseGroup("s", ("xb", "out"), ("t", "i"), np.array([[3]], np.int8)))
    with pytest.raises(NeurojaxError):
        Simulator(net, CHIP).run({"xb": np.array([[-2], [0]])})


# ----------------------------------------------------------------------------- dendrites

def _dendrite_net(sparse: bool, w_sum: np.ndarray, w_max: tuple, exps: tuple, rng) -> Network:
    """x (graded) -> "sum{k}" relays through w_sum with exponent exps[k]; x and y -> one max port."""
    n_dst, n_src = w_sum.shape
    net = Network()
    net.add(InputGroup("x", n_src))
    net.add(InputGroup("y", n_src))
    net.add(NeuronGroup("mx", n_dst, relay(accumulate="max")))

    def syn(name, src, dst, w, exp=0):
        if not sparse:
            return SynapseGroup(name, src, dst, w, exp=exp)
        d, s = np.nonzero(np.ones_like(w))  # every position, zeros included (they must cost nothing)
        order = rng.permutation(d.size)
        d, s = d[order], s[order]
        return SynapseGroup(name, src, dst, w[d, s], exp=exp, dst_index=d, src_index=s)

    for k, e in enumerate(exps):
        net.add(NeuronGroup(f"sum{k}", n_dst, relay()))
        net.connect(syn(f"w{k}", ("x", "out"), (f"sum{k}", "i"), w_sum, e))
    net.connect(syn("m0", ("x", "out"), ("mx", "i"), w_max[0]))
    net.connect(syn("m1", ("y", "out"), ("mx", "i"), w_max[1]))
    return net


EXPS = (0, 3, -3)


@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_and_dense_synapses_agree_with_numpy(seed):
    """Dense and sparse (COO, shuffled, explicit zeros) synapse groups give identical outputs and
    counters, equal to W @ payload with the exponent applied to the sum (<< e, or a floor >> -e),
    and a max port holding max(0, max over both synapse groups of w * payload)."""
    rng = np.random.default_rng(seed)
    n_src, n_dst, steps = 6, 5, 5
    w_sum = rng.integers(-128, 128, (n_dst, n_src)) * (rng.random((n_dst, n_src)) < 0.6)
    w_max = tuple(rng.integers(-128, 128, (n_dst, n_src)) * (rng.random((n_dst, n_src)) < 0.6) for _ in range(2))
    x = rng.integers(-300, 300, (steps, n_src)) * (rng.random((steps, n_src)) < 0.7)
    y = rng.integers(-300, 300, (steps, n_src))
    traces = []
    for sparse in (False, True):
        net = _dendrite_net(sparse, w_sum, w_max, EXPS, rng)
        probes = tuple(f"sum{k}/o" for k in range(len(EXPS))) + ("mx/o",)
        traces.append(Simulator(net, CHIP, probes=probes).run({"x": x, "y": y})[0])
    dense, sparse = traces
    for p in dense.probes:
        np.testing.assert_array_equal(dense.probes[p], sparse.probes[p], err_msg=p)
    for c in dense.counters:
        np.testing.assert_array_equal(dense.counters[c], sparse.counters[c], err_msg=c)
    xd, yd = sent_at(x, 1), sent_at(y, 1)
    for k, e in enumerate(EXPS):
        np.testing.assert_array_equal(dense.probes[f"sum{k}/o"], floor_shift(xd @ w_sum.T, e))
    want_max = np.maximum(0, np.maximum((xd[:, None, :] * w_max[0]).max(-1), (yd[:, None, :] * w_max[1]).max(-1)))
    np.testing.assert_array_equal(dense.probes["mx/o"], want_max)
    assert dense.overflow == sparse.overflow and not any(dense.overflow.values())


def test_negative_exponent_shifts_the_sum_not_each_synapse():
    """With exp = -2, contributions 3 + 3 - 1 = 5 arrive as 5 >> 2 = 1 (per-synapse shifts would give
    -1), and -5 arrives as floor(-5 / 4) = -2 (not -1, the truncation)."""
    net = Network()
    net.add(InputGroup("x", 3))
    net.add(NeuronGroup("t", 2, relay()))
    w = np.array([[1, 1, 1], [-1, -1, -1]], np.int8)
    net.connect(SynapseGroup("s", ("x", "out"), ("t", "i"), w, exp=-2))
    tr, _ = Simulator(net, CHIP, probes=("t/o",)).run({"x": np.array([[3, 3, -1], [0, 0, 0]])})
    got = tr.probes["t/o"][1]
    per_synapse = sum(floor_shift(v, -2) for v in (3, 3, -1))
    assert got[0] == floor_shift(5, -2) != per_synapse
    assert got[1] == floor_shift(-5, -2) != int(-5 / 4)


# ----------------------------------------------------------------------------- event counting

def test_event_counters_on_a_hand_built_network():
    """Per step and core: synops = non-zero synapses reached by the events delivered (counted on the
    target's core at delivery), messages = one per event per distinct target core (on the sender's
    core at sending), hops = mesh distance of each message, active = neurons with a non-zero
    port or output; zero payloads are no events."""
    chip = ChipConfig(neurons_per_core=2)
    w = np.array([[1, 0, 2], [0, 0, 3], [4, 0, 0], [0, 0, 5]], np.int8)  # targets 0,1 on core 0; 2,3 on core 1
    net = Network()
    net.add(InputGroup("x", 3))
    net.add(NeuronGroup("t", 4, relay()))
    net.connect(SynapseGroup("s", ("x", "out"), ("t", "i"), w))
    sim = Simulator(net, chip, probes=("t/o",))
    core = sim.placement.core_of["t"]
    assert list(core) == [0, 0, 1, 1]
    x = np.array([[1, 1, 0], [0, 0, 0], [0, 9, 2], [5, 0, -1], [0, 0, 0]])
    tr, _ = sim.run({"x": x})
    ev = (x != 0).astype(np.int64)
    nz = (w != 0).astype(np.int64)
    C = sim.placement.num_cores
    synops = np.stack([[(sent_at(ev, 1)[t] * nz[core == c]).sum() for c in range(C)] for t in range(len(x))])
    cores_reached = np.array([len(set(core[nz[:, s] == 1])) for s in range(3)])
    hop_sum = np.array([sum(sim.placement.hops(np.array([0]), np.array([c]))[0] for c in set(core[nz[:, s] == 1]))
                        for s in range(3)])
    np.testing.assert_array_equal(tr.counters["synops"], synops)
    np.testing.assert_array_equal(tr.counters["messages"][:, 0], ev @ cores_reached)
    np.testing.assert_array_equal(tr.counters["hops"][:, 0], ev @ hop_sum)
    assert not tr.counters["messages"][:, 1:].any()  # inputs enter at core 0; t's channel feeds nothing
    active = tr.probes["t/o"] != 0
    for c in range(C):
        np.testing.assert_array_equal(tr.counters["active_updates"][:, c], active[:, core == c].sum(1))
        np.testing.assert_array_equal(tr.counters["idle_updates"][:, c], (core == c).sum() - active[:, core == c].sum(1))
    assert tr.totals()["synops"] == synops.sum() > 0


def test_counters_carry_across_chunks_delays_and_split_runs():
    """Synaptic ops land `delay` steps after their event, also when that crosses a chunk or
    the end of a run: counters of one run, of a run in chunks of 4, and of two runs with the
    state carried are identical, and equal a NumPy count from the events."""
    chip = ChipConfig(neurons_per_core=2)
    rng = np.random.default_rng(4)
    w1 = (rng.integers(-3, 4, (4, 3)) * (rng.random((4, 3)) < 0.7)).astype(np.int8)
    w2 = (rng.integers(-3, 4, (3, 4)) * (rng.random((3, 4)) < 0.7)).astype(np.int8)
    net = Network()
    net.add(InputGroup("x", 3))
    net.add(NeuronGroup("t", 4, relay()))
    net.add(NeuronGroup("u", 3, relay()))
    net.connect(SynapseGroup("s3", ("x", "out"), ("t", "i"), w1, delay=3))
    net.connect(SynapseGroup("s2", ("t", "o"), ("u", "i"), w2, delay=2))
    x = rng.integers(-9, 10, (13, 3)) * (rng.random((13, 3)) < 0.5)
    whole, _ = Simulator(net, chip, probes=("t/o",)).run({"x": x})
    chunked = Simulator(net, chip, probes=("t/o",), chunk_steps=4)
    a, state = chunked.run({"x": x[:6]})
    b, _ = chunked.run({"x": x[6:]}, state=state)
    for c in whole.counters:
        np.testing.assert_array_equal(np.concatenate([a.counters[c], b.counters[c]]), whole.counters[c], err_msg=c)
    core_t, core_u = chunked.placement.core_of["t"], chunked.placement.core_of["u"]
    expected = np.zeros_like(whole.counters["synops"])
    for events, w, delay, core in ((x != 0, w1, 3, core_t), (whole.probes["t/o"] != 0, w2, 2, core_u)):
        reached = np.stack([(w[core == c] != 0).sum(0) for c in range(expected.shape[1])], 1)  # [src, C]
        expected += sent_at(events.astype(np.int64), delay) @ reached
    np.testing.assert_array_equal(whole.counters["synops"], expected)
    assert expected.sum() > 0


def test_synops_scale_with_activity_on_a_dense_layer():
    """A dense 1,024 x 1,024 layer (no zero weights) driven at ~10% activity costs ~10% of the dense
    synaptic operations: exactly 1,024 per event, and one message per event per target core."""
    n, steps = 1024, 4
    rng = np.random.default_rng(2)
    w = (rng.integers(1, 128, (n, n)) * rng.choice([-1, 1], (n, n))).astype(np.int8)
    net = Network()
    net.add(InputGroup("x", n, kind="binary"))
    net.add(NeuronGroup("layer", n, relay()))
    net.connect(SynapseGroup("dense", ("x", "out"), ("layer", "i"), w))
    sim = Simulator(net, CHIP)
    x = (rng.random((steps, n)) < 0.1).astype(np.int64)
    x[-1] = 0  # the last step's events would be delivered after the run
    tr, _ = sim.run({"x": x})
    events = int(x.sum())
    n_cores = len(np.unique(sim.placement.core_of["layer"]))
    assert n_cores > 1
    assert tr.totals()["synops"] == events * n
    ratio = tr.totals()["synops"] / ((steps - 1) * n * n)
    assert 0.08 < ratio < 0.12
    assert tr.totals()["messages"] == events * n_cores


# ----------------------------------------------------------------------------- validation and placement

def _net(w=None, delay=1, exp=0, dst=("t", "i"), src=("x", "out"), prog=None, t_size=2):
    net = Network()
    net.add(InputGroup("x", 2))
    net.add(NeuronGroup("t", t_size, prog or relay()))
    net.connect(SynapseGroup("s", src, dst, np.eye(2, dtype=np.int8) if w is None else w, exp=exp, delay=delay))
    return net


@pytest.mark.parametrize("build,message", [
    (lambda: _net(w=np.array([[200, 0], [0, 1]], np.int16)),
     r"synapse group 's': weights in \[0, 200\] do not fit 8-bit synapses \[-128, 127\]"),
    (lambda: _net(w=np.eye(2) * 1.0), r"weights must be integers"),
    (lambda: _net(prog=relay(bits=32)),
     r"group 't' sends 32-bit values on channel 'o'; the chip's graded-spike payload is 24 bits"),
    (lambda: _net(delay=CHIP.max_delay + 1), r"synapse group 's': delay 63 must be in \[1, 62\] \(ChipConfig.max_delay\)"),
    (lambda: _net(delay=0), r"delay 0 must be in \[1, 62\]"),
    (lambda: _net(exp=8), r"weight exponent 8 outside \[-8, 7\]"),
    (lambda: _net(dst=("nope", "i")), r"synapse group 's': target group 'nope' does not exist"),
    (lambda: _net(src=("ghost", "out")), r"source group 'ghost' does not exist"),
    (lambda: _net(dst=("t", "q")), r"group 't' has no input port 'q'"),
    (lambda: _net(dst=("x", "out")), r"group 'x' has no input port 'out'"),
    (lambda: _net(src=("x", "spikes")), r"group 'x' has no channel 'spikes'"),
    (lambda: _net(t_size=3), r"dense weights have shape \(2, 2\), expected \(3, 2\)"),
])
def test_network_validation_errors(build, message):
    """Networks that cannot run on the chip are refused before placement, naming the synapse
    group or group and the offending value or limit."""
    with pytest.raises(NeurojaxError, match=message):
        Simulator(build(), CHIP)


def test_group_and_run_errors():
    """Parameters or initial values wider than declared, a missing parameter, bad probes and bad
    injected inputs are refused with messages that name them."""
    b = ProgramBuilder("p")
    b.port("i")
    b.param("k", 4)
    b.reg("x", 8)
    b.add("x", "i", "k")
    b.channel("o")
    b.send("o", "x")
    prog = b.build()
    with pytest.raises(NeurojaxError, match="needs parameter 'k'"):
        _net(prog=prog).validate(CHIP)
    net = _net(prog=prog)
    net.groups["t"].params["k"] = 8
    with pytest.raises(NeurojaxError, match="values of 'k' do not fit its 4 bits"):
        net.validate(CHIP)
    net.groups["t"].params["k"] = 7
    net.groups["t"].init["x"] = np.array([1, 300])
    with pytest.raises(NeurojaxError, match="values of 'x' do not fit its 8 bits"):
        net.validate(CHIP)
    net.groups["t"].init.clear()
    with pytest.raises(NeurojaxError, match="probe 't/zz'"):
        Simulator(net, CHIP, probes=("t/zz",))
    sim = Simulator(net, CHIP)
    with pytest.raises(NeurojaxError, match="no input group named 'y'"):
        sim.run({"y": np.zeros((2, 2))})
    with pytest.raises(NeurojaxError, match=r"input 'x' has shape \(2, 3\), expected \(2, 2\)"):
        sim.run({"x": np.zeros((2, 3))})
    with pytest.raises(NeurojaxError, match="input 'x' holds values beyond its 24-bit payload"):
        sim.run({"x": np.full((2, 2), 2**23)})


def test_placement_errors_name_the_group():
    """A neuron whose synapses and state exceed a core's memory, and a network needing more cores
    than the board has, raise DoesNotFit naming the group, its layer and the ChipConfig field."""
    net = Network()
    net.add(InputGroup("x", 2000))
    net.add(NeuronGroup("layer0/big", 2, relay()))
    net.connect(SynapseGroup("s", ("x", "out"), ("layer0/big", "i"), np.ones((2, 2000), np.int8)))
    with pytest.raises(DoesNotFit, match=r"layer 'layer0', group 'layer0/big': one neuron needs \d+ bytes.*"
                       r"memory_per_core_bytes"):
        Simulator(net, ChipConfig(memory_per_core_bytes=1024))
    Simulator(net, ChipConfig(memory_per_core_bytes=4096))  # fits once a core holds 2,000 weight bytes
    small = ChipConfig(num_chips=1, cores_per_chip=2, mesh_rows=1, mesh_cols=2, neurons_per_core=2)
    net = _net(t_size=5, w=np.ones((5, 2), np.int8))
    with pytest.raises(DoesNotFit, match=r"group 't': the network needs more than 2 cores.*num_chips"):
        Simulator(net, small)


# ----------------------------------------------------------------------------- runtime overflow

def test_runtime_overflow_is_counted_per_group():
    """Two groups running one 8-bit program (one batch) and a wide one: each group's count is the
    number of (neuron, step) values that did not fit its register, and saturated values are sent."""
    n, steps = 3, 6
    net = Network()
    net.add(InputGroup("x", n))
    for name, prog in (("loud", relay(bits=8)), ("quiet", relay(bits=8)), ("wide", relay())):
        net.add(NeuronGroup(name, n, prog))
    net.connect(SynapseGroup("a", ("x", "out"), ("loud", "i"), eye(n) * 100, exp=2))
    net.connect(SynapseGroup("b", ("x", "out"), ("quiet", "i"), eye(n)))
    net.connect(SynapseGroup("c", ("x", "out"), ("wide", "i"), eye(n) * 100, exp=2))
    sim = Simulator(net, CHIP, probes=("loud/o", "quiet/o", "wide/o"))
    assert any(len(batch) == 2 for batch in sim.batches)  # loud and quiet share a batch
    x = np.random.default_rng(3).integers(-127, 128, (steps, n))
    tr, _ = sim.run({"x": x})
    exact = sent_at(x, 1) * 400
    assert tr.overflow == {"loud": int(((exact < -128) | (exact > 127)).sum()), "quiet": 0, "wide": 0}
    assert tr.overflow["loud"] > 0
    np.testing.assert_array_equal(tr.probes["loud/o"], np.clip(exact, -128, 127))
    np.testing.assert_array_equal(tr.probes["wide/o"], exact)
