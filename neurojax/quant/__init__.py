"""Pure quantization functions on arrays (no Flax): rounding, STE, ternary, int8."""
from neurojax.quant.activation import absmax_int8, absmax_scale, ACT_QMAX, ACT_QMIN
from neurojax.quant.rounding import round_half_away, round_half_even, ROUNDING_MODES, round_with
from neurojax.quant.ste import straight_through
from neurojax.quant.ternary import absmean_scale, ternary_codes, ternarize

__all__ = [
    "ACT_QMAX", "ACT_QMIN", "ROUNDING_MODES", "absmax_int8", "absmax_scale", "absmean_scale",
    "round_half_away", "round_half_even", "round_with", "straight_through", "ternarize",
    "ternary_codes",
]
