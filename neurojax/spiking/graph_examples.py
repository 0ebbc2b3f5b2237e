"""Small spiking graphs to start from: the tiny SNN of the examples and random graphs for tests.

`tiny_snn` is the SHD-like classifier of the spiking benchmarks at toy size, built from
neurojax's own `LIF` module: Input(n_in) -> Linear -> LIF (with a recurrent Linear when
`recurrent`) -> Linear -> LIF -> Output. `random_graph` draws a layered graph of every neuron
kind (optionally with recurrent edges and biases) from a NumPy generator.
"""
import numpy as np

from neurojax.spiking.graph import Affine, Input, Neuron, Output, SpikingGraph
from neurojax.spiking.graph_fixed import neuron_from_module
from neurojax.spiking.neurons import LIF


def tiny_snn(seed: int = 0, n_in: int = 32, hidden: int = 16, n_out: int = 4, recurrent: bool = True,
             beta: float = 0.9, threshold: float = 1.0) -> SpikingGraph:
    """The example network (module doc); weights uniform, scaled like the spiking benchmark's."""
    rng = np.random.default_rng(seed)
    lif = LIF(decay_u=0.0, decay_v=beta, threshold=threshold)
    nodes = {
        "input": Input((n_in,)),
        "fc1": Affine((rng.uniform(-1, 1, (hidden, n_in)) * 4 / np.sqrt(n_in)).astype(np.float32)),
        "lif1": neuron_from_module(lif, (hidden,)),
        "fc2": Affine((rng.uniform(-1, 1, (n_out, hidden)) * 3 / np.sqrt(hidden)).astype(np.float32)),
        "lif2": neuron_from_module(lif, (n_out,)),
        "output": Output((n_out,)),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    if recurrent:
        nodes["rec1"] = Affine((rng.uniform(-1, 1, (hidden, hidden)) / np.sqrt(hidden)).astype(np.float32))
        edges += [("lif1", "rec1"), ("rec1", "lif1")]
    return SpikingGraph(nodes, tuple(edges))


def random_neuron(rng: np.random.Generator, kind: str, n: int, bias: bool = True) -> Neuron:
    """A neuron of `kind` with per-neuron values in ranges where it spikes now and then."""
    f32 = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)  # noqa: E731
    leak = kind in ("LIF", "CubaLIF", "LI")
    fields = dict(decay=f32(0.5, 0.99) if leak else np.ones(n, np.float32),
                  gain=f32(0.5, 1.5), bias=f32(-0.05, 0.1) if bias and leak else np.zeros(n, np.float32))
    if kind == "CubaLIF":
        fields |= dict(decay_syn=f32(0.0, 0.9), c_in=f32(0.5, 1.5))
    if kind in ("LIF", "CubaLIF", "IF"):
        fields |= dict(threshold=f32(0.5, 1.5), v_reset=np.zeros(n, np.float32))
    return Neuron(kind, **fields)


def random_graph(rng: np.random.Generator, layers: int = 2, width: int = 5, n_in: int = 4,
                 kinds=("LIF", "CubaLIF", "IF"), recurrent: bool = True, bias: bool = True) -> SpikingGraph:
    """Input -> (Affine -> neuron [+ recurrent Affine]) x layers -> Output, kinds drawn from `kinds`."""
    nodes, edges, prev, size = {"in": Input((n_in,))}, [], "in", n_in
    for i in range(layers):
        n = int(rng.integers(1, width + 1))
        w = rng.normal(0, 1.5 / np.sqrt(size), (n, size)).astype(np.float32)
        b = rng.uniform(-0.2, 0.3, n).astype(np.float32) if bias and rng.random() < 0.5 else None
        nodes[f"fc{i}"] = Affine(w, b)
        nodes[f"n{i}"] = random_neuron(rng, str(rng.choice(kinds)), n, bias)
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"n{i}")]
        if recurrent and nodes[f"n{i}"].spiking and rng.random() < 0.6:
            nodes[f"rec{i}"] = Affine(rng.normal(0, 0.5, (n, n)).astype(np.float32))
            edges += [(f"n{i}", f"rec{i}"), (f"rec{i}", f"n{i}")]
        prev, size = f"n{i}", n
    nodes["out"] = Output((size,))
    edges.append((prev, "out"))
    return SpikingGraph(nodes, tuple(edges))
