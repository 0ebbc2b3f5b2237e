"""The LM's projections, chosen by `ModelConfig.linear` (registry `LINEARS`).

Every projection of the MatMul-free LM's built-in mixers and its `lm_head` is built by
`make_linear(config, features, name)`; a registered factory `(config, features, name) -> module`
replaces all of them at once. Built-ins:

| name | layer | weights | inputs |
|---|---|---|---|
| "bitlinear" (default) | `BitLinear` with its own RMSNorm (`weight`, `norm/weight`) | ternary (`full_precision=True`: float) | `config.quantizer_name`: absmax int8, spike counts (`spike_k`), or a registered quantizer |
| "full_precision" | `neurojax.nn.linear.Linear` (`weight` only), the Transformer++'s dense layer | float | float |
| "spike" | `Linear` with spike-coded inputs (`spike_k`, `spike_clip`): SpikingBrain's placement | float | spike counts |

`full_precision=True` (quantizers off, per-projection norms kept: the paper's FP baseline) and
`spike_k` keep meaning what they meant with the default "bitlinear". Only "bitlinear" without
`full_precision` is ternary: packed inference weights, the integer model and the emulator need it.
"""
from typing import Any

import flax.linen as nn

from neurojax.nn.bitlinear import BitLinear
from neurojax.nn.linear import Linear
from neurojax.nn.registry import LINEARS


@LINEARS.register("bitlinear")
def bitlinear(config: Any, features: int, name: str) -> nn.Module:
    """Ternary BitLinear (or its full-precision / spike-coded / custom-quantizer variants, from `config`)."""
    return BitLinear.of(config, features, name)


@LINEARS.register("full_precision")
def full_precision(config: Any, features: int, name: str) -> nn.Module:
    """Plain float `y = x @ weight.T` (no per-projection norm, no quantizer)."""
    return Linear(features, config.init_std, name=name)


@LINEARS.register("spike")
def spike(config: Any, features: int, name: str) -> nn.Module:
    """Float weights over spike-coded inputs (`round(x / V_th)`, `V_th = mean|x| / spike_k`)."""
    return Linear(features, config.init_std, spike_k=config.spike_k, spike_clip=config.spike_clip, name=name)


def make_linear(config: Any, features: int, name: str) -> nn.Module:
    """The projection `config` selects (`config.linear`: a `LINEARS` name, a factory, or None for "bitlinear")."""
    factory = LINEARS.resolve(getattr(config, "linear", None) or "bitlinear")
    return factory(config, features, name)
