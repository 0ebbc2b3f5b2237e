"""A spike-coded BitLinear-like layer run event by event on the interpreter.

Trains come from `neurojax.spiking.coding.encode`; expected values are int64 NumPy
`codes @ counts`, and expected event counts are recomputed from the train (non-zero spikes x
the number of non-zero codes in their column), so zeros must cost nothing.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurojax.errors import NeurojaxError
from neurojax.neuromorphic.chip import LOIHI2, ChipConfig
from neurojax.neuromorphic.interpreter import Simulator
from neurojax.neuromorphic.spike_layer import (
    PROBE,
    accumulator_bound,
    run_spike_layer,
    spike_layer_network,
)
from neurojax.spiking.coding import CODINGS, encode, min_steps

N, K, B = 3, 5, 2  # fixed shapes: one compilation per accumulator program serves every example
SETTINGS = settings(max_examples=12, deadline=None, derandomize=True)

codes_st = hnp.arrays(np.int8, (N, K), elements=st.integers(-1, 1))
counts_st = hnp.arrays(np.int32, (K,), elements=st.sampled_from([0, 0, 0, 1, -1, 2, -3, 5, -7, 12]))


def _train(counts, coding):
    s = encode(counts, coding, T=max(1, min_steps(counts, coding)))  # all-zero binary counts: T = 0
    return np.asarray(s.train), np.asarray(s.zero_point)


def _fanout(codes):
    return np.count_nonzero(codes, axis=0)


@pytest.mark.parametrize("coding", CODINGS)
@SETTINGS
@given(codes=codes_st, counts=counts_st)
def test_layer_equals_integer_matmul_and_costs_only_events(coding, codes, counts):
    """acc == codes @ counts bit for bit; synops per step == spikes delivered that step x their
    column's fan-out; messages per step == spikes sent on channels that reach a synapse."""
    train, zp = _train(counts, coding)
    acc, ctr = run_spike_layer(codes, train, coding, zp)
    want = codes.astype(np.int64) @ counts.astype(np.int64)
    assert acc.dtype == np.int32 and acc.shape == (N,)
    np.testing.assert_array_equal(acc, want)
    T = train.shape[0]
    fan = _fanout(codes)
    ev = (train != 0).astype(np.int64)
    assert ctr["steps"] == T + 1 and ctr["spikes"] == int(ev.sum())
    np.testing.assert_array_equal(ctr["per_step"]["synops"], np.concatenate([[0], ev @ fan]))
    np.testing.assert_array_equal(ctr["per_step"]["messages"], np.concatenate([ev @ (fan > 0), [0]]))
    assert ctr["synops"] == int((ev * fan).sum()) <= ctr["dense_synops"] == T * int(np.count_nonzero(codes))
    assert ctr["hops"] == 0  # one core: the inputs enter where the accumulators live


@pytest.mark.parametrize("coding", CODINGS)
def test_batched_trains_and_zero_points(coding):
    """A [T, B, K] train runs each row from a fresh state; per-element zero points (binary shift
    by the minimum, two's complement 2^T) are removed by the host correction."""
    rng = np.random.default_rng(CODINGS.index(coding))
    codes = rng.integers(-1, 2, (N, K)).astype(np.int8)
    counts = rng.integers(-6, 7, (B, K)).astype(np.int32)
    counts[0, :2] = 0
    s = encode(counts, coding)
    acc, ctr = run_spike_layer(codes, np.asarray(s.train), coding, np.asarray(s.zero_point))
    np.testing.assert_array_equal(acc, counts.astype(np.int64) @ codes.T.astype(np.int64))
    assert ctr["per_step"]["synops"].shape == (B, s.T + 1)
    fan = _fanout(codes)
    assert ctr["synops"] == int(((np.asarray(s.train) != 0) * fan).sum())
    zp = np.asarray(s.zero_point)
    assert ctr["correction_ops"] == int(((zp != 0) * fan).sum())
    if coding == "binary" or coding == "twos_complement":
        assert zp.any()  # the correction was exercised


@pytest.mark.parametrize("coding", CODINGS)
def test_all_zero_train_sends_nothing(coding):
    """Zero counts encode to an all-zero train: no messages, no synaptic ops, result zero."""
    codes = np.ones((N, K), np.int8)
    s = encode(np.zeros(K, np.int32), coding, T=3)
    acc, ctr = run_spike_layer(codes, np.asarray(s.train), coding, np.asarray(s.zero_point))
    assert not acc.any()
    assert ctr["messages"] == ctr["synops"] == ctr["spikes"] == ctr["active_updates"] == 0
    assert ctr["dense_synops"] == 3 * N * K


def test_output_is_one_graded_spike_at_the_last_step_equal_to_the_register():
    """The accumulator is sent once, at step T (a spike at step t lands at t + 1), and the value
    equals the register left in the final state; signed codings use a graded 2-bit input."""
    codes = np.array([[1, -1, 0, 1, 1], [0, 1, 1, -1, 1], [-1, 0, 0, 0, 1]], np.int8)
    counts = np.array([5, -3, 0, 2, -1], np.int32)
    s = encode(counts, "bitwise")
    net, meta = spike_layer_network(codes, "bitwise", s.T)
    assert meta["signed"] and net.groups["spikes"].kind == "graded" and net.groups["spikes"].bits == 2
    sim = Simulator(net, LOIHI2, probes=(PROBE,))
    x = np.zeros((s.T + 1, K), np.int64)
    x[:s.T] = np.asarray(s.train)
    tr, state = sim.run({"spikes": x})
    out = tr.probes[PROBE]
    assert not out[:-1].any()
    np.testing.assert_array_equal(out[-1], codes.astype(np.int64) @ counts)
    np.testing.assert_array_equal(np.asarray(state["regs"][0]["acc"]), out[-1])
    net_b, meta_b = spike_layer_network(codes, "binary", 4)
    assert not meta_b["signed"] and net_b.groups["spikes"].kind == "binary"


def test_accumulator_width_bound():
    """The bound is max row L1 x T (binary, ternary) or x (2^T - 1) (bitwise codings); a layer
    whose bound needs more signed bits than min(register_bits, payload_bits) is refused."""
    codes = np.ones((2, 4), np.int8)
    assert accumulator_bound(codes, "ternary", 7) == 28
    assert accumulator_bound(codes, "bitwise", 3) == 28
    spike_layer_network(codes, "bitwise", 21)  # 4 * (2^21 - 1) < 2^23: fits 24 bits
    with pytest.raises(NeurojaxError, match=r"can reach \|acc\| = 33554428 .*accumulator holds 24"):
        spike_layer_network(codes, "bitwise", 23)
    spike_layer_network(codes, "bitwise", 23, chip=LOIHI2.replace(payload_bits=32))
    with pytest.raises(NeurojaxError, match="accumulator holds 8"):
        spike_layer_network(codes, "ternary", 32, chip=ChipConfig(payload_bits=8))


@pytest.mark.parametrize("args,message", [
    ((np.array([[0, 2, 1, 0, 0]]), "binary"), r"'binary' spikes must be in \{0, 1\}; the train holds 2 at index \(0, 1\)"),
    ((np.array([[0, -1, 1, 0, 0]]), "twos_complement"), r"spikes must be in \{0, 1\}; the train holds -1"),
    ((np.array([[0, 0, 1, 0, -2]]), "ternary"), r"'ternary' spikes must be in \{0, 1, -1\}"),
    ((np.zeros((2, 4), np.int8), "binary"), r"has 4 channels \(last axis\) but codes have K = 5"),
    ((np.zeros(5, np.int8), "binary"), r"must be \[T, K\] or \[T, B, K\]"),
    ((np.zeros((0, 5), np.int8), "ternary"), r"needs T >= 1 steps"),
    ((np.zeros((2, 0, 5), np.int8), "ternary"), r"batch axis is empty"),
    ((np.zeros((2, 5)), "ternary"), r"spike train must have an integer dtype"),
    ((np.zeros((2, 5), np.int8), "rate"), r"unknown spike coding 'rate'"),
])
def test_bad_trains_raise(args, message):
    with pytest.raises(NeurojaxError, match=message):
        run_spike_layer(np.ones((N, K), np.int8), *args)


def test_bad_codes_zero_points_and_T_raise():
    train = np.zeros((2, K), np.int8)
    with pytest.raises(NeurojaxError, match=r"do not fit the chip's 8-bit synapses"):
        run_spike_layer(np.full((N, K), 200), train, "binary")
    with pytest.raises(NeurojaxError, match="codes must have an integer dtype"):
        run_spike_layer(np.ones((N, K)), train, "binary")
    with pytest.raises(NeurojaxError, match=r"codes must be a non-empty \[N, K\] matrix"):
        run_spike_layer(np.ones(K, np.int8), train, "binary")
    with pytest.raises(NeurojaxError, match=r"zero_point of shape \(4,\) does not match"):
        run_spike_layer(np.ones((N, K), np.int8), train, "binary", zero_point=np.zeros(4, np.int32))
    for T in (0, -1, True, 2.0):
        with pytest.raises(NeurojaxError, match="T must be an integer number of train steps >= 1"):
            spike_layer_network(np.ones((N, K), np.int8), "ternary", T)
