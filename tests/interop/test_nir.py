"""NIR export / import: conventions on hand-computed values, round trips (float and exact fixed
point, recurrent graphs included), peers' files written with nir's own classes, bad input."""
import os

import nir
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurojax.errors import NeurojaxError
from neurojax.interop import nir_io
from neurojax.interop.graph_to_chip import compile_graph, run_on_chip
from neurojax.interop.nir_conventions import NirProfile, from_neuron, to_neuron
from neurojax.neuromorphic.chip import LOIHI2
from neurojax.spiking.graph import Affine, Flatten, Input, Neuron, Output, Scale, SpikingGraph, Threshold, graph_difference
from neurojax.spiking.graph_examples import random_graph, tiny_snn
from neurojax.spiking.graph_fixed import quantize_graph
from neurojax.spiking.graph_run import graph_params, run_fixed_graph, run_graph

A = lambda *v: np.array(v, np.float32)  # noqa: E731


def test_continuous_to_discrete_hand_computed():
    p = NirProfile("t", dt=1e-4)
    lif = to_neuron("LIF", dict(tau=A(2e-3), r=A(4.0), v_leak=A(0.5), v_threshold=A(1.0), v_reset=A(0.0)), p)
    # decay = 1 - 1e-4/2e-3 = 0.95; gain = 1e-4 * 4 / 2e-3 = 0.2; bias = 1e-4 * 0.5 / 2e-3 = 0.025
    np.testing.assert_allclose([lif.decay[0], lif.gain[0], lif.bias[0]], [0.95, 0.2, 0.025], rtol=1e-6)
    cuba = dict(tau_syn=A(5e-4), tau_mem=A(1e-3), r=A(1.0), v_leak=A(0.0), v_threshold=A(1.0), v_reset=A(0.0),
                w_in=A(2.0))
    c = to_neuron("CubaLIF", cuba, p)
    # decay_syn = 1 - 0.2 = 0.8; euler c_in = 1e-4 * 2 / 5e-4 = 0.4; decay = 0.9; gain = 0.1
    np.testing.assert_allclose([c.decay_syn[0], c.c_in[0], c.decay[0], c.gain[0]], [0.8, 0.4, 0.9, 0.1], rtol=1e-6)
    assert to_neuron("CubaLIF", cuba, NirProfile("j", 1e-4, "jump")).c_in[0] == 2.0
    i_f = to_neuron("IF", dict(r=A(3e3), v_threshold=A(1.0), v_reset=A(0.0)), p)
    np.testing.assert_allclose([i_f.decay[0], i_f.gain[0]], [1.0, 0.3], rtol=1e-6)
    # and back: tau = dt / (1 - decay), r = gain tau / dt, v_leak = bias tau / dt
    back = from_neuron(lif, 1e-4)
    np.testing.assert_allclose([back["tau"][0], back["r"][0], back["v_leak"][0]], [2e-3, 4.0, 0.5], rtol=1e-5)


def _numpy_leaky(x, w, beta, thr):
    """snnTorch-style Leaky as NIR's Euler LIF: v = beta v + W x; spike v > thr; v = 0 on the spike."""
    v = np.zeros((x.shape[1], w.shape[0]))
    out = []
    for t in range(x.shape[0]):
        v = beta * v + x[t] @ w.T
        s = v > thr
        v = np.where(s, 0.0, v)
        out.append(s.astype(np.float32))
    return np.stack(out)


def _peer_file(path, tau, r, w, thr, **extra):
    n = w.shape[0]
    nodes = {"input": nir.Input(input_type={"input": np.array([w.shape[1]])}),
             "linear": nir.Linear(weight=w),
             "lif": nir.LIF(tau=np.full(n, tau, np.float32), r=np.full(n, r, np.float32),
                            v_leak=np.zeros(n, np.float32), v_threshold=np.full(n, thr, np.float32),
                            v_reset=np.zeros(n, np.float32)),
             "output": nir.Output(output_type={"output": np.array([n])})}
    edges = [("lif", "output"), ("input", "linear"), ("linear", "lif")]  # order must not matter
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, **extra))


def test_snntorch_file_runs_like_snntorch(tmp_path):
    """snnTorch 1.0.0 writes tau = dt/(1 - beta), r = tau/dt with dt = 1e-4: the snntorch profile
    recovers beta and gain 1, and the spikes equal the Leaky rule on the same input."""
    rng = np.random.default_rng(0)
    beta, dt = 0.9, 1e-4
    w = rng.normal(0, 0.8, (5, 6)).astype(np.float32)
    tau = dt / (1 - beta)
    path = str(tmp_path / "snntorch.nir")
    _peer_file(path, tau, tau / dt, w, 1.0)
    with pytest.raises(NeurojaxError, match="profile"):
        nir_io.read(path)  # no neurojax metadata: dt unknown
    g = nir_io.read(path, profile="snntorch")
    x = (rng.random((40, 3, 6)) < 0.4).astype(np.float32)
    y, _ = run_graph(g, graph_params(g), x)
    np.testing.assert_array_equal(np.asarray(y), _numpy_leaky(x.astype(np.float64), w.astype(np.float64), beta, 1.0))


def test_norse_file_runs_like_norse(tmp_path):
    """Norse 1.1.0 writes tau = dt / tau_mem_inv (dt = 1e-3): with the norse-1.1 profile (dt = 1e-6)
    the step is Norse's v += dt tau_mem_inv (-v + i)."""
    rng = np.random.default_rng(1)
    tau_mem_inv, dt_norse = 100.0, 1e-3
    w = rng.normal(0, 4.0, (4, 3)).astype(np.float32)
    path = str(tmp_path / "norse.nir")
    _peer_file(path, dt_norse / tau_mem_inv, 1.0, w, 0.3)
    g = nir_io.read(path, profile="norse-1.1")
    x = (rng.random((50, 2, 3)) < 0.5).astype(np.float32)
    y, _ = run_graph(g, graph_params(g), x)
    k = dt_norse * tau_mem_inv  # 0.1
    v, ref = np.zeros((2, 4)), []
    for t in range(50):
        v = v + k * (-v + x[t] @ w.T.astype(np.float64))
        s = v > 0.3
        v = np.where(s, 0.0, v)
        ref.append(s)
    np.testing.assert_array_equal(np.asarray(y), np.stack(ref).astype(np.float32))


def _assert_same_graph(g, h):
    assert graph_difference(g, h) is None, graph_difference(g, h)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), dt=st.sampled_from([1e-4, 1e-3, 2.5e-5]))
def test_float_round_trip_identical(tmp_path_factory, seed, dt):
    rng = np.random.default_rng(seed)
    g = random_graph(rng, kinds=("LIF", "CubaLIF", "IF", "LI", "I"))
    path = str(tmp_path_factory.mktemp("nir") / "g.nir")
    nir_io.write(path, g, dt=dt)
    h = nir_io.read(path)
    _assert_same_graph(g, h)
    x = (rng.random((8, 2, 4)) < 0.5).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(run_graph(g, graph_params(g), x)[0]),
                                  np.asarray(run_graph(h, graph_params(h), x)[0]))
    # a reader without neurojax's metadata (only NIR's fields, the same dt) gets the same network
    # within float tolerance
    raw = nir.read(path)
    for node in raw.nodes.values():
        node.metadata = {}
    k = nir_io.from_nir(raw, NirProfile("plain", dt))
    for name, node in g.nodes.items():
        if isinstance(node, Neuron):
            for f in ("decay", "gain", "bias", "decay_syn", "c_in"):
                np.testing.assert_allclose(getattr(k.nodes[name], f), getattr(node, f), rtol=1e-5, atol=1e-6)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1))
def test_fixed_round_trip_exact_on_interpreter(tmp_path_factory, seed):
    """quantize -> NIR -> read: identical integer twins; the integer runner and the interpreter
    give the same spikes bit for bit (recurrent graphs, biases, two layers)."""
    rng = np.random.default_rng(seed)
    g = quantize_graph(random_graph(rng, kinds=("LIF", "CubaLIF", "IF")), frac=int(rng.integers(8, 13)))
    path = str(tmp_path_factory.mktemp("nir") / "q.nir")
    nir_io.write(path, g)
    h = nir_io.read(path)
    assert h.is_fixed
    _assert_same_graph(g, h)
    x = (rng.random((20, 1, 4)) < 0.5).astype(np.int32)
    ref = np.asarray(run_fixed_graph(g, x)[0])
    np.testing.assert_array_equal(np.asarray(run_fixed_graph(h, x)[0]), ref)
    run = run_on_chip(compile_graph(h), x[:, 0])
    np.testing.assert_array_equal(run.outputs["out"], ref[:, 0])
    assert run.counters["messages"] >= int(x.sum())  # every input spike is at least one message


def test_unsupported_node_is_named(tmp_path):
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}),
             "d": nir.Delay(delay=np.ones(3, np.float32)),
             "output": nir.Output(output_type={"output": np.array([3])})}
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "d"), ("d", "output")], type_check=False)
    with pytest.raises(NeurojaxError, match="'d'.*Delay"):
        nir_io.from_nir(graph, "snntorch")


def test_mismatched_shapes_in_a_file(tmp_path):
    nodes = {"input": nir.Input(input_type={"input": np.array([5])}),
             "linear": nir.Linear(weight=np.ones((2, 3), np.float32)),
             "output": nir.Output(output_type={"output": np.array([2])})}
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "linear"), ("linear", "output")], type_check=False)
    with pytest.raises(NeurojaxError, match="expects input shape"):
        nir_io.from_nir(graph, "snntorch")


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(NeurojaxError, match="does not exist"):
        nir_io.read(str(tmp_path / "nope.nir"))
    path = str(tmp_path / "g.nir")
    nir_io.write(path, tiny_snn())
    data = open(path, "rb").read()
    bad = str(tmp_path / "bad.nir")
    with open(bad, "wb") as f:
        f.write(data[: len(data) // 3])
    with pytest.raises(NeurojaxError, match="truncated, corrupt"):
        nir_io.read(bad)


def test_failed_export_writes_nothing(tmp_path):
    g = tiny_snn()
    path = str(tmp_path / "g.nir")
    nir_io.write(path, g)
    before = open(path, "rb").read()
    lif = g.nodes["lif1"]
    leakless = Neuron("LIF", decay=np.ones_like(lif.decay), gain=lif.gain, bias=lif.bias, threshold=lif.threshold)
    bad = SpikingGraph({**g.nodes, "lif1": leakless}, g.edges)
    with pytest.raises(NeurojaxError, match="decay >= 1"):
        nir_io.write(path, bad)
    assert open(path, "rb").read() == before  # the old file is untouched
    with pytest.raises(NeurojaxError, match="decay >= 1"):
        nir_io.write(str(tmp_path / "new.nir"), bad)
    assert sorted(os.listdir(tmp_path)) == ["g.nir"]  # no partial or temporary file left


def test_chip_refuses_what_it_cannot_hold():
    g = quantize_graph(tiny_snn(), frac=12)
    with pytest.raises(NeurojaxError, match="weight_bits"):
        compile_graph(g, LOIHI2.replace(weight_bits=4))
    graded = quantize_graph(tiny_snn(), input_kind="graded", input_bits=24)
    with pytest.raises(NeurojaxError, match="payload_bits"):
        compile_graph(graded, LOIHI2.replace(payload_bits=16))
    # a recurrent path from the second layer back to the first cannot arrive in time
    nodes = dict(g.nodes)
    w = np.ones((16, 4), np.float32)
    nodes["back"] = Affine(w, fixed=type(g.nodes["fc1"].fixed)(np.ones((16, 4), np.int32), 0, 8))
    deep = SpikingGraph(nodes, g.edges + (("lif2", "back"), ("back", "lif1")))
    with pytest.raises(NeurojaxError, match="cannot be scheduled"):
        compile_graph(deep)


def test_round_trip_of_every_stateless_node(tmp_path):
    """Flatten (2-D input), Scale, Threshold, Linear and Affine come back identical and run the same."""
    rng = np.random.default_rng(5)
    nodes = {"in": Input((2, 3)), "flat": Flatten(0, -1), "scale": Scale(rng.uniform(0.5, 2, 6).astype(np.float32)),
             "lin": Affine(rng.normal(size=(4, 6)).astype(np.float32)),
             "thr": Threshold(rng.uniform(-0.5, 0.5, 4).astype(np.float32)),
             "aff": Affine(rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=3).astype(np.float32)),
             "li": Neuron("LI", decay=np.full(3, 0.8, np.float32), gain=np.ones(3, np.float32),
                          bias=np.zeros(3, np.float32)),
             "out": Output((3,))}
    edges = (("in", "flat"), ("flat", "scale"), ("scale", "lin"), ("lin", "thr"), ("thr", "aff"), ("aff", "li"),
             ("li", "out"))
    g = SpikingGraph(nodes, edges)
    path = str(tmp_path / "s.nir")
    nir_io.write(path, g)
    raw = nir.read(path)
    assert type(raw.nodes["lin"]).__name__ == "Linear" and type(raw.nodes["aff"]).__name__ == "Affine"
    h = nir_io.read(path)
    _assert_same_graph(g, h)
    x = rng.normal(size=(5, 2, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(run_graph(g, graph_params(g), x)[0]),
                                  np.asarray(run_graph(h, graph_params(h), x)[0]))
