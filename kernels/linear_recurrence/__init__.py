"""Element-wise linear recurrence `h_t = a_t * h_{t-1} + b_t` (the MLGRU state update)."""
from neurojax.kernels.linear_recurrence.api import IMPLEMENTATIONS, linear_recurrence

__all__ = ["IMPLEMENTATIONS", "linear_recurrence"]
