"""One dispatch rule for every kernel op: explicit `impl=` > forced > backend default
(or the default's fallback where it cannot run, `KernelOp(fallbacks=...)`).

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
    """A named op with interchangeable implementations and a per-backend default.

    `fallbacks` maps an implementation that may not run everywhere (a native build) to
    `(why_not_default, other)`: when `why_not_default()` gives a reason, the default is
    `other` instead. A requested implementation is never replaced.
    """

    def __init__(self, name: str, impls: dict[str, Callable], defaults: dict[str, str],
                 fallbacks: Optional[dict[str, tuple[Callable[[], Optional[str]], str]]] = None):
        if "*" not in defaults:
            raise ValueError(f"{name}: defaults need a '*' entry for unlisted backends")
        fallbacks = dict(fallbacks or {})
        for impl in [*defaults.values(), *fallbacks, *(other for _, other in fallbacks.values())]:
            if impl not in impls:
                raise ValueError(f"{name}: default or fallback {impl!r} is not an implementation")
        self.name, self.impls, self.defaults, self.fallbacks = name, impls, dict(defaults), fallbacks
        OPS[name] = self

    def check(self, impl: str) -> None:
        if impl not in self.impls:
            raise NeurojaxError(f"unknown {self.name} impl {impl!r}; known: {sorted(self.impls)}")

    def default(self) -> str:
        """The implementation for the current backend when none is requested."""
        impl = self.defaults.get(jax.default_backend(), self.defaults["*"])
        if impl in self.fallbacks and self.fallbacks[impl][0]() is not None:
            impl = self.fallbacks[impl][1]
        return impl

    def choose(self, impl: Optional[str] = None) -> str:
        """The implementation a call would use now (see the module docstring for the order)."""
        if impl is None:
            for op, forced in reversed(_forced_stack()):
                if op == self.name or (op is None and forced in self.impls):
                    impl = forced
                    break
        if impl is None:
            impl = _env_choice(self.name, self.impls)
        if impl is None:
            return self.default()
        self.check(impl)
        return impl

    def __call__(self, *args, impl: Optional[str] = None, **kwargs):
        return self.impls[self.choose(impl)](*args, **kwargs)


def interpret_pallas() -> bool:
    """Pallas kernels run in interpret mode where there is no GPU/TPU lowering (CPU)."""
    return jax.default_backend() == "cpu"
