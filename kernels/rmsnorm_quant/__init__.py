"""Fused RMSNorm + per-token absmax int8 quantization (the input stage of every BitLinear).

`rms_norm` (the plain normalisation, also used by `neurojax.nn.RMSNorm`) is defined here.
"""
from neurojax.kernels.rmsnorm_quant.api import IMPLEMENTATIONS, OP, rmsnorm_quant
from neurojax.kernels.rmsnorm_quant.reference import rms_norm

__all__ = ["IMPLEMENTATIONS", "OP", "rms_norm", "rmsnorm_quant"]
