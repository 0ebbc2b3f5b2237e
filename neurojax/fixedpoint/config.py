"""Configuration of the integer-only model: widths of every quantization point and how scales are chosen.

Defaults follow the Loihi 2 paper's hardware-aware model: 8-bit BitLinear inputs
(ternary weights fit in 8-bit synapses), 24-bit recurrent state and residual stream
(the graded-spike payload width), and static per-tensor scales from calibration.
"""
import dataclasses

from neurojax.errors import NeurojaxError

ACCUMULATOR_BITS = 32  # int32 accumulators everywhere


@dataclasses.dataclass(frozen=True)
class IntQuantConfig:
    """Widths (bits, signed) and calibration choices of the integer model."""

    act_bits: int = 8  # BitLinear input codes, per-token absmax (the float model's quantizer)
    state_bits: int = 24  # MLGRU hidden state h
    residual_bits: int = 24  # residual stream (embedding output, after each residual add)
    mid_bits: int = 16  # BitLinear outputs that feed nonlinearities (i, f, g, gate/up)
    logit_bits: int = 24  # final logits (integers plus one scale)
    norm_weight_bits: int = 12  # RMSNorm weights folded into BitLinear input scaling
    gate_frac: int = 15  # sigmoid outputs and forget gates in Q0.gate_frac (1.0 = 2**gate_frac)
    lut_in_frac: int = 10  # binary point of the sigmoid lookup table's input
    observer: str = "minmax"  # "minmax" or "percentile" (of |x|) for static scales
    percentile: float = 99.99
    power_of_two: bool = False  # round every static scale to a power of two (shifts only)
    headroom: float = 2.0  # static ranges cover headroom * the calibrated magnitude (1 bit by default)

    def __post_init__(self):
        if not 2 <= self.act_bits <= 16:
            raise NeurojaxError(f"act_bits={self.act_bits} must be in [2, 16]")
        for name in ("state_bits", "residual_bits", "mid_bits", "logit_bits"):
            bits = getattr(self, name)
            if not 8 <= bits <= 31:
                raise NeurojaxError(
                    f"{name}={bits} cannot be held: the int32 accumulator leaves room for 8..31 bits")
        if not 2 <= self.norm_weight_bits <= 15:
            raise NeurojaxError(f"norm_weight_bits={self.norm_weight_bits} must be in [2, 15] "
                                "(it multiplies 15-bit normalized activations in int32)")
        if self.gate_frac != 15:
            raise NeurojaxError("gate_frac must be 15: gates multiply states through 16-bit limbs (|b| <= 2**15)")
        if self.observer not in ("minmax", "percentile"):
            raise NeurojaxError(f"observer must be 'minmax' or 'percentile', got {self.observer!r}")
        if self.headroom < 1.0:
            raise NeurojaxError(f"headroom must be >= 1, got {self.headroom}")
        if not 50.0 < self.percentile <= 100.0:
            raise NeurojaxError(f"percentile must be in (50, 100], got {self.percentile}")

    def replace(self, **changes) -> "IntQuantConfig":
        return dataclasses.replace(self, **changes)
