"""A pipelined dataflow builder on top of `Network`: groups get a depth, synapses get delays.

Every group processes token t at step `depth + t` (inputs inject token t at step t, depth 0).
A group's depth is one more than its deepest source, and each synapse group's delay is the
difference of depths, so operands computed on paths of different lengths meet at the same
step. Delays beyond the chip's `max_delay` are bridged by relay groups (one step each plus
their own delays), inserted automatically.
"""
import dataclasses
import functools
from typing import Optional

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.neuromorphic.chip import ChipConfig
from neurojax.neuromorphic.isa import Program, ProgramBuilder
from neurojax.neuromorphic.network import InputGroup, Network, NeuronGroup, SynapseGroup

EDGE_KINDS = ("identity", "broadcast", "reduce", "dense")


@dataclasses.dataclass(frozen=True, eq=False)
class Edge:
    """A connection request: `src`'s channel into this group's `port`."""

    src: str
    channel: str
    port: str
    kind: str = "identity"
    weights: Optional[np.ndarray] = None  # dense only: int [n_dst, n_src]
    offset: int = 0  # identity only: dst i <- src offset + i
    exp: int = 0


@functools.lru_cache(maxsize=None)
def relay_program(kind: str, bits: int) -> Program:
    """Forward the input port unchanged: one step of delay, for long-range timing."""
    b = ProgramBuilder(f"relay_{kind}_{bits}")
    b.port("x")
    b.reg("r", bits)
    b.channel("x", kind)
    b.mov("r", "x")
    b.send("x", "r")
    return b.build()


class Graph:
    def __init__(self, chip: ChipConfig):
        self.chip = chip
        self.net = Network()
        self.depth: dict = {}
        self._relays = 0

    def input(self, name: str, size: int, bits: int = 24, kind: str = "graded") -> str:
        self.net.add(InputGroup(name, size, kind, bits))
        self.depth[name] = 0
        return name

    def group(self, name: str, size: int, program: Program, inputs: list, params: Optional[dict] = None,
              init: Optional[dict] = None) -> str:
        if not inputs:
            raise NeurojaxError(f"group {name!r} has no inputs")
        for e in inputs:
            if e.src not in self.depth:
                raise NeurojaxError(f"group {name!r}: source {e.src!r} is not built yet")
        depth = max(self.depth[e.src] for e in inputs) + 1
        self.net.add(NeuronGroup(name, size, program, dict(params or {}), dict(init or {})))
        self.depth[name] = depth
        for e in inputs:
            self._connect(e, name, depth)
        return name

    def _size(self, name: str) -> int:
        return self.net.groups[name].size

    def _connect(self, e: Edge, dst: str, depth: int) -> None:
        if e.kind not in EDGE_KINDS:
            raise NeurojaxError(f"edge kind {e.kind!r} must be one of {EDGE_KINDS}")
        src, delay = e.src, depth - self.depth[e.src]
        while delay > self.chip.max_delay:  # bridge with relays of the source's size
            kind, bits = self.net.groups[src].channels()[e.channel]
            self._relays += 1
            relay = f"{dst}/relay{self._relays}"
            n = self._size(src)
            self.net.add(NeuronGroup(relay, n, relay_program(kind, max(bits, 2))))
            self.depth[relay] = self.depth[src] + self.chip.max_delay
            self._synapse(Edge(src, e.channel, "x"), relay, self.chip.max_delay)
            src, delay = relay, delay - self.chip.max_delay
            e = dataclasses.replace(e, src=relay, channel="x")
        self._synapse(e, dst, delay)

    def _synapse(self, e: Edge, dst: str, delay: int) -> None:
        n_src, n_dst = self._size(e.src), self._size(dst)
        name = f"{e.src}.{e.channel}->{dst}.{e.port}"
        if e.kind == "dense":
            self.net.connect(SynapseGroup(name, (e.src, e.channel), (dst, e.port), np.asarray(e.weights), e.exp, delay))
            return
        if e.kind == "identity":
            if e.offset + n_dst > n_src:
                raise NeurojaxError(f"{name}: identity from {n_src} neurons at offset {e.offset} cannot feed {n_dst}")
            src_idx, dst_idx = e.offset + np.arange(n_dst), np.arange(n_dst)
        elif e.kind == "broadcast":
            if n_src != 1:
                raise NeurojaxError(f"{name}: broadcast needs a 1-neuron source, got {n_src}")
            src_idx, dst_idx = np.zeros(n_dst, np.int64), np.arange(n_dst)
        else:  # reduce
            if n_dst != 1:
                raise NeurojaxError(f"{name}: reduce needs a 1-neuron target, got {n_dst}")
            src_idx, dst_idx = np.arange(n_src), np.zeros(n_src, np.int64)
        w = np.ones(src_idx.shape, np.int8)
        self.net.connect(SynapseGroup(name, (e.src, e.channel), (dst, e.port), w, e.exp, delay,
                                      dst_index=dst_idx.astype(np.int64), src_index=src_idx.astype(np.int64)))
