"""Event-driven integer matmul: `events [T, K] @ fanout [K, N] -> int32`, work only where events fire."""
from neurojax.kernels.event_matmul.api import event_matmul, event_matmul_csr, event_matmul_t  # noqa: F401
