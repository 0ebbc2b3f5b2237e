"""`int8 activations x packed ternary weights -> int32` (layout: `pack.py`)."""
from neurojax.kernels.ternary_matmul.api import IMPLEMENTATIONS, OP, ternary_matmul
from neurojax.kernels.ternary_matmul.pack import PackedTernary, pack, packed_rows, unpack, weight_bytes

__all__ = ["IMPLEMENTATIONS", "OP", "PackedTernary", "pack", "packed_rows", "ternary_matmul", "unpack",
           "weight_bytes"]
