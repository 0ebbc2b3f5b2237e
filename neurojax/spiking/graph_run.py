"""Run a `SpikingGraph`: in float (a pure function and a Flax module) and in fixed point (int32 only).

Both runners walk the graph's `Schedule` once per time step inside one `lax.scan` over time:
inputs are **time-major** `[T, B, *input_shape]` (one array, or a dict by input name when the
graph has several inputs) and the outputs come back the same way (one array, or a dict by
output name). The float runner's spikes have surrogate gradients (`neurojax.spiking.surrogate`),
so `GraphNet` trains like any other neurojax module; the fixed-point runner needs every node's
twin (`SpikingGraph.is_fixed`) and reproduces, bit for bit, what the interpreter computes for the
same graph (`neurojax.interop.graph_to_chip`).
"""
import functools
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.spiking.graph import (
    NEURON_FIELDS,
    Affine,
    Flatten,
    Input,
    Neuron,
    Output,
    Scale,
    SpikingGraph,
    Threshold,
)
from neurojax.spiking.neurons import LifFixedState, lif_fixed_step
from neurojax.spiking.surrogate import spike_fn

# ----------------------------------------------------------------------------- parameters and inputs


def graph_params(graph: SpikingGraph) -> dict:
    """The float parameters as a pytree `{node: {field: float32 array}}` (what `GraphNet` trains)."""
    out = {}
    for name, node in graph.nodes.items():
        if isinstance(node, Affine):
            fields = {"weight": node.weight} | ({"bias": node.bias} if node.bias is not None else {})
        elif isinstance(node, Scale):
            fields = {"scale": node.scale}
        elif isinstance(node, Threshold):
            fields = {"threshold": node.threshold}
        elif isinstance(node, Neuron):
            fields = {f: getattr(node, f) for f in NEURON_FIELDS if getattr(node, f) is not None}
        else:
            continue
        out[name] = {k: jnp.asarray(v, jnp.float32) for k, v in fields.items()}
    return out


def _named_inputs(graph: SpikingGraph, inputs, integer: bool) -> dict:
    """`inputs` as {input name: [T, B, *shape] array}, checked against the graph's Input nodes."""
    names = graph.inputs()
    if not isinstance(inputs, dict):
        if len(names) != 1:
            raise NeurojaxError(f"the graph has inputs {names}: pass a dict name -> [T, B, ...] array")
        inputs = {names[0]: inputs}
    if sorted(inputs) != names:
        raise NeurojaxError(f"inputs {sorted(inputs)} do not match the graph's Input nodes {names}")
    out, steps = {}, set()
    for name in names:
        x = np.asarray(inputs[name]) if not isinstance(inputs[name], jax.Array) else inputs[name]
        shape = graph.nodes[name].shape
        if x.ndim != len(shape) + 2 or tuple(x.shape[2:]) != shape:
            raise NeurojaxError(f"input {name!r} must be time-major [T, B, *{shape}], got shape {tuple(x.shape)}")
        if x.shape[0] < 1:
            raise NeurojaxError(f"input {name!r} has no time steps (T = 0)")
        if integer:
            if not jnp.issubdtype(x.dtype, jnp.integer) or jnp.dtype(x.dtype).itemsize > 4:
                raise NeurojaxError(f"input {name!r} of a fixed-point run must be int32 payloads, got {x.dtype}")
            spec = graph.nodes[name].fixed
            lo, hi = (0, 1) if spec.kind == "binary" else (-(1 << (spec.bits - 1)), (1 << (spec.bits - 1)) - 1)
            xn = None if isinstance(x, jax.core.Tracer) else np.asarray(x)  # values are checked when known
            if xn is not None and xn.size and (xn.min() < lo or xn.max() > hi):
                raise NeurojaxError(f"input {name!r} holds values outside [{lo}, {hi}] ({spec.kind}, {spec.bits} bits)")
            x = jnp.asarray(x, jnp.int32)
        else:
            if not jnp.issubdtype(x.dtype, jnp.floating):
                raise NeurojaxError(f"input {name!r} must be a float array, got {x.dtype}")
            x = jnp.asarray(x)
        steps.add((x.shape[0], x.shape[1]))
        out[name] = x
    if len(steps) != 1:
        raise NeurojaxError(f"inputs differ in time steps or batch size: {sorted(steps)}")
    return out


def _outputs(graph: SpikingGraph, ys: dict):
    names = graph.outputs()
    return ys[names[0]] if len(names) == 1 else ys


def _recurrent_sources(graph: SpikingGraph) -> list:
    return sorted({a for a, _ in graph.schedule.recurrent})


# ----------------------------------------------------------------------------- float


def _float_node(node, p: dict, x, state, spike):
    """One node's output (and neuron state) for one step; `x` is its summed input [B, ...]."""
    if isinstance(node, Affine):
        y = x @ p["weight"].T
        return (y + p["bias"] if "bias" in p else y), state
    if isinstance(node, Scale):
        return x * p["scale"], state
    if isinstance(node, Threshold):
        return spike(x - p["threshold"]), state
    if isinstance(node, (Flatten, Output)):
        return x, state  # a Flatten is reshaped by the caller, which knows the shapes
    i, v = state
    i = p["decay_syn"] * i + p["c_in"] * x
    v = p["decay"] * v + p["gain"] * i + p["bias"]
    if not node.spiking:
        return v, (i, v)
    s = spike(v - p["threshold"])
    sd = jax.lax.stop_gradient(s)
    return s, (i, v * (1.0 - sd) + p["v_reset"] * sd)


def _step_values(graph: SpikingGraph, node_fn, inputs: dict, neurons: dict, prev: dict, batch: int, dtype):
    """Every node's output for one step (in schedule order) and the neurons' new states.

    `node_fn(name, node, x, state) -> (y, state)`; `inputs` by Input name; `prev` holds the
    recurrent sources' values of the previous step."""
    sch = graph.schedule
    neurons, vals = dict(neurons), {}
    for name in sch.order:
        node = graph.nodes[name]
        if isinstance(node, Input):
            vals[name] = inputs[name]
            continue
        parts = [vals[p] for p in sch.forward_preds[name]] + [prev[p] for p in sch.recurrent_preds[name]]
        x = parts[0] if parts else jnp.zeros((batch,) + sch.shapes[name][0], dtype)
        for part in parts[1:]:
            x = x + part
        y, st = node_fn(name, node, x, neurons.get(name))
        if isinstance(node, Neuron):
            neurons[name] = st
        vals[name] = jnp.reshape(y, (batch,) + sch.shapes[name][1])
    return vals, neurons


def _initial(graph: SpikingGraph, node_fn, neuron_state, batch: int, dtype) -> dict:
    """Neuron states from `neuron_state(shape)` and the recurrent sources' first values: the graph
    evaluated with every input and neuron output at zero (so a recurrent Affine's bias is there at
    step 0)."""
    sch = graph.schedule
    shapes = {n: (batch,) + sch.shapes[n][1] for n in graph.nodes}
    neurons = {n: neuron_state(shapes[n]) for n, node in graph.nodes.items() if isinstance(node, Neuron)}
    silent = {n: None for n in neurons}

    def zero_fn(name, node, x, state):
        return (jnp.zeros(shapes[name], dtype), state) if isinstance(node, Neuron) else node_fn(name, node, x, state)

    zeros = {n: jnp.zeros(shapes[n], dtype) for n in graph.inputs()}
    prev = {n: jnp.zeros(shapes[n], dtype) for n in _recurrent_sources(graph)}
    vals, _ = _step_values(graph, zero_fn, zeros, silent, prev, batch, dtype)
    return {"neurons": neurons, "recurrent": {n: vals[n] for n in _recurrent_sources(graph)}}


def _scan(graph: SpikingGraph, node_fn, xs: dict, state: dict, dtype):
    batch = next(iter(xs.values())).shape[1]
    rec_src = _recurrent_sources(graph)

    def step(carry, x_t):
        vals, neurons = _step_values(graph, node_fn, x_t, carry["neurons"], carry["recurrent"], batch, dtype)
        return {"neurons": neurons, "recurrent": {n: vals[n] for n in rec_src}}, {n: vals[n] for n in graph.outputs()}

    final, ys = jax.lax.scan(step, state, xs)
    return _outputs(graph, ys), final


def initial_state(graph: SpikingGraph, batch: int, params: Optional[dict] = None, dtype=jnp.float32) -> dict:
    """Float run state: zero neuron currents and voltages, and the recurrent edges' first values."""
    params = graph_params(graph) if params is None else params
    node_fn = _float_fn(params, spike_fn("fast_sigmoid"))
    return _initial(graph, node_fn, lambda shape: (jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)), batch, dtype)


def _float_fn(params: dict, spike):
    return lambda name, node, x, state: _float_node(node, params.get(name, {}), x, state, spike)


def run_graph(graph: SpikingGraph, params: dict, inputs, state: Optional[dict] = None, *,
              surrogate: str = "fast_sigmoid", slope=None):
    """Float run over time: `inputs [T, B, *shape]` (or a dict) -> `(outputs, final_state)`.

    `params` is `graph_params(graph)` (or trained values of the same structure); `state`
    defaults to `initial_state`. Spikes compare ">" (NIR's strict threshold) and back-propagate
    through the named surrogate.
    """
    xs = _named_inputs(graph, inputs, integer=False)
    batch = next(iter(xs.values())).shape[1]
    dtype = next(iter(xs.values())).dtype
    state = initial_state(graph, batch, params, dtype) if state is None else state
    return _scan(graph, _float_fn(params, spike_fn(surrogate, slope, ">")), xs, state, dtype)


class GraphNet(nn.Module):
    """A `SpikingGraph` as a Flax module: its float parameters are trainable `params`.

    `GraphNet(graph).init(rng, x_seq)` copies the graph's values into `params` (the rng is unused:
    the graph is the initialisation); `apply(variables, x_seq) -> (outputs, final_state)`.
    """
    graph: SpikingGraph
    surrogate: str = "fast_sigmoid"
    slope: Optional[float] = None

    @nn.compact
    def __call__(self, inputs, state: Optional[dict] = None):
        init = graph_params(self.graph)
        params = {node: {f: self.param(f"{node}/{f}", lambda _, v=v: v) for f, v in fields.items()}
                  for node, fields in init.items()}
        return run_graph(self.graph, params, inputs, state, surrogate=self.surrogate, slope=self.slope)


def params_from_variables(variables: dict) -> dict:
    """`GraphNet` variables -> the `{node: {field: array}}` pytree of `graph_params`."""
    out = {}
    for key, value in variables["params"].items():
        node, _, field = key.rpartition("/")
        out.setdefault(node, {})[field] = value
    return out


# ----------------------------------------------------------------------------- fixed point


def _fixed_node(name: str, node, x, state):
    if isinstance(node, Affine):
        f = node.fixed
        a = jnp.dot(x, jnp.asarray(f.weight.T), preferred_element_type=jnp.int32)  # int32, wraps
        a = jnp.left_shift(a, f.exp) if f.exp > 0 else jnp.right_shift(a, -f.exp) if f.exp < 0 else a
        return a, state
    if isinstance(node, (Flatten, Output)):
        return x, state
    if isinstance(node, Neuron):
        new, s = lif_fixed_step(node.fixed.params, state, x, node.fixed.options)
        return s, new
    raise NeurojaxError(f"node {name!r} ({type(node).__name__}) has no fixed-point twin; the integer runner "
                        "supports Input, Output, Affine/Linear, Flatten and the LIF family")


def check_fixed(graph: SpikingGraph) -> None:
    """Raise naming the first node that a fixed-point run cannot execute."""
    for name in graph.schedule.order:
        node = graph.nodes[name]
        if isinstance(node, (Scale, Threshold)) or (isinstance(node, Neuron) and not node.spiking):
            kind = node.kind if isinstance(node, Neuron) else type(node).__name__
            raise NeurojaxError(f"node {name!r} ({kind}) has no fixed-point twin; the integer runner supports "
                                "Input, Output, Affine/Linear, Flatten and the LIF family (LIF, CubaLIF, IF)")
        if isinstance(node, (Input, Affine, Neuron)) and node.fixed is None:
            raise NeurojaxError(f"node {name!r} ({type(node).__name__}) carries no fixed-point parameters; "
                                "quantize the graph first (neurojax.spiking.graph_fixed.quantize_graph)")


def fixed_initial_state(graph: SpikingGraph, batch: int) -> dict:
    """Zero u, v of every neuron and the recurrent edges' first (all-zero-input) values, int32."""
    check_fixed(graph)
    return _initial(graph, _fixed_node, lambda shape: LifFixedState(jnp.zeros(shape, jnp.int32),
                                                                    jnp.zeros(shape, jnp.int32)), batch, jnp.int32)


def run_fixed_graph(graph: SpikingGraph, inputs, state: Optional[dict] = None):
    """Integer run over time (int32 only): payloads `[T, B, *shape]` -> `(outputs, final_state)`.

    Outputs of spiking neurons are int32 spikes 0/1. Every node needs its fixed-point twin.
    """
    check_fixed(graph)
    xs = _named_inputs(graph, inputs, integer=True)
    batch = next(iter(xs.values())).shape[1]
    state = fixed_initial_state(graph, batch) if state is None else state
    return _fixed_runner(graph)(state, xs)


@functools.lru_cache(maxsize=16)
def _fixed_runner(graph: SpikingGraph):
    """The jitted integer scan of `graph` (graphs hash by identity): compiled once per graph and shape."""
    return jax.jit(lambda s, x: _scan(graph, _fixed_node, x, s, jnp.int32))
