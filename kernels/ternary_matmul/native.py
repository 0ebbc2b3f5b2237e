"""`native`: the packed ternary matmul as a C++ XLA FFI kernel for the CPU, built on first use.

XLA:CPU runs the decode-time reduction of `xla.py` at ~25 G weights/s and has no fast
int8 GEMM; `native_cpu.cc` reads the 2-bit codes once per call with AVX-512 VBMI + VNNI
(a portable loop on other CPUs), streaming the weights for decode rows and blocking
registers for prefill, integer ops only. `python -m experiments.bench_kernels` measures it.

The source is compiled once per machine with `$CXX` (default `g++`) `-O3 -march=native`
against `jax.ffi.include_dir()` into `$NEUROJAX_CACHE_DIR` (default
`~/.cache/neurojax`), under a name hashed from the source, flags, compiler, jaxlib and
CPU, then registered as an FFI target. Where that fails (no compiler, or
`NEUROJAX_NATIVE=0`), `available()` is False and `why_unavailable()` says why; the
op's default then falls back to XLA with a warning (`why_not_default`, the op's
`KernelOp` fallback; silently on CPUs without VNNI, where only the untuned portable loop
builds), while a requested `impl="native"` raises.
"""
import functools
from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from neurojax.errors import NeurojaxError
from neurojax.kernels import native_build
from neurojax.kernels.ternary_matmul.pack import PackedTernary, planes_of

SOURCE = Path(__file__).with_name("native_cpu.cc")
TARGET = "neurojax_ternary_matmul"
PATHS = {1: "avx512_vnni", 0: "portable"}


@functools.lru_cache(maxsize=None)
def _load(portable: bool):
    """Build, load and register the kernel once per process: `(target name, path code)`."""
    name = TARGET + ("_portable" if portable else "")
    lib = native_build.load(SOURCE, f"ternary_matmul_{'portable' if portable else 'native'}",
                            ("-DNEUROJAX_PORTABLE",) if portable else (), ((name, "NeurojaxTernaryMatmul"),))
    return name, int(lib.neurojax_ternary_matmul_path())


def why_unavailable() -> Optional[str]:
    """None when the native kernel can run here, else the reason (building it if needed)."""
    reason = native_build.disabled_reason()
    if reason is not None:
        return reason
    try:
        _load(False)
    except (NeurojaxError, OSError, AttributeError) as e:
        return str(e)
    return None


def why_not_default() -> Optional[str]:
    """Why the op's default should not be this kernel here, else None (`KernelOp.fallbacks`).

    Unavailable: the reason, with one RuntimeWarning per reason. Only the portable loop built
    (no AVX-512 VNNI): a reason, silently; that loop is exact but untuned.
    """
    if native_build.warn_fallback("ternary_matmul", why_unavailable()) is not None:
        return why_unavailable()
    if simd_path() != "avx512_vnni":
        return "only the portable loop builds on this CPU"
    return None


def available() -> bool:
    """Whether `impl="native"` can run in this process."""
    return why_unavailable() is None


def simd_path(portable: bool = False) -> str:
    """Which code path the build compiled: "avx512_vnni" or "portable"."""
    return PATHS[_load(portable)[1]]


def ternary_matmul(x: Int[Array, "M K"], packed: PackedTernary, *, portable: bool = False) -> Int[Array, "M N"]:
    """`x @ codes.T` in int32 by the native kernel (`portable=True`: the plain-loop build)."""
    reason = why_unavailable()
    if reason is not None:
        raise NeurojaxError(f"ternary_matmul impl 'native' is unavailable: {reason}")
    name, _ = _load(portable)
    k4, n = packed.data.shape
    x4 = planes_of(x.astype(jnp.int8), k4).transpose(0, 2, 1)          # [M, K4, 4]
    call = jax.ffi.ffi_call(name, jax.ShapeDtypeStruct((x.shape[0], n), jnp.int32), vmap_method="sequential")
    return call(x4, packed.data)
