"""The one entry point for the linear recurrence; picks an implementation via `kernels.dispatch`.

Implementations (same signature `(a, b, h0) -> (h [B,T,d], h_T [B,d])`, each with the
shared reverse-recurrence VJP of `vjp.py`):
    reference    sequential loop over t (a `lax.scan`, time kept on axis 1); exact
                 left-to-right order
    associative  `lax.associative_scan`; log depth, regrouped sums
    chunked      scan inside fixed chunks, carry across chunks; regrouped sums
    pallas       Pallas kernel, one fori_loop over time per (row, feature block); exact
                 left-to-right order; interpret mode on CPU (opt-in; for tests)

CPU default: "reference". Measured on this repo's shared 2-core CPU box (jax 0.10.2,
float32, median of jitted calls, load average ~2.5 so +-30% noise):
`python -m neurojax.kernels.linear_recurrence.bench --reps 50 --shapes 8x256x256` and
`--reps 7 --shapes 8x2048x1024`, forward / forward+backward in ms:

                         reference     associative    chunked(64)    pallas (interpret)
    B 8, T 256,  d 256:  0.19 / 0.66   0.87 / 2.71    0.43 / 1.78    0.73 / 1.84
    B 8, T 2048, d 1024: 39 / 156      203 / 419      113 / 255      125 / 286

The sequential loop is the fastest at both shapes (and exact left-to-right, like the
one-token decode path): with 2 cores there is no parallelism for the chunked or
associative forms to use, and they move 2-3x the memory. Earlier runs, before the
reference kept time on axis 1, had it within noise of chunked at T 2048.

GPU/TPU: "chunked" (plain XLA; C + T/C sequential steps instead of T), unmeasured: no
accelerator here. "pallas" is opt-in: the tests check that it lowers to one Triton call
for CUDA, but it has not been compiled or run on a GPU or TPU.
"""
from typing import Optional

import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.errors import NeurojaxError
from neurojax.kernels.dispatch import KernelOp
from neurojax.kernels.linear_recurrence import pallas, reference, xla

OP = KernelOp(
    "linear_recurrence",
    {
        "reference": reference.linear_recurrence,
        "associative": xla.associative,
        "chunked": xla.chunked,
        "pallas": pallas.linear_recurrence,
    },
    {"cpu": "reference", "gpu": "chunked", "tpu": "chunked", "*": "reference"},
)
# The op's own table: name -> function (patching it patches what dispatch calls).
IMPLEMENTATIONS = OP.impls


def _check_inputs(a, b, h0) -> None:
    shapes = {"a": getattr(a, "shape", None), "b": getattr(b, "shape", None), "h0": getattr(h0, "shape", None)}
    for name, x in (("a", a), ("b", b), ("h0", h0)):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise NeurojaxError(f"linear_recurrence: {name} must be an array, got {type(x).__name__}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise NeurojaxError(f"linear_recurrence: {name} must be a float array, got dtype {x.dtype}")
    if len(a.shape) != 3 or len(b.shape) != 3 or len(h0.shape) != 2:
        raise NeurojaxError(f"linear_recurrence: need a, b [B, T, d] and h0 [B, d]; got shapes {shapes}")
    if a.shape != b.shape or h0.shape != (a.shape[0], a.shape[2]):
        raise NeurojaxError(f"linear_recurrence: shapes disagree, need a, b [B, T, d] and h0 [B, d]; got {shapes}")


def linear_recurrence(
    a: Float[Array, "B T d"], b: Float[Array, "B T d"], h0: Float[Array, "B d"], *, impl: Optional[str] = None
) -> tuple[Float[Array, "B T d"], Float[Array, "B d"]]:
    """`h_t = a_t * h_{t-1} + b_t` over axis 1 from `h0`; returns `(h [B,T,d], h_T [B,d])`.

    `impl` names an implementation; otherwise `kernels.dispatch` picks (forced, then the
    `NEUROJAX_KERNELS` variable, then the backend default). Mixed float dtypes are promoted
    to their common type.
    """
    name = OP.choose(impl)
    _check_inputs(a, b, h0)
    dtype = jnp.result_type(a, b, h0)
    a, b, h0 = (jnp.asarray(x, dtype) for x in (a, b, h0))
    if a.shape[1] == 0:  # nothing to scan: no states, and the state passes through
        return jnp.zeros_like(b), h0
    return OP.impls[name](a, b, h0)
