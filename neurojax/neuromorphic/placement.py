"""Partition neuron groups onto cores and chips within the chip's limits.

Memory model of one core (bytes): each neuron program placed on it (instructions x
`instruction_bytes` plus its tables at 4 bytes an entry), plus per neuron its register
state and parameters, plus the synapses it receives (stored at the target: dense rows at
`weight_bits` each, sparse synapses at `weight_bits` + a 16-bit index each). Groups are
placed in order, each on as few consecutive cores as fit; a group never shares a core.
Cores are numbered chip by chip; core `c` of chip `k` sits at row `c // mesh_cols`, column
`k * mesh_cols + c % mesh_cols` of one global mesh (chips tiled left to right), so a route's
hop count is the Manhattan distance there.
"""
import dataclasses
import math

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.neuromorphic.chip import ChipConfig
from neurojax.neuromorphic.network import NeuronGroup, Network

SPARSE_INDEX_BITS = 16
TABLE_ENTRY_BYTES = 4


class DoesNotFit(NeurojaxError):
    """A network that cannot be placed on the chip: the message names the group and the limit."""


@dataclasses.dataclass
class Placement:
    chip: ChipConfig
    core_of: dict  # group name -> int array [size] of global core ids
    memory: np.ndarray  # bytes used per core [num_cores]
    neurons: np.ndarray  # neurons per core [num_cores]

    @property
    def num_cores(self) -> int:
        return int(self.memory.shape[0])

    @property
    def num_chips(self) -> int:
        return math.ceil(self.num_cores / self.chip.cores_per_chip)

    def coords(self, cores: np.ndarray) -> tuple:
        chip, local = np.divmod(np.asarray(cores), self.chip.cores_per_chip)
        row, col = np.divmod(local, self.chip.mesh_cols)
        return row, chip * self.chip.mesh_cols + col

    def hops(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ra, ca = self.coords(a)
        rb, cb = self.coords(b)
        return np.abs(ra - rb) + np.abs(ca - cb)

    def summary(self) -> dict:
        return {"cores": self.num_cores, "chips": self.num_chips,
                "max_memory_per_core_bytes": int(self.memory.max(initial=0)),
                "mean_memory_per_core_bytes": float(self.memory.mean()) if self.num_cores else 0.0,
                "neurons": int(self.neurons.sum())}


def _synapse_bytes_per_neuron(net: Network, chip: ChipConfig) -> dict:
    """Bytes of incoming synapses of each neuron, per target group."""
    out = {g.name: np.zeros(g.size, np.int64) for g in net.neuron_groups()}
    for s in net.synapses:
        dst = net.groups[s.dst[0]]
        if s.sparse:
            bits = np.bincount(s.dst_index, minlength=dst.size) * (chip.weight_bits + SPARSE_INDEX_BITS)
        else:
            bits = np.full(dst.size, s.weights.shape[1] * chip.weight_bits)
        out[dst.name] = out[dst.name] + bits
    return {k: (v + 7) // 8 for k, v in out.items()}


def layer_of(group_name: str) -> str:
    """The model layer a compiled group belongs to (its name up to the first '/')."""
    return group_name.split("/")[0]


def place(net: Network, chip: ChipConfig) -> Placement:
    """Assign every neuron to a core; raise `DoesNotFit` naming the group, its layer and the limit."""
    syn_bytes = _synapse_bytes_per_neuron(net, chip)
    core_of, memory, neurons = {}, [], []
    for g in net.groups.values():
        if not isinstance(g, NeuronGroup):  # host-injected inputs occupy no core; they enter at core 0
            core_of[g.name] = np.zeros(g.size, np.int64)
            continue
        prog = g.program
        fixed = len(prog.instrs) * chip.instruction_bytes + sum(t.size for t in prog.tables.values()) * TABLE_ENTRY_BYTES
        state = math.ceil((prog.state_bits() + sum(prog.params.values())) / 8)
        per_neuron = syn_bytes[g.name] + state
        worst = int(per_neuron.max())
        room = chip.memory_per_core_bytes - fixed
        if worst > room:
            raise DoesNotFit(f"layer {layer_of(g.name)!r}, group {g.name!r}: one neuron needs {worst} bytes "
                             f"(synapses and state) beside a {fixed}-byte program, a core has "
                             f"{chip.memory_per_core_bytes} bytes (ChipConfig.memory_per_core_bytes)")
        per_core = max(1, min(chip.neurons_per_core, room // max(worst, 1)))
        n_cores = math.ceil(g.size / per_core)
        first = len(memory)
        ids = first + np.arange(g.size) // per_core
        core_of[g.name] = ids
        for c in range(n_cores):
            members = per_neuron[c * per_core:(c + 1) * per_core]
            memory.append(fixed + int(members.sum()))
            neurons.append(int(members.size))
        if len(memory) > chip.total_cores:
            raise DoesNotFit(f"layer {layer_of(g.name)!r}, group {g.name!r}: the network needs more than "
                             f"{chip.total_cores} cores ({chip.num_chips} chips x {chip.cores_per_chip}; "
                             "ChipConfig.num_chips)")
    return Placement(chip, core_of, np.asarray(memory, np.int64), np.asarray(neurons, np.int64))
