"""Pure quantization functions on arrays (no Flax): rounding, STE, ternary, int8."""
from neurojax.quant.activation import ACT_QMAX, ACT_QMIN, absmax_int8, absmax_scale
from neurojax.quant.rounding import (
    ROUNDING_MODES,
    round_half_away,
    round_half_even,
    round_with,
)
from neurojax.quant.spike import spike_coded, spike_count_ste, spike_counts
from neurojax.quant.ste import straight_through
from neurojax.quant.ternary import absmean_scale, ternarize, ternary_codes

__all__ = [
    "ACT_QMAX", "ACT_QMIN", "ROUNDING_MODES", "absmax_int8", "absmax_scale", "absmean_scale",
    "round_half_away", "round_half_even", "round_with", "spike_count_ste", "spike_coded", "spike_counts",
    "straight_through", "ternarize",
    "ternary_codes",
]
