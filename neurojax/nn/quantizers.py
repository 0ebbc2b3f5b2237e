"""Activation quantizers for BitLinear inputs, chosen by `ModelConfig.quantizer` (registry `QUANTIZERS`).

A quantizer is a function `(y [..., d], config) -> (q, step)`: `q` integer-valued float32 codes
(gradient straight-through or surrogate), `step [..., 1]` a per-token step with `y ~= q * step`.
BitLinear then computes `(q @ codes.T) * step / s_w`, an integer accumulation rescaled once.

- "absmax_int8": per-token absmax int8 (`neurojax.quant.absmax_int8`), the default.
- "spike": SpikingBrain's adaptive-threshold spike counts (`neurojax.quant.spike_count_ste`) with
  `config.spike_k` and `config.spike_clip`.
  For these two, BitLinear runs its own built-in path (bit-identical to what it always computed:
  `acc * (1 / (s_x s_w))` for absmax); the functions here give the same outputs to float round-off
  and serve callers that want the codes themselves.
- "neuron": rate coding by a spiking neuron (`config.neuron`, registry `NEURONS`, default "if"):
  the neuron is driven for `T = config.neuron_steps` (default 8) steps by the constant current
  `|y| / (T V_th)`, `V_th = mean|y| / k` per token (`k = config.spike_k`, default 3), and
  `q = sign(y) * (number of spikes)`, `step = V_th`. An integrate-and-fire neuron gives
  `q = sign(y) * min(floor(|y| / V_th), T)` (up to float round-off at exact multiples); leaky or
  adaptive neurons give fewer spikes. Gradients flow through the neuron's surrogate spike function,
  so a neuron defined in a notebook trains inside the LM with `neurojax.train.train`.
"""
from typing import Any, Callable

import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.errors import NeurojaxError
from neurojax.nn.registry import NEURONS, QUANTIZERS
from neurojax.quant import absmax_int8, spike_count_ste
from neurojax.quant.spike import DEFAULT_K, adaptive_threshold

DEFAULT_NEURON = "if"
DEFAULT_NEURON_STEPS = 8

Codes = tuple[Float[Array, "... d"], Float[Array, "... 1"]]


@QUANTIZERS.register("absmax_int8")
def absmax_int8_quantizer(y: Float[Array, "... d"], config: Any = None) -> Codes:
    """Per-token absmax int8 codes; `step = 1 / s_x`."""
    q, s_x = absmax_int8(y)
    return q, 1.0 / s_x


@QUANTIZERS.register("spike")
def spike_quantizer(y: Float[Array, "... d"], config: Any) -> Codes:
    """Adaptive-threshold spike counts `round(y / V_th)` (clipped to `+-spike_clip`); `step = V_th`."""
    if config.spike_k is None:
        raise NeurojaxError("the 'spike' quantizer needs model.spike_k (V_th = mean|x| / spike_k)")
    return spike_count_ste(y, config.spike_k, config.spike_clip)


def neuron_module(config: Any):
    """The spiking neuron the "neuron" quantizer runs (`config.neuron`, a name or a module class)."""
    name = DEFAULT_NEURON if getattr(config, "neuron", None) is None else config.neuron
    return NEURONS.resolve(name)()


@QUANTIZERS.register("neuron")
def neuron_quantizer(y: Float[Array, "... d"], config: Any) -> Codes:
    """Signed spike counts of a spiking neuron rate-coding `|y| / V_th` over `neuron_steps` steps."""
    steps = DEFAULT_NEURON_STEPS if getattr(config, "neuron_steps", None) is None else int(config.neuron_steps)
    k = DEFAULT_K if config.spike_k is None else config.spike_k
    v_th = adaptive_threshold(y, k)  # per-token constant (no gradient), as the "spike" quantizer's
    y = y.astype(jnp.float32)
    drive = jnp.abs(y) / (v_th * steps)
    neuron = neuron_module(config)
    x_seq = jnp.broadcast_to(drive, (steps, *drive.shape))
    spikes, _ = neuron.apply({}, x_seq, neuron.initial_state(drive.shape))
    counts = jnp.sum(spikes, axis=0)
    return jnp.sign(y) * counts, v_th


def resolve_quantizer(config: Any) -> Callable[[Array, Any], Codes]:
    """The quantizer function `config` selects (`ModelConfig.quantizer_name`, or a function passed directly)."""
    return QUANTIZERS.resolve(config.quantizer_name)
