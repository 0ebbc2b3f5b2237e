"""Jitted kernels, installed as `neurojax.kernels`: one folder per op.

Each op folder has `reference.py` (plain JAX, the definition), fast paths with the same
signature (`xla.py`, `pallas.py`), and `api.py`, the one dispatching entry point that
library code calls; `dispatch.py` holds the shared rule (explicit `impl=` > forced >
`NEUROJAX_KERNELS` > backend default). Ops: `ternary_matmul`, `rmsnorm_quant`,
`linear_recurrence`.
"""
