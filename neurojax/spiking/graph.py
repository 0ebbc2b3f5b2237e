"""Spiking graphs: neurons, synapse nodes and edges (recurrent ones included), described on the host.

A `SpikingGraph` is what NIR files hold (`neurojax.interop.nir_io` reads and writes it), what
`neurojax.spiking.graph_run` runs in float (a Flax module) and in fixed point, and what
`neurojax.interop.graph_to_chip` compiles onto the interpreter. Nodes hold NumPy arrays in
neurojax's **discrete-time** conventions (one step = one forward-Euler step; the continuous-time
NIR parameters and the step `dt` are converted by `neurojax.interop.nir_conventions`):

- `Input(shape)`, `Output(shape)`: the graph's boundary (one time step of one sample: no batch).
- `Affine(weight [out, in], bias [out] | None)`: `y = W x (+ b)`; `bias=None` is NIR's Linear.
- `Scale(scale [n])`: `y = scale * x`.  `Threshold(threshold)`: `y = heaviside(x - threshold)` (">").
- `Flatten(start_dim, end_dim)`: over the non-batch dimensions, as NIR counts them.
- `Neuron(kind, ...)`: the NIR neuron family as one forward-Euler step, per neuron:

      i = decay_syn * i + c_in * x          (CubaLIF; every other kind: decay_syn = 0, c_in = 1, i = x)
      v = decay * v + gain * i + bias
      s = v > threshold                     (spiking kinds; strict, after the update)
      v = v_reset where s                   (on the same step)

  with output `s` for the spiking kinds ("LIF", "CubaLIF", "IF") and `v` for the integrators
  ("LI", "I"). An IF has `decay = 1`, `bias = 0`; an "I" additionally no threshold.

A node's input is the sum of its predecessors' outputs of the same step, except across a
**recurrent edge** (one that closes a cycle): that edge carries the value its source had at the
previous step, computed from the neurons' previous outputs (zeros before the first step), so a
recurrent Affine's bias is added from the first step on (`schedule`).

**Fixed-point twins.** A node may carry `fixed`: `FixedNeuron` (the `LifFixedParams` of
`neurojax.spiking.neurons` and a `FixedLifOptions`; the LIF family's integer rules, equal to the
interpreter's LIF program), `FixedAffine` (integer weight mantissas of `weight_bits` bits and one
exponent: `a = (W x) << exp`, or `>> -exp` with floor), `FixedInput` (binary spikes or graded
payloads of `bits` bits). A graph whose every node has its twin runs bit-exactly in integers
(`graph_run.run_fixed_graph`) and on the interpreter.
"""
import dataclasses
from typing import Optional, Union

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.spiking.neurons import FixedLifOptions, LifFixedParams

NEURON_KINDS = ("LIF", "CubaLIF", "IF", "LI", "I")
SPIKING_KINDS = ("LIF", "CubaLIF", "IF")
INPUT_KINDS = ("binary", "graded")
NEURON_FIELDS = ("decay_syn", "c_in", "decay", "gain", "bias", "threshold", "v_reset")


def _array(owner: str, name: str, value, ndim: Optional[int] = None) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise NeurojaxError(f"{owner}: {name} must be numbers, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
        raise NeurojaxError(f"{owner}: {name} holds a non-finite value")
    if ndim is not None and a.ndim != ndim:
        raise NeurojaxError(f"{owner}: {name} must have {ndim} dimension(s), got shape {a.shape}")
    return a


def _shape(owner: str, shape) -> tuple:
    try:
        shape = tuple(int(d) for d in np.asarray(shape).reshape(-1))
    except (TypeError, ValueError):
        raise NeurojaxError(f"{owner}: shape must be a tuple of positive ints, got {shape!r}") from None
    if not shape or any(d < 1 for d in shape):
        raise NeurojaxError(f"{owner}: shape must be a non-empty tuple of positive ints, got {shape!r}")
    return shape


# ----------------------------------------------------------------------------- fixed-point twins

@dataclasses.dataclass(frozen=True, eq=False)
class FixedNeuron:
    """Integer parameters of a LIF-family neuron (`neurons.lif_fixed_params`) and its conventions."""
    params: LifFixedParams
    options: FixedLifOptions = FixedLifOptions()


@dataclasses.dataclass(frozen=True, eq=False)
class FixedAffine:
    """Synapses: signed `weight_bits`-bit integer mantissas `[out, in]` and one exponent."""
    weight: np.ndarray
    exp: int = 0
    weight_bits: int = 8

    def __post_init__(self):
        w = _array("FixedAffine", "weight", self.weight, 2)
        if not np.issubdtype(w.dtype, np.integer):
            raise NeurojaxError(f"FixedAffine: weight must be integer mantissas, got dtype {w.dtype}")
        b = self.weight_bits
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 2 <= b <= 16:
            raise NeurojaxError(f"FixedAffine: weight_bits must be an int in [2, 16], got {b!r}")
        lim = 1 << (int(b) - 1)
        if w.size and (w.min() < -lim or w.max() > lim - 1):
            raise NeurojaxError(f"FixedAffine: weights in [{w.min()}, {w.max()}] do not fit {b} signed bits")
        if isinstance(self.exp, bool) or not isinstance(self.exp, (int, np.integer)) or not -31 <= self.exp <= 31:
            raise NeurojaxError(f"FixedAffine: exp must be an int in [-31, 31], got {self.exp!r}")
        object.__setattr__(self, "weight", w.astype(np.int32))
        object.__setattr__(self, "exp", int(self.exp))
        object.__setattr__(self, "weight_bits", int(b))


@dataclasses.dataclass(frozen=True)
class FixedInput:
    """What the host injects at an input: binary spikes (0/1) or graded payloads of `bits` bits."""
    kind: str = "binary"
    bits: int = 1

    def __post_init__(self):
        if self.kind not in INPUT_KINDS:
            raise NeurojaxError(f"FixedInput: kind {self.kind!r} must be one of {INPUT_KINDS}")
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= 32:
            raise NeurojaxError(f"FixedInput: bits must be an int in [1, 32], got {self.bits!r}")
        if self.kind == "binary" and self.bits != 1:
            raise NeurojaxError("FixedInput: binary inputs have bits=1")


# ----------------------------------------------------------------------------- nodes

@dataclasses.dataclass(frozen=True, eq=False)
class Input:
    shape: tuple
    fixed: Optional[FixedInput] = None

    def __post_init__(self):
        object.__setattr__(self, "shape", _shape("Input", self.shape))

    def in_shape(self):
        return self.shape

    def out_shape(self, in_shape=None):
        return self.shape


@dataclasses.dataclass(frozen=True, eq=False)
class Output:
    shape: tuple

    def __post_init__(self):
        object.__setattr__(self, "shape", _shape("Output", self.shape))

    def in_shape(self):
        return self.shape

    def out_shape(self, in_shape=None):
        return self.shape


@dataclasses.dataclass(frozen=True, eq=False)
class Affine:
    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    fixed: Optional[FixedAffine] = None

    def __post_init__(self):
        w = _array("Affine", "weight", self.weight, 2)
        object.__setattr__(self, "weight", w)
        if self.bias is not None:
            b = _array("Affine", "bias", self.bias, 1)
            if b.shape != (w.shape[0],):
                raise NeurojaxError(f"Affine: bias shape {b.shape} does not match weight {w.shape} (out = {w.shape[0]})")
            object.__setattr__(self, "bias", b)
        if self.fixed is not None and self.fixed.weight.shape != w.shape:
            raise NeurojaxError(f"Affine: fixed weight shape {self.fixed.weight.shape} differs from {w.shape}")

    def in_shape(self):
        return (self.weight.shape[1],)

    def out_shape(self, in_shape=None):
        return (self.weight.shape[0],)


@dataclasses.dataclass(frozen=True, eq=False)
class Scale:
    scale: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "scale", _array("Scale", "scale", self.scale))

    def in_shape(self):
        return self.scale.shape

    def out_shape(self, in_shape=None):
        return self.scale.shape


@dataclasses.dataclass(frozen=True, eq=False)
class Threshold:
    threshold: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "threshold", _array("Threshold", "threshold", self.threshold))

    def in_shape(self):
        return self.threshold.shape

    def out_shape(self, in_shape=None):
        return self.threshold.shape


@dataclasses.dataclass(frozen=True, eq=False)
class Flatten:
    start_dim: int = 0
    end_dim: int = -1

    def __post_init__(self):
        for name in ("start_dim", "end_dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise NeurojaxError(f"Flatten: {name} must be an int, got {v!r}")
            object.__setattr__(self, name, int(v))

    def in_shape(self):
        return None  # any; inferred from the predecessor

    def out_shape(self, in_shape):
        n = len(in_shape)
        s, e = self.start_dim % n if -n <= self.start_dim < n else None, self.end_dim % n if -n <= self.end_dim < n else None
        if s is None or e is None or s > e:
            raise NeurojaxError(f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}) does not apply to "
                                f"an input of shape {tuple(in_shape)} (dimensions counted without the batch)")
        return tuple(in_shape[:s]) + (int(np.prod(in_shape[s:e + 1])),) + tuple(in_shape[e + 1:])


@dataclasses.dataclass(frozen=True, eq=False)
class Neuron:
    """A NIR-family neuron in forward-Euler form (module doc); every field an array of the neuron shape."""
    kind: str
    decay: np.ndarray
    gain: np.ndarray
    bias: np.ndarray
    threshold: Optional[np.ndarray] = None
    v_reset: Optional[np.ndarray] = None
    decay_syn: Optional[np.ndarray] = None
    c_in: Optional[np.ndarray] = None
    fixed: Optional[FixedNeuron] = None

    def __post_init__(self):
        owner = f"Neuron({self.kind})"
        if self.kind not in NEURON_KINDS:
            raise NeurojaxError(f"Neuron: kind {self.kind!r} must be one of {NEURON_KINDS}")
        decay = _array(owner, "decay", self.decay)
        shape = decay.shape
        if not shape:
            raise NeurojaxError(f"{owner}: parameters must be arrays of the neuron shape (at least 1-D), got a scalar")
        spiking = self.kind in SPIKING_KINDS
        defaults = {"decay_syn": 0.0, "c_in": 1.0, "v_reset": 0.0, "threshold": None}
        for name in NEURON_FIELDS:
            value = getattr(self, name)
            if value is None:
                if name == "threshold":
                    if spiking:
                        raise NeurojaxError(f"{owner}: a spiking neuron needs a threshold")
                    continue
                if name == "decay_syn" and self.kind == "CubaLIF":
                    raise NeurojaxError(f"{owner}: a current-based LIF needs decay_syn")
                value = np.full(shape, defaults[name], decay.dtype)
            a = _array(owner, name, value)
            if a.shape != shape:
                raise NeurojaxError(f"{owner}: {name} has shape {a.shape}, expected the neuron shape {shape}")
            object.__setattr__(self, name, a)
        if not spiking and self.threshold is not None:
            raise NeurojaxError(f"{owner}: an integrator ({self.kind}) has no threshold")
        if self.kind in ("IF", "I") and (np.any(self.decay != 1) or np.any(self.bias != 0)):
            raise NeurojaxError(f"{owner}: an {self.kind} neuron has decay 1 and bias 0 (no leak)")
        if self.kind != "CubaLIF" and (np.any(self.decay_syn != 0) or np.any(self.c_in != 1)):
            raise NeurojaxError(f"{owner}: only a CubaLIF has a synaptic current (decay_syn = 0, c_in = 1 here)")
        if self.fixed is not None:
            if not spiking:
                raise NeurojaxError(f"{owner}: integrators have no fixed-point twin (the interpreter's LIF family spikes)")
            for name, p in zip(self.fixed.params._fields, self.fixed.params):
                if np.shape(p) not in ((), shape):
                    raise NeurojaxError(f"{owner}: fixed parameter {name} has shape {np.shape(p)}, expected {shape}")

    @property
    def shape(self) -> tuple:
        return self.decay.shape

    @property
    def spiking(self) -> bool:
        return self.kind in SPIKING_KINDS

    def in_shape(self):
        return self.shape

    def out_shape(self, in_shape=None):
        return self.shape


Node = Union[Input, Output, Affine, Scale, Threshold, Flatten, Neuron]
NODE_TYPES = (Input, Output, Affine, Scale, Threshold, Flatten, Neuron)
STATELESS = (Affine, Scale, Threshold, Flatten)


# ----------------------------------------------------------------------------- the graph

@dataclasses.dataclass(frozen=True)
class Schedule:
    """How a graph runs: `order` (a topological order of the forward edges), the recurrent edges,
    every node's predecessors split into forward and recurrent, and the inferred shapes."""
    order: tuple
    recurrent: frozenset
    forward_preds: dict
    recurrent_preds: dict
    shapes: dict  # name -> (in_shape, out_shape)


@dataclasses.dataclass(frozen=True, eq=False)
class SpikingGraph:
    """Nodes by name and directed edges `(src, dst)`; validated and scheduled on construction."""
    nodes: dict
    edges: tuple

    def __post_init__(self):
        if not isinstance(self.nodes, dict) or not self.nodes:
            raise NeurojaxError("SpikingGraph: nodes must be a non-empty dict name -> node")
        for name, node in self.nodes.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise NeurojaxError(f"SpikingGraph: node name {name!r} must be a non-empty str without '/'")
            if not isinstance(node, NODE_TYPES):
                raise NeurojaxError(f"SpikingGraph: node {name!r} has unsupported type {type(node).__name__}")
        edges = tuple(sorted({(str(a), str(b)) for a, b in self.edges}))
        if len(edges) != len(tuple(self.edges)):
            raise NeurojaxError("SpikingGraph: an edge is listed twice")
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "schedule", schedule(self.nodes, edges))

    def inputs(self) -> list:
        return sorted(n for n, v in self.nodes.items() if isinstance(v, Input))

    def outputs(self) -> list:
        return sorted(n for n, v in self.nodes.items() if isinstance(v, Output))

    @property
    def is_fixed(self) -> bool:
        """Whether every node that needs a fixed-point twin has one."""
        return all(getattr(n, "fixed", True) is not None for n in self.nodes.values()
                   if isinstance(n, (Input, Affine, Neuron)))


def _reachable(start: str, succ: dict) -> set:
    seen, stack = set(), [start]
    while stack:
        for m in succ[stack.pop()]:
            if m not in seen:
                seen.add(m)
                stack.append(m)
    return seen


def schedule(nodes: dict, edges: tuple) -> Schedule:
    """Validate `edges` against `nodes`, find the recurrent edges, order the rest, infer shapes.

    An edge `(a, b)` is recurrent when it lies on a cycle and `b` is no farther than `a` from the
    inputs (breadth-first distance over all edges; ties in a self-loop): the edge that closes the
    cycle as the signal first travels it. The remaining edges must form a DAG; a cycle left without
    a recurrent edge (unreachable from every input) cannot be scheduled.
    """
    for a, b in edges:
        for end in (a, b):
            if end not in nodes:
                raise NeurojaxError(f"edge ({a!r}, {b!r}) names a node {end!r} that the graph does not have")
        if isinstance(nodes[a], Output):
            raise NeurojaxError(f"edge ({a!r}, {b!r}) leaves an Output node")
        if isinstance(nodes[b], Input):
            raise NeurojaxError(f"edge ({a!r}, {b!r}) enters an Input node")
    inputs = sorted(n for n, v in nodes.items() if isinstance(v, Input))
    if not inputs:
        raise NeurojaxError("the graph has no Input node")
    succ = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    dist, frontier = {n: 0 for n in inputs}, list(inputs)
    while frontier:
        nxt = []
        for n in frontier:
            for m in sorted(succ[n]):
                if m not in dist:
                    dist[m] = dist[n] + 1
                    nxt.append(m)
        frontier = nxt
    unreached = sorted(set(nodes) - set(dist))
    if unreached:
        raise NeurojaxError(f"node {unreached[0]!r} is not reachable from any Input node, so the runner cannot "
                            "schedule it (connect it, or remove it)")
    recurrent = frozenset((a, b) for a, b in edges if dist[b] <= dist[a] and a in _reachable(b, succ))
    fwd = {n: sorted(a for a, b in edges if b == n and (a, b) not in recurrent) for n in nodes}
    rec = {n: sorted(a for a, b in edges if b == n and (a, b) in recurrent) for n in nodes}
    order, done, pending = [], set(), sorted(nodes)
    while pending:
        ready = [n for n in pending if all(p in done for p in fwd[n])]
        if not ready:
            raise NeurojaxError(f"the graph has a cycle through {pending[0]!r} that the runner cannot schedule")
        order += ready
        done |= set(ready)
        pending = [n for n in pending if n not in done]
    for name, node in nodes.items():
        if isinstance(node, Neuron) and not fwd[name] and not rec[name]:
            raise NeurojaxError(f"neuron {name!r} has no input edge")
    for (a, b) in recurrent:
        if not _cycle_has_neuron(a, b, nodes, succ):
            raise NeurojaxError(f"the cycle closed by edge ({a!r}, {b!r}) has no neuron, so it has no previous "
                                "step to read: the runner cannot schedule it")
    return Schedule(tuple(order), recurrent, fwd, rec, _infer_shapes(nodes, order, fwd, rec))


def _cycle_has_neuron(a: str, b: str, nodes: dict, succ: dict) -> bool:
    """Whether a cycle through edge a -> b passes a neuron: some node on a path b -> ... -> a."""
    pred = {n: [] for n in nodes}
    for n, ms in succ.items():
        for m in ms:
            pred[m].append(n)
    on_cycle = ({b} | _reachable(b, succ)) & ({a} | _reachable(a, pred))
    return any(isinstance(nodes[n], Neuron) for n in on_cycle)


def _infer_shapes(nodes: dict, order: list, fwd: dict, rec: dict) -> dict:
    shapes = {}
    for name in order:
        node = nodes[name]
        preds = fwd[name] + rec[name]
        fixed_in = node.in_shape()
        if isinstance(node, Input):
            shapes[name] = (node.shape, node.shape)
            continue
        got = {shapes[p][1] for p in fwd[name]}
        for p in rec[name]:  # a recurrent source may come later in the order: use its declared output
            s = nodes[p].out_shape() if not isinstance(nodes[p], Flatten) else None
            if s is not None:
                got.add(tuple(s))
        if len(got) > 1:
            raise NeurojaxError(f"node {name!r} receives inputs of different shapes {sorted(got)} from {preds}")
        in_shape = got.pop() if got else fixed_in
        if fixed_in is not None and in_shape is not None and tuple(fixed_in) != tuple(in_shape):
            raise NeurojaxError(f"node {name!r} ({type(node).__name__}) expects input shape {tuple(fixed_in)}, "
                                f"but its predecessors {preds} send {tuple(in_shape)} (insert a Flatten)")
        if in_shape is None:
            raise NeurojaxError(f"node {name!r}: its input shape cannot be inferred")
        shapes[name] = (tuple(in_shape), tuple(node.out_shape(tuple(in_shape))))
    return shapes


_COMPARED = ("shape", "weight", "bias", "scale", "threshold", "decay", "gain", "v_reset", "decay_syn", "c_in",
             "start_dim", "end_dim")


def _same_value(a, b) -> bool:
    if (a is None) != (b is None):
        return False
    if a is None:
        return True
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


def _same_fixed(a, b) -> bool:
    if (a is None) != (b is None) or type(a) is not type(b):
        return False
    if isinstance(a, FixedNeuron):
        return a.options == b.options and all(_same_value(np.asarray(x, np.int32), np.asarray(y, np.int32))
                                              for x, y in zip(a.params, b.params))
    if isinstance(a, FixedAffine):
        return _same_value(a.weight, b.weight) and (a.exp, a.weight_bits) == (b.exp, b.weight_bits)
    return a == b


def graph_difference(a: SpikingGraph, b: SpikingGraph):
    """None when the two graphs hold identical nodes, values (and dtypes), twins and edges; else
    a sentence naming the first difference (what a round-trip check reports)."""
    if sorted(a.nodes) != sorted(b.nodes):
        return f"nodes differ: {sorted(a.nodes)} vs {sorted(b.nodes)}"
    if a.edges != b.edges:
        return f"edges differ: {a.edges} vs {b.edges}"
    for name, x in a.nodes.items():
        y = b.nodes[name]
        if type(x) is not type(y) or getattr(x, "kind", None) != getattr(y, "kind", None):
            return f"node {name!r}: {type(x).__name__} vs {type(y).__name__}"
        for f in _COMPARED:
            if not _same_value(getattr(x, f, None), getattr(y, f, None)):
                return f"node {name!r}: field {f!r} differs"
        if not _same_fixed(getattr(x, "fixed", None), getattr(y, "fixed", None)):
            return f"node {name!r}: fixed-point twin differs"
    return None

