"""`native`: the event-driven matmul as a C++ XLA FFI kernel for the CPU (`native_cpu.cc`).

For each step it adds the fan-out rows of the sources that fired, so its work is the
number of events x N, not T x K x N: at 10% activity a tenth of a dense GEMM. Integer
ops only, int32 wrap-around like the reference. int8 and int32 dense fan-outs, and
sparse (CSR) int32 fan-outs whose indices it checks before writing. Float32 events with a
float32 fan-out sum in float32, in event order (a spiking network's binary inputs). Built on first
use by `kernels.native_build` (cached; `NEUROJAX_NATIVE=0` turns it off).
"""
import functools
from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from neurojax.errors import NeurojaxError
from neurojax.kernels import native_build

SOURCE = Path(__file__).with_name("native_cpu.cc")
TARGETS = {jnp.dtype(jnp.int8): ("neurojax_event_matmul_s8", "NeurojaxEventMatmulS8"),
           jnp.dtype(jnp.int32): ("neurojax_event_matmul_s32", "NeurojaxEventMatmulS32"),
           jnp.dtype(jnp.float32): ("neurojax_event_matmul_f32", "NeurojaxEventMatmulF32")}
CSR_TARGET = ("neurojax_event_matmul_csr", "NeurojaxEventMatmulCsr")
T_TARGETS = {jnp.dtype(jnp.float32): ("neurojax_event_matmul_t_f32", "NeurojaxEventMatmulTF32"),
             jnp.dtype(jnp.int32): ("neurojax_event_matmul_t_s32", "NeurojaxEventMatmulTS32")}


@functools.lru_cache(maxsize=None)
def _load() -> None:
    native_build.load(SOURCE, "event_matmul", (), (*TARGETS.values(), CSR_TARGET, *T_TARGETS.values()))


def why_unavailable() -> Optional[str]:
    """None when the kernel can run here, else the reason (building it if needed)."""
    reason = native_build.disabled_reason()
    if reason is not None:
        return reason
    try:
        _load()
    except (NeurojaxError, OSError, AttributeError) as e:
        return str(e)
    return None


def _check() -> None:
    reason = why_unavailable()
    if reason is not None:
        raise NeurojaxError(f"event_matmul impl 'native' is unavailable: {reason}")


def event_matmul(events: Int[Array, "T K"], fanout: Int[Array, "K N"]) -> Int[Array, "T N"]:
    _check()
    out = jnp.float32 if jnp.issubdtype(events.dtype, jnp.floating) else jnp.int32
    dtype = jnp.dtype(fanout.dtype)
    if dtype not in TARGETS:  # narrower integers widen to int32 (int8 has its own loop)
        fanout, dtype = fanout.astype(jnp.int32), jnp.dtype(jnp.int32)
    call = jax.ffi.ffi_call(TARGETS[dtype][0], jax.ShapeDtypeStruct((events.shape[0], fanout.shape[1]), out),
                            vmap_method="sequential")
    return call(events.astype(out), fanout)


def event_matmul_csr(events: Int[Array, "T K"], indptr: Int[Array, "K1"], indices: Int[Array, "P"],
                     values: Int[Array, "P"], n: int) -> Int[Array, "T N"]:
    _check()
    call = jax.ffi.ffi_call(CSR_TARGET[0], jax.ShapeDtypeStruct((events.shape[0], n), jnp.int32),
                            vmap_method="sequential")
    return call(*(a.astype(jnp.int32) for a in (events, indptr, indices, values)))


def event_matmul_t(events: Int[Array, "R K"], rows: Int[Array, "R N"], acc: Int[Array, "K N"]) -> Int[Array, "K N"]:
    _check()
    dtype = jnp.dtype(jnp.float32 if jnp.issubdtype(events.dtype, jnp.floating) else jnp.int32)
    call = jax.ffi.ffi_call(T_TARGETS[dtype][0], jax.ShapeDtypeStruct(acc.shape, dtype), vmap_method="sequential",
                            input_output_aliases={2: 0})  # accumulate in place where XLA can
    return call(events.astype(dtype), rows.astype(dtype), acc.astype(dtype))
