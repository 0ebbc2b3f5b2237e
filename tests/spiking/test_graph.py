"""Spiking graphs: scheduling (recurrent edges), the float runner vs a NumPy oracle, the integer
runner vs an int64 oracle, the Flax module, and bad graphs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurojax.errors import NeurojaxError
from neurojax.quant.jaxpr_check import assert_integer_only
from neurojax.spiking.graph import Affine, Flatten, Input, Neuron, Output, SpikingGraph
from neurojax.spiking.graph_examples import random_graph, tiny_snn
from neurojax.spiking.graph_fixed import neuron_from_module, quantize_graph
from neurojax.spiking.graph_run import GraphNet, graph_params, params_from_variables, run_fixed_graph, run_graph
from neurojax.spiking.neurons import IF, LIF


def _walk(graph: SpikingGraph, x: np.ndarray, affine, neuron, dtype) -> np.ndarray:
    """Oracle skeleton for the layered graphs of `random_graph` / `tiny_snn`: every step, nodes in
    schedule order, a node's input the sum of its forward predecessors' outputs of this step and
    its recurrent predecessors' of the previous one (a recurrent Affine starts from `affine(0)`).
    `affine(node, x) -> y`; `neuron(node, x, state) -> (y, state)` with state starting at zeros."""
    nodes, sch = graph.nodes, graph.schedule
    B = x.shape[1]
    state = {n: [np.zeros((B,) + v.shape, dtype)] * 2 for n, v in nodes.items() if isinstance(v, Neuron)}
    prev = {n: np.zeros((B,) + sch.shapes[n][1], dtype) for n in nodes}
    prev |= {n: affine(v, np.zeros((B,) + sch.shapes[n][0], dtype)) for n, v in nodes.items() if isinstance(v, Affine)}
    out = []
    for t in range(x.shape[0]):
        vals = {}
        for name in sch.order:
            node = nodes[name]
            if isinstance(node, Input):
                vals[name] = x[t].astype(dtype)
                continue
            xin = sum([vals[p] for p in sch.forward_preds[name]] + [prev[p] for p in sch.recurrent_preds[name]])
            if isinstance(node, Affine):
                vals[name] = affine(node, xin)
            elif isinstance(node, Output):
                vals[name] = xin
            else:
                vals[name], state[name] = neuron(node, xin, state[name])
        prev = vals
        out.append(vals[graph.outputs()[0]])
    return np.stack(out)


def _float_affine(node, x):
    return x @ node.weight.astype(np.float64).T + (0 if node.bias is None else node.bias)


def _float_neuron(node, x, state):
    i, v = state
    i = node.decay_syn * i + node.c_in * x
    v = node.decay * v + node.gain * i + node.bias
    if not node.spiking:
        return v, [i, v]
    y = (v > node.threshold).astype(np.float64)
    return y, [i, np.where(y > 0, node.v_reset, v)]


def numpy_run(graph: SpikingGraph, x: np.ndarray) -> np.ndarray:
    """float64 oracle of the graph's forward-Euler rules (module doc of graph.py)."""
    return _walk(graph, x, _float_affine, _float_neuron, np.float64)


def _rleaky():
    w = np.array([[1.0, -0.5], [0.25, 2.0]], np.float32)
    nodes = {"in": Input((2,)), "fc": Affine(w), "lif": Neuron("LIF", decay=np.full(2, 0.5, np.float32),
                                                                 gain=np.ones(2, np.float32), bias=np.zeros(2, np.float32),
                                                                 threshold=np.ones(2, np.float32)),
             "rec": Affine(np.zeros((2, 2), np.float32), np.array([0.75, 0.0], np.float32)), "out": Output((2,))}
    return SpikingGraph(nodes, (("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")))


def test_recurrent_edge_and_bias_from_step_zero():
    g = _rleaky()
    assert g.schedule.recurrent == {("rec", "lif")}
    # input 0.5 on channel 0 every step; the recurrent bias 0.75 arrives from step 0:
    # v0 = 0.5 + 0.75 = 1.25 > 1 -> spike at step 0 (without the bias at step 0 it would not spike)
    x = np.zeros((3, 1, 2), np.float32)
    x[:, 0, 0] = 0.5
    y, _ = run_graph(g, graph_params(g), x)
    assert np.asarray(y)[0, 0, 0] == 1.0


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1))
def test_float_runner_matches_numpy_oracle(seed):
    rng = np.random.default_rng(seed)
    g = random_graph(rng, kinds=("LIF", "CubaLIF", "IF", "LI"))
    x = (rng.random((12, 3, 4)) < 0.4).astype(np.float32)
    y, _ = run_graph(g, graph_params(g), x)
    ref = numpy_run(g, x)
    y = np.asarray(y)
    if g.nodes[g.schedule.forward_preds["out"][0]].spiking:
        # float32 vs float64 can flip a spike only where v is within rounding of the threshold
        assert np.mean(y == ref) > 0.97
    else:
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), perm_seed=st.integers(0, 1000))
def test_edge_order_does_not_matter(seed, perm_seed):
    rng = np.random.default_rng(seed)
    g = random_graph(rng)
    edges = list(g.edges)
    np.random.default_rng(perm_seed).shuffle(edges)
    g2 = SpikingGraph(dict(reversed(list(g.nodes.items()))), tuple(edges))
    assert g2.schedule.recurrent == g.schedule.recurrent and g2.schedule.order == g.schedule.order
    x = (rng.random((6, 2, 4)) < 0.5).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(run_graph(g, graph_params(g), x)[0]),
                                  np.asarray(run_graph(g2, graph_params(g2), x)[0]))


def test_graph_neuron_equals_neurojax_lif_module():
    """A graph built from neurojax's LIF module (CubaLIF form) spikes exactly like the module."""
    lif = LIF(decay_u=0.5, decay_v=0.8, threshold=1.0, bias=0.05)
    n = neuron_from_module(lif, (3,))
    assert n.kind == "CubaLIF"
    g = SpikingGraph({"in": Input((3,)), "n": n, "out": Output((3,))}, (("in", "n"), ("n", "out")))
    x = np.random.default_rng(0).normal(0.3, 0.5, (20, 2, 3)).astype(np.float32)
    y, _ = run_graph(g, graph_params(g), x)
    ref, _ = lif.apply({}, jnp.asarray(x), lif.initial_state((2, 3)))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(ref))
    assert neuron_from_module(LIF(decay_u=0.0), (2,)).kind == "LIF"
    assert neuron_from_module(IF(reset="zero"), (2,)).kind == "IF"
    with pytest.raises(NeurojaxError, match="reset"):
        neuron_from_module(IF(), (2,))  # subtract reset: no NIR form
    with pytest.raises(NeurojaxError, match="order"):
        neuron_from_module(LIF(decay_u=0.0, order="spyx"), (2,))  # spikes from the previous membrane


def test_graphnet_trains_through_surrogate():
    g = tiny_snn(n_in=8, hidden=6, n_out=3)
    x = (np.random.default_rng(1).random((10, 2, 8)) < 0.3).astype(np.float32)
    net = GraphNet(g)
    variables = net.init(jax.random.PRNGKey(0), x)
    assert params_from_variables(variables)["fc1"]["weight"].shape == (6, 8)

    def loss(v):
        y, _ = net.apply(v, x)
        return jnp.sum(y) + 0.1 * jnp.sum(y ** 2)

    grads = jax.grad(loss)(variables)
    assert float(jnp.abs(grads["params"]["fc1/weight"]).sum()) > 0


def test_fixed_runner_is_integer_only_and_matches_int64_oracle():
    rng = np.random.default_rng(3)
    g = quantize_graph(random_graph(rng, layers=2, kinds=("LIF", "CubaLIF", "IF")), frac=10)
    x = (rng.random((15, 2, 4)) < 0.5).astype(np.int32)
    y, _ = run_fixed_graph(g, x)
    assert_integer_only(lambda a: run_fixed_graph(g, a)[0], jnp.asarray(x))
    # int64 oracle of the Lava LIF rule composed by hand over the layered graph

    def tz(a, k):  # sign(a k) (|a k| >> 12)
        p = a * k
        return np.sign(p) * (np.abs(p) >> 12)

    def affine(node, a):
        acc = a @ node.fixed.weight.astype(np.int64).T
        e = node.fixed.exp
        return acc << e if e >= 0 else acc >> -e

    def neuron(node, a, state):
        p = {k: np.asarray(v, np.int64) for k, v in zip(node.fixed.params._fields, node.fixed.params)}
        u, v = state
        u = tz(u, 4095 - p["du"]) + (a << 6)
        u = np.where(u > 2 ** 23, u - 2 ** 24, np.where(u <= -2 ** 23, u + 2 ** 24, u))
        bias = np.where(p["bias_exp"] >= 0, p["bias_mant"] << np.maximum(p["bias_exp"], 0),
                        p["bias_mant"] >> np.maximum(-p["bias_exp"], 0))
        v = np.clip(tz(v, 4096 - p["dv"]) + u + bias, -(2 ** 23 - 1), 2 ** 23 - 1)
        s = (v > (p["vth"] << 6)).astype(np.int64)
        return s, [u, np.where(s > 0, 0, v)]

    np.testing.assert_array_equal(np.asarray(y), _walk(g, x, affine, neuron, np.int64))


def test_quantized_graph_tracks_float_graph():
    g = tiny_snn(n_in=16, hidden=12, n_out=4)
    x = (np.random.default_rng(2).random((30, 4, 16)) < 0.2)
    yf, _ = run_graph(g, graph_params(g), x.astype(np.float32))
    yq, _ = run_fixed_graph(quantize_graph(g, frac=12), x.astype(np.int32))
    assert np.mean(np.asarray(yf) == np.asarray(yq)) > 0.95


def _lif(n):
    return Neuron("LIF", decay=np.full(n, 0.9, np.float32), gain=np.ones(n, np.float32),
                  bias=np.zeros(n, np.float32), threshold=np.ones(n, np.float32))


@pytest.mark.parametrize("case, match", [
    ("cycle_without_neuron", "cannot schedule"),
    ("shape_mismatch", "expects input shape"),
    ("unknown_node", "does not have"),
    ("unreachable", "not reachable"),
    ("no_input", "no Input"),
])
def test_bad_graphs(case, match):
    w = np.ones((3, 3), np.float32)
    if case == "cycle_without_neuron":
        nodes = {"in": Input((3,)), "a": Affine(w), "b": Affine(w), "n": _lif(3), "out": Output((3,))}
        edges = [("in", "a"), ("a", "b"), ("b", "a"), ("b", "n"), ("n", "out")]
    elif case == "shape_mismatch":
        nodes = {"in": Input((4,)), "a": Affine(w), "n": _lif(3), "out": Output((3,))}
        edges = [("in", "a"), ("a", "n"), ("n", "out")]
    elif case == "unknown_node":
        nodes = {"in": Input((3,)), "out": Output((3,))}
        edges = [("in", "x")]
    elif case == "unreachable":
        nodes = {"in": Input((3,)), "n": _lif(3), "m": _lif(3), "out": Output((3,))}
        edges = [("in", "n"), ("n", "out"), ("m", "m")]
    else:
        nodes = {"n": _lif(3), "out": Output((3,))}
        edges = [("n", "out")]
    with pytest.raises(NeurojaxError, match=match):
        SpikingGraph(nodes, tuple(edges))


def test_flatten_shapes_and_bad_inputs():
    nodes = {"in": Input((2, 3)), "f": Flatten(0, -1), "a": Affine(np.ones((2, 6), np.float32)), "n": _lif(2),
             "out": Output((2,))}
    g = SpikingGraph(nodes, (("in", "f"), ("f", "a"), ("a", "n"), ("n", "out")))
    assert g.schedule.shapes["f"] == ((2, 3), (6,))
    y, _ = run_graph(g, graph_params(g), np.ones((4, 1, 2, 3), np.float32))
    assert np.asarray(y).shape == (4, 1, 2)
    with pytest.raises(NeurojaxError, match="time-major"):
        run_graph(g, graph_params(g), np.ones((4, 2, 3), np.float32))
    with pytest.raises(NeurojaxError, match="float"):
        run_graph(g, graph_params(g), np.ones((4, 1, 2, 3), np.int32))
    with pytest.raises(NeurojaxError, match="T = 0"):
        run_graph(g, graph_params(g), np.ones((0, 1, 2, 3), np.float32))
    with pytest.raises(NeurojaxError, match="fixed-point"):
        run_fixed_graph(g, np.ones((4, 1, 2, 3), np.int32))
