"""One dispatch rule for every kernel op: explicit `impl=` > forced > backend default.

Each op (`kernels/<op>/api.py`) builds a `KernelOp` from its implementations (same
signature each) and a backend -> implementation table. Tests and benchmarks force an
implementation without touching model code:

    with kernels.dispatch.force("pallas"):               # every op that has "pallas"
        ...
    with kernels.dispatch.force("chunked", op="linear_recurrence"):
        ...

or, for a whole process, `NEUROJAX_KERNELS="pallas"` or
`NEUROJAX_KERNELS="linear_recurrence=chunked,ternary_matmul=xla"`.
The choice is made when a function is traced: force before `jax.jit` traces it.
"""
import contextlib
import os
import threading
from typing import Callable, Iterator, Optional

import jax

from neurojax.errors import NeurojaxError

ENV_VAR = "NEUROJAX_KERNELS"
_LOCAL = threading.local()
OPS: dict[str, "KernelOp"] = {}


def _forced_stack() -> list:
    if not hasattr(_LOCAL, "stack"):
        _LOCAL.stack = []
    return _LOCAL.stack


def _env_choice(op: str, known: dict) -> Optional[str]:
    spec = os.environ.get(ENV_VAR, "").strip()
    if not spec:
        return None
    for part in spec.split(","):
        part = part.strip()
        if "=" in part:
            name, impl = (s.strip() for s in part.split("=", 1))
            if name not in OPS:
                raise NeurojaxError(f"{ENV_VAR}={spec!r}: unknown kernel op {name!r}; known: {sorted(OPS)}")
            if name == op:
                return impl
        elif part in known:  # a bare name applies to every op that has it
            return part
        elif not any(part in o.impls for o in OPS.values()):
            raise NeurojaxError(f"{ENV_VAR}={spec!r}: no kernel op has an implementation {part!r}")
    return None


@contextlib.contextmanager
def force(impl: str, op: Optional[str] = None) -> Iterator[None]:
    """Within the block, ops (or just `op`) trace with implementation `impl`.

    Without `op`, applies to every op that has an implementation of that name and raises
    if none does; with `op`, the op must exist and have it.
    """
    if op is not None:
        if op not in OPS:
            raise NeurojaxError(f"unknown kernel op {op!r}; known: {sorted(OPS)}")
        OPS[op].check(impl)
    elif not any(impl in o.impls for o in OPS.values()):
        raise NeurojaxError(f"no kernel op has an implementation {impl!r}; ops: "
                            + ", ".join(f"{n}: {sorted(o.impls)}" for n, o in sorted(OPS.items())))
    stack = _forced_stack()
    stack.append((op, impl))
    try:
        yield
    finally:
        stack.pop()


class KernelOp:
    """A named op with interchangeable implementations and a per-backend default."""

    def __init__(self, name: str, impls: dict[str, Callable], defaults: dict[str, str]):
        if "*" not in defaults:
            raise ValueError(f"{name}: defaults need a '*' entry for unlisted backends")
        for impl in defaults.values():
            if impl not in impls:
                raise ValueError(f"{name}: default {impl!r} is not an implementation")
        self.name, self.impls, self.defaults = name, impls, dict(defaults)
        OPS[name] = self

    def check(self, impl: str) -> None:
        if impl not in self.impls:
            raise NeurojaxError(f"unknown {self.name} impl {impl!r}; known: {sorted(self.impls)}")

    def requested(self, impl: Optional[str] = None) -> Optional[str]:
        """The implementation asked for by `impl=`, `force` or the env var; None if none was."""
        if impl is None:
            for op, forced in reversed(_forced_stack()):
                if op == self.name or (op is None and forced in self.impls):
                    impl = forced
                    break
        if impl is None:
            impl = _env_choice(self.name, self.impls)
        if impl is not None:
            self.check(impl)
        return impl

    def default(self) -> str:
        """The implementation for the current backend when none is requested."""
        return self.defaults.get(jax.default_backend(), self.defaults["*"])

    def choose(self, impl: Optional[str] = None) -> str:
        """The implementation a call would use now (see the module docstring for the order)."""
        return self.requested(impl) or self.default()

    def __call__(self, *args, impl: Optional[str] = None, **kwargs):
        return self.impls[self.choose(impl)](*args, **kwargs)


def interpret_pallas() -> bool:
    """Pallas kernels run in interpret mode where there is no GPU/TPU lowering (CPU)."""
    return jax.default_backend() == "cpu"
