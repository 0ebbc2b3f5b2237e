"""The one entry point for `int8 x packed ternary -> int32`; picks an implementation.

Implementations (same contract; `python -m experiments.bench_kernels` times them):
`reference` (unpack + int8 dot, the definition), `xla` (integer ops only: fused decode
reduction for few rows, int8 dot otherwise), `xla_float` (the same for few rows, an
exact float32 GEMM for many), `native` (a C++ FFI kernel built on first use, integer
ops only: the fastest on CPU, see `native.py`), `pallas` (blocked kernel; interpret mode
on CPU). `integer_only=True` (the integer model) never takes a float path.

The CPU default is `native` where it builds its AVX-512 VNNI path; where it cannot be
built the default falls back to `xla_float` (`xla` for `integer_only`) with one warning
(silently on CPUs without VNNI, where only its untuned portable loop exists), while a requested `native`
(`impl=`, `force`, `NEUROJAX_KERNELS`) raises instead of measuring something else.
"""
from typing import Optional

import jax.numpy as jnp
from jaxtyping import Array, Int

from neurojax.errors import NeurojaxError
from neurojax.kernels.dispatch import KernelOp
from neurojax.kernels.ternary_matmul import native, pallas, reference, xla
from neurojax.kernels.ternary_matmul.pack import PackedTernary, packed_rows

IMPLEMENTATIONS = {
    "reference": reference.ternary_matmul,
    "xla": xla.integer,
    "xla_float": xla.float_gemm,
    "native": native.ternary_matmul,
    "pallas": pallas.ternary_matmul,
}
FLOAT_IMPLS = {"xla_float"}
OP = KernelOp("ternary_matmul", IMPLEMENTATIONS, {"cpu": "native", "*": "xla_float"},
              fallbacks={"native": (native.why_not_default, "xla_float")})


def _choose(impl: Optional[str], integer_only: bool) -> str:
    name = OP.choose(impl)
    return "xla" if integer_only and name in FLOAT_IMPLS else name


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
    name = _choose(impl, integer_only)
    lead = x.shape[:-1]
    out = IMPLEMENTATIONS[name](x.reshape(-1, k), packed)
    return out.reshape(*lead, packed.data.shape[1])
