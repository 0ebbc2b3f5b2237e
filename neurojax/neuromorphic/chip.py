"""Description of an emulated neuromorphic chip: the resources the compiler must fit into.

Defaults are Loihi 2-like (spec `neuromorphic.md`); figures marked (2nd) there come from
secondary summaries and every number here is an overridable field. Fields the public
material does not give (registers per neuron, microcode length, accumulator width) are
labelled assumptions and chosen generously enough for the MatMul-free LM mapping.
"""
import dataclasses

from neurojax.errors import NeurojaxError


@dataclasses.dataclass(frozen=True)
class ChipConfig:
    """Resource limits of one chip type and of the board (number of chips)."""

    cores_per_chip: int = 128  # Loihi 2 neuro cores per chip
    num_chips: int = 8  # chips on the board (Kapoho Point: 8)
    mesh_rows: int = 8  # 2-D mesh of cores on a chip: rows x cols == cores_per_chip
    mesh_cols: int = 16
    neurons_per_core: int = 8192  # ~8k neurons per core (2nd)
    memory_per_core_bytes: int = 128 * 1024  # SRAM shared by synapses, state, programs (2nd)
    payload_bits: int = 24  # graded-spike payload (Lava and the paper use 24; hardware up to 32)
    weight_bits: int = 8  # signed synaptic weight mantissa
    weight_exp_min: int = -8  # per-synapse-group weight exponent range (assumption)
    weight_exp_max: int = 7
    register_bits: int = 32  # widest neuron state register
    registers_per_neuron: int = 48  # assumption: microcode register file per neuron
    program_length: int = 512  # assumption: microcode instructions per neuron program
    max_delay: int = 62  # longest synaptic delay in steps (6-bit delay field, assumption)
    instruction_bytes: int = 4  # program memory per instruction (assumption)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise NeurojaxError(f"ChipConfig.{f.name} must be an int, got {v!r}")
        positive = [f.name for f in dataclasses.fields(self) if not f.name.startswith("weight_exp")]
        for name in positive:
            if getattr(self, name) < 1:
                raise NeurojaxError(f"ChipConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.mesh_rows * self.mesh_cols != self.cores_per_chip:
            raise NeurojaxError(f"mesh {self.mesh_rows}x{self.mesh_cols} does not hold "
                                f"cores_per_chip={self.cores_per_chip}")
        if not 1 <= self.payload_bits <= 32:
            raise NeurojaxError(f"payload_bits={self.payload_bits} must be in [1, 32]")
        if not 2 <= self.weight_bits <= 8:
            raise NeurojaxError(f"weight_bits={self.weight_bits} must be in [2, 8] (8-bit synapses)")
        if not 2 <= self.register_bits <= 32:
            raise NeurojaxError(f"register_bits={self.register_bits} must be in [2, 32]")
        if self.weight_exp_min > self.weight_exp_max:
            raise NeurojaxError("weight_exp_min must be <= weight_exp_max")

    @property
    def total_cores(self) -> int:
        return self.cores_per_chip * self.num_chips

    def replace(self, **changes) -> "ChipConfig":
        return dataclasses.replace(self, **changes)


LOIHI2 = ChipConfig()
"""Loihi 2-like defaults (a Kapoho Point board of 8 chips)."""

CHIPS = {"loihi2": LOIHI2, "loihi2_32bit": LOIHI2.replace(payload_bits=32)}
"""Named chip descriptions (`--chip` flags look them up here)."""


def chip_by_name(name: str) -> ChipConfig:
    if name not in CHIPS:
        raise NeurojaxError(f"unknown chip {name!r}; known: {', '.join(CHIPS)}")
    return CHIPS[name]
