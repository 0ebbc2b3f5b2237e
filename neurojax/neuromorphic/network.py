"""A network of neuron groups, input groups and synapse groups: what the interpreter runs.

- `NeuronGroup`: `size` neurons that all run one `Program`, with per-neuron parameter values
  and initial register values.
- `InputGroup`: payloads injected by the host (or the chip's embedded x86 cores) at each
  step, on the single channel "out".
- `SynapseGroup`: from a (group, channel) to a (group, port): signed `weight_bits` mantissas
  with one exponent (`<< exp`, or an arithmetic `>> -exp` of the dendritic sum), dense
  `[n_dst, n_src]` or sparse (COO), and a delay of >= 1 steps: a message sent at step t is
  integrated at step t + delay.
`Network.validate(chip)` checks everything that can be checked before running: names,
shapes, weight ranges, delays, message widths against the payload, program limits.
"""
import dataclasses
from typing import Optional, Union

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.neuromorphic.chip import ChipConfig
from neurojax.neuromorphic.isa import CHANNEL_KINDS, Program, imm_bits


@dataclasses.dataclass(eq=False)
class NeuronGroup:
    name: str
    size: int
    program: Program
    params: dict = dataclasses.field(default_factory=dict)  # param -> int array [size] or scalar
    init: dict = dataclasses.field(default_factory=dict)  # register -> initial int array [size] or scalar

    def param_array(self, name: str) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.params[name], np.int32), (self.size,))

    def channels(self) -> dict:
        return self.program.channels


@dataclasses.dataclass(eq=False)
class InputGroup:
    name: str
    size: int
    kind: str = "graded"
    bits: int = 24  # widest payload the host will inject (checked against the chip and the data)

    def channels(self) -> dict:
        return {"out": (self.kind, self.bits if self.kind == "graded" else 1)}


@dataclasses.dataclass(eq=False)
class SynapseGroup:
    name: str
    src: tuple  # (group name, channel)
    dst: tuple  # (group name, port)
    weights: np.ndarray  # dense: int [n_dst, n_src]; sparse: int [nnz]
    exp: int = 0
    delay: int = 1
    dst_index: Optional[np.ndarray] = None  # sparse only: int [nnz]
    src_index: Optional[np.ndarray] = None

    @property
    def sparse(self) -> bool:
        return self.dst_index is not None

    def nnz(self) -> int:
        return int(np.count_nonzero(self.weights))

    def fanout(self, n_src: int) -> np.ndarray:
        """Non-zero synapses leaving each source neuron: the synaptic ops one event costs."""
        if self.sparse:
            return np.bincount(self.src_index, weights=self.weights != 0, minlength=n_src).astype(np.int64)
        return np.count_nonzero(self.weights, axis=0).astype(np.int64)

    def coo(self) -> tuple:
        """(dst, src, w) of the non-zero synapses."""
        if self.sparse:
            keep = self.weights != 0
            return self.dst_index[keep], self.src_index[keep], self.weights[keep]
        d, s = np.nonzero(self.weights)
        return d, s, self.weights[d, s]


Group = Union[NeuronGroup, InputGroup]


@dataclasses.dataclass(eq=False)
class Network:
    groups: dict = dataclasses.field(default_factory=dict)  # name -> NeuronGroup | InputGroup
    synapses: list = dataclasses.field(default_factory=list)

    def add(self, group: Group) -> Group:
        if group.name in self.groups:
            raise NeurojaxError(f"network already has a group named {group.name!r}")
        self.groups[group.name] = group
        return group

    def connect(self, syn: SynapseGroup) -> SynapseGroup:
        self.synapses.append(syn)
        return syn

    def inputs(self) -> list:
        return [g for g in self.groups.values() if isinstance(g, InputGroup)]

    def neuron_groups(self) -> list:
        return [g for g in self.groups.values() if isinstance(g, NeuronGroup)]

    def validate(self, chip: ChipConfig) -> None:
        """Raise `NeurojaxError` naming the first group or synapse group that cannot run on `chip`."""
        for g in self.groups.values():
            if not isinstance(g.size, int) or g.size < 1:
                raise NeurojaxError(f"group {g.name!r}: size must be a positive int, got {g.size!r}")
            if isinstance(g, InputGroup):
                if g.kind not in CHANNEL_KINDS:
                    raise NeurojaxError(f"input {g.name!r}: kind {g.kind!r} must be one of {CHANNEL_KINDS}")
            else:
                _check_group(g, chip)
            for ch, (kind, width) in g.channels().items():
                if kind == "graded" and width > chip.payload_bits:
                    raise NeurojaxError(f"group {g.name!r} sends {width}-bit values on channel {ch!r}; the chip's "
                                        f"graded-spike payload is {chip.payload_bits} bits (ChipConfig.payload_bits)")
        for s in self.synapses:
            _check_synapse(self, s, chip)


def _check_group(g: NeuronGroup, chip: ChipConfig) -> None:
    g.program.check_fits(chip)
    prog = g.program
    missing = sorted(set(prog.params) - set(g.params))
    if missing:
        raise NeurojaxError(f"group {g.name!r}: program {prog.name!r} needs parameter {missing[0]!r}")
    for name, value in list(g.params.items()) + list(g.init.items()):
        bits = prog.params.get(name) or (prog.registers[name].bits if name in prog.registers else None)
        if bits is None:
            raise NeurojaxError(f"group {g.name!r}: {name!r} is neither a parameter nor a register of "
                                f"program {prog.name!r}")
        v = np.asarray(value)
        if v.ndim not in (0, 1) or (v.ndim == 1 and v.shape[0] != g.size):
            raise NeurojaxError(f"group {g.name!r}: {name!r} must be a scalar or have shape ({g.size},), "
                                f"got {v.shape}")
        if v.size and max(imm_bits(int(v.min())), imm_bits(int(v.max()))) > bits:
            raise NeurojaxError(f"group {g.name!r}: values of {name!r} do not fit its {bits} bits")


def _check_synapse(net: Network, s: SynapseGroup, chip: ChipConfig) -> None:
    src_name, ch = s.src
    dst_name, port = s.dst
    for which, name in (("source", src_name), ("target", dst_name)):
        if name not in net.groups:
            raise NeurojaxError(f"synapse group {s.name!r}: {which} group {name!r} does not exist")
    src, dst = net.groups[src_name], net.groups[dst_name]
    if ch not in src.channels():
        raise NeurojaxError(f"synapse group {s.name!r}: group {src_name!r} has no channel {ch!r}")
    if not isinstance(dst, NeuronGroup) or port not in dst.program.ports:
        raise NeurojaxError(f"synapse group {s.name!r}: group {dst_name!r} has no input port {port!r}")
    if not isinstance(s.delay, int) or not 1 <= s.delay <= chip.max_delay:
        raise NeurojaxError(f"synapse group {s.name!r}: delay {s.delay!r} must be in [1, {chip.max_delay}] "
                            "(ChipConfig.max_delay)")
    if not chip.weight_exp_min <= s.exp <= chip.weight_exp_max:
        raise NeurojaxError(f"synapse group {s.name!r}: weight exponent {s.exp} outside "
                            f"[{chip.weight_exp_min}, {chip.weight_exp_max}]")
    w = np.asarray(s.weights)
    if not np.issubdtype(w.dtype, np.integer):
        raise NeurojaxError(f"synapse group {s.name!r}: weights must be integers, got {w.dtype}")
    lo, hi = -(2 ** (chip.weight_bits - 1)), 2 ** (chip.weight_bits - 1) - 1
    if w.size and (w.min() < lo or w.max() > hi):
        raise NeurojaxError(f"synapse group {s.name!r}: weights in [{w.min()}, {w.max()}] do not fit "
                            f"{chip.weight_bits}-bit synapses [{lo}, {hi}]")
    if s.sparse:
        if not (w.ndim == 1 and s.dst_index.shape == w.shape and s.src_index.shape == w.shape):
            raise NeurojaxError(f"synapse group {s.name!r}: sparse weights and indices must be 1-D of one length")
        if w.size and (s.src_index.min() < 0 or s.src_index.max() >= src.size
                       or s.dst_index.min() < 0 or s.dst_index.max() >= dst.size):
            raise NeurojaxError(f"synapse group {s.name!r}: an index is outside the groups' sizes")
    elif w.shape != (dst.size, src.size):
        raise NeurojaxError(f"synapse group {s.name!r}: dense weights have shape {w.shape}, expected "
                            f"({dst.size}, {src.size})")
