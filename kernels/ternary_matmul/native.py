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
import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from neurojax.errors import NeurojaxError
from neurojax.kernels.ternary_matmul.pack import PackedTernary, planes_of

SOURCE = Path(__file__).with_name("native_cpu.cc")
TARGET = "neurojax_ternary_matmul"
DISABLE_VAR = "NEUROJAX_NATIVE"
CACHE_VAR = "NEUROJAX_CACHE_DIR"
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w")
PATHS = {1: "avx512_vnni", 0: "portable"}
_warned: set = set()  # reasons already warned about


def cache_dir() -> Path:
    """Where built kernels are kept: `$NEUROJAX_CACHE_DIR` or `~/.cache/neurojax`."""
    return Path(os.environ.get(CACHE_VAR) or Path.home() / ".cache" / "neurojax")


def _compiler() -> str:
    return os.environ.get("CXX", "g++")


def _cpu_signature() -> str:
    """-march=native code only runs on the CPU it was built for: key the cache on its flags."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = ""
    return platform.machine() + flags


def _build(portable: bool) -> Path:
    """Compile `native_cpu.cc` (or reuse the cached build); raises NeurojaxError with the output."""
    flags = FLAGS + (("-DNEUROJAX_PORTABLE",) if portable else ())
    try:
        version = subprocess.run([_compiler(), "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise NeurojaxError(f"no C++ compiler ({_compiler()!r}: {e}); set CXX or install g++") from e
    key = hashlib.sha256("\0".join([SOURCE.read_text(), " ".join(flags), version, jax.__version__,
                                     _cpu_signature()]).encode()).hexdigest()[:16]
    out = cache_dir() / f"ternary_matmul_{'portable' if portable else 'native'}_{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: concurrent processes (pytest-xdist) never load a half-written file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    cmd = [_compiler(), *flags, "-I", jax.ffi.include_dir(), str(SOURCE), "-o", tmp]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        os.unlink(tmp)
        raise NeurojaxError(f"building the native ternary_matmul kernel failed:\n{' '.join(cmd)}\n"
                            f"{done.stderr[-4000:]}")
    os.replace(tmp, out)
    return out


@functools.lru_cache(maxsize=None)
def _load(portable: bool):
    """Build, load and register the kernel once per process: `(target name, path code)`."""
    lib = ctypes.cdll.LoadLibrary(str(_build(portable)))
    name = TARGET + ("_portable" if portable else "")
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(lib.NeurojaxTernaryMatmul), platform="cpu")
    return name, int(lib.neurojax_ternary_matmul_path())


def why_unavailable() -> Optional[str]:
    """None when the native kernel can run here, else the reason (building it if needed)."""
    if os.environ.get(DISABLE_VAR, "").strip() in ("0", "false", "no"):
        return f"disabled by {DISABLE_VAR}={os.environ[DISABLE_VAR]}"
    if jax.default_backend() != "cpu":
        return f"the native kernel is CPU-only; the default backend is {jax.default_backend()}"
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
    reason = why_unavailable()
    if reason is not None:
        if reason not in _warned:
            _warned.add(reason)
            warnings.warn(f"ternary_matmul: the native CPU kernel is unavailable ({reason}); "
                          f"using the XLA implementation", RuntimeWarning, stacklevel=2)
        return reason
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
