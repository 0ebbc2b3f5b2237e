"""Fixed-point twins for a float `SpikingGraph`, and graph neurons from neurojax's neuron modules.

`quantize_graph(graph, frac=12)` gives every Input, Affine and spiking Neuron node its
fixed-point twin (the graph's float values stay as they are), using the host-side mappings of
`neurojax.spiking.neurons` (Lava's LIF codes):

- a neuron's voltage is read in units of `2**-(frac + 6)` (the input scale `2**-frac` times
  Lava's `<< 6`): `vth = round(threshold * 2**frac)`, `dv = decay_to_dv(decay)`,
  `du = decay_to_du(decay_syn)` for a CubaLIF and 4095 (no current memory) otherwise, and the bias
  `round(bias_total * 2**(frac + 6))` as a 13-bit mantissa and exponent, where `bias_total` adds
  the feeding Affines' biases times `gain * c_in` (for a CubaLIF divided by `1 - decay_syn`: the
  synaptic filter's steady state; exact for LIF and IF, whose input has no filter);
- an Affine feeding neurons gets mantissas `round(W' / 2**exp)` of `weight_bits` bits with
  `W' = (gain * c_in)[:, None] * W * 2**frac` and the smallest `exp` that makes them fit;
- inputs are binary spikes (`input_kind="binary"`) or graded payloads of `input_bits`.
Rounding is half away from zero throughout. Every neuron must be fed through Affine/Linear
nodes (their weights carry the input scale), and every Affine must feed neurons of one gain.
"""
import dataclasses
import math

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.spiking.graph import (
    Affine,
    FixedAffine,
    FixedInput,
    FixedNeuron,
    Flatten,
    Input,
    Neuron,
    Output,
    SpikingGraph,
)
from neurojax.spiking.neurons import (
    DECAY_MAX,
    IF,
    LIF,
    FixedLifOptions,
    _check_frac,
    _read_params,
    _round_code,
    _threshold_code,
    bias_to_mant_exp,
    decay_to_du,
    decay_to_dv,
    lif_fixed_params,
)


def _successors(graph: SpikingGraph, name: str) -> list:
    return sorted(b for a, b in graph.edges if a == name)


def _predecessors(graph: SpikingGraph, name: str) -> list:
    return sorted(a for a, b in graph.edges if b == name)


def _input_scale(node: Neuron) -> np.ndarray:
    """What one unit of the neuron's input adds to its voltage per step (before any filter)."""
    return node.gain.astype(np.float64) * node.c_in.astype(np.float64)


def _affine_twin(graph: SpikingGraph, name: str, node: Affine, frac: int, weight_bits: int) -> FixedAffine:
    consumers = _successors(graph, name)
    bad = [c for c in consumers if not (isinstance(graph.nodes[c], Neuron) and graph.nodes[c].spiking)]
    if bad or not consumers:
        raise NeurojaxError(f"Affine {name!r} feeds {bad or 'nothing'}: in a fixed-point graph an Affine/Linear "
                            "feeds spiking neurons only (synapses end at a neuron's input)")
    for p in _predecessors(graph, name):
        if not isinstance(graph.nodes[p], (Input, Neuron, Flatten)):
            raise NeurojaxError(f"Affine {name!r} is fed by {p!r} ({type(graph.nodes[p]).__name__}): two synapse "
                                "layers in a row have no fixed-point form; fold them into one Affine")
    scales = {tuple(_input_scale(graph.nodes[c]).reshape(-1)) for c in consumers}
    if len(scales) != 1:
        raise NeurojaxError(f"Affine {name!r} feeds neurons {consumers} with different input gains; "
                            "give each its own Affine")
    gain = np.asarray(scales.pop())
    if gain.shape != (node.weight.shape[0],):
        raise NeurojaxError(f"Affine {name!r}: its output ({node.weight.shape[0]}) does not match the neurons it feeds")
    w = gain[:, None] * node.weight.astype(np.float64) * 2.0 ** frac
    top = (1 << (weight_bits - 1)) - 1
    peak = float(np.max(np.abs(w))) if w.size else 0.0
    exp = 0 if peak == 0 else math.ceil(math.log2(peak / top))
    while peak and np.max(np.abs(_round_code(w, -exp))) > top:
        exp += 1
    if not -31 <= exp <= 31:
        raise NeurojaxError(f"Affine {name!r}: weights need a weight exponent {exp} outside [-31, 31]; change frac")
    return FixedAffine(_round_code(w, -exp).astype(np.int32), exp, weight_bits)


def _neuron_twin(graph: SpikingGraph, name: str, node: Neuron, frac: int, options: FixedLifOptions) -> FixedNeuron:
    if np.any(node.v_reset != 0):
        raise NeurojaxError(f"neuron {name!r}: v_reset must be 0 for the fixed-point LIF (its reset writes 0)")
    preds = _predecessors(graph, name)
    direct = [p for p in preds if not isinstance(graph.nodes[p], Affine)]
    if direct:
        raise NeurojaxError(f"neuron {name!r} is fed directly by {direct[0]!r}: put an Affine/Linear in between "
                            "(its weights carry the input scale of the fixed-point neuron)")
    bias = node.bias.astype(np.float64)
    for p in preds:
        b = graph.nodes[p].bias
        if b is not None:
            filt = 1.0 / (1.0 - node.decay_syn.astype(np.float64)) if node.kind == "CubaLIF" else 1.0
            bias = bias + _input_scale(node) * b.reshape(node.shape).astype(np.float64) * filt
    codes = _round_code(bias, frac + 6).reshape(-1)
    mant, exp = (np.array(v, np.int64).reshape(node.shape) for v in zip(*(bias_to_mant_exp(c) for c in codes)))
    du = decay_to_du(node.decay_syn) if node.kind == "CubaLIF" else np.full(node.shape, DECAY_MAX, np.int64)
    params = lif_fixed_params(du, decay_to_dv(node.decay), _threshold_code(f"neuron {name!r}: threshold",
                                                                           node.threshold, frac), mant, exp)
    return FixedNeuron(params, options)


def quantize_graph(graph: SpikingGraph, frac: int = 12, weight_bits: int = 8, input_kind: str = "binary",
                   input_bits: int = 24, options: FixedLifOptions = FixedLifOptions()) -> SpikingGraph:
    """A copy of `graph` whose Input, Affine and spiking Neuron nodes carry fixed-point twins."""
    frac = _check_frac(frac)
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or not 2 <= weight_bits <= 16:
        raise NeurojaxError(f"weight_bits must be an int in [2, 16], got {weight_bits!r}")
    spec = FixedInput("binary", 1) if input_kind == "binary" else FixedInput(input_kind, input_bits)
    nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, Input):
            nodes[name] = Input(node.shape, spec)
        elif isinstance(node, Affine):
            nodes[name] = Affine(node.weight, node.bias, _affine_twin(graph, name, node, frac, weight_bits))
        elif isinstance(node, Neuron):
            if not node.spiking:
                raise NeurojaxError(f"neuron {name!r} ({node.kind}) has no fixed-point twin: the interpreter's LIF "
                                    "family spikes (LIF, CubaLIF, IF)")
            nodes[name] = dataclasses.replace(node, fixed=_neuron_twin(graph, name, node, frac, options))
        elif isinstance(node, (Output, Flatten)):
            nodes[name] = node
        else:
            raise NeurojaxError(f"node {name!r} ({type(node).__name__}) has no fixed-point twin; a fixed-point graph "
                                "holds Input, Output, Affine/Linear, Flatten and LIF-family neurons")
    return SpikingGraph(nodes, graph.edges)


def neuron_from_module(module, shape: tuple, variables=None, input_frac=None) -> Neuron:
    """A graph `Neuron` equal to a neurojax `LIF` or `IF` module (`neurojax.spiking.neurons`).

    neurojax's LIF (`u = decay_u u + x; v = decay_v v + u + bias`) is a CubaLIF with
    `decay_syn = decay_u`, `c_in = gain = 1` (a plain LIF when `decay_u = 0`); its IF is an IF.
    Only the zero reset exists in NIR (`v <- v_reset`), so a module with `reset="subtract"` is
    refused. With `input_frac`, the module's own fixed-point twin (`module.fixed_params`) is attached.
    """
    if not isinstance(module, (LIF, IF)):
        raise NeurojaxError(f"neuron_from_module takes a neurojax LIF or IF module, got {type(module).__name__}")
    if getattr(module, "order", "neurojax") != "neurojax":
        raise NeurojaxError(f"{type(module).__name__}: only order='neurojax' (integrate, then spike and reset on the "
                            f"same step) is NIR's LIF, got order={module.order!r}")
    if module.reset != "zero" or module.compare != ">":
        raise NeurojaxError(f"{type(module).__name__}: only reset='zero' with compare='>' has a NIR form "
                            f"(got reset={module.reset!r}, compare={module.compare!r})")
    shape = tuple(shape)
    values = {k: np.asarray(v, np.float64) for k, v in _read_params(module, variables, module._LEARNABLE).items()}
    values["bias"] = module.bias
    full = {k: np.broadcast_to(np.asarray(v, np.float32), shape).copy() for k, v in values.items()}
    ones, zeros = np.ones(shape, np.float32), np.zeros(shape, np.float32)
    if isinstance(module, IF):
        kind, fields = "IF", dict(decay=ones, gain=ones, bias=full["bias"])
        if np.any(full["bias"] != 0):
            raise NeurojaxError("IF: a bias has no NIR IF form (NIR's IF has no leak or bias)")
    else:
        cuba = bool(np.any(full["decay_u"] != 0))
        kind = "CubaLIF" if cuba else "LIF"
        fields = dict(decay=full["decay_v"], gain=ones, bias=full["bias"],
                      decay_syn=full["decay_u"] if cuba else None)
    fixed = None
    if input_frac is not None:
        fixed = FixedNeuron(module.fixed_params(input_frac, variables), FixedLifOptions(compare=">", reset="zero"))
    return Neuron(kind, threshold=full["threshold"], v_reset=zeros, fixed=fixed, **fields)
