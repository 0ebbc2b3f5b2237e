"""Integer-only fixed-point MatMul-free LM: calibration, conversion and the integer forward."""
from neurojax.fixedpoint.calibrate import calibrate, collect_taps
from neurojax.fixedpoint.config import IntQuantConfig
from neurojax.fixedpoint.convert import IntModel, IntModelSpec, convert
from neurojax.fixedpoint.model import initial_int_state, int_decode_step, int_forward, total_overflow

__all__ = ["IntModel", "IntModelSpec", "IntQuantConfig", "calibrate", "collect_taps", "convert",
           "initial_int_state", "int_decode_step", "int_forward", "total_overflow"]
