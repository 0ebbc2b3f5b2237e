"""The one entry point for the event-driven integer matmul `events @ fanout -> int32`.

`events [T, K]`: integer payloads per step and source (0 = no event: binary spikes are
0/1, graded spikes any int32); `fanout [K, N]`: the integer synaptic weights of each
source to its N targets (source-major, the layout of a neuromorphic core's synapse
memory). The result wraps like int32 hardware. Float32 events with a float32 fan-out
(a spiking network's binary inputs, `spiking.snn`) give float32 sums (`native`: in event
order, so equal to a dot up to float rounding; exactly where sums are exact).

Implementations (same contract): `reference` (one int32 dot, the definition), `xla`
(an exact float32 GEMM where the sums provably fit 24 bits, else the int32 dot),
`native` (C++ FFI kernel that only touches the rows of sources that fired; the CPU
default, falling back to `xla` with a warning where it cannot be built, while a
requested `native` raises). `integer_only=True` takes `reference` where the choice
would be `xla`. The neuromorphic interpreter calls it (integer only) for synapses whose
inputs are known before a run, and `event_matmul_csr` (a sparse fan-out; `reference`
or `native`) to count its events; `event_matmul_t` (events^T @ rows, `reference` or
`native`) is the weight-gradient form `spiking.snn` uses. `python -m experiments.bench_interpreter` times them in place.
"""
from typing import Optional

import jax.numpy as jnp
from jaxtyping import Array, Int

from neurojax.errors import NeurojaxError
from neurojax.kernels import native_build
from neurojax.kernels.dispatch import KernelOp
from neurojax.kernels.event_matmul import native, reference, xla

IMPLEMENTATIONS = {"reference": reference.event_matmul, "xla": xla.event_matmul, "native": native.event_matmul}
FLOAT_IMPLS = {"xla"}


def _native_not_default() -> Optional[str]:
    return native_build.warn_fallback("event_matmul", native.why_unavailable())


OP = KernelOp("event_matmul", IMPLEMENTATIONS, {"cpu": "native", "*": "xla"},
              fallbacks={"native": (_native_not_default, "xla")})
T_IMPLEMENTATIONS = {"reference": reference.event_matmul_t, "native": native.event_matmul_t}
T_OP = KernelOp("event_matmul_t", T_IMPLEMENTATIONS, {"cpu": "native", "*": "reference"},
                fallbacks={"native": (_native_not_default, "reference")})
CSR_IMPLEMENTATIONS = {"reference": reference.event_matmul_csr, "native": native.event_matmul_csr}
CSR_OP = KernelOp("event_matmul_csr", CSR_IMPLEMENTATIONS, {"cpu": "native", "*": "reference"},
                  fallbacks={"native": (_native_not_default, "reference")})


def _choose(impl: Optional[str], integer_only: bool) -> str:
    name = OP.choose(impl)
    return "reference" if integer_only and name in FLOAT_IMPLS else name


def event_matmul(events: Int[Array, "T K"], fanout: Int[Array, "K N"], *, impl: Optional[str] = None,
                 integer_only: bool = False) -> Int[Array, "T N"]:
    """`events @ fanout` in int32 (integer operands) or float32 (both float32), doing work
    only for non-zero events (with `native`).

    `integer_only=True` (the neuromorphic interpreter) never takes the float32 path.
    """
    if events.ndim != 2 or fanout.ndim != 2 or events.shape[1] != fanout.shape[0]:
        raise NeurojaxError(f"event_matmul expects events [T, K] and fanout [K, N]; got {events.shape} "
                            f"and {fanout.shape}")
    floats = [jnp.issubdtype(a.dtype, jnp.floating) for a in (events, fanout)]
    if any(floats):
        if not all(a.dtype == jnp.float32 for a in (events, fanout)):
            raise NeurojaxError(f"event_matmul takes integer events and fanout, or both float32; got "
                                f"{events.dtype} and {fanout.dtype}")
        if integer_only:
            raise NeurojaxError("event_matmul: integer_only=True with float32 operands")
    else:
        for name, a in (("events", events), ("fanout", fanout)):
            if not jnp.issubdtype(a.dtype, jnp.integer):
                raise NeurojaxError(f"event_matmul expects integer {name}, got {a.dtype}")
    return IMPLEMENTATIONS[_choose(impl, integer_only)](events, fanout)


def event_matmul_t(events: Int[Array, "R K"], rows: Int[Array, "R N"], acc: Optional[Array] = None, *,
                   impl: Optional[str] = None) -> Int[Array, "K N"]:
    """`acc + events^T @ rows` (a weight gradient `x^T a`, accumulated over chunks; `acc`
    defaults to zeros), doing work only for non-zero events, without materializing the
    transpose and (native) in place of `acc`: int32 (wrapping) or float32 (all float32)."""
    if events.ndim != 2 or rows.ndim != 2 or events.shape[0] != rows.shape[0]:
        raise NeurojaxError(f"event_matmul_t expects events [R, K] and rows [R, N]; got {events.shape} "
                            f"and {rows.shape}")
    floats = [jnp.issubdtype(a.dtype, jnp.floating) for a in (events, rows)]
    if any(floats) and not all(a.dtype == jnp.float32 for a in (events, rows)):
        raise NeurojaxError(f"event_matmul_t takes integer operands, or both float32; got {events.dtype} "
                            f"and {rows.dtype}")
    if not any(floats) and not all(jnp.issubdtype(a.dtype, jnp.integer) for a in (events, rows)):
        raise NeurojaxError(f"event_matmul_t expects numeric operands; got {events.dtype} and {rows.dtype}")
    out = jnp.float32 if any(floats) else jnp.int32
    shape = (events.shape[1], rows.shape[1])
    acc = jnp.zeros(shape, out) if acc is None else acc
    if acc.shape != shape or acc.dtype != out:
        raise NeurojaxError(f"event_matmul_t: acc must be {jnp.dtype(out)}{list(shape)}, got {acc.dtype}{list(acc.shape)}")
    return T_IMPLEMENTATIONS[T_OP.choose(impl)](events, rows, acc)


def event_matmul_csr(events: Int[Array, "T K"], indptr: Int[Array, "K1"], indices: Int[Array, "P"],
                     values: Int[Array, "P"], n: int, *, impl: Optional[str] = None) -> Int[Array, "T N"]:
    """`events @ F` in int32 for a sparse fan-out F [K, n] in CSR form (integer ops only).

    The targets of source s are `indices[indptr[s]:indptr[s + 1]]` (in [0, n)), with weights
    `values` at the same positions; repeated targets add. Entries from `indptr[-1]` on are
    padding (ignored): callers pad P to reuse one compilation across similar fan-outs.
    """
    if events.ndim != 2 or indptr.ndim != 1 or indptr.shape[0] != events.shape[1] + 1:
        raise NeurojaxError(f"event_matmul_csr expects events [T, K] and indptr [K + 1]; got {events.shape} "
                            f"and {indptr.shape}")
    if indices.shape != values.shape or indices.ndim != 1:
        raise NeurojaxError(f"event_matmul_csr expects indices and values [P]; got {indices.shape} and {values.shape}")
    for name, a in (("events", events), ("indptr", indptr), ("indices", indices), ("values", values)):
        if not jnp.issubdtype(a.dtype, jnp.integer):
            raise NeurojaxError(f"event_matmul_csr expects integer {name}, got {a.dtype}")
    if not isinstance(n, int) or n < 0:
        raise NeurojaxError(f"event_matmul_csr: n must be a non-negative int, got {n!r}")
    return CSR_IMPLEMENTATIONS[CSR_OP.choose(impl)](events, indptr, indices, values, n)
