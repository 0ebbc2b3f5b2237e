"""Build and load the C++ XLA FFI kernels (`kernels/<op>/native_cpu.cc`) on first use.

A source is compiled once per machine with `$CXX` (default `g++`) `-O3 -march=native`
against `jax.ffi.include_dir()` into `$NEUROJAX_CACHE_DIR` (default `~/.cache/neurojax`),
under a name hashed from the source, flags, compiler, jax version and CPU flags (a
`-march=native` build only runs on the CPU it was built for). Builds go to a temporary
file renamed into place, so concurrent processes never load a half-written library.
`NEUROJAX_NATIVE=0` turns every native kernel off (`disabled_reason`).
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

from neurojax.errors import NeurojaxError

DISABLE_VAR = "NEUROJAX_NATIVE"
CACHE_VAR = "NEUROJAX_CACHE_DIR"
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w")


def cache_dir() -> Path:
    """Where built kernels are kept: `$NEUROJAX_CACHE_DIR` or `~/.cache/neurojax`."""
    return Path(os.environ.get(CACHE_VAR) or Path.home() / ".cache" / "neurojax")


def compiler() -> str:
    return os.environ.get("CXX", "g++")


def _cpu_signature() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = ""
    return platform.machine() + flags


def disabled_reason() -> Optional[str]:
    """Why native kernels may not run in this process (env switch, non-CPU backend), else None."""
    if os.environ.get(DISABLE_VAR, "").strip() in ("0", "false", "no"):
        return f"disabled by {DISABLE_VAR}={os.environ[DISABLE_VAR]}"
    if jax.default_backend() != "cpu":
        return f"native kernels are CPU-only; the default backend is {jax.default_backend()}"
    return None


def build(source: Path, stem: str, extra_flags: tuple = ()) -> Path:
    """Compile `source` into a shared library (or reuse the cached build); NeurojaxError on failure."""
    flags = FLAGS + tuple(extra_flags)
    try:
        version = subprocess.run([compiler(), "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise NeurojaxError(f"no C++ compiler ({compiler()!r}: {e}); set CXX or install g++") from e
    key = hashlib.sha256("\0".join([source.read_text(), " ".join(flags), version, jax.__version__,
                                     _cpu_signature()]).encode()).hexdigest()[:16]
    out = cache_dir() / f"{stem}_{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    cmd = [compiler(), *flags, "-I", jax.ffi.include_dir(), str(source), "-o", tmp]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        os.unlink(tmp)
        raise NeurojaxError(f"building the native kernel {source.name} failed:\n{' '.join(cmd)}\n"
                            f"{done.stderr[-4000:]}")
    os.replace(tmp, out)
    return out


@functools.lru_cache(maxsize=None)
def load(source: Path, stem: str, extra_flags: tuple = (), targets: tuple = ()) -> ctypes.CDLL:
    """Build and load `source` once per process, registering `targets` ((ffi name, symbol), ...)."""
    lib = ctypes.cdll.LoadLibrary(str(build(source, stem, extra_flags)))
    for name, symbol in targets:
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    return lib


_warned: set = set()  # (op, reason) pairs already warned about


def warn_fallback(op: str, reason: Optional[str]) -> Optional[str]:
    """`reason` (why an op's native default cannot run), warning once per op and reason."""
    if reason is not None and (op, reason) not in _warned:
        _warned.add((op, reason))
        warnings.warn(f"{op}: the native CPU kernel is unavailable ({reason}); using the XLA implementation",
                      RuntimeWarning, stacklevel=3)
    return reason
