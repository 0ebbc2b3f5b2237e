"""The one entry point for `int8 x packed ternary -> int32`; picks an implementation.

Implementations (same contract; `python -m experiments.bench_kernels` times them):
`reference` (unpack + int8 dot, the definition), `xla` (integer ops only: fused decode
reduction for few rows, int8 dot otherwise), `xla_float` (the same for few rows, an
exact float32 GEMM for many: the fastest on CPU), `pallas` (blocked kernel; interpret
mode on CPU). `integer_only=True` (the integer model) never takes a float path.
"""
from typing import Optional

import jax.numpy as jnp
from jaxtyping import Array, Int

from neurojax.errors import NeurojaxError
from neurojax.kernels.dispatch import KernelOp
from neurojax.kernels.ternary_matmul import pallas, reference, xla
from neurojax.kernels.ternary_matmul.pack import PackedTernary, packed_rows

IMPLEMENTATIONS = {
    "reference": reference.ternary_matmul,
    "xla": xla.integer,
    "xla_float": xla.float_gemm,
    "pallas": pallas.ternary_matmul,
}
FLOAT_IMPLS = {"xla_float"}
OP = KernelOp("ternary_matmul", IMPLEMENTATIONS, {"cpu": "xla_float", "*": "xla_float"})


def ternary_matmul(x: Int[Array, "... K"], packed: PackedTernary, *, impl: Optional[str] = None,
                   integer_only: bool = False) -> Int[Array, "... N"]:
    """`x @ codes.T` in int32 for int8-range integer `x [..., K]` and packed codes `[K4, N]`."""
    if not isinstance(packed, PackedTernary):
        raise NeurojaxError(f"ternary_matmul expects a PackedTernary (see kernels.ternary_matmul.pack), "
                            f"got {type(packed).__name__}")
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise NeurojaxError(f"ternary_matmul expects integer activations (int8 range), got {x.dtype}")
    if x.ndim < 1 or packed.data.ndim != 2 or packed.data.dtype != jnp.uint8:
        raise NeurojaxError(f"ternary_matmul expects x [..., K] and packed data uint8 [K4, N]; got "
                            f"{x.shape} and {packed.data.dtype}{packed.data.shape}")
    k = x.shape[-1]
    if packed.data.shape[0] != packed_rows(k):
        raise NeurojaxError(f"x has K={k} inputs, which pack into {packed_rows(k)} byte rows; "
                            f"the weights have {packed.data.shape[0]}")
    name = OP.choose(impl)
    if integer_only and name in FLOAT_IMPLS:
        name = "xla"
    lead = x.shape[:-1]
    out = IMPLEMENTATIONS[name](x.reshape(-1, k), packed)
    return out.reshape(*lead, packed.data.shape[1])
