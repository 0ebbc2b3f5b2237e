"""Spiking dynamics: neurons with surrogate gradients and fixed-point twins, spike coding.

- `surrogate`: Heaviside spikes with named surrogate derivatives (`fast_sigmoid`, `arctan`, ...).
- `neurons`: LIF, AdaptiveLIF, IF, SigmaDelta as Flax modules (time-major `[T, B, ...]`),
  and integer twins that follow the Lava bit-accurate rules the interpreter runs.
- `coding`: SpikingBrain's adaptive-threshold spike counts and their binary / ternary /
  bitwise spike trains, with exact decoding, zero points, sparsity and energy accounting.
"""
from neurojax.spiking.coding import (
                                     CODINGS,
                                     ENERGY_45NM,
                                     SpikeTrain,
                                     adaptive_threshold,
                                     decode,
                                     encode,
                                     energy_report,
                                     min_steps,
                                     sparsity,
                                     spike_coded,
                                     spike_counts,
                                     synaptic_ops,
)
from neurojax.spiking.neurons import (
                                     IF,
                                     LIF,
                                     AdaptiveLIF,
                                     SigmaDelta,
                                     alif_fixed_step,
                                     if_fixed_step,
                                     lif_fixed_step,
                                     run_fixed,
                                     sigma_delta_fixed_step,
)
from neurojax.spiking.surrogate import SURROGATES, spike_fn

__all__ = [
    "CODINGS", "ENERGY_45NM", "IF", "LIF", "SURROGATES", "AdaptiveLIF", "SigmaDelta", "SpikeTrain",
    "adaptive_threshold", "alif_fixed_step", "decode", "encode", "energy_report", "if_fixed_step",
    "lif_fixed_step", "min_steps", "run_fixed", "sigma_delta_fixed_step", "sparsity", "spike_coded",
    "spike_counts", "spike_fn", "synaptic_ops",
]
