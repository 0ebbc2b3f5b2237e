"""Compile a fixed-point `SpikingGraph` onto the event-driven interpreter and run it there.

Mapping (every node needs its fixed-point twin, `SpikingGraph.is_fixed`):
- an Input becomes an `InputGroup` (binary spikes, or graded payloads of the twin's bits);
- a LIF-family neuron becomes a `lif_group` (Lava's LIF program: the twin's du, dv, vth, bias);
- each path source -> [Flatten] -> Affine/Linear -> [Flatten] -> neuron becomes one dense
  `SynapseGroup` with the Affine's integer mantissas and exponent (a source wired straight into a
  neuron: one-to-one synapses of weight 1); Flatten is free (groups are flat, C order);
- an Output reads its neuron's spike channel "s" (a probe).

Timing. A graph step is instantaneous along forward edges, while every synapse on the chip
delays by >= 1 step. Each neuron group therefore sits at a pipeline depth (the longest forward
path from an input, in neurons) and a synapse from depth a to depth b gets delay `b - a`
(`b - a + 1` on a recurrent path: the previous step's spikes), so graph step t of a neuron at
depth d runs at chip step t + d. The group runs the *gated* LIF program, which holds a neuron at
rest for its first d steps: it would otherwise integrate its bias while the pipeline fills. A
recurrent path from a deeper to a shallower neuron would need a delay < 1: the compiler refuses it.
The result: outputs equal `graph_run.run_fixed_graph`'s bit for bit, and the interpreter's
counters say what the run cost in events.
"""
import dataclasses

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.neuromorphic.chip import LOIHI2, ChipConfig
from neurojax.neuromorphic.interpreter import COUNTERS, Simulator
from neurojax.neuromorphic.network import InputGroup, Network, SynapseGroup
from neurojax.neuromorphic.neurons import LifOptions, lif_group
from neurojax.spiking.graph import Affine, Flatten, Input, Neuron, SpikingGraph
from neurojax.spiking.graph_run import check_fixed


@dataclasses.dataclass(frozen=True)
class ChipGraph:
    """A compiled graph: the network, each group's pipeline depth, and what each Output reads."""
    network: Network
    chip: ChipConfig
    depth: dict  # group (Input or Neuron node) name -> pipeline depth
    outputs: dict  # Output node -> neuron node
    shapes: dict  # Output node -> shape of one step


def _walk_back(graph: SpikingGraph, start: str, via: str, recurrent: bool) -> list:
    """(group, affine, recurrent) for each path that reaches `start` through `via`, skipping Flattens."""
    nodes, sch = graph.nodes, graph.schedule
    node = nodes[via]
    if isinstance(node, (Input, Neuron)):
        return [(via, None, recurrent)]
    if isinstance(node, Flatten):
        out = []
        for p in sch.forward_preds[via] + sch.recurrent_preds[via]:
            out += _walk_back(graph, start, p, recurrent or (p, via) in sch.recurrent)
        return out
    if isinstance(node, Affine):
        out = []
        for p in sch.forward_preds[via] + sch.recurrent_preds[via]:
            for group, affine, rec in _walk_back(graph, start, p, recurrent or (p, via) in sch.recurrent):
                if affine is not None:
                    raise NeurojaxError(f"Affine {affine!r} feeds Affine {via!r}: two synapse layers in a row have "
                                        "no chip form; fold them into one Affine")
                out.append((group, via, rec))
        return out
    raise NeurojaxError(f"node {via!r} ({type(node).__name__}) cannot feed neuron {start!r} on the chip")


def _sources(graph: SpikingGraph, neuron: str) -> list:
    sch = graph.schedule
    out = []
    for p in sch.forward_preds[neuron] + sch.recurrent_preds[neuron]:
        out += _walk_back(graph, neuron, p, (p, neuron) in sch.recurrent)
    return out


def _check_widths(graph: SpikingGraph, chip: ChipConfig) -> None:
    for name, node in graph.nodes.items():
        if isinstance(node, Input) and node.fixed.kind == "graded" and node.fixed.bits > chip.payload_bits:
            raise NeurojaxError(f"input {name!r} sends {node.fixed.bits}-bit graded payloads; the chip carries "
                                f"{chip.payload_bits} bits (ChipConfig.payload_bits)")
        if isinstance(node, Affine):
            f = node.fixed
            w = f.weight
            lim = 1 << (chip.weight_bits - 1)
            if f.weight_bits > chip.weight_bits and w.size and (w.min() < -lim or w.max() > lim - 1):
                raise NeurojaxError(f"Affine {name!r} holds {f.weight_bits}-bit weights; the chip's synapses have "
                                    f"{chip.weight_bits} bits (ChipConfig.weight_bits)")
            if not chip.weight_exp_min <= f.exp <= chip.weight_exp_max:
                raise NeurojaxError(f"Affine {name!r} has weight exponent {f.exp}; the chip allows "
                                    f"[{chip.weight_exp_min}, {chip.weight_exp_max}]")
        if isinstance(node, Neuron) and node.fixed.options.reset != "zero":
            raise NeurojaxError(f"neuron {name!r} resets by {node.fixed.options.reset!r}; the chip's LIF program "
                                "writes 0 (reset='zero')")


def compile_graph(graph: SpikingGraph, chip: ChipConfig = LOIHI2) -> ChipGraph:
    """The interpreter network of a fixed-point graph (module doc); validated against `chip`."""
    check_fixed(graph)
    _check_widths(graph, chip)
    sch, nodes = graph.schedule, graph.nodes
    neurons = [n for n in sch.order if isinstance(nodes[n], Neuron)]
    sources = {n: _sources(graph, n) for n in neurons}
    depth = {n: 0 for n in graph.inputs()}
    for n in neurons:  # schedule order: forward sources come first
        fwd = [depth[g] for g, _, rec in sources[n] if not rec]
        depth[n] = 1 + max(fwd) if fwd else 1
    net = Network()
    for name in graph.inputs():
        spec = nodes[name].fixed
        net.add(InputGroup(name, int(np.prod(nodes[name].shape)), spec.kind, spec.bits))
    for n in neurons:
        p, opt = nodes[n].fixed.params, nodes[n].fixed.options
        size = int(np.prod(nodes[n].shape))
        flat = {k: np.broadcast_to(np.asarray(v), nodes[n].shape).reshape(-1).astype(np.int64)
                for k, v in zip(p._fields, p)}
        net.add(lif_group(n, size, options=LifOptions(compare=opt.compare, reset=0, current=opt.current),
                          wait=depth[n], **flat))
    for n in neurons:
        for k, (group, affine, rec) in enumerate(sorted(sources[n], key=lambda s: (s[0], s[1] or "", s[2]))):
            delay = depth[n] - depth[group] + (1 if rec else 0)
            if delay < 1:
                raise NeurojaxError(f"the recurrent path {group!r} -> {n!r} goes from pipeline depth {depth[group]} back "
                                    f"to {depth[n]}: the chip cannot deliver it in time, so the graph cannot be scheduled")
            if delay > chip.max_delay:
                raise NeurojaxError(f"the path {group!r} -> {n!r} needs a synaptic delay of {delay} steps; the chip "
                                    f"allows {chip.max_delay} (ChipConfig.max_delay)")
            channel = "out" if isinstance(nodes[group], Input) else "s"
            n_src, n_dst = net.groups[group].size, net.groups[n].size
            if affine is None:
                if n_src != n_dst:
                    raise NeurojaxError(f"{group!r} ({n_src}) is wired straight into {n!r} ({n_dst}): sizes differ")
                syn = SynapseGroup(f"{group}->{n}#{k}", (group, channel), (n, "a_in"), np.ones(n_src, np.int64), 0,
                                   delay, np.arange(n_src), np.arange(n_src))
            else:
                f = nodes[affine].fixed
                syn = SynapseGroup(f"{affine}:{group}->{n}#{k}", (group, channel), (n, "a_in"),
                                   f.weight.astype(np.int64), f.exp, delay)
            net.connect(syn)
    outputs, shapes = {}, {}
    for name in graph.outputs():
        src = [g for g, _, _ in _walk_back_output(graph, name)]
        outputs[name], shapes[name] = src[0], sch.shapes[name][1]
    net.validate(chip)
    return ChipGraph(net, chip, depth, outputs, shapes)


def _walk_back_output(graph: SpikingGraph, name: str) -> list:
    preds = graph.schedule.forward_preds[name]
    found = []
    for p in preds:
        node = graph.nodes[p]
        while isinstance(node, Flatten):
            (p,) = graph.schedule.forward_preds[p]
            node = graph.nodes[p]
        if not isinstance(node, Neuron):
            raise NeurojaxError(f"Output {name!r} reads {p!r} ({type(node).__name__}); on the chip an Output reads a "
                                "spiking neuron's spikes")
        found.append((p, None, False))
    if len(found) != 1:
        raise NeurojaxError(f"Output {name!r} must read exactly one neuron on the chip, got {len(found)}")
    return found


@dataclasses.dataclass(frozen=True)
class ChipRun:
    """Outputs of one sample `[T, *shape]` (int32 spikes), the interpreter's counters summed over the
    run by name, and the number of chip steps (T plus the pipeline depth)."""
    outputs: dict
    counters: dict
    steps: int


def run_on_chip(compiled: ChipGraph, inputs) -> ChipRun:
    """Run one sample: payloads `[T, *input_shape]` (or a dict by input name) -> `ChipRun`."""
    net = compiled.network
    names = sorted(g.name for g in net.inputs())
    if not isinstance(inputs, dict):
        if len(names) != 1:
            raise NeurojaxError(f"the graph has inputs {names}: pass a dict name -> [T, ...] array")
        inputs = {names[0]: inputs}
    if sorted(inputs) != names:
        raise NeurojaxError(f"inputs {sorted(inputs)} do not match the graph's inputs {names}")
    lengths = {np.shape(v)[0] if np.ndim(v) else 0 for v in inputs.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise NeurojaxError("chip inputs must be [T, ...] arrays of one length T >= 1")
    T = lengths.pop()
    extra = max(compiled.depth[n] for n in compiled.outputs.values())
    xs = {}
    for name, v in inputs.items():
        v = np.asarray(v)
        if not np.issubdtype(v.dtype, np.integer):
            raise NeurojaxError(f"chip input {name!r} must hold integer payloads, got {v.dtype}")
        flat = v.reshape(T, -1).astype(np.int64)
        xs[name] = np.concatenate([flat, np.zeros((extra, flat.shape[1]), np.int64)])
    probes = tuple(sorted({f"{n}/s" for n in compiled.outputs.values()}))
    trace, _ = Simulator(net, compiled.chip, probes=probes).run(xs, T + extra)
    outputs = {}
    for out, n in compiled.outputs.items():
        d = compiled.depth[n]
        outputs[out] = np.asarray(trace.probes[f"{n}/s"])[d:d + T].reshape((T,) + compiled.shapes[out]).astype(np.int32)
    counters = {k: int(np.asarray(trace.counters[k]).sum()) for k in COUNTERS if k in trace.counters}
    return ChipRun(outputs, counters, T + extra)
