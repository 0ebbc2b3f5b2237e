"""NIR files <-> `neurojax.spiking.graph.SpikingGraph`, with exact fixed-point metadata.

`to_nir(graph, dt)` / `write(path, graph, dt)` export; `from_nir(nir_graph, profile)` /
`read(path, profile)` import. Node types: Input, Output, Affine, Linear, Scale, Threshold,
Flatten, LIF, CubaLIF, IF, LI and I (NIR's integrator); anything else is refused naming the node
and its type. Continuous <-> discrete parameters follow `nir_conventions` (forward Euler, a named
profile; the step is not stored by NIR).

**What neurojax adds to a file** (flat node metadata, keys prefixed `neurojax_`, so any NIR reader
ignores them): the format tag, the dt and profile used (graph metadata), every neuron's exact
discrete float32 values (`neurojax_decay`, `neurojax_gain`, ...) so neurojax's own files round-trip
bit-identically, and the fixed-point twins: for neurons `neurojax_fixed_{du,dv,vth,bias_mant,
bias_exp}` (int32 arrays) with `neurojax_fixed_{compare,reset,current}`; for Affine/Linear
`neurojax_fixed_{weight,exp,weight_bits}`; for inputs `neurojax_fixed_{kind,bits}`. An importer that
knows them gets the exact integer model back (`SpikingGraph.is_fixed`), which then runs on the
interpreter bit for bit (`neurojax.interop.graph_to_chip`).

Writing is all-or-nothing: the graph is converted and checked first, then written to a temporary
file that replaces `path` only when complete.
"""
import dataclasses
import os
from typing import Union

import nir
import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.files import write_atomic
from neurojax.interop.nir_conventions import DEFAULT_DT, NirProfile, from_neuron, get_profile, to_neuron
from neurojax.spiking.graph import (
    NEURON_FIELDS,
    Affine,
    FixedAffine,
    FixedInput,
    FixedNeuron,
    Flatten,
    Input,
    Neuron,
    Output,
    Scale,
    SpikingGraph,
    Threshold,
)
from neurojax.spiking.neurons import FixedLifOptions, LifFixedParams

FORMAT = "neurojax-nir/1"
PREFIX = "neurojax_"
FIXED = PREFIX + "fixed_"
NEURON_TYPES = {"LIF": nir.LIF, "CubaLIF": nir.CubaLIF, "IF": nir.IF, "LI": nir.LI, "I": nir.I}


# ----------------------------------------------------------------------------- export

def _neuron_metadata(node: Neuron) -> dict:
    meta = {PREFIX + "format": FORMAT}
    meta |= {PREFIX + f: np.asarray(getattr(node, f)) for f in NEURON_FIELDS if getattr(node, f) is not None}
    if node.fixed is not None:
        meta |= {FIXED + k: np.broadcast_to(np.asarray(v, np.int32), node.shape).copy()
                 for k, v in zip(node.fixed.params._fields, node.fixed.params)}
        opt = node.fixed.options
        meta |= {FIXED + "compare": opt.compare, FIXED + "reset": opt.reset, FIXED + "current": opt.current}
    return meta


def _export_node(name: str, node, shapes: dict, dt: float) -> nir.NIRNode:
    if isinstance(node, Input):
        meta = {PREFIX + "format": FORMAT}
        if node.fixed is not None:
            meta |= {FIXED + "kind": node.fixed.kind, FIXED + "bits": np.int64(node.fixed.bits)}
        return nir.Input(input_type={"input": np.array(node.shape)}, metadata=meta)
    if isinstance(node, Output):
        return nir.Output(output_type={"output": np.array(node.shape)})
    if isinstance(node, Affine):
        meta = {PREFIX + "format": FORMAT}
        if node.fixed is not None:
            meta |= {FIXED + "weight": node.fixed.weight, FIXED + "exp": np.int64(node.fixed.exp),
                     FIXED + "weight_bits": np.int64(node.fixed.weight_bits)}
        if node.bias is None:
            return nir.Linear(weight=np.asarray(node.weight), metadata=meta)
        return nir.Affine(weight=np.asarray(node.weight), bias=np.asarray(node.bias), metadata=meta)
    if isinstance(node, Scale):
        return nir.Scale(scale=np.asarray(node.scale))
    if isinstance(node, Threshold):
        return nir.Threshold(threshold=np.asarray(node.threshold))
    if isinstance(node, Flatten):
        return nir.Flatten(input_type={"input": np.array(shapes[name][0])}, start_dim=node.start_dim,
                           end_dim=node.end_dim)
    fields = from_neuron(node, dt, name)
    return NEURON_TYPES[node.kind](**fields, metadata=_neuron_metadata(node))


def to_nir(graph: SpikingGraph, dt: float = DEFAULT_DT) -> nir.NIRGraph:
    """The `nir.NIRGraph` of `graph`, neurons written with time step `dt` (seconds)."""
    get_profile(NirProfile("export", dt))  # validates dt
    shapes = graph.schedule.shapes
    nodes = {name: _export_node(name, node, shapes, dt) for name, node in graph.nodes.items()}
    meta = {PREFIX + "format": FORMAT, PREFIX + "dt": float(dt), PREFIX + "profile": "neurojax"}
    return nir.NIRGraph(nodes=nodes, edges=[list(e) for e in graph.edges], metadata=meta, type_check=False)


def write(path: str, graph: SpikingGraph, dt: float = DEFAULT_DT) -> None:
    """Write `graph` to the NIR (HDF5) file `path`; nothing is written unless the whole graph converts."""
    exported = to_nir(graph, dt)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise NeurojaxError(f"cannot write {path!r}: folder {folder!r} does not exist")
    write_atomic(path, lambda tmp: nir.write(tmp, exported))


# ----------------------------------------------------------------------------- import

def _text(v) -> str:
    v = v.item() if isinstance(v, np.ndarray) and v.shape == () else v
    return v.decode("utf8") if isinstance(v, bytes) else str(v)


def _ours(meta: dict) -> bool:
    return PREFIX + "format" in meta and _text(meta[PREFIX + "format"]) == FORMAT


def _meta_int(meta: dict, key: str, name: str) -> np.ndarray:
    if key not in meta:
        raise NeurojaxError(f"NIR node {name!r}: fixed-point metadata is incomplete (no {key!r})")
    v = np.asarray(meta[key])
    if not np.issubdtype(v.dtype, np.integer):
        raise NeurojaxError(f"NIR node {name!r}: metadata {key!r} must hold integers, got {v.dtype}")
    return v


def _fixed_neuron(meta: dict, name: str):
    if FIXED + "du" not in meta:
        return None
    params = LifFixedParams(*(_meta_int(meta, FIXED + k, name).astype(np.int32) for k in LifFixedParams._fields))
    opts = {k: _text(meta[FIXED + k]) for k in ("compare", "reset", "current") if FIXED + k in meta}
    return FixedNeuron(params, FixedLifOptions(**opts))


def _shape_of(types: dict, key: str, name: str) -> tuple:
    value = (types or {}).get(key)
    if value is None:
        raise NeurojaxError(f"NIR node {name!r} does not declare its shape ({key}_type)")
    return tuple(int(d) for d in np.asarray(value).reshape(-1))


def _import_node(name: str, node, profile: NirProfile):
    meta = dict(getattr(node, "metadata", None) or {})
    kind = type(node).__name__
    if isinstance(node, nir.Input):
        fixed = None
        if FIXED + "kind" in meta:
            fixed = FixedInput(_text(meta[FIXED + "kind"]), int(_meta_int(meta, FIXED + "bits", name)))
        return Input(_shape_of(node.input_type, "input", name), fixed)
    if isinstance(node, nir.Output):
        return Output(_shape_of(node.output_type, "output", name))
    if isinstance(node, (nir.Affine, nir.Linear)):
        fixed = None
        if FIXED + "weight" in meta:
            fixed = FixedAffine(_meta_int(meta, FIXED + "weight", name), int(_meta_int(meta, FIXED + "exp", name)),
                                int(_meta_int(meta, FIXED + "weight_bits", name)))
        bias = np.asarray(node.bias) if isinstance(node, nir.Affine) else None
        return Affine(np.asarray(node.weight), bias, fixed)
    if isinstance(node, nir.Scale):
        return Scale(np.asarray(node.scale))
    if isinstance(node, nir.Threshold):
        return Threshold(np.asarray(node.threshold))
    if isinstance(node, nir.Flatten):
        return Flatten(int(node.start_dim), int(node.end_dim))
    if kind in NEURON_TYPES:
        fixed = _fixed_neuron(meta, name)
        if _ours(meta):  # neurojax's own discrete values: exact
            values = {f: np.asarray(meta[PREFIX + f]) for f in NEURON_FIELDS if PREFIX + f in meta}
            return Neuron(kind, fixed=fixed, **values)
        fields = {k: getattr(node, k) for k in ("tau", "tau_syn", "tau_mem", "r", "v_leak", "v_threshold",
                                               "v_reset", "w_in") if hasattr(node, k)}
        neuron = to_neuron(kind, fields, profile, name)
        return neuron if fixed is None else dataclasses.replace(neuron, fixed=fixed)
    raise NeurojaxError(f"NIR node {name!r} has type {kind}, which neurojax does not import (supported: Input, "
                        "Output, Affine, Linear, Scale, Threshold, Flatten, LIF, CubaLIF, IF, LI, I)")


def from_nir(graph: nir.NIRGraph, profile: Union[str, NirProfile] = "neurojax") -> SpikingGraph:
    """A `SpikingGraph` from a `nir.NIRGraph`; neurons without neurojax metadata are discretised
    with `profile` (a file not written by neurojax needs a profile that names its dt)."""
    if not isinstance(graph, nir.NIRGraph):
        raise NeurojaxError(f"from_nir takes a nir.NIRGraph, got {type(graph).__name__}")
    meta = dict(graph.metadata or {})
    ours = _ours(meta)
    if isinstance(profile, str) and profile == "neurojax" and not ours:
        foreign = [n for n, v in graph.nodes.items()
                   if type(v).__name__ in NEURON_TYPES and not _ours(dict(v.metadata or {}))]
        if foreign:
            raise NeurojaxError(f"this NIR graph was not written by neurojax, so the time step of neuron {foreign[0]!r} "
                                "is unknown (NIR does not store dt): pass profile='snntorch', 'norse-1.1' or "
                                "NirProfile(name, dt, cuba_input)")
    if ours and isinstance(profile, str) and profile == "neurojax" and PREFIX + "dt" in meta:
        profile = NirProfile("neurojax", float(np.asarray(meta[PREFIX + "dt"])))
    profile = get_profile(profile)
    nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise NeurojaxError(f"NIR node {name!r} is a nested subgraph, which neurojax does not import; flatten it")
        nodes[str(name)] = _import_node(str(name), node, profile)
    edges = [(str(a), str(b)) for a, b in graph.edges]
    return SpikingGraph(nodes, tuple(edges))


def read(path: str, profile: Union[str, NirProfile] = "neurojax") -> SpikingGraph:
    """Read the NIR file `path` (see `from_nir` for `profile`)."""
    if not os.path.isfile(path):
        raise NeurojaxError(f"NIR file {path!r} does not exist")
    try:
        graph = nir.read(path)
    except NeurojaxError:
        raise
    except Exception as e:  # h5py raises OSError / KeyError / ValueError on truncated or foreign files
        raise NeurojaxError(f"cannot read NIR file {path!r}: it is truncated, corrupt or not NIR "
                            f"({type(e).__name__}: {e})") from None
    return from_nir(graph, profile)
